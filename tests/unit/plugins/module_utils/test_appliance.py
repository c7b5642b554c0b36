"""Appliances: CSR checks (signature, key policy, subject, SANs; PEM and DER), PKCS#12 made on the CA
host (modern and legacy encryption read back by openssl, 0600, renewal, second run unchanged, recorded
in the ledger), and the exports consoles import (openssl pkcs7 -print_certs lists the chain)."""

from __future__ import annotations

import os
import re
import stat
import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import appliance, ledger
from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as backend
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError

PW = "test-pkcs12-passphrase"


def run(**kw):
    p = backend.plan(backend.CertSpec(**kw))
    backend.apply(p)
    return p


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ca"))
    run(path=d + "/root.pem", privatekey_path=d + "/root.key", usage="root_ca", subject="/CN=Root", key_type="ecdsa")
    run(
        path=d + "/inter.pem",
        privatekey_path=d + "/inter.key",
        usage="intermediate_ca",
        subject="/O=H/CN=Issuing",
        key_type="ecdsa",
        issuer_cert_path=d + "/root.pem",
        issuer_privatekey_path=d + "/root.key",
    )
    return d


def openssl_req(tmp_path, subj, san=None, key="rsa:2048", der=False) -> str:
    out = str(tmp_path / "req.csr")
    args = ["openssl", "req", "-new", "-newkey", key, "-nodes", "-keyout", str(tmp_path / "k.pem"), "-subj", subj]
    if san:
        args += ["-addext", "subjectAltName=" + san]
    args += ["-out", out] + (["-outform", "DER"] if der else [])
    subprocess.run(args, check=True, capture_output=True)
    return out


def test_csr_from_openssl_req_pem_and_der(tmp_path):
    for der in (False, True):
        path = openssl_req(tmp_path, "/O=H/CN=ct-01", "IP:10.1.2.3", der=der)
        out = appliance.check_csr(open(path, "rb").read(), path, "/O=H/CN=ct-01", ["IP:10.1.2.3"])
        assert out["encoding"] == ("der" if der else "pem")
        assert out["subject"] == "/O=H/CN=ct-01" and out["subject_alt_names"] == ["IP:10.1.2.3"]
        assert out["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")


@pytest.mark.parametrize(
    "key, subject, sans, match",
    [
        ("rsa:1024", "/O=H/CN=ct-01", ["IP:10.1.2.3"], "RSA key of 1024 bits is under the 2048-bit minimum"),
        ("rsa:2048", "/O=H/CN=ct-99", ["IP:10.1.2.3"], "subject is /O=H/CN=ct-01, the inventory expects /O=H/CN=ct-99"),
        ("rsa:2048", "/O=H/CN=ct-01", ["IP:10.9.9.9"], r"subject_alt_names are \['IP:10.1.2.3'\]"),
    ],
)
def test_csr_refused_with_the_reason(tmp_path, key, subject, sans, match):
    path = openssl_req(tmp_path, "/O=H/CN=ct-01", "IP:10.1.2.3", key=key)
    with pytest.raises(DicomTlsError, match=match):
        appliance.check_csr(open(path, "rb").read(), path, subject, sans)


def test_csr_with_a_broken_signature_refused(tmp_path):
    path = openssl_req(tmp_path, "/O=H/CN=ct-01", der=True)
    data = bytearray(open(path, "rb").read())
    data[-5] ^= 0xFF  # inside the signature
    with pytest.raises(DicomTlsError, match="signature is invalid|not a readable"):
        appliance.check_csr(bytes(data), path)


def test_ecdsa_curve_policy(tmp_path):
    subprocess.run(["openssl", "ecparam", "-name", "secp384r1", "-out", str(tmp_path / "p.pem")], check=True)
    path = openssl_req(tmp_path, "/CN=x", key="ec:" + str(tmp_path / "p.pem"))
    with pytest.raises(DicomTlsError, match="curve secp384r1 is not allowed"):
        appliance.check_csr(open(path, "rb").read(), path, curves=["secp256r1"])
    assert appliance.check_csr(open(path, "rb").read(), path)["curve"] == "secp384r1"


def pkcs12_spec(ca, tmp_path, **kw) -> appliance.Pkcs12Spec:
    args = dict(
        path=str(tmp_path / "mr-02.p12"),
        passphrase=PW,
        subject="/O=H/CN=mr-02",
        subject_alt_names=["IP:10.1.2.4"],
        certificate_path=str(tmp_path / "mr-02.pem"),
        issuer_cert_path=ca + "/inter.pem",
        issuer_privatekey_path=ca + "/inter.key",
        key_type="rsa",
        key_size=2048,
        database=str(tmp_path / "index.txt"),
    )
    args.update(kw)
    return appliance.Pkcs12Spec(**args)


