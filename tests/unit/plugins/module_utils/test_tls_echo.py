"""tls_echo without a network: input checks, the client context of each profile, certificate
details against openssl. Live checks are in tests/integration/test_tls_echo.py."""

from __future__ import annotations

import ssl
import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import tls_echo as te
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from cryptography.hazmat.primitives import serialization


def target(**kw):
    kw.setdefault("host", "127.0.0.1")
    kw.setdefault("port", 11112)
    return te.normalize_target(kw)


def test_defaults():
    t = target()
    assert t["called_ae_title"] == "ANY-SCP"
    assert t["calling_ae_title"] == "ECHOSCU"
    assert t["profile"] == "rfc8996"
    assert t["peer_verification"] == "require"
    assert t["crl_check"] == "none"
    assert t["expect"] == "success"
    assert t["crl_files"] == []


def test_target_values_override_defaults():
    t = te.normalize_target({"host": "a", "port": "104", "profile": "aes"}, {"profile": "bcp195", "timeout": 3})
    assert (t["port"], t["profile"], t["timeout"]) == (104, "aes", 3.0)


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"colour": "red"}, "unknown target option 'colour'"),
        ({"port": None}, "port is required"),
        ({"port": 70000}, "out of range"),
        ({"called_ae_title": "A" * 17}, "called_ae_title"),
        ({"calling_ae_title": "BAD\\AE"}, "calling_ae_title"),
        ({"called_ae_title": "   "}, "not a valid AE title"),
        ({"profile": "tls13"}, "profile 'tls13'"),
        ({"certificate_path": "/x.pem"}, "certificate_path and privatekey_path go together"),
        ({"check_hostname": True, "peer_verification": "ignore"}, "check_hostname needs"),
        ({"timeout": 0}, "timeout must be positive"),
    ],
)
def test_bad_input_is_a_clear_error(kw, words):
    with pytest.raises(DicomTlsError) as err:
        target(**kw)
    assert words in str(err.value)


def test_missing_ca_file_names_the_file(tmp_path):
    path = str(tmp_path / "missing.pem")
    with pytest.raises(DicomTlsError) as err:
        te.build_context(target(ca_file=path))
    assert err.value.path == path
    assert "does not exist" in str(err.value)


def test_ca_file_without_certificate(tmp_path):
    path = tmp_path / "junk.pem"
    path.write_text("not a certificate\n")
    with pytest.raises(DicomTlsError) as err:
        te.build_context(target(ca_file=str(path)))
    assert err.value.path == str(path)
    assert "no PEM certificate" in err.value.reason


def test_client_key_must_match_client_cert(pki):
    a, b = pki.node("unit-a"), pki.node("unit-b")
    with pytest.raises(DicomTlsError) as err:
        te.build_context(target(ca_file=pki.root.cert, certificate_path=a.chain, privatekey_path=b.key))
    assert err.value.path == b.key
    assert "does not match" in err.value.reason and "/CN=unit-a" in err.value.reason


@pytest.fixture(scope="module")
def encrypted_key(pki, tmp_path_factory):
    node = pki.node("unit-enc")
    key = serialization.load_pem_private_key(open(node.key, "rb").read(), None)
    path = tmp_path_factory.mktemp("enc") / "enc.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"right"),
        )
    )
    return node, str(path)


def test_encrypted_key(pki, encrypted_key):
    node, path = encrypted_key
    common = dict(ca_file=pki.root.cert, certificate_path=node.chain, privatekey_path=path)
    te.build_context(target(privatekey_passphrase="right", **common))
    with pytest.raises(DicomTlsError) as err:
        te.build_context(target(**common))
    assert "encrypted and no passphrase was given" in err.value.reason and err.value.path == path
    with pytest.raises(DicomTlsError) as err:
        te.build_context(target(privatekey_passphrase="wrong", **common))
    assert "wrong passphrase" in err.value.reason
    assert "right" not in str(err.value) and "wrong" not in (err.value.path or "")


