"""crypto.py's verdicts against OpenSSL 3's on PKI material made by the openssl command line:
"self-signed" (``openssl verify -check_ss_sig -CAfile X X``), "issued by" (``openssl verify
-partial_chain -CAfile issuer cert``) and "this CA signed this CRL" (``openssl crl -CAfile``), for
every signature algorithm OpenSSL 3.0 verifies: SHA-1 and MD5 (legacy roots), RSA-PSS, ECDSA,
Ed25519, and small RSA keys (refused only by a security level, which is a separate verdict)."""

from __future__ import annotations

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto
from support.legacy_pki import LegacyPKI, openssl_crl_verified, openssl_ok

# name -> (how it is made, what OpenSSL 3.0.x answers): the table is the oracle's answer, checked below
ROOTS = {
    "r_sha1": ("-sha1", "rsa:2048", True),  # openssl req -x509 -sha1: legacy enterprise root
    "r_md5": ("-md5", "rsa:2048", True),
    "r_sha256": ("-sha256", "rsa:2048", True),
    "r_pss": ("-sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32", "rsa:2048", True),
    "r_ec": ("-sha384", "ec:prime256v1", True),
    "r_ed25519": ("", "ED25519", True),
    "r_rsa1024": ("-sha256", "rsa:1024", True),
}
# child -> (issuer, digest, key, openssl's verdict "issued by issuer")
CHILDREN = {
    "i_under_sha1_root": ("r_sha1", "-sha256", "rsa:2048", True),
    "i_sha1": ("r_sha256", "-sha1", "rsa:2048", True),
    "i_md5": ("r_sha256", "-md5", "rsa:2048", True),
    "i_pss": ("r_sha256", "-sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:max", "rsa:2048", True),
    "i_ec": ("r_ec", "-sha384", "ec:secp384r1", True),
    "i_ed25519": ("r_ed25519", "", "ED25519", True),
    "i_under_rsa1024": ("r_rsa1024", "-sha256", "rsa:2048", True),
}


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    m = LegacyPKI(tmp_path_factory.mktemp("legacy"))
    for name, (digest, key, _ok) in ROOTS.items():
        m.root(name, digest, key)
    for name, (issuer, digest, key, _ok) in CHILDREN.items():
        m.child(name, issuer, digest, key, ca=True)
    # same name as r_sha1, another key: the name matches, the signature does not
    m.root("r_sha1_twin", "-sha1", cn="r_sha1")
    # a root whose self-signature is damaged (last byte of the signature flipped)
    der = bytearray(crypto.load_certificate(open(m.path("r_sha1.pem"), "rb").read(), "r").public_bytes(_DER()))
    der[-1] ^= 0x01
    with open(m.path("r_broken.der"), "wb") as fh:
        fh.write(bytes(der))
    m.crls = {
        "sha1": m.crl("r_sha1", "sha1", revoke=["i_under_sha1_root"]),
        "md5": m.crl("r_sha256", "md5"),
        "ec": m.crl("r_ec", "sha256"),
        "ed25519": m.crl("r_ed25519", "null"),
    }
    return m


def _DER():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def cert(m, name):
    path = m.path(name + ".pem") if not name.endswith("broken") else m.path(name + ".der")
    return crypto.load_certificate(open(path, "rb").read(), path), path


@pytest.mark.parametrize("name", [*ROOTS, "r_broken", "i_under_sha1_root", "i_sha1"])
def test_self_signed_as_openssl_verify_check_ss_sig(material, name):
    c, path = cert(material, name)
    args = ["-inform", "DER"] if path.endswith(".der") else []
    if args:  # openssl verify reads PEM: give it the same bytes as PEM
        path = material.path(name + ".pem")
        with open(path, "wb") as fh:
            fh.write(crypto.cert_pem(c))
    oracle = openssl_ok("verify", "-check_ss_sig", "-CAfile", path, path)
    expected = ROOTS.get(name, (None, None, False))[2]
    assert oracle is expected, "openssl changed its verdict on %s" % name
    assert crypto.is_self_signed(c) is oracle
    assert crypto.describe_certificate(c)["self_signed"] is oracle


@pytest.mark.parametrize("name", list(CHILDREN))
def test_issued_by_as_openssl_verify(material, name):
    issuer_name, _d, _k, expected = CHILDREN[name]
    child, child_path = cert(material, name)
    issuer, issuer_path = cert(material, issuer_name)
    oracle = openssl_ok("verify", "-partial_chain", "-CAfile", issuer_path, child_path)
    assert oracle is expected
    assert crypto.issued_by(child, issuer) is oracle
    # any other root, even one with the same name, did not issue it
    twin, twin_path = cert(material, "r_sha1_twin")
    assert crypto.issued_by(child, twin) is openssl_ok("verify", "-partial_chain", "-CAfile", twin_path, child_path)


@pytest.mark.parametrize(
    "kind,issuer", [("sha1", "r_sha1"), ("md5", "r_sha256"), ("ec", "r_ec"), ("ed25519", "r_ed25519")]
)
def test_crl_signature_as_openssl_crl_cafile(material, kind, issuer):
    path = material.crls[kind]
    crl = crypto.load_crl(open(path, "rb").read(), path)
    for name in (issuer, "r_sha1_twin"):
        ca, ca_path = cert(material, name)
        oracle = openssl_crl_verified(path, ca_path)
        assert oracle is (name == issuer)
        assert crypto.crl_issued_by(crl, ca) is oracle
