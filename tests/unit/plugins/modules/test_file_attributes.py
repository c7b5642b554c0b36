"""Ansible's file options on the modules that write files (add_file_common_args): an octal mode is the
mode a file is created with, a symbolic one is applied after, a change of mode alone is a change (and
check mode predicts it without touching the file), a second run changes nothing, and a mode that is
neither is refused before anything is written."""

from __future__ import annotations

import os
import stat

import pytest
from support import dicom_files
from support.module_run import run
from support.pki import TestPKI


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return TestPKI(tmp_path_factory.mktemp("pki"))


def crl_args(pki, path, **kw):
    return dict(path=path, issuer_cert_path=pki.inter.cert, issuer_privatekey_path=pki.inter.key, **kw)


@pytest.mark.parametrize("module", ["dicom_crl", "dicom_metrics"])
def test_octal_then_symbolic_then_nothing(module, pki, tmp_path):
    path = str(tmp_path / "out")
    args = crl_args(pki, path) if module == "dicom_crl" else dict(path=path)
    failed, res = run(module, dict(args, mode="0640"))
    assert not failed and res["changed"], res
    assert mode_of(path) == 0o640
    content = open(path, "rb").read()
    # symbolic: the same content, the mode changed by Ansible; check mode says so first
    failed, res = run(module, dict(args, mode="u=rw,g=,o="), check_mode=True)
    assert not failed and res["changed"] and mode_of(path) == 0o640, res
    failed, res = run(module, dict(args, mode="u=rw,g=,o="))
    assert not failed and res["changed"] and mode_of(path) == 0o600, res
    assert open(path, "rb").read() == content
    failed, res = run(module, dict(args, mode="u=rw,g=,o="))
    assert not failed and not res["changed"], res


@pytest.mark.parametrize("module", ["dicom_crl", "dicom_metrics", "dicom_truststore"])
@pytest.mark.parametrize("mode", ["9999", "0o644x", "u+q", "77777"])
def test_bad_mode_refused_before_any_write(module, mode, pki, tmp_path):
    path = str(tmp_path / "out")
    args = {
        "dicom_crl": crl_args(pki, path),
        "dicom_metrics": dict(path=path),
        "dicom_truststore": dict(path=path, certificates=[pki.root.cert]),
    }[module]
    failed, res = run(module, dict(args, mode=mode))
    assert failed and "mode" in res["msg"], res
    assert not os.path.exists(path)


def test_truststore_entries_take_mode_and_group(pki, tmp_path):
    path = str(tmp_path / "trust")
    group = str(os.getgid())
    args = dict(path=path, certificates=[pki.root.cert, pki.inter.cert], allow_non_root=True, mode="0640", group=group)
    failed, res = run("dicom_truststore", args)
    assert not failed and res["changed"], res
    entries = sorted(n for n in os.listdir(path) if not n.startswith("."))
    assert len(entries) == 2
    for name in entries:
        st = os.stat(os.path.join(path, name))
        assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == os.getgid()
    failed, res = run("dicom_truststore", args)
    assert not failed and not res["changed"], res


def test_orthanc_config_dropin_takes_mode(tmp_path):
    args = dict(config_dir=str(tmp_path), settings={"DicomTlsEnabled": True}, mode="0640")
    failed, res = run("orthanc_config", args)
    assert not failed and res["changed"], res
    assert mode_of(str(tmp_path / "dicom-tls.json")) == 0o640
    failed, res = run("orthanc_config", args)
    assert not failed and not res["changed"], res
    failed, res = run("orthanc_config", dict(args, mode="0600"), check_mode=True)
    assert not failed and res["changed"] and mode_of(str(tmp_path / "dicom-tls.json")) == 0o640, res


def pkcs12_args(pki, tmp_path, **kw):
    return dict(
        path=str(tmp_path / "appliance.p12"),
        certificate_path=str(tmp_path / "appliance.pem"),
        passphrase="appliance secret",
        subject="/O=medimg/CN=appliance",
        key_type="ecdsa",
        issuer_cert_path=pki.inter.cert,
        issuer_privatekey_path=pki.inter.key,
        **kw,
    )


def sign_args(pki, tmp_path, **kw):
    node = pki.node("file attributes signer")
    src = str(tmp_path / "ct.dcm")
    if not os.path.exists(src):
        dicom_files.write_ct(src)
    return dict(
        path=[src], dest=str(tmp_path / "signed.dcm"), privatekey_path=node.key, certificate_path=node.cert, **kw
    )


def test_pkcs12_mode_on_certificate_copy_key_store_stays_0600(pki, tmp_path):
    args = pkcs12_args(pki, tmp_path, mode="0640", group=str(os.getgid()))
    failed, res = run("dicom_pkcs12", args)
    assert not failed and res["changed"], res
    assert mode_of(args["path"]) == 0o600 and mode_of(args["certificate_path"]) == 0o640
    failed, res = run("dicom_pkcs12", args)
    assert not failed and not res["changed"], res
    # a change of mode alone: predicted in check mode without touching the file, then made, then nothing
    failed, res = run("dicom_pkcs12", dict(args, mode="u=rw,g=,o="), check_mode=True)
    assert not failed and res["changed"] and mode_of(args["certificate_path"]) == 0o640, res
    assert res["actions"] == [
        {"path": args["certificate_path"], "action": "attributes_changed", "reason": "mode 0640 -> 0600"}
    ]
    failed, res = run("dicom_pkcs12", dict(args, mode="u=rw,g=,o="))
    assert not failed and res["changed"] and mode_of(args["certificate_path"]) == 0o600, res
    assert mode_of(args["path"]) == 0o600
    failed, res = run("dicom_pkcs12", dict(args, mode="u=rw,g=,o="))
    assert not failed and not res["changed"], res


def test_sign_dest_takes_mode(pki, tmp_path):
    args = sign_args(pki, tmp_path, mode="0640")
    failed, res = run("dicom_sign", args)
    assert not failed and res["changed"] and res["totals"]["signed"] == 1, res
    assert mode_of(args["dest"]) == 0o640
    content = open(args["dest"], "rb").read()
    failed, res = run("dicom_sign", args)
    assert not failed and not res["changed"], res
    failed, res = run("dicom_sign", dict(args, mode="0600"), check_mode=True)
    assert not failed and res["changed"] and mode_of(args["dest"]) == 0o640, res
    assert [(a["path"], a["action"]) for a in res["actions"]] == [(args["dest"], "attributes_changed")]
    failed, res = run("dicom_sign", dict(args, mode="0600"))
    assert not failed and res["changed"] and mode_of(args["dest"]) == 0o600, res
    assert open(args["dest"], "rb").read() == content
    failed, res = run("dicom_sign", dict(args, mode="0600"))
    assert not failed and not res["changed"], res


@pytest.mark.parametrize("module", ["dicom_pkcs12", "dicom_sign"])
@pytest.mark.parametrize("mode", ["9999", "u+q"])
def test_bad_mode_refused_before_any_write_more(module, mode, pki, tmp_path):
    args = pkcs12_args(pki, tmp_path) if module == "dicom_pkcs12" else sign_args(pki, tmp_path)
    written = [args["path"], args["certificate_path"]] if module == "dicom_pkcs12" else [args["dest"]]
    failed, res = run(module, dict(args, mode=mode))
    assert failed and "mode" in res["msg"], res
    assert not any(os.path.exists(p) for p in written)
