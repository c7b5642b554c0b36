"""The one compatibility place (crypto.py's "compatibility" section, deps.FLOORS): its fallbacks give
the same answers as the newer APIs they stand in for, too-old libraries get one clear sentence, and
no other plugin file calls an API that Python 3.9 or cryptography 36 lacks.

The real interpreters (3.9 with cryptography 36.0.1, Debian's python3 with 38.0.4, 3.10-3.13 with
the newest) run the modules in tests/integration/test_pythons.py."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, deps
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PLUGINS = os.path.join(ROOT, "plugins")

# APIs newer than the floors (Python 3.9, cryptography 36.0) -> what to use instead.
NEWER_APIS = {
    r"datetime\.UTC\b": "crypto.UTC (datetime.UTC is Python 3.11+)",
    r"\.not_valid_(before|after)_utc\b": "crypto.not_valid_before/after(cert) (cryptography 42+)",
    r"\.(last|next)_update_utc\b": "crypto.last_update/next_update(crl) (cryptography 42+)",
    r"\.revocation_date_utc\b": "crypto.revocation_date(entry) (cryptography 42+)",
    r"unsafe_skip_rsa_key_validation": "crypto.load_private_key (keyword is cryptography 39+)",
    r"load_(pem|der)_x509_certificates\(": "crypto.load_certificates (cryptography 39+)",
    r"(?<!crypto)\.verify_directly_issued_by\(": "crypto.verify_directly_issued_by(cert, issuer) (cryptography 40+)",
    r"\.signature_algorithm_parameters\b": "crypto.signature_parameters(cert) (cryptography 41+)",
    r"\bzip\([^)]*strict=": "no zip(strict=) (Python 3.10+)",
    r"\bimport tomllib\b|\bStrEnum\b|\btyping\.Self\b|hashlib\.file_digest": "Python 3.11+ only",
    r"itertools\.(pairwise|batched)": "Python 3.10+ only",
}


def _plugin_files():
    for folder, _dirs, files in os.walk(PLUGINS):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def test_no_plugin_calls_an_api_newer_than_the_floors():
    found = []
    for path in _plugin_files():
        rel = os.path.relpath(path, ROOT)
        in_compat = False
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            if line.startswith("# ----"):
                in_compat = rel == "plugins/module_utils/crypto.py" and "compatibility" in line
            code = line.split("#", 1)[0]
            if in_compat or "``" in code or code.strip().startswith(('"', "'", "-", "description")):
                continue  # the compatibility section itself, docstrings and module documentation
            for pattern, instead in NEWER_APIS.items():
                if re.search(pattern, code):
                    found.append("%s:%d: %s -> use %s" % (rel, number, line.strip(), instead))
    assert not found, "\n".join(found)


def test_plugins_compile_for_python_3_9():
    """ruff's per-file target (pyproject.toml) keeps 3.10+ syntax out; this checks the real grammar
    with the oldest interpreter present (skipped with a reason when there is none)."""
    py39 = [p for p in ("/root/.pyenv/versions/3.9.18/bin/python", "/usr/bin/python3.9") if os.path.exists(p)]
    if not py39:
        pytest.skip("no Python 3.9 on this machine (pyenv 3.9 or /usr/bin/python3.9)")
    files = list(_plugin_files())
    code = "import ast,sys\nfor p in sys.argv[1:]:\n    ast.parse(open(p).read(), p, feature_version=(3, 9))\n"
    done = subprocess.run([py39[0], "-c", code, *files], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


class Hidden:
    """A certificate, CRL or CRL entry as an old cryptography shows it: the newer attributes absent,
    naive UTC datetimes in the old ones."""

    NEWER = {
        "not_valid_before_utc",
        "not_valid_after_utc",
        "last_update_utc",
        "next_update_utc",
        "revocation_date_utc",
        "verify_directly_issued_by",
        "signature_algorithm_parameters",
    }

    def __init__(self, obj):
        self._obj = obj

    def __getattr__(self, name):
        if name in self.NEWER:
            raise AttributeError(name)
        if name in ("not_valid_before", "not_valid_after", "last_update", "next_update", "revocation_date"):
            value = getattr(self._obj, name + "_utc")
            return value.replace(tzinfo=None) if value is not None else None
        return getattr(self._obj, name)


NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _cert(key, issuer_key, subject, issuer, pss=False):
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=30))
    )
    if pss:
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
        return builder.sign(issuer_key, hashes.SHA256(), rsa_padding=pad)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def keys():
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
    }


@pytest.mark.parametrize("kind,pss", [("rsa", False), ("rsa", True), ("ec", False)])
def test_verify_fallback_agrees_with_cryptography(keys, kind, pss):
    ca_key = keys[kind]
    other = keys["ec" if kind == "rsa" else "rsa"]
    ca = _cert(ca_key, ca_key, "CA", "CA", pss)
    leaf = _cert(other, ca_key, "leaf", "CA", pss)
    forged = _cert(other, other, "leaf", "CA")
    assert crypto.signature_valid(Hidden(leaf), Hidden(ca)) and crypto.signature_valid(leaf, ca)
    assert not crypto.signature_valid(Hidden(forged), Hidden(ca))
    assert not crypto.issued_by(Hidden(ca), Hidden(leaf))  # names differ
    assert crypto.issued_by(leaf, ca) and not crypto.issued_by(forged, ca)


def test_dates_are_utc_aware_on_old_and_new_objects(keys):
    cert = _cert(keys["ec"], keys["ec"], "CA", "CA")
    old = Hidden(cert)
    assert crypto.not_valid_before(old) == crypto.not_valid_before(cert) == NOW
    assert crypto.not_valid_after(old).tzinfo is not None
    assert crypto.describe_certificate(old, NOW) == crypto.describe_certificate(cert, NOW)


def test_private_key_loader_does_not_misread_an_unencrypted_key(tmp_path, keys):
    from cryptography.hazmat.primitives import serialization

    pem = keys["rsa"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = crypto.load_private_key(pem, "node.key", check_consistency=False)
    assert key.key_size == 2048


@pytest.mark.parametrize(
    "found,expected",
    [
        ("35.0.0", "needs cryptography >= 36.0, found 35.0.0"),
        ("3.4.8", "needs cryptography >= 36.0, found 3.4.8"),
        ("36.0.1", None),
        ("38.0.4", None),
    ],
)
def test_too_old_cryptography_is_one_sentence(monkeypatch, found, expected):
    import cryptography

    monkeypatch.setattr(cryptography, "__version__", found)
    problem = deps.version_problem("cryptography")
    if expected is None:
        assert problem is None
    else:
        assert problem.startswith(expected) and sys.executable in problem


def test_pydicom_on_python_3_9_is_one_sentence(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 9, 18, "final", 0))
    problem = deps.version_problem("cryptography", "pydicom")
    assert problem.startswith("pydicom needs Python >= 3.10, found Python 3.9")
