"""dicom_cert's PKCS#12 follows every input it holds, in the encoding asked for.

dicom_pkcs12's store in both encodings too.

Oracles: `keytool -list -v` (Debian's OpenJDK, as a Java archive reads the store) and
`openssl pkcs12 -info` (the certificates held, the encryption and the MAC algorithm)."""

from __future__ import annotations

import hashlib
import re
import subprocess

import pytest
from support import module_run
from support.pki import TestPKI

PW = "store-pw"


def _keytool_chain_length(path: str) -> int:
    out = subprocess.run(
        ["keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", path, "-storepass", PW],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(re.search(r"Certificate chain length: (\d+)", out).group(1))


def _openssl_info(path: str, *extra: str) -> tuple[int, str]:
    """(certificates held, the -info lines naming the encryption and MAC)."""
    out = subprocess.run(
        ["openssl", "pkcs12", "-info", "-in", path, "-passin", "pass:" + PW, "-nokeys", *extra],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.count("-----BEGIN CERTIFICATE-----"), out.stderr


def _digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def test_pkcs12_rebuilt_when_the_chain_grows_and_encryption_changes(tmp_path):
    pki = TestPKI(tmp_path / "pki")
    policy = pki._issue("Policy CA", pki.root, ca=True, path_length=1)
    issuing = pki._issue("Sub Issuing CA", policy, ca=True, path_length=0)
    out = tmp_path / "node"
    out.mkdir()
    args = {
        "path": str(out / "node.pem"),
        "privatekey_path": str(out / "node.key"),
        "chain_path": str(out / "node.chain.pem"),
        "pkcs12_path": str(out / "node.p12"),
        "pkcs12_passphrase": PW,
        "subject": "/O=medimg test/CN=archive",
        "issuer_cert_path": issuing.cert,
        "issuer_privatekey_path": issuing.key,
    }
    p12 = args["pkcs12_path"]
    failed, res = module_run.run("dicom_cert", args)
    assert not failed and res["changed"], res
    assert _keytool_chain_length(p12) == 2  # node + Sub Issuing CA
    held, info = _openssl_info(p12)
    assert held == 2 and "AES-256-CBC" in info and "MAC: sha256" in info, info

    # the chain grows: the Policy CA above the issuer is added
    grown = dict(args, issuer_chain_path=policy.cert)
    failed, res = module_run.run("dicom_cert", grown, check_mode=True)
    assert not failed and res["changed"], res
    (why,) = [a["reason"] for a in res["actions"] if a["path"] == p12]
    assert why == "its CA certificates differ from the chain (1 held, 2 in the chain)", why
    failed, res = module_run.run("dicom_cert", grown)
    assert not failed and res["changed"], res
    assert _keytool_chain_length(p12) == 3
    assert _openssl_info(p12)[0] == 3
    before = _digest(p12)
    failed, res = module_run.run("dicom_cert", grown)
    assert not failed and not res["changed"], res
    assert _digest(p12) == before

    # legacy encoding for Java 8 before 8u301: same key and certificates, PBE-SHA1-3DES and a SHA-1 MAC
    legacy = dict(grown, pkcs12_encryption="legacy")
    failed, res = module_run.run("dicom_cert", legacy, check_mode=True)
    assert not failed and [a["reason"] for a in res["actions"]] == ["pkcs12_encryption changed to legacy"], res
    failed, res = module_run.run("dicom_cert", legacy)
    assert not failed and res["changed"], res
    held, info = _openssl_info(p12)
    assert held == 3 and "pbeWithSHA1And3-KeyTripleDES-CBC" in info and "MAC: sha1" in info, info
    assert _keytool_chain_length(p12) == 3
    failed, res = module_run.run("dicom_cert", legacy)
    assert not failed and not res["changed"], res


def _keytool(path: str) -> str:
    return subprocess.run(
        ["keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", path, "-storepass", PW],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


@pytest.mark.parametrize(
    ("encryption", "key_type", "chain"),
    [("modern", "rsa", 2), ("legacy", "rsa", 3), ("legacy", "ecdsa", 2), ("modern", "ecdsa", 3)],
)
def test_dicom_pkcs12_store_read_by_keytool_and_openssl(tmp_path, encryption, key_type, chain):
    """dicom_pkcs12 (the appliance module) in both encodings, RSA and ECDSA, with and without a Policy CA
    from issuer_chain_path: `keytool -list -v` reads one PrivateKeyEntry with the whole chain and the
    certificate the module returned; `openssl pkcs12 -info` (and `-legacy` for the legacy encoding) names
    the encryption and MAC asked for; the key in the store belongs to the certificate."""
    pki = TestPKI(tmp_path / "pki")
    policy = pki._issue("Policy CA", pki.root, ca=True, path_length=1)
    issuing = pki._issue("Sub Issuing CA", policy, ca=True, path_length=0) if chain == 3 else pki.inter
    p12 = str(tmp_path / "mr-02.p12")
    args = {"path": p12, "passphrase": PW, "pkcs12_encryption": encryption, "key_type": key_type,
            "subject": "/O=medimg test/CN=mr-02", "subject_alt_names": ["IP:10.1.2.4"],
            "certificate_path": str(tmp_path / "mr-02.pem"),
            "issuer_cert_path": issuing.cert, "issuer_privatekey_path": issuing.key}  # fmt: skip
    if chain == 3:
        args["issuer_chain_path"] = policy.cert
    failed, res = module_run.run("dicom_pkcs12", args)
    assert not failed and res["changed"], res

    listed = _keytool(p12)
    assert "Your keystore contains 1 entry" in listed and "Entry type: PrivateKeyEntry" in listed, listed
    assert "Certificate chain length: %d" % chain in listed, listed
    assert re.search(r"Serial number: 0*%s\b" % res["serial"].lower().lstrip("0"), listed), (res["serial"], listed)
    assert "Owner: CN=mr-02, O=medimg test" in listed and "IPAddress: 10.1.2.4" in listed, listed

    words = {"modern": ("PBES2, PBKDF2, AES-256-CBC", "MAC: sha256"),
             "legacy": ("pbeWithSHA1And3-KeyTripleDES-CBC", "MAC: sha1")}[encryption]  # fmt: skip
    for extra in [[], ["-legacy"]] if encryption == "legacy" else [[]]:
        held, info = _openssl_info(p12, *extra)
        assert held == chain and all(w in info for w in words), (extra, info)
    key = subprocess.run(
        ["openssl", "pkcs12", "-in", p12, "-passin", "pass:" + PW, "-nocerts", "-nodes"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    pub = [subprocess.run(["openssl", "pkey", "-pubout"], input=key, capture_output=True, check=True).stdout]
    pub += [subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=res["certificate"].encode(),
                           capture_output=True, check=True).stdout]  # fmt: skip
    assert pub[0] == pub[1] and b"PUBLIC KEY" in pub[0]

    failed, again = module_run.run("dicom_pkcs12", args)
    assert not failed and not again["changed"] and again["serial"] == res["serial"], again
