"""The pure-Python OpenSSL name hash against the openssl binary, on names chosen to be awkward and
on generated ones (hypothesis): certificates (x509 -hash) and CRLs (crl -hash)."""

from __future__ import annotations

import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import namehash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.der import (
    BMP,
    IA5,
    NUMERIC,
    OID_C,
    OID_CN,
    OID_DC,
    OID_EMAIL,
    OID_O,
    OID_OU,
    OID_SERIAL,
    PRINTABLE,
    T61,
    UNIVERSAL,
    UTF8,
    VISIBLE,
    cert_der,
    crl_der,
    name_der,
    oid,
    tlv,
)


def openssl_hash(kind: str, der: bytes) -> str:
    proc = subprocess.run(
        ["openssl", kind, "-inform", "DER", "-hash", "-noout"], input=der, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().strip()


def openssl_accepts(kind: str, der: bytes) -> bool:
    proc = subprocess.run(["openssl", kind, "-inform", "DER", "-noout"], input=der, capture_output=True, check=False)
    return proc.returncode == 0


AWKWARD = {
    "empty subject": [],
    "mixed case": [[(OID_CN, UTF8, "MiXeD CaSe Root CA")]],
    "odd whitespace": [[(OID_CN, UTF8, "  lead\t\ttab \n\x0b\x0c\r  inner   trail  ")]],
    "only whitespace": [[(OID_CN, UTF8, " \t ")]],
    "no-break space kept": [[(OID_CN, UTF8, "a\u00a0\u00a0b \u00a0")]],
    "non-ascii uppercase": [[(OID_O, UTF8, "ÄÖÜ Klinik ÉCOLE")]],
    "printable": [[(OID_C, PRINTABLE, "DE")], [(OID_O, PRINTABLE, "Some  ORG")]],
    "t61 latin-1": [[(OID_O, T61, b"M\xdcller \xc4rzte  GmbH")]],
    "t61 high bytes": [[(OID_CN, T61, b"\xa0x\xff\x80")]],
    "bmp": [[(OID_CN, BMP, "Bmp Ärzte  \u20ac Name")]],
    "universal": [[(OID_CN, UNIVERSAL, "Univ \U0001d11e Name")]],
    "ia5 email and dc": [
        [(OID_DC, IA5, "Example")],
        [(OID_DC, IA5, "COM")],
        [(OID_EMAIL, IA5, "PACS@Example.ORG")],
    ],
    "numeric kept as is": [[(OID_SERIAL, NUMERIC, "0012  34")], [(OID_CN, UTF8, "X")]],
    "multi-valued sorted": [[(OID_CN, UTF8, "a"), (OID_O, UTF8, "b")]],
    "multi-valued unsorted": [[(OID_OU, UTF8, "zzz"), (OID_CN, UTF8, "AAA"), (OID_O, PRINTABLE, "M")]],
    "multi-valued sort after folding": [[(OID_CN, UTF8, "B"), (OID_CN, UTF8, "a")]],
    "multi-valued common prefix": [[(OID_CN, UTF8, "ab"), (OID_CN, UTF8, "a")]],
    "multi-valued mixed types": [[(OID_CN, BMP, "Same"), (OID_CN, T61, b"same ")]],
    "long value": [[(OID_CN, UTF8, "Long " * 60)]],
    "many rdns": [[(OID_OU, UTF8, "unit %d" % i)] for i in range(40)],
}


@pytest.mark.parametrize("label", sorted(AWKWARD))
def test_awkward_names_match_openssl(label):
    name = name_der(AWKWARD[label])
    cert, crl = cert_der(name), crl_der(name)
    assert namehash.subject_hash(cert) == openssl_hash("x509", cert)
    assert namehash.name_hash(namehash.crl_issuer(crl)) == openssl_hash("crl", crl)
    assert namehash.name_hash(namehash.certificate_names(cert)[0]) == namehash.subject_hash(cert)


def _raw_name(*atvs: bytes, rdn=True) -> bytes:
    return tlv(0x30, tlv(0x31, b"".join(tlv(0x30, oid(OID_CN) + v) for v in atvs)) if rdn else b"")


@pytest.mark.parametrize(
    "name",
    [
        tlv(0x30, tlv(0x31, b"")),  # an empty RDN leaves no trace
        tlv(0x30, tlv(0x31, b"") + tlv(0x31, tlv(0x30, oid(OID_CN) + tlv(UTF8, b"X")))),
        _raw_name(tlv(0x2C, tlv(UTF8, b"Ab") + tlv(UTF8, b"C  d"))),  # BER constructed UTF8String
        _raw_name(tlv(0x03, b"\x00AB")),  # BIT STRING kept as is
        _raw_name(tlv(0x30, tlv(UTF8, b"AB"))),  # SEQUENCE kept as is
        _raw_name(tlv(0x0D, b"AB")),  # a tag OpenSSL reads as "unknown", kept as is
        _raw_name(tlv(UTF8, b"")),  # empty value
    ],
    ids=["empty-rdn", "empty-rdn-then-cn", "ber-constructed", "bitstring", "sequence", "tag13", "empty-value"],
)
def test_raw_names_match_openssl(name):
    cert = cert_der(name)
    assert namehash.subject_hash(cert) == openssl_hash("x509", cert)


def test_empty_name_hash_is_eea339da():
    assert namehash.name_hash(name_der([])) == "eea339da"


def test_subject_and_issuer_read_from_the_right_fields():
    subject = name_der([[(OID_CN, UTF8, "leaf")]])
    issuer = name_der([[(OID_CN, UTF8, "issuer")]])
    cert = cert_der(subject, issuer)
    assert namehash.subject_hash(cert) == openssl_hash("x509", cert)
    proc = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-issuer_hash", "-noout"], input=cert, capture_output=True, check=True
    )
    assert namehash.name_hash(namehash.certificate_names(cert)[0]) == proc.stdout.decode().strip()


