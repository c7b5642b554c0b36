"""dicom_cert's PKCS#12 follows every input it holds, in the encoding asked for.

Oracles: `keytool -list -v` (Debian's OpenJDK, as a Java archive reads the store) and
`openssl pkcs12 -info` (the certificates held, the encryption and the MAC algorithm)."""

from __future__ import annotations

import hashlib
import re
import subprocess

from support import module_run
from support.pki import TestPKI

PW = "store-pw"


def _keytool_chain_length(path: str) -> int:
    out = subprocess.run(
        ["keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", path, "-storepass", PW],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(re.search(r"Certificate chain length: (\d+)", out).group(1))


def _openssl_info(path: str) -> tuple[int, str]:
    """(certificates held, the -info lines naming the encryption and MAC)."""
    out = subprocess.run(
        ["openssl", "pkcs12", "-info", "-in", path, "-passin", "pass:" + PW, "-nokeys"],
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
