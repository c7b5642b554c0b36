"""dicom_cert's library: renewal decisions (each with its reason), key kept or regenerated, and bad
input refused with a clear message before anything on disk changes."""

from __future__ import annotations

import datetime
import os
import shutil

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as backend
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from cryptography import x509
from cryptography.hazmat.primitives import serialization


def run(**kw) -> backend.Plan:
    spec = backend.CertSpec(**kw)
    p = backend.plan(spec)
    backend.apply(p)
    return p


def snapshot(d) -> dict:
    out = {}
    for root, _dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[p] = fh.read()
    return out


def load(path):
    with open(path, "rb") as fh:
        return x509.load_pem_x509_certificate(fh.read())


def pub(path):
    with open(path, "rb") as fh:
        key = serialization.load_pem_private_key(fh.read(), None)
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def ca(tmp_path):
    d = str(tmp_path)
    run(
        path=d + "/root.pem", privatekey_path=d + "/root.key", usage="root_ca", subject={"CN": "Root"}, key_type="ecdsa"
    )
    run(
        path=d + "/inter.pem",
        privatekey_path=d + "/inter.key",
        usage="intermediate_ca",
        subject={"CN": "Inter"},
        key_type="ecdsa",
        issuer_cert_path=d + "/root.pem",
        issuer_privatekey_path=d + "/root.key",
    )
    return d


def node_spec(ca, **kw) -> backend.CertSpec:
    """The node certificate every test starts from, with ``kw`` changed."""
    args = dict(
        path=ca + "/n.pem",
        privatekey_path=ca + "/n.key",
        subject={"CN": "node"},
        key_type="ecdsa",
        subject_alt_names=["DNS:node"],
        issuer_cert_path=ca + "/inter.pem",
        issuer_privatekey_path=ca + "/inter.key",
    )
    args.update(kw)
    return backend.CertSpec(**args)


def node(ca, **kw):
    p = backend.plan(node_spec(ca, **kw))
    backend.apply(p)
    return p


def test_extensions_dcmtk_and_openssl_expect(ca):
    node(ca)
    inter, leaf = load(ca + "/inter.pem"), load(ca + "/n.pem")
    bc = inter.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH}
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert leaf.not_valid_before_utc < datetime.datetime.now(datetime.UTC)


def test_nothing_due_means_empty_plan(ca):
    node(ca)
    p = backend.plan(node_spec(ca))
    assert p.actions == []


def test_renewal_when_expiry_window_reached_keeps_key(ca):
    node(ca, valid_days=30)
    key_before, serial_before = pub(ca + "/n.key"), load(ca + "/n.pem").serial_number
    p = node(ca, valid_days=30, renew_before_days=40)
    assert [(a.role, a.action) for a in p.actions] == [("certificate", "renewed")]
    assert "expires in" in p.actions[0].reason
    assert pub(ca + "/n.key") == key_before and load(ca + "/n.pem").serial_number != serial_before


def test_renewal_when_san_changed(ca):
    node(ca)
    p = node(ca, subject_alt_names=["DNS:node", "IP:127.0.0.1"])
    assert "subject_alt_names changed" in p.actions[0].reason
    assert crypto.cert_sans(load(ca + "/n.pem")) == ["DNS:node", "IP:127.0.0.1"]


def test_renewal_when_issuer_replaced(ca):
    node(ca)
    os.rename(ca + "/inter.pem", ca + "/old-inter.pem")
    run(
        path=ca + "/inter.pem",
        privatekey_path=ca + "/inter2.key",
        usage="intermediate_ca",
        subject={"CN": "Inter"},
        key_type="ecdsa",
        issuer_cert_path=ca + "/root.pem",
        issuer_privatekey_path=ca + "/root.key",
    )
    p = node(ca, issuer_privatekey_path=ca + "/inter2.key")
    assert "CA replaced" in p.actions[0].reason
    assert load(ca + "/n.pem").verify_directly_issued_by(load(ca + "/inter.pem")) is None


def test_key_type_change_regenerates_key(ca):
    node(ca)
    p = node(ca, key_type="rsa", key_size=2048)
    assert [(a.role, a.action) for a in p.actions][:2] == [("privatekey", "regenerated"), ("certificate", "renewed")]
    assert "key type changed from ecdsa secp256r1 to rsa 2048" in p.actions[0].reason
    assert load(ca + "/n.pem").public_key().key_size == 2048


