"""Verdicts OpenSSL and dcmtk give, given by the modules before anything is written, each against the
openssl oracle: an issuer whose keyUsage lacks keyCertSign, a CA certificate installed as a node
certificate, a CRL signed by an expired CA, NaN into orthanc.json."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from support import module_run
from support.hostile import NAN, snapshot
from support.pki import new_key

NOW = datetime.datetime.now(datetime.UTC)


def _ca(work: str, name: str, key_usage: x509.KeyUsage, not_after: datetime.datetime) -> tuple[str, str]:
    key = new_key("ecdsa")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=30))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(work, name + ".pem"), os.path.join(work, name + ".key")
    with open(cert_path, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_path, key_path


def _refused(work: str, module: str, args: dict, words: list[str]) -> dict:
    before = snapshot(work)
    failed, result = module_run.run(module, args)
    assert failed, result
    for word in words:
        assert word in result["msg"], result["msg"]
    assert snapshot(work) == before
    return result


NO_CERT_SIGN = x509.KeyUsage(True, False, False, False, False, False, True, False, False)  # digitalSignature, cRLSign
CA_USAGE = x509.KeyUsage(False, False, False, False, False, True, True, False, False)


def test_issuer_without_keycertsign_is_refused(workspace, work):
    ca_cert, ca_key = _ca(work, "no-certsign", NO_CERT_SIGN, NOW + datetime.timedelta(days=300))
    args = dict(workspace.base("dicom_cert", work), issuer_cert_path=ca_cert, issuer_privatekey_path=ca_key)
    result = _refused(work, "dicom_cert", args, ["keyCertSign", "no-certsign"])
    assert result["path"] == ca_cert
    # oracle: a certificate signed by it anyway is refused by openssl verify
    failed, _result = module_run.run("dicom_cert", dict(args, path=os.path.join(work, "x.pem")), check_mode=True)
    assert failed  # check mode gives the same verdict, it does not promise "created"
    csr = workspace.csr.encode("ascii")
    key = serialization.load_pem_private_key(open(ca_key, "rb").read(), None)
    ca = x509.load_pem_x509_certificate(open(ca_cert, "rb").read())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.load_pem_x509_csr(csr).subject)
        .issuer_name(ca.subject)
        .public_key(x509.load_pem_x509_csr(csr).public_key())
        .serial_number(7)
        .not_valid_before(NOW - datetime.timedelta(hours=1))
        .not_valid_after(NOW + datetime.timedelta(days=3))
        .sign(key, hashes.SHA256())
    )
    leaf_path = os.path.join(work, "leaf.pem")
    with open(leaf_path, "wb") as fh:
        fh.write(leaf.public_bytes(serialization.Encoding.PEM))
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", ca_cert, leaf_path], capture_output=True, text=True, check=False
    )
    assert verify.returncode != 0, verify.stdout


def test_ca_certificate_installed_as_node_certificate_is_refused(workspace, work):
    inter = workspace.files["inter"]
    rel = os.path.relpath(inter.key, workspace.template)
    with open(inter.cert) as fh:
        ca_pem = fh.read()
    key_copy = os.path.join(work, "out", "node.key")
    shutil.copy(os.path.join(work, rel), key_copy)
    args = dict(workspace.base("dicom_cert", work), certificate_content=ca_pem, privatekey_path=key_copy)
    for key in ("subject", "issuer_cert_path", "issuer_privatekey_path", "key_type"):
        args.pop(key)
    _refused(work, "dicom_cert", args, ["CA certificate", "CA:TRUE"])
    # oracle: openssl says the same of it
    out = subprocess.run(
        ["openssl", "x509", "-in", inter.cert, "-noout", "-ext", "basicConstraints"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "CA:TRUE" in out.stdout


def test_crl_issued_by_an_expired_ca_is_refused(workspace, work):
    ca_cert, ca_key = _ca(work, "expired-ca", CA_USAGE, NOW - datetime.timedelta(days=1))
    args = dict(workspace.base("dicom_crl", work), issuer_cert_path=ca_cert, issuer_privatekey_path=ca_key)
    result = _refused(work, "dicom_crl", args, ["expired-ca", "has expired"])
    assert result["path"] == ca_cert
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", ca_cert, ca_cert], capture_output=True, text=True, check=False
    )
    assert verify.returncode != 0 and "expired" in verify.stdout + verify.stderr


def test_nan_never_reaches_orthanc_json(workspace, work):
    args = workspace.base("orthanc_config", work)
    args["settings"] = dict(args["settings"], DicomScuTimeout=NAN)
    _refused(work, "orthanc_config", args, ["settings", "nan"])


@pytest.mark.parametrize(
    "days, reason, oracle",
    [((-30, -1), "has expired", "expired"), ((2, 30), "is not yet valid", "not yet valid")],
    ids=["expired", "not-yet-valid"],
)
def test_signature_with_a_signer_not_valid_now_is_refused(workspace, work, tmp_path, days, reason, oracle):
    from support.pki import TestPKI

    pki = TestPKI(str(tmp_path / "pki"), key_type="ecdsa")
    old = pki.node(
        "signer", not_before=NOW + datetime.timedelta(days=days[0]), not_after=NOW + datetime.timedelta(days=days[1])
    )
    args = dict(workspace.base("dicom_sign", work), privatekey_path=old.key, certificate_path=old.cert)
    result = _refused(work, "dicom_sign", args, ["signer", reason, "valid now"])
    assert "renew" not in result["msg"], result["msg"]  # a certificate that is not valid yet needs no renewal
    assert result["path"] == old.cert
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", pki.root.cert, "-untrusted", pki.inter.cert, old.cert],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode != 0 and oracle in verify.stdout + verify.stderr


def test_commented_stock_orthanc_json_as_dropin_warns(work, tmp_path):
    """Making Debian's commented orthanc.json the drop-in rewrites it as plain JSON: said, not silent."""
    from ansible_collections.medimg.dicom_tls.plugins.module_utils import orthanc_config

    folder = tmp_path / "orthanc"
    folder.mkdir()
    (folder / "orthanc.json").write_text(
        '{\n  // The DICOM port\n  "DicomPort" : 4242, /* default */\n  "Name" : "x"\n}\n'
    )
    todo = orthanc_config.plan(str(folder), {"DicomTlsEnabled": True}, dropin="orthanc.json")
    assert any("comments are lost" in w for w in todo.warnings), todo.warnings
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "orthanc.json").write_text('{"DicomPort": 4242}\n')
    assert not orthanc_config.plan(str(plain), {"DicomTlsEnabled": True}, dropin="orthanc.json").warnings
    # a trailing comma (jsoncpp allows it) is not a comment: nothing is lost, nothing to warn about
    for text in (
        '{"DicomPort": 4242,}\n',
        '{"Plugins": ["/usr/share/orthanc/plugins/",],\n "Url": "http://a//b/*c"}\n',
    ):
        (plain / "orthanc.json").write_text(text)
        assert not orthanc_config.plan(str(plain), {"DicomTlsEnabled": True}, dropin="orthanc.json").warnings, text
    assert not orthanc_config.plan(str(folder), {"DicomTlsEnabled": True}).warnings  # its own drop-in
