"""Material OpenSSL 3 refuses by policy where dcmtk accepts it: the echo reason says so.

dcmtk's tools run OpenSSL at security level 0; this host's default (Debian: level 2) is what
dicom_tls_echo's rfc8996/bcp195-nd/bcp195-ex profiles use. For each input the oracles are
`openssl verify -auth_level 0|2` (code, depth, subject) and dcmtk's echoscu against the same storescp.
The reason must name the certificate at the failing depth, what is weak, the level, and that dcmtk
accepts it; a level-0 profile (bcp195) reaches the listener, as the reason advises."""

from __future__ import annotations

import re
import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import tls_echo as te
from support.legacy_pki import LegacyPKI, openssl
from support.servers import StoreSCP, dcmtk

te.silence_pynetdicom()


def _verify(level: int, root: str, inter: str, leaf: str) -> tuple[int, int, str] | None:
    out = openssl(
        "verify", "-auth_level", str(level), "-nameopt", "compat", "-CAfile", root, "-untrusted", inter, leaf,
        check=False,
    )  # fmt: skip
    text = out.stdout + out.stderr
    found = re.search(r"^(.*)\nerror (\d+) at (\d+) depth lookup", text, re.M)
    if found is None:
        assert out.returncode == 0, text
        return None
    subject, code, depth = found.groups()
    return int(code), int(depth), "/" + "/".join(subject.split(", "))


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("sha1-intermediate", "is signed with SHA-1"),
        ("rsa1024-intermediate", "has a 1024-bit RSA key"),
        ("rsa1024-leaf", "has a 1024-bit RSA key"),
    ],
)
def test_policy_refusal_is_explained(tmp_path, case, words):
    m = LegacyPKI(tmp_path / "pki")
    m.root("root", "-sha256")
    m.child("inter", "root", "-sha1" if case == "sha1-intermediate" else "-sha256", ca=True,
            key="rsa:1024" if case == "rsa1024-intermediate" else "rsa:2048")  # fmt: skip
    m.child("leaf", "inter", "-sha256", key="rsa:1024" if case == "rsa1024-leaf" else "rsa:2048")
    root, inter, leaf = m.path("root.pem"), m.path("inter.pem"), m.path("leaf.pem")
    assert _verify(0, root, inter, leaf) is None  # dcmtk's level accepts it
    code, depth, subject = _verify(2, root, inter, leaf)
    assert (code, depth) == {"sha1-intermediate": (68, 1), "rsa1024-intermediate": (67, 1), "rsa1024-leaf": (66, 0)}[
        case
    ]
    chain = m.path("leaf-chain.pem")
    with open(chain, "w") as fh:
        fh.write(open(leaf).read() + open(inter).read())
    with StoreSCP(["+tls", m.path("leaf.key"), chain, "-ic"], str(tmp_path)) as scp:
        dcmtk_echo = subprocess.run(
            [dcmtk("echoscu"), "+tla", "+cf", root, "-aec", scp.aet, "127.0.0.1", str(scp.port)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert dcmtk_echo.returncode == 0, dcmtk_echo.stderr  # dcmtk accepts the server
        target = {"host": "127.0.0.1", "port": scp.port, "ca_file": root, "timeout": 5, "called_ae_title": scp.aet}
        res = te.check(te.normalize_target(target))
        level0 = te.check(te.normalize_target(dict(target, profile="bcp195")))
    assert res["status"] == "server_certificate_rejected", res
    reason = res["reason"]
    assert "%s (depth %d) %s" % (subject, depth, words) in reason, reason
    assert "OpenSSL security level 2" in reason and "dcmtk" in reason and "level 0" in reason, reason
    assert level0["status"] == "success", level0["reason"]