def test_regenerate_key_on_renewal(ca):
    node(ca)
    before = pub(ca + "/n.key")
    node(ca, force=True, regenerate_key=True)
    assert pub(ca + "/n.key") != before


def test_der_format_and_pkcs12(ca):
    node(ca, format="der", pkcs12_path=ca + "/n.p12", pkcs12_passphrase="pw", chain_path=ca + "/chain.pem")
    with open(ca + "/n.pem", "rb") as fh:
        assert fh.read(1) == b"\x30"
    assert os.stat(ca + "/n.p12").st_mode & 0o777 == 0o600
    p = backend.plan(
        node_spec(ca, format="der", pkcs12_path=ca + "/n.p12", pkcs12_passphrase="pw", chain_path=ca + "/chain.pem")
    )
    assert p.actions == []


# ---------------------------------------------------------------- bad input


def refused(ca, match, **kw):
    before = snapshot(ca)
    with pytest.raises(DicomTlsError, match=match) as info:
        node(ca, **kw)
    assert snapshot(ca) == before, "a refused run changed files"
    return info.value


def test_unparsable_pem_issuer(ca):
    with open(ca + "/garbage.pem", "wb") as fh:
        fh.write(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    err = refused(ca, "unparsable PEM", issuer_cert_path=ca + "/garbage.pem")
    assert err.path == ca + "/garbage.pem"


def test_issuer_key_does_not_match_certificate(ca):
    refused(ca, "does not match the issuer certificate", issuer_privatekey_path=ca + "/root.key")


def test_wrong_issuer_passphrase(ca, tmp_path):
    d = str(tmp_path / "enc")
    os.mkdir(d)
    run(
        path=d + "/root.pem",
        privatekey_path=d + "/root.key",
        usage="root_ca",
        subject={"CN": "R"},
        key_type="ecdsa",
        privatekey_passphrase="right",
    )
    refused(
        ca,
        "wrong passphrase",
        issuer_cert_path=d + "/root.pem",
        issuer_privatekey_path=d + "/root.key",
        issuer_privatekey_passphrase="wrong",
    )


def test_issuer_not_a_ca(ca):
    node(ca, path=ca + "/leaf.pem", privatekey_path=ca + "/leaf.key")
    refused(ca, "not a CA", issuer_cert_path=ca + "/leaf.pem", issuer_privatekey_path=ca + "/leaf.key")


def test_csr_signature_invalid(ca):
    run(state="csr", privatekey_path=ca + "/c.key", csr_path=ca + "/c.csr", subject={"CN": "honest"}, key_type="ecdsa")
    with open(ca + "/c.csr", "rb") as fh:
        der = x509.load_pem_x509_csr(fh.read()).public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"honest", b"forged")
    with open(ca + "/c.csr", "wb") as fh:
        fh.write(tampered)
    before = snapshot(ca)
    with pytest.raises(DicomTlsError, match="signature is invalid"):
        run(
            path=ca + "/c.pem",
            csr_path=ca + "/c.csr",
            issuer_cert_path=ca + "/inter.pem",
            issuer_privatekey_path=ca + "/inter.key",
        )
    assert snapshot(ca) == before


def test_certificate_content_not_matching_key(ca):
    node(ca)
    with open(ca + "/n.pem") as fh:
        pem = fh.read()
    run(
        state="csr",
        privatekey_path=ca + "/other.key",
        csr_path=ca + "/other.csr",
        subject={"CN": "o"},
        key_type="ecdsa",
    )
    before = snapshot(ca)
    with pytest.raises(DicomTlsError, match="does not match the private key"):
        run(path=ca + "/other.pem", privatekey_path=ca + "/other.key", certificate_content=pem)
    assert snapshot(ca) == before


def test_unwritable_directory(ca):
    # /sys refuses new files even to root: the plan fails before the key is generated.
    refused(ca, "not writable", path="/sys/kernel/n.pem")
    assert not os.path.exists(ca + "/n.key")