def test_crl_file_that_is_not_a_crl(pki, tmp_path):
    path = tmp_path / "x.crl"
    path.write_bytes(b"\x00\x01junk")
    with pytest.raises(DicomTlsError) as err:
        te.build_context(target(ca_file=pki.root.cert, crl_check="leaf", crl_files=[str(path)]))
    assert err.value.path == str(path)


def _tls12_suites(ctx):
    return {c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"}


@pytest.mark.parametrize(
    "profile, minimum, maximum, suites",
    [
        (
            "rfc8996",
            ssl.TLSVersion.TLSv1_2,
            ssl.TLSVersion.TLSv1_3,
            {
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES256-GCM-SHA384",
            },
        ),
        (
            "bcp195-nd",
            ssl.TLSVersion.TLSv1_2,
            ssl.TLSVersion.TLSv1_3,
            {
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "DHE-RSA-AES128-GCM-SHA256",
                "DHE-RSA-AES256-GCM-SHA384",
            },
        ),
        (
            "bcp195",
            ssl.TLSVersion.TLSv1,
            ssl.TLSVersion.TLSv1_3,
            {
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "DHE-RSA-AES128-GCM-SHA256",
                "DHE-RSA-AES256-GCM-SHA384",
                "AES128-SHA",
            },
        ),
        (
            "bcp195-ex",
            ssl.TLSVersion.TLSv1_2,
            ssl.TLSVersion.TLSv1_2,
            {
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "DHE-RSA-AES128-GCM-SHA256",
                "DHE-RSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES256-GCM-SHA384",
            },
        ),
        ("aes", ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2, {"AES128-SHA"}),
        ("null", ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2, {"NULL-SHA"}),
    ],
)
def test_profile_contexts(pki, profile, minimum, maximum, suites):
    ctx = te.build_context(target(ca_file=pki.root.cert, profile=profile))
    assert ctx.minimum_version == minimum
    assert ctx.maximum_version == maximum
    assert _tls12_suites(ctx) == suites
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is False


def test_verification_flags(pki):
    ctx = te.build_context(target(peer_verification="ignore"))
    assert ctx.verify_mode == ssl.CERT_NONE
    ctx = te.build_context(target(ca_file=pki.root.cert, crl_check="chain", check_hostname=True))
    assert ctx.verify_flags & ssl.VERIFY_CRL_CHECK_CHAIN
    assert ctx.check_hostname is True


def test_server_name_and_sni():
    assert te.server_hostname(target()) is None
    assert te.server_hostname(target(check_hostname=True)) == "127.0.0.1"
    t = target(server_name="dicom.example.org")
    assert te.server_hostname(t) == "dicom.example.org"
    assert te._sni_name(t) == "dicom.example.org"
    assert te._sni_name(target(check_hostname=True)) is None  # IP addresses are never sent as SNI


def _openssl(path, *args):
    return subprocess.run(["openssl", "x509", "-in", path, "-noout", *args], capture_output=True, text=True, check=True)


def test_describe_certificate_agrees_with_openssl(pki):
    node = pki.node("unit-describe", sans=["DNS:pacs.example.org", "IP:127.0.0.1"])
    der = node.certificate.public_bytes(serialization.Encoding.DER)
    info = te.describe_certificate(der)
    fingerprint = _openssl(node.cert, "-fingerprint", "-sha256").stdout.strip().split("=")[1]
    assert info["fingerprint_sha256"] == fingerprint.lower()
    assert info["serial"] == _openssl(node.cert, "-serial").stdout.strip().split("=")[1]
    assert info["subject"] == "/O=medimg test/CN=unit-describe"
    assert info["issuer"] == "/O=medimg test/CN=Test Issuing CA"
    assert info["subject_alt_names"] == ["DNS:pacs.example.org", "IP:127.0.0.1"]
    assert info["not_after"].endswith("Z")
    assert 29 <= info["days_remaining"] <= 30
    assert te.describe_certificate(None) is None


def test_alert_names():
    assert te._alert_name("TLSV1_ALERT_UNKNOWN_CA") == "unknown_ca"
    assert te._alert_name("TLSV13_ALERT_CERTIFICATE_REQUIRED") == "certificate_required"
    assert te._alert_name("WRONG_VERSION_NUMBER") is None
