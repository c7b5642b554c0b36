"""The harness itself: a live storescp with TLS on loopback accepts echoscu with a trusted
client certificate and refuses one from an untrusted CA; stopped by PID, nothing is left running."""

from __future__ import annotations

import os
import subprocess

from support.servers import StoreSCP, dcmtk


def echoscu(port, key, cert, ca, aec="STORESCP"):
    return subprocess.run(
        [dcmtk("echoscu"), "+tls", key, cert, "+cf", ca, "-aec", aec, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_storescp_tls_accepts_trusted_and_refuses_untrusted(pki, tmp_path):
    server = pki.node("listener")
    client = pki.node("client")
    stranger = type(pki)(tmp_path / "other", prefix="Other")
    outsider = stranger.node("outsider")
    with StoreSCP(["+tls", server.key, server.chain, "+cf", pki.root.cert], str(tmp_path)) as scp:
        ok = echoscu(scp.port, client.key, client.chain, pki.root.cert)
        assert ok.returncode == 0, ok.stderr
        bad = echoscu(scp.port, outsider.key, outsider.chain, pki.root.cert)
        assert bad.returncode != 0
        pid = scp.pid
    assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"