def test_absent_removes_everything_named(ca):
    node(ca, chain_path=ca + "/chain.pem")
    p = run(state="absent", path=ca + "/n.pem", chain_path=ca + "/chain.pem", privatekey_path=ca + "/n.key")
    assert {a.role for a in p.actions} == {"certificate", "chain", "privatekey"}
    assert not any(os.path.exists(ca + f) for f in ("/n.pem", "/chain.pem", "/n.key"))
    shutil.rmtree(ca)


# ---------------------------------------------------------------- renewal that cannot help; issuer not valid now


def short_lived_issuer(ca, days):
    """The issuing CA re-issued with ``days`` left (the root's key signs it)."""
    run(
        path=ca + "/inter.pem",
        privatekey_path=ca + "/inter.key",
        usage="intermediate_ca",
        subject={"CN": "Inter"},
        key_type="ecdsa",
        issuer_cert_path=ca + "/root.pem",
        issuer_privatekey_path=ca + "/root.key",
        valid_days=days,
        force=True,
    )
    return crypto.not_valid_after(load(ca + "/inter.pem"))


@pytest.mark.parametrize(
    "issuer_days,node_kw",
    [
        (20, {"renew_before_days": 30}),  # the roles' default window, issuing CA with 20 days left
        (45, {"renew_before_days": 60}),  # a wide window on a healthy-looking CA
        (1, {"renew_before_days": 30}),  # issuer ending tomorrow
    ],
)
def test_no_renewal_when_the_new_certificate_would_not_outlive_the_current(ca, issuer_days, node_kw):
    issuer_end = short_lived_issuer(ca, issuer_days)
    first = node(ca, **node_kw)
    assert crypto.not_valid_after(load(ca + "/n.pem")) == issuer_end  # capped by the issuer
    if node_kw.get("valid_days", 365) > issuer_days:
        assert any("capped by the issuer '/CN=Inter'" in w for w in first.warnings), first.warnings
    serial = load(ca + "/n.pem").serial_number
    before = snapshot(ca)
    again = node(ca, **node_kw)
    assert again.actions == [] and snapshot(ca) == before and load(ca + "/n.pem").serial_number == serial
    (warning,) = again.warnings
    assert "'/CN=Inter'" in warning and crypto.isoformat(issuer_end) in warning and "renew the issuing CA" in warning


def test_renewal_still_happens_for_other_reasons_near_issuer_end(ca):
    short_lived_issuer(ca, 20)
    node(ca, renew_before_days=30)
    p = node(ca, renew_before_days=30, subject_alt_names=["DNS:other"])
    assert [(a.role, a.action) for a in p.actions] == [("certificate", "renewed")]


def _outdated_issuer(ca, tmp_path, not_before, not_after):
    from support.pki import TestPKI

    pki = TestPKI(tmp_path / "outdated")
    bad = pki._issue("Outdated CA", pki.root, ca=True, not_before=not_before, not_after=not_after, key_type="ecdsa")
    return bad


@pytest.mark.parametrize(
    "when,mode",
    [
        ("expired", "issue"),  # expired 10 days ago: cryptography's own sentence and a stray key before
        ("expired", "sign_csr"),
        ("not_yet_valid", "issue"),
    ],
)
def test_issuer_not_valid_now_is_refused_naming_file_and_dates(ca, tmp_path, when, mode):
    now = datetime.datetime.now(datetime.UTC)
    if when == "expired":
        nb, na = now - datetime.timedelta(days=400), now - datetime.timedelta(days=10)
    else:
        nb, na = now + datetime.timedelta(days=2), now + datetime.timedelta(days=400)
    bad = _outdated_issuer(ca, tmp_path, nb, na)
    kw = {"issuer_cert_path": bad.cert, "issuer_privatekey_path": bad.key}
    if mode == "sign_csr":
        run(state="csr", privatekey_path=ca + "/c.key", csr_path=ca + "/c.csr", subject={"CN": "c"}, key_type="ecdsa")
        kw.update(csr_path=ca + "/c.csr", privatekey_path=None, state="present")
    before = snapshot(ca)
    with pytest.raises(DicomTlsError) as err:
        backend.plan(node_spec(ca, **kw))
    msg = str(err.value)
    assert err.value.path == bad.cert
    assert "Outdated CA" in msg and crypto.isoformat(nb) in msg and crypto.isoformat(na) in msg
    assert ("has expired" if when == "expired" else "is not yet valid") in msg
    assert "must be" not in msg  # no library sentence
    assert snapshot(ca) == before
