"""The name hash agrees with the openssl binary on the test PKI's certificates."""

from __future__ import annotations

import subprocess

from ansible_collections.medimg.dicom_tls.plugins.module_utils import namehash
from cryptography.hazmat.primitives.serialization import Encoding


def test_subject_hash_matches_openssl(pki):
    for issued in (pki.root, pki.inter):
        expected = subprocess.run(
            ["openssl", "x509", "-hash", "-noout", "-in", issued.cert], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert namehash.subject_hash(issued.certificate.public_bytes(Encoding.DER)) == expected
