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


def _utc(when: datetime.datetime) -> bytes:
    return tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode())


def _sign(tbs: bytes) -> bytes:
    sig = _KEY.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return tlv(0x30, tbs + ECDSA_SHA256 + tlv(0x03, b"\x00" + sig))


def cert_der(subject: bytes, issuer: bytes | None = None, serial: int = 1) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    tbs = tlv(
        0x30,
        tlv(0xA0, tlv(0x02, b"\x02"))
        + tlv(0x02, serial.to_bytes((serial.bit_length() + 8) // 8, "big"))
        + ECDSA_SHA256
        + (issuer or subject)
        + tlv(0x30, _utc(now - datetime.timedelta(hours=1)) + _utc(now + datetime.timedelta(days=30)))
        + subject
        + _SPKI,
    )
    return _sign(tbs)


def crl_der(issuer: bytes) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    tbs = tlv(
        0x30,
        tlv(0x02, b"\x01")
        + ECDSA_SHA256
        + issuer
        + _utc(now - datetime.timedelta(hours=1))
        + _utc(now + datetime.timedelta(days=7)),
    )
    return _sign(tbs)