def pkcs12_info(path, legacy=False) -> str:
    args = ["openssl", "pkcs12", "-in", path, "-info", "-noout", "-passin", "pass:" + PW]
    r = subprocess.run(args + (["-legacy"] if legacy else []), capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


@pytest.mark.parametrize("encryption, algorithm", [("modern", "PBES2"), ("legacy", "pbeWithSHA1And3-KeyTripleDES-CBC")])
def test_pkcs12_made_on_the_ca_host(ca, tmp_path, encryption, algorithm):
    spec = pkcs12_spec(ca, tmp_path, encryption=encryption)
    p = appliance.plan_pkcs12(spec)
    assert [(a.role, a.action) for a in p.actions] == [("pkcs12", "created")]
    cert = appliance.apply_pkcs12(p)
    assert stat.S_IMODE(os.stat(spec.path).st_mode) == 0o600
    info = pkcs12_info(spec.path)
    assert algorithm in info
    assert ("MAC: sha1" if encryption == "legacy" else "MAC: sha256") in info
    # The key is nowhere but inside the PKCS#12; the certificate copy is public. Both are links through
    # the key store's generation store (one rename switches the pair), which holds the one generation.
    files = [".mr-02.p12.dicom_tls", "index.txt", "index.txt.attr", "index.txt.lock", "mr-02.p12", "mr-02.pem"]
    assert sorted(os.listdir(tmp_path)) == files
    assert os.readlink(spec.path) == ".mr-02.p12.dicom_tls/current/mr-02.p12"
    assert os.readlink(spec.certificate_path) == ".mr-02.p12.dicom_tls/current/mr-02.pem"
    generations = sorted(os.listdir(tmp_path / ".mr-02.p12.dicom_tls"))
    assert len(generations) == 2 and generations[0] == "current", generations
    assert sorted(os.listdir(tmp_path / ".mr-02.p12.dicom_tls" / generations[1])) == ["mr-02.p12", "mr-02.pem"]
    assert b"PRIVATE KEY" not in open(spec.certificate_path, "rb").read()
    assert [e.serial for e in ledger.read(spec.database)] == [cert.serial_number]
    # Second run: nothing to do.
    assert appliance.plan_pkcs12(spec).actions == []
    # Encryption changed alone: rewritten with the same certificate, nothing issued.
    other = "legacy" if encryption == "modern" else "modern"
    p = appliance.plan_pkcs12(pkcs12_spec(ca, tmp_path, encryption=other))
    assert [(a.role, a.action) for a in p.actions] == [("pkcs12", "updated")]
    assert appliance.apply_pkcs12(p) == cert
    assert len(ledger.read(spec.database)) == 1


def test_pkcs12_renewed_when_due_and_when_subject_changes(ca, tmp_path):
    first = appliance.apply_pkcs12(appliance.plan_pkcs12(pkcs12_spec(ca, tmp_path, valid_days=30)))
    p = appliance.plan_pkcs12(pkcs12_spec(ca, tmp_path, valid_days=30, renew_before_days=40))
    assert [a.action for a in p.actions] == ["renewed"] and "expires in" in p.actions[0].reason
    second = appliance.apply_pkcs12(p)
    assert second.serial_number != first.serial_number
    p = appliance.plan_pkcs12(pkcs12_spec(ca, tmp_path, subject="/O=H/CN=mr-03"))
    assert "subject changed" in p.actions[0].reason
    assert len(ledger.read(str(tmp_path / "index.txt"))) == 2


def test_pkcs12_wrong_passphrase_means_a_new_one(ca, tmp_path):
    appliance.apply_pkcs12(appliance.plan_pkcs12(pkcs12_spec(ca, tmp_path)))
    p = appliance.plan_pkcs12(pkcs12_spec(ca, tmp_path, passphrase="another"))
    assert "cannot be opened with the passphrase" in p.actions[0].reason


def test_pkcs12_needs_a_passphrase(ca, tmp_path):
    with pytest.raises(DicomTlsError, match="needs a passphrase"):
        appliance.plan_pkcs12(pkcs12_spec(ca, tmp_path, passphrase=""))


def test_export_forms_consoles_import(ca, tmp_path):
    run(
        path=str(tmp_path / "ct.pem"),
        privatekey_path=str(tmp_path / "ct.key"),
        subject="/O=H/CN=ct-01",
        key_type="ecdsa",
        issuer_cert_path=ca + "/inter.pem",
        issuer_privatekey_path=ca + "/inter.key",
    )
    cert = open(tmp_path / "ct.pem").read()
    cas = open(ca + "/inter.pem").read() + open(ca + "/root.pem").read()
    out = tmp_path / "export"
    out.mkdir()
    actions, files, contents = appliance.plan_export(str(out), "ct-01", cert, cas)
    assert len(actions) == 5
    appliance.apply_export(actions, contents)
    listed = subprocess.run(
        ["openssl", "pkcs7", "-inform", "DER", "-in", files["p7b"], "-print_certs", "-noout"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sorted(re.findall(r"CN ?= ?([\w-]+)", "\n".join(x for x in listed.splitlines() if "subject" in x))) == [
        "Issuing",
        "Root",
        "ct-01",
    ]
    chain = open(files["chain_pem"]).read()
    assert chain.count("BEGIN CERTIFICATE") == 3 and chain.startswith(cert)
    r = subprocess.run(
        ["openssl", "verify", "-CAfile", files["ca_pem"], files["chain_pem"]], capture_output=True, check=False
    )
    assert r.returncode == 0
    assert appliance.plan_export(str(out), "ct-01", cert, cas)[0] == []
    with pytest.raises(DicomTlsError, match="not issued by any CA"):
        appliance.plan_export(str(out), "ct-01", cert, open(ca + "/root.pem").read())
