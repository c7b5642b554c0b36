"""Orthanc's configuration folder: options set where defined, comments kept, no duplicates."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import orthanc_config as oc
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError

DEBIAN = "/etc/orthanc"
TLS = {
    "DicomTlsEnabled": True,
    "DicomTlsCertificate": "/srv/tls/chain.pem",
    "DicomTlsPrivateKey": "/srv/tls/node.key",
    "DicomTlsTrustedCertificates": "/srv/tls/trusted.pem",
    "DicomTlsRemoteCertificateRequired": True,
}


def _strip(text: str) -> dict:
    cfg = oc.parse(text, "x")
    return {k: m.value for k, m in cfg.members.items()}


@pytest.fixture
def folder(tmp_path):
    if not os.path.isfile(os.path.join(DEBIAN, "orthanc.json")):
        pytest.skip("Debian's orthanc package is not installed")
    dest = tmp_path / "orthanc"
    shutil.copytree(DEBIAN, dest)
    return str(dest)


def test_debian_stock_folder_parses_with_its_comments(folder):
    files = oc.read_folder(folder)
    assert "DicomTlsEnabled" in files["orthanc.json"].members
    assert files["orthanc.json"].members["DicomTlsEnabled"].value is False
    # the commented-out DicomTlsCertificate is not an option
    assert "DicomTlsCertificate" not in files["orthanc.json"].members


def test_each_option_defined_exactly_once_and_comments_kept(folder):
    before = open(os.path.join(folder, "orthanc.json")).read()
    p = oc.plan(folder, TLS)
    oc.apply(p)
    assert p.defined_in["DicomTlsEnabled"] == "orthanc.json"
    assert p.defined_in["DicomTlsCertificate"] == "dicom-tls.json"
    files = oc.read_folder(folder)
    seen: dict[str, list[str]] = {}
    for name, cfg in files.items():
        for key in cfg.members:
            seen.setdefault(key, []).append(name)
    assert all(len(v) == 1 for v in seen.values()), {k: v for k, v in seen.items() if len(v) > 1}
    merged = {k: m.value for cfg in files.values() for k, m in cfg.members.items()}
    for key, value in TLS.items():
        assert merged[key] == value
    after = open(os.path.join(folder, "orthanc.json")).read()
    assert after.replace('"DicomTlsEnabled" : true', '"DicomTlsEnabled" : false') == before
    assert json.load(open(os.path.join(folder, "dicom-tls.json"))) == {
        k: v for k, v in TLS.items() if k not in ("DicomTlsEnabled", "DicomTlsRemoteCertificateRequired")
    }
    assert oc.plan(folder, TLS).files == {}


def test_duplicate_in_dropin_is_removed(folder):
    with open(os.path.join(folder, "dicom-tls.json"), "w") as fh:
        json.dump({"DicomTlsEnabled": True, "Other": 1}, fh)
    p = oc.plan(folder, {"DicomTlsEnabled": True})
    assert {"key": "DicomTlsEnabled", "file": "dicom-tls.json", "action": "removed duplicate"} in [
        {k: c[k] for k in ("key", "file", "action")} for c in p.changes
    ]
    oc.apply(p)
    assert json.load(open(os.path.join(folder, "dicom-tls.json"))) == {"Other": 1}


def test_option_defined_in_two_files_is_an_error_naming_both(folder):
    with open(os.path.join(folder, "extra.json"), "w") as fh:
        fh.write('{ "DicomTlsEnabled" : true }')
    with pytest.raises(DicomTlsError, match=r"extra\.json and .*orthanc\.json|orthanc\.json and .*extra\.json"):
        oc.plan(folder, TLS)


def test_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / "orthanc.json"
    path.write_text('{\n  // comment\n  "A" : 1,\n  "B" : \n}\n')
    with pytest.raises(DicomTlsError, match=r"line 5") as err:
        oc.read_folder(str(tmp_path))
    assert err.value.path == str(path)
    assert path.read_text().startswith("{\n  // comment")


def test_comments_strings_and_nested_values():
    text = '{ /* a } */ "A" : "x // not a comment", // c\n "B" : { "C" : [1, /* 2 */ 3] } }'
    assert _strip(text) == {"A": "x // not a comment", "B": {"C": [1, 3]}}


def test_dict_value_replaced_in_place(tmp_path):
    (tmp_path / "orthanc.json").write_text('{\n  // keep me\n  "DicomModalities" : {\n  },\n  "X" : 1\n}\n')
    p = oc.plan(str(tmp_path), {"DicomModalities": {"a": {"AET": "A", "Host": "127.0.0.1", "Port": 1}}})
    oc.apply(p)
    text = (tmp_path / "orthanc.json").read_text()
    assert "// keep me" in text and '"X" : 1' in text
    assert _strip(text)["DicomModalities"]["a"]["AET"] == "A"


def test_encrypted_key_is_refused(tmp_path):
    key = tmp_path / "k.pem"
    key.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
    with pytest.raises(DicomTlsError, match="passphrase-protected"):
        oc.check_private_key_usable(str(key))


def test_new_instance_starts_as_a_copy_of_the_stock_folder(folder, tmp_path):
    """seed_dir: a folder without orthanc.json is created as a copy of the stock one (every file, its
    bytes and mode) with the settings applied to the copy, in one plan; the next plan has nothing to do."""
    dest = str(tmp_path / "instance" / "orthanc")
    p = oc.plan(dest, TLS, seed_dir=folder)
    assert oc.written(p) == sorted(os.listdir(folder) + ["dicom-tls.json"])
    actions = {a.path: a for a in oc.plan_actions(p)}
    assert actions[os.path.join(dest, "orthanc.json")].action == "created"
    assert actions[os.path.join(dest, "orthanc.json")].reason.startswith("copied from %s/orthanc.json" % folder)
    assert not os.path.exists(dest)  # planning writes nothing
    oc.apply(p)
    for name in os.listdir(folder):
        src, out = os.path.join(folder, name), os.path.join(dest, name)
        assert os.stat(out).st_mode & 0o7777 == os.stat(src).st_mode & 0o7777, name
        if name != "orthanc.json":
            assert open(out, "rb").read() == open(src, "rb").read(), name
    merged = {k: m.value for cfg in oc.read_folder(dest).values() for k, m in cfg.members.items()}
    assert {k: merged[k] for k in TLS} == TLS
    again = oc.plan(dest, TLS, seed_dir=folder)
    assert again.files == {} and again.seeded == {} and oc.plan_actions(again) == []


def test_seed_dir_leaves_an_existing_folder_alone(folder, tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "orthanc.json").write_text('{\n  "Name" : "mine"\n}\n')
    p = oc.plan(str(dest), {"Name": "mine"}, seed_dir=folder)
    assert p.seeded == {} and p.files == {}
    (tmp_path / "empty-stock").mkdir()
    with pytest.raises(DicomTlsError, match="seed_dir holds no orthanc.json"):
        oc.plan(str(tmp_path / "new"), TLS, seed_dir=str(tmp_path / "empty-stock"))
    assert not os.path.exists(tmp_path / "new")
