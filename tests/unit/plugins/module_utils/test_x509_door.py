# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fence around the X.509 door: only crypto.py calls cryptography's loaders.

Keys, certificates, CSRs, CRLs and PKCS#12 stores are loaded (and PKCS#12 written) in
plugins/module_utils/crypto.py only, so that every file gets the same verdicts and error sentences.
The list of loaders is read from cryptography itself, so a loader added by a newer release is fenced
too."""

from __future__ import annotations

import ast
import pathlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

PLUGINS = pathlib.Path(__file__).resolve().parents[4] / "plugins"
DOOR = PLUGINS / "module_utils" / "crypto.py"


def _loaders() -> set[str]:
    names = set()
    for mod in (x509, serialization, pkcs12, pkcs7):
        names |= {n for n in dir(mod) if n.startswith("load_")}
    return names | {"serialize_key_and_certificates"}


LOADERS = _loaders()


def _calls_outside_the_door(path: pathlib.Path) -> list[str]:
    """'file:line name' for each use of a cryptography loader not reached through crypto.*."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in LOADERS:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id == "crypto"):
                found.append("%s:%d %s" % (path.name, node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in LOADERS or (alias.name == "pkcs12" and "cryptography" in (node.module or "")):
                    found.append("%s:%d import %s" % (path.name, node.lineno, alias.name))
        elif isinstance(node, ast.Name) and node.id in LOADERS:
            found.append("%s:%d %s" % (path.name, node.lineno, node.id))
    return found


def test_the_loader_list_is_real():
    assert {"load_pem_x509_certificate", "load_der_x509_crl", "load_pem_private_key", "load_pkcs12"} <= LOADERS


def test_only_crypto_py_calls_cryptography_loaders():
    files = sorted(p for p in PLUGINS.rglob("*.py") if p != DOOR)
    assert len(files) > 20
    offenders = [hit for path in files for hit in _calls_outside_the_door(path)]
    assert offenders == [], "cryptography loaders outside crypto.py: %s" % offenders


@pytest.mark.parametrize(
    "source",
    [
        "cert = x509.load_der_x509_certificate(der)",
        "from cryptography.x509 import load_pem_x509_crl",
        "from cryptography.hazmat.primitives.serialization import pkcs12",
        "key = serialization.load_pem_private_key(data, None)",
        "store = pkcs12.load_key_and_certificates(data, b'pw')",
    ],
)
def test_the_fence_sees_each_form(tmp_path, source):
    sample = tmp_path / "engine.py"
    sample.write_text(source + "\n")
    assert _calls_outside_the_door(sample)
    sample.write_text("cert = crypto.load_der_certificate(der, 'x')\n")
    assert not _calls_outside_the_door(sample)
