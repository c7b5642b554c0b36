"""crypto.policy_problems against OpenSSL 3's security level 2 (``openssl verify -auth_level 2``) on
material made by the openssl command line: SHA-1 and MD5 signatures (error 68, not judged on a
self-signed trust anchor), RSA and EC keys that are too small (67 in a CA, 66 otherwise). dcmtk runs
OpenSSL at level 0 (``-auth_level 0``), which accepts every one of them."""

from __future__ import annotations

import re

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto
from support.legacy_pki import LegacyPKI, openssl

# name -> (issuer or None for a self-signed root, digest, key, CA?)
MATERIAL = {
    "r_sha1": (None, "-sha1", "rsa:2048", True),  # openssl req -x509 -sha1: legacy enterprise root
    "r_md5": (None, "-md5", "rsa:2048", True),
    "r_sha256": (None, "-sha256", "rsa:2048", True),
    "r_rsa1024": (None, "-sha256", "rsa:1024", True),
    "r_p192": (None, "-sha256", "ec:prime192v1", True),
    "i_sha1": ("r_sha256", "-sha1", "rsa:2048", True),
    "i_md5": ("r_sha256", "-md5", "rsa:2048", True),
    "l_rsa1024": ("r_sha256", "-sha256", "rsa:1024", False),
    "l_p192": ("r_sha256", "-sha256", "ec:prime192v1", False),
    "l_p224": ("r_sha256", "-sha256", "ec:secp224r1", False),
    "i_under_rsa1024": ("r_rsa1024", "-sha256", "rsa:2048", True),
    "i_under_p192": ("r_p192", "-sha256", "rsa:2048", True),
}
KIND = {66: "key", 67: "key", 68: "signature"}


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    m = LegacyPKI(tmp_path_factory.mktemp("policy"))
    for name, (issuer, digest, key, ca) in MATERIAL.items():
        if issuer is None:
            m.root(name, digest, key)
        else:
            m.child(name, issuer, digest, key, ca=ca)
    return m


def verify(m, name: str, level: int) -> tuple[int, int] | None:
    """``openssl verify -auth_level`` of ``name`` under its issuer: (error, depth) or None for OK."""
    issuer = MATERIAL[name][0] or name
    proc = openssl(
        "verify", "-auth_level", level, "-CAfile", m.path(issuer + ".pem"), m.path(name + ".pem"), check=False
    )
    found = re.search(r"error (\d+) at (\d+) depth", proc.stdout + proc.stderr)
    if proc.returncode == 0:
        return None
    assert found, proc.stdout + proc.stderr
    return int(found.group(1)), int(found.group(2))


def load(m, name):
    return crypto.load_certificate(open(m.path(name + ".pem"), "rb").read(), name)


@pytest.mark.parametrize("name", list(MATERIAL))
def test_policy_problems_as_openssl_auth_level_2(material, name):
    assert verify(material, name, 0) is None, "dcmtk's level 0 accepts %s" % name
    oracle = verify(material, name, 2)
    expected = {KIND[oracle[0]]} if oracle and oracle[1] == 0 else set()
    assert set(crypto.policy_problems(load(material, name))) == expected, oracle


@pytest.mark.parametrize(
    ("name", "child"),
    [
        ("i_sha1", None),
        ("i_md5", None),
        ("l_rsa1024", None),
        ("r_rsa1024", "i_under_rsa1024"),
        ("r_p192", "i_under_p192"),
    ],
)
def test_policy_warning_names_the_error_openssl_gives(material, name, child):
    code, depth = verify(material, child or name, 2)
    assert depth == (1 if child else 0)
    warning = crypto.policy_warning(load(material, name), "/etc/x.pem")
    assert warning.startswith("/etc/x.pem: certificate '/O=Hospital/CN=%s' " % name)
    assert "error %d)" % code in warning and "dcmtk runs OpenSSL at level 0 and accepts it" in warning


@pytest.mark.parametrize("name", ["r_sha1", "r_md5", "r_sha256", "l_p224", "i_under_rsa1024"])
def test_no_warning_where_level_2_accepts(material, name):
    assert verify(material, name, 2) is None or verify(material, name, 2)[1] > 0
    assert crypto.policy_warning(load(material, name), "x") is None
