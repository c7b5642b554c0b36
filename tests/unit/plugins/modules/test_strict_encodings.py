"""Roots whose encoding OpenSSL 3 reads but a strict DER parser may refuse (support.strict_der),
through dicom_truststore (hashed directory and bundle): taken where `openssl verify -CApath` trusts
what they sign, refused with OpenSSL's reason where it does not. The verdict of each root comes from
openssl at test time; storescp's agreement is in tests/integration/test_strict_encodings.py."""

from __future__ import annotations

import base64
import os
import re
import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto
from support.module_run import run
from support.strict_der import CASES, make_cases, openssl_verdict

# the reason each refusal must give (OpenSSL's verdict decides whether it is refused at all)
REASONS = {
    "serial-with-padding-byte": "redundant leading byte",
    "duplicate-keyusage": "repeated keyUsage extension",
    "empty-subjectkeyidentifier": "subjectKeyIdentifier extension",
    "garbage-authoritykeyidentifier": "authorityKeyIdentifier extension",
    "garbage-subjectaltname": "subjectAltName extension",
    "critical-private-extension": "critical extension OpenSSL 3 does not handle (1.3.6.1.4.1.99999.2)",
    "critical-subjectkeyidentifier": "error 34, unhandled critical extension",
    "utctime-without-seconds": "format error in certificate's notBefore/notAfter field",
    "utctime-with-offset": "+0100' is not in RFC 5280's form",
    "generalizedtime-fraction": "error 13/14",
    # extensions OpenSSL decodes and cryptography does not: OpenSSL marks the certificate invalid (error 20)
    "garbage-nscerttype": "undecodable or repeated nsCertType extension",
    "nscerttype-unused-bits-9": "undecodable or repeated nsCertType extension",
    "duplicate-nscerttype": "undecodable or repeated nsCertType extension",
    "garbage-proxycertinfo": "proxyCertInfo extension",
    "proxycertinfo-on-a-ca": "a proxyCertInfo on a CA",
    "garbage-ipaddrblock": "sbgp-ipAddrBlock extension",
    "ipaddrblock-family-not-octets": "sbgp-ipAddrBlock extension",
    "garbage-asidentifiers": "sbgp-autonomousSysNum extension",
}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    base = tmp_path_factory.mktemp("strict")
    built = make_cases(base)
    return base, {c.name: (c, openssl_verdict(c, base)) for c in built}


def test_the_corpus_has_both_verdicts(cases):
    _base, judged = cases
    refused = {name for name, (_c, (ok, _why)) in judged.items() if not ok}
    assert refused == set(REASONS), "openssl's verdicts moved: %s" % sorted(refused)
    assert len(judged) - len(refused) >= 15


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("layout", ["hashed_dir", "bundle"])
def test_truststore_judges_the_root_as_openssl(cases, name, layout, tmp_path):
    base, judged = cases
    case, (trusted, why) = judged[name]
    path = str(tmp_path / ("store.pem" if layout == "bundle" else "store"))
    failed, res = run("dicom_truststore", {"path": path, "certificates": [case.ca], "layout": layout})
    if trusted:
        assert not failed, res["msg"]
        flags = ["-CAfile", path] if layout == "bundle" else ["-CApath", path]
        proc = subprocess.run(["openssl", "verify", *flags, case.leaf], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    else:
        assert failed, "openssl refuses %s (%s) and dicom_truststore took it" % (name, why)
        assert res["msg"].startswith(case.ca + ": ") and REASONS[name] in res["msg"], res["msg"]
        assert not os.path.lexists(path)


@pytest.mark.parametrize("name", sorted(CASES))
def test_self_signature_judged_over_the_bytes_as_signed(cases, name):
    """crypto reads a root OpenSSL takes through its DER form, but checks its signature over the
    bytes that were signed: `openssl verify -check_ss_sig` on the root itself is the oracle."""
    _base, judged = cases
    case, (trusted, _why) = judged[name]
    if not trusted:
        pytest.skip("OpenSSL refuses this root")
    cert = crypto.load_der_certificate(_der(case.ca), case.ca)
    proc = subprocess.run(
        ["openssl", "verify", "-check_ss_sig", "-CAfile", case.ca, case.ca], capture_output=True, check=False
    )
    assert crypto.is_self_signed(cert) == (proc.returncode == 0)
    assert proc.returncode == 0


def _der(path: str) -> bytes:
    body = re.search(rb"-----BEGIN CERTIFICATE-----(.*?)-----END", open(path, "rb").read(), re.S).group(1)
    return base64.b64decode(b"".join(body.split()))
