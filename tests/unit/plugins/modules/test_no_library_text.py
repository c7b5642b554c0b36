"""No library text reaches the user: bad PKI material at every site where a library parses it.

Each case feeds one module a damaged file or value, runs the module in-process and compares its
message with the text the library itself raises for the same bytes (the library is the oracle of
what must NOT be shown): the message is the collection's sentence, names the file (or the value)
and the reason, and contains none of the library's words."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from support import module_run
from support.hostile import LIBRARY_TEXT, snapshot

BAD_PEM_CERT = b"-----BEGIN CERTIFICATE-----\nMIIBAAAAAAAA\n-----END CERTIFICATE-----\n"
BAD_PEM_CRL = b"-----BEGIN X509 CRL-----\nMIIBAAAAAAAA\n-----END X509 CRL-----\n"
BAD_DER = b"\x30\x03\x02\x01\x01"
BAD_KEY = b"-----BEGIN PRIVATE KEY-----\nMIIBAAAAAAAA\n-----END PRIVATE KEY-----\n"


def _text(call) -> str:
    try:
        call()
    except Exception as exc:  # the library's own words for this input
        return str(exc)
    raise AssertionError("the library accepted the bad input")


# (module, option, file name or None, content, words we say, the library's text)
CASES = [
    ("dicom_cert_info", "path", "bad.pem", BAD_PEM_CERT, "not a readable X.509 certificate",
     lambda: _text(lambda: x509.load_pem_x509_certificate(BAD_PEM_CERT))),
    ("dicom_cert", "issuer_cert_path", "bad.pem", BAD_PEM_CERT, "not a readable X.509 certificate",
     lambda: _text(lambda: x509.load_pem_x509_certificate(BAD_PEM_CERT))),
    ("dicom_cert", "issuer_privatekey_path", "bad.key", BAD_KEY, "not a readable private key",
     lambda: _text(lambda: serialization.load_pem_private_key(BAD_KEY, None))),
    ("dicom_cert", "subject", None, "/C=Belgium/CN=node", "two-letter country code",
     lambda: _text(lambda: x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "Belgium"))),
    ("dicom_cert", "subject_alt_names", None, ["IP:10.1.2"], "not an IPv4 or IPv6 address",
     lambda: _text(lambda: ipaddress.ip_address("10.1.2"))),
    ("dicom_cert", "subject_alt_names", None, ["DNS:h\u00f4pital.example"], "IDNA",
     lambda: _text(lambda: x509.DNSName("h\u00f4pital.example"))),
    ("dicom_truststore", "certificates", "bad.der", BAD_DER, "not a readable X.509 certificate",
     lambda: _text(lambda: x509.load_der_x509_certificate(BAD_DER))),
    ("dicom_truststore", "crls", "bad.crl", BAD_DER, "not a readable CRL",
     lambda: _text(lambda: x509.load_der_x509_crl(BAD_DER))),
    ("dicom_crl", "path", "existing.crl", BAD_DER, "is not a CRL",
     lambda: _text(lambda: x509.load_der_x509_crl(BAD_DER))),
    ("dicom_tls_echo", "crl_files", "bad.crl", BAD_PEM_CRL, "not a readable CRL",
     lambda: _text(lambda: x509.load_pem_x509_crl(BAD_PEM_CRL))),
    ("dicom_tls_echo", "ca_file", "bad.pem", BAD_PEM_CERT, "not a readable X.509 certificate",
     lambda: _text(lambda: x509.load_pem_x509_certificate(BAD_PEM_CERT))),
    ("dicom_sign", "certificate_path", "bad.pem", BAD_PEM_CERT, "not a readable X.509 certificate",
     lambda: _text(lambda: x509.load_pem_x509_certificate(BAD_PEM_CERT))),
    ("dicom_sign", "privatekey_path", "bad.key", BAD_KEY, "not a readable private key",
     lambda: _text(lambda: serialization.load_pem_private_key(BAD_KEY, None))),
    ("orthanc_config", "orthanc.json", "orthanc/orthanc.json", b'{ "DicomPort" : 4242x }\n', "not valid JSON",
     lambda: _text(lambda: json.loads("4242x"))),
]  # fmt: skip


@pytest.mark.parametrize(("module", "option", "name", "content", "words", "library"), CASES,
                         ids=["%s.%s-%d" % (c[0], c[1], i) for i, c in enumerate(CASES)])  # fmt: skip
def test_message_is_ours(workspace, module, option, name, content, words, library):
    work = workspace.copy()
    try:
        args = workspace.base(module, work)
        where = None
        if name is not None:
            where = os.path.join(work, name)
            with open(where, "wb") as fh:
                fh.write(content)
            if option in args or option in ("crl_files", "crls"):
                args[option] = [where] if option in ("certificates", "crls", "crl_files") else where
        else:
            args[option] = content
        before = snapshot(work)
        failed, result = module_run.run(module, args)
        assert failed, result
        msg = result["msg"]
        assert words in msg, msg
        assert where is None or where in msg or result.get("path") == where, msg
        lib = library()
        assert lib and lib not in msg and not LIBRARY_TEXT.search(msg), (msg, lib)
        assert snapshot(work) == before
    finally:
        shutil.rmtree(work, ignore_errors=True)
