"""orthanc_config through Ansible on a copy of Debian's stock /etc/orthanc, with Orthanc really
started on the result: DicomTls options defined once, Orthanc accepting a TLS C-ECHO; and the trap
it avoids - a drop-in that repeats a stock option keeps Orthanc from starting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from support.ansible_run import run_module
from support.servers import Listener, dcmtk, free_port

STOCK = "/etc/orthanc"
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"

pytestmark = [
    pytest.mark.skipif(
        not os.path.isfile(os.path.join(STOCK, "orthanc.json")), reason="Debian's orthanc not installed"
    ),
    pytest.mark.skipif(os.environ.get("DICOM_TLS_NETNS") != "1", reason="live listeners only inside scripts/netns.sh"),
]


def _folder(tmp_path):
    conf = tmp_path / "orthanc"
    shutil.copytree(STOCK, conf)
    return str(conf)


def _settings(tmp_path, pki, node, port, http):
    db = tmp_path / "db"
    db.mkdir(exist_ok=True)
    return {
        "DicomPort": port,
        "HttpPort": http,
        "StorageDirectory": str(db),
        "IndexDirectory": str(db),
        "DicomAet": "ORTHANC_T",
        "DicomCheckCalledAet": True,
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": node.chain,
        "DicomTlsPrivateKey": node.key,
        "DicomTlsTrustedCertificates": pki.root.cert,
        "DicomTlsRemoteCertificateRequired": True,
    }


@pytest.mark.parametrize("bom", [False, True], ids=["plain", "utf8-bom"])
def test_stock_folder_configured_and_orthanc_answers_tls(pki, tmp_path, bom):
    conf = _folder(tmp_path)
    stock = os.path.join(conf, "orthanc.json")
    if bom:  # saved by an editor that writes a UTF-8 BOM: Orthanc 1.10.1 starts with it
        with open(stock, "rb") as fh:
            data = fh.read()
        with open(stock, "wb") as fh:
            fh.write(b"\xef\xbb\xbf" + data)
    server, client = pki.node("orthanc-t"), pki.node("client-t")
    port, http = free_port(), free_port()
    settings = _settings(tmp_path, pki, server, port, http)
    res = run_module("orthanc_config", {"config_dir": conf, "settings": settings}, diff=True)
    assert not res.get("failed") and res["changed"], res["_output"][-3000:]
    assert res["defined_in"]["DicomTlsEnabled"] == "orthanc.json"
    assert res["defined_in"]["DicomTlsCertificate"] == "dicom-tls.json"
    assert "PRIVATE KEY" not in res["_output"]
    again = run_module("orthanc_config", {"config_dir": conf, "settings": settings})
    assert again["changed"] is False
    with open(stock, "rb") as fh:
        assert fh.read().startswith(b"\xef\xbb\xbf") == bom  # the BOM is kept, not added
    with Listener([ORTHANC, "--verbose", conf], port, str(tmp_path)) as orthanc:
        ok = subprocess.run(
            [dcmtk("echoscu"), "+tls", client.key, client.chain, "+cf", pki.root.cert, "-aec", "ORTHANC_T"]
            + ["127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert ok.returncode == 0, ok.stderr + orthanc.output()[-2000:]
        anonymous = subprocess.run(
            [dcmtk("echoscu"), "+tla", "-ic", "-aec", "ORTHANC_T", "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert anonymous.returncode != 0


def test_check_mode_predicts_and_writes_nothing(pki, tmp_path):
    conf = _folder(tmp_path)
    before = {n: open(os.path.join(conf, n), "rb").read() for n in os.listdir(conf)}
    settings = _settings(tmp_path, pki, pki.node("orthanc-c"), 4242, 8042)
    res = run_module("orthanc_config", {"config_dir": conf, "settings": settings}, check=True)
    assert res["changed"] is True
    assert sorted(res["files"]) == ["dicom-tls.json", "orthanc.json"]
    assert {n: open(os.path.join(conf, n), "rb").read() for n in os.listdir(conf)} == before


def test_duplicate_in_a_dropin_breaks_orthanc_and_the_module_removes_it(pki, tmp_path):
    conf = _folder(tmp_path)
    port, http = free_port(), free_port()
    settings = _settings(tmp_path, pki, pki.node("orthanc-d"), port, http)
    # What a naive drop-in does: repeat a stock option. Orthanc refuses to start.
    with open(os.path.join(conf, "dicom-tls.json"), "w") as fh:
        json.dump(settings, fh)
    with pytest.raises(RuntimeError, match="exited"):
        Listener([ORTHANC, conf], port, str(tmp_path))
    res = run_module("orthanc_config", {"config_dir": conf, "settings": settings})
    assert not res.get("failed"), res["_output"][-3000:]
    removed = {c["key"] for c in res["changes"] if c["action"] == "removed duplicate"}
    assert {"DicomTlsEnabled", "DicomTlsRemoteCertificateRequired", "DicomPort"} <= removed
    with Listener([ORTHANC, conf], port, str(tmp_path)):
        pass


def test_passphrase_protected_key_is_refused(tmp_path):
    conf = _folder(tmp_path)
    key = tmp_path / "enc.key"
    key.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n")
    before = open(os.path.join(conf, "orthanc.json"), "rb").read()
    res = run_module("orthanc_config", {"config_dir": conf, "settings": {"DicomTlsPrivateKey": str(key)}})
    assert res.get("failed") is True
    assert "passphrase-protected" in res["msg"] and str(key) in res["msg"]
    assert open(os.path.join(conf, "orthanc.json"), "rb").read() == before
    assert not os.path.exists(os.path.join(conf, "dicom-tls.json"))
