"""Certificates and CRLs with arbitrary raw Name DER, built byte by byte and signed with an EC key.

``cryptography`` refuses to build (and sometimes to read) names OpenSSL accepts: unsorted
multi-valued RDNs, T61String with Latin-1 bytes, BMPString, UniversalString, ... These helpers
assemble the TBS structure directly so that the openssl binary can be the oracle for such names.

    name = name_der([[(OID_CN, UTF8, "Mixed  Case")], [(OID_O, T61, b"M\xfcller")]])
    cert = cert_der(name)            # self-issued certificate with that subject and issuer
    crl = crl_der(name)              # CRL with that issuer
"""

from __future__ import annotations

import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

UTF8, NUMERIC, PRINTABLE, T61, IA5, VISIBLE, UNIVERSAL, BMP = 0x0C, 0x12, 0x13, 0x14, 0x16, 0x1A, 0x1C, 0x1E
OID_CN = "2.5.4.3"
OID_C = "2.5.4.6"
OID_O = "2.5.4.10"
OID_OU = "2.5.4.11"
OID_SERIAL = "2.5.4.5"
OID_EMAIL = "1.2.840.113549.1.9.1"
OID_DC = "0.9.2342.19200300.100.1.25"
ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_CODECS = {UTF8: "utf-8", BMP: "utf-16-be", UNIVERSAL: "utf-32-be"}

_KEY = ec.generate_private_key(ec.SECP256R1())
_SPKI = _KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes((tag, n)) + value
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(raw))) + raw + value


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def value(tag: int, text) -> bytes:
    """A string value: ``text`` as bytes is used raw; str is encoded for the tag (Latin-1 for
    the single-byte types)."""
    if isinstance(text, bytes):
        return tlv(tag, text)
    return tlv(tag, text.encode(_CODECS.get(tag, "latin-1")))


def name_der(rdns) -> bytes:
    """A Name from a list of RDNs, each a list of (oid, tag, text). The order inside an RDN is kept
    as given (DER would sort it: unsorted sets are allowed on purpose)."""
    out = b""
    for rdn in rdns:
        out += tlv(0x31, b"".join(tlv(0x30, oid(o) + value(t, v)) for o, t, v in rdn))
    return tlv(0x30, out)


def utc_time(when: datetime.datetime, form: str = "%y%m%d%H%M%SZ", tag: int = 0x17) -> bytes:
    """A UTCTime (or, with tag 0x18, GeneralizedTime) in any ``strftime`` form, RFC 5280's or not."""
    return tlv(tag, when.strftime(form).encode())


def extension(dotted: str, body: bytes, critical: bytes | None = b"\xff") -> bytes:
    """An Extension: ``critical`` is the raw BOOLEAN content (None leaves the field out)."""
    return tlv(0x30, oid(dotted) + (b"" if critical is None else tlv(0x01, critical)) + tlv(0x04, body))


CA_EXTENSIONS = (
    extension("2.5.29.19", tlv(0x30, tlv(0x01, b"\xff"))),  # basicConstraints CA:TRUE
    extension("2.5.29.15", tlv(0x03, b"\x01\x06")),  # keyUsage keyCertSign, cRLSign
)
LEAF_EXTENSIONS = (
    extension("2.5.29.19", tlv(0x30, b"")),  # basicConstraints CA:FALSE
    extension("2.5.29.15", tlv(0x03, b"\x05\xa0")),  # keyUsage digitalSignature, keyEncipherment
    extension("2.5.29.37", tlv(0x30, oid("1.3.6.1.5.5.7.3.1") + oid("1.3.6.1.5.5.7.3.2")), None),
    extension("2.5.29.17", tlv(0x30, tlv(0x82, b"localhost") + tlv(0x87, bytes([127, 0, 0, 1]))), None),
)


def certificate(
    subject: bytes,
    issuer: bytes | None = None,
    *,
    version: bytes | None = b"\x02",
    serial: bytes = b"\x01",
    not_before: bytes | None = None,
    not_after: bytes | None = None,
    extensions=CA_EXTENSIONS,
    key=None,
    signer=None,
    length_form: bytes | None = None,
) -> bytes:
    """A certificate assembled field by field, each given as raw content, so that encodings OpenSSL
    reads and strict DER parsers refuse can be made: ``version`` None leaves the field out (v1),
    ``serial`` is the INTEGER's content bytes, ``extensions`` raw Extension TLVs (empty: none),
    ``length_form`` replaces the serial's length octets (b"\\x81\\x01": a non-minimal length).
    ``key`` is the subject's private key (default the module's EC key), ``signer`` the issuer's."""
    now = datetime.datetime.now(datetime.UTC)
    key, signer = key or _KEY, signer or _KEY
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    serial_tlv = b"\x02" + length_form + serial if length_form else tlv(0x02, serial)
    tbs = tlv(
        0x30,
        (b"" if version is None else tlv(0xA0, tlv(0x02, version)))
        + serial_tlv
        + ECDSA_SHA256
        + (issuer or subject)
        + tlv(
            0x30,
            (not_before or utc_time(now - datetime.timedelta(hours=1)))
            + (not_after or utc_time(now + datetime.timedelta(days=30))),
        )
        + subject
        + spki
        + (tlv(0xA3, tlv(0x30, b"".join(extensions))) if extensions else b""),
    )
    return _sign(tbs, signer)


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def _sign(tbs: bytes, signer=None) -> bytes:
    sig = (signer or _KEY).sign(tbs, ec.ECDSA(hashes.SHA256()))
    return tlv(0x30, tbs + ECDSA_SHA256 + tlv(0x03, b"\x00" + sig))


def cert_der(subject: bytes, issuer: bytes | None = None, serial: int = 1) -> bytes:
    return certificate(subject, issuer, serial=serial.to_bytes((serial.bit_length() + 8) // 8, "big"), extensions=())


def crl_der(issuer: bytes) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    tbs = tlv(
        0x30,
        tlv(0x02, b"\x01")
        + ECDSA_SHA256
        + issuer
        + utc_time(now - datetime.timedelta(hours=1))
        + utc_time(now + datetime.timedelta(days=7)),
    )
    return _sign(tbs)