@pytest.mark.parametrize(
    "rdns",
    [
        [[(OID_CN, BMP, b"\xd8\x34\xdd\x1e")]],  # BMPString is UCS-2: a surrogate pair is not a character
        [[(OID_CN, UTF8, b"\xff\xfe")]],  # not UTF-8
        [[(OID_CN, UNIVERSAL, b"\x00\x00\x00")]],  # not a multiple of 4 bytes
        [[(OID_OU, VISIBLE, "Radiology")]],  # VisibleString is not a type OpenSSL takes in a Name
        [[(OID_CN, 0x04, b"octets")]],  # neither is OCTET STRING
    ],
)
def test_names_openssl_refuses_are_refused(rdns):
    cert = cert_der(name_der(rdns))
    assert not openssl_accepts("x509", cert)
    with pytest.raises(namehash.DerError):
        namehash.subject_hash(cert)


def test_truncated_der_is_a_clear_error():
    cert = cert_der(name_der([[(OID_CN, UTF8, "x")]]))
    with pytest.raises(namehash.DerError):
        namehash.subject_hash(cert[:40])


# Generated names: characters chosen to hit the folding rules (ASCII case, whitespace, no-break
# space, Latin-1 and wider letters), every string type, multi-valued RDNs in any order.
_CHARS = st.sampled_from(list("aZqQ09 -.'\t\n\x0b\x0c\r") + ["\u00a0", "Ä", "ü", "ß", "É", "€", "Ω", "\U0001f600"])
_OIDS = st.sampled_from([OID_CN, OID_O, OID_OU, OID_C, OID_EMAIL, OID_DC, OID_SERIAL])
_TAGS = st.sampled_from([UTF8, PRINTABLE, T61, IA5, VISIBLE, UNIVERSAL, BMP, NUMERIC])


@st.composite
def _atv(draw):
    tag = draw(_TAGS)
    text = draw(st.text(_CHARS, max_size=12))
    if tag in (PRINTABLE, T61, IA5, VISIBLE, NUMERIC):
        text = "".join(c for c in text if ord(c) < 0x100)
    elif tag == BMP:
        text = "".join(c for c in text if ord(c) < 0x10000)
    return (draw(_OIDS), tag, text)


_NAMES = st.lists(st.lists(_atv(), min_size=1, max_size=3), max_size=4)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_NAMES)
def test_generated_names_match_openssl(rdns):
    name = name_der(rdns)
    cert, crl = cert_der(name), crl_der(name)
    if not openssl_accepts("x509", cert):  # VisibleString: OpenSSL refuses the name, so must we
        with pytest.raises(namehash.DerError):
            namehash.subject_hash(cert)
        assert not openssl_accepts("crl", crl)
        return
    assert namehash.subject_hash(cert) == openssl_hash("x509", cert)
    assert namehash.name_hash(namehash.crl_issuer(crl)) == openssl_hash("crl", crl)
