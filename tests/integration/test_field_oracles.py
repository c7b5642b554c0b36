"""Field verdicts of issue 14 checked against the programs that read the result, not against a guess:

- a signer certificate outside its dates: dicom_sign refuses to sign; dcmtk's dcmsign 3.6.7 signs
  with a warning and then refuses that signature in --verify; dicom_sign state=verified refuses
  dcmsign's signature the same way (our signing verdict is the stricter one, documented);
- NaN in orthanc.json: Orthanc 1.10.1 refuses to start on it; orthanc_config refuses to write it;
- Debian's commented stock orthanc.json: Orthanc 1.10.1 starts on it (comments are valid Orthanc
  configuration), and on the plain JSON orthanc_config writes when that file is made the drop-in;
  so the module warns that the comments (the documentation) are lost, and does not refuse."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule
from support import module_run
from support.dicom_files import write_ct
from support.pki import NOW, TestPKI
from support.servers import Listener, dcmtk, free_port

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
STOCK = "/etc/orthanc"
live = pytest.mark.skipif(
    os.environ.get("DICOM_TLS_NETNS") != "1", reason="live listeners only inside scripts/netns.sh"
)


def read(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def run(name, args):
    warnings = []
    with mock.patch.object(AnsibleModule, "warn", lambda self, msg: warnings.append(msg)):
        failed, result = module_run.run(name, args)
    return failed, result, warnings


@pytest.mark.parametrize(
    "when, dcmsign_says, ours_says",
    [
        ((-30, -1), "certificate was expired at signature creation date", "has expired"),
        ((2, 30), "certificate was not yet valid at signature creation date", "is not yet valid"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_signer_outside_its_dates_dcmsign_and_dicom_sign(tmp_path, when, dcmsign_says, ours_says):
    pki = TestPKI(tmp_path / "pki")  # RSA: what dcmsign signs with by default
    days = [NOW + datetime.timedelta(days=d) for d in when]
    signer = pki.node("signer", not_before=days[0], not_after=days[1])
    original = write_ct(str(tmp_path / "ct.dcm"))
    before = read(original)

    # dicom_sign refuses, naming the certificate, and leaves the file alone
    failed, res, _w = run(
        "dicom_sign", {"path": [original], "privatekey_path": signer.key, "certificate_path": signer.cert}
    )
    assert failed and ours_says in res["msg"] and res["path"] == signer.cert, res
    assert read(original) == before

    # dcmsign signs anyway, with a warning, and its own verification refuses what it wrote
    signed = str(tmp_path / "dcmsign.dcm")
    sign = subprocess.run(
        [dcmtk("dcmsign"), "--sign", signer.key, signer.cert, original, signed],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sign.returncode == 0 and "signature will be invalid" in sign.stdout + sign.stderr, sign
    verify = subprocess.run(
        [dcmtk("dcmsign"), "--verify", "+cf", pki.root.cert, "+uf", pki.inter.cert, signed],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 101 and dcmsign_says in verify.stdout + verify.stderr, verify

    # and dicom_sign's verification of dcmsign's signature agrees with dcmsign
    failed, res, _w = run(
        "dicom_sign",
        {"path": [signed], "state": "verified", "ca_file": pki.root.cert, "untrusted_certs": [pki.inter.cert]},
    )
    (sig,) = res["files"][0]["signatures"]
    assert failed and sig["valid"] is False and "not valid at the signature datetime" in sig["reason"], res


def _minimal_config(tmp_path, extra: str) -> tuple[str, int]:
    conf, db = tmp_path / "conf", tmp_path / "db"
    conf.mkdir(parents=True)
    db.mkdir(exist_ok=True)
    port = free_port()
    head = {
        "Name": "oracle",
        "StorageDirectory": str(db),
        "IndexDirectory": str(db),
        "DicomPort": port,
        "HttpPort": free_port(),
        "RemoteAccessAllowed": False,
        "Plugins": [],
    }
    text = json.dumps(head, indent=2)[:-2] + ",\n" + extra + "\n}\n"
    (conf / "orthanc.json").write_text(text)
    return str(conf), port


@live
def test_orthanc_refuses_nan_and_so_does_orthanc_config(tmp_path):
    conf, port = _minimal_config(tmp_path / "nan", '  "DicomScuTimeout" : NaN')
    proc = subprocess.run([ORTHANC, conf], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "does not follow the JSON syntax" in proc.stdout + proc.stderr, proc

    ok_conf, ok_port = _minimal_config(tmp_path / "ok", '  "DicomScuTimeout" : 10')
    with Listener([ORTHANC, ok_conf], ok_port, str(tmp_path)):  # the control: a finite number starts
        pass

    before = read(os.path.join(ok_conf, "orthanc.json"))
    failed, res, _w = run("orthanc_config", {"config_dir": ok_conf, "settings": {"DicomScuTimeout": float("nan")}})
    assert failed and "settings" in res["msg"] and "nan" in res["msg"], res
    assert read(os.path.join(ok_conf, "orthanc.json")) == before
    assert sorted(os.listdir(ok_conf)) == ["orthanc.json"]


def _comments(text: str) -> int:
    return len(re.findall(r"^\s*//", text, re.M))


@live
@pytest.mark.skipif(not os.path.isfile(os.path.join(STOCK, "orthanc.json")), reason="Debian's orthanc not installed")
def test_orthanc_reads_the_commented_stock_file_and_the_plain_one(tmp_path):
    conf = str(tmp_path / "orthanc")
    shutil.copytree(STOCK, conf)
    db = tmp_path / "db"
    db.mkdir()
    port = free_port()
    settings = {"DicomPort": port, "HttpPort": free_port(), "StorageDirectory": str(db), "IndexDirectory": str(db)}
    stock = os.path.join(conf, "orthanc.json")
    comments = _comments(read(stock).decode())
    assert comments > 100  # Debian documents every option in comments

    # the options live in the stock file: edited in place, comments kept, no warning; Orthanc starts
    failed, res, warnings = run("orthanc_config", {"config_dir": conf, "settings": settings})
    assert not failed and res["files"] == ["orthanc.json"] and warnings == [], (res, warnings)
    assert _comments(read(stock).decode()) == comments
    with Listener([ORTHANC, conf], port, str(tmp_path)):
        pass

    # the stock file made the drop-in: rewritten as plain JSON, with the warning; Orthanc still starts
    failed, res, warnings = run(
        "orthanc_config", {"config_dir": conf, "settings": {"Name": "oracle"}, "dropin": "orthanc.json"}
    )
    assert not failed and res["files"] == ["orthanc.json"], res
    assert [w for w in warnings if "comments are lost" in w and stock in w], warnings
    assert _comments(read(stock).decode()) == 0
    with Listener([ORTHANC, conf], port, str(tmp_path)):
        pass
