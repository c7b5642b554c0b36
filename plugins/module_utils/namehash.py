# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenSSL's X.509 name hash (``openssl x509 -hash``), computed from raw DER.

Names are read straight from the certificate or CRL bytes, so every name OpenSSL accepts is
handled, including those ``cryptography`` refuses to decode (unsorted multi-valued RDNs,
T61String with Latin-1 bytes, ...).
"""

from __future__ import annotations

import hashlib
import re

# String types OpenSSL folds to a canonical UTF8String (ASN1_MASK_CANON), with their codec.
_CANON_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "latin-1",  # PrintableString
    0x14: "latin-1",  # T61String (read as Latin-1 by OpenSSL)
    0x16: "latin-1",  # IA5String
    0x1A: "latin-1",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}
# Universal tags OpenSSL accepts as an attribute value when it parses a Name (DirectoryString-like
# mask B_ASN1_PRINTABLE through ASN1_tag2bit): BIT STRING, UTF8String, SEQUENCE, NumericString,
# PrintableString, T61String, IA5String, UniversalString, BMPString and the tags it maps to
# "unknown" (7-11, 13-15, 29). Anything else (VisibleString, OCTET STRING, INTEGER, ...) makes
# OpenSSL refuse the whole certificate or CRL.
_ACCEPTED_TAGS = frozenset({0x03, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x12, 0x13, 0x14, 0x16})
_ACCEPTED_TAGS |= frozenset({0x1C, 0x1D, 0x1E, 0x30})


class DerError(ValueError):
    """The bytes are not the DER structure expected."""


def read_tlv(data: bytes, pos: int = 0) -> tuple[int, int, int, int]:
    """Read one DER TLV at ``pos``: (tag, value_start, value_end, header_start)."""
    if pos + 2 > len(data):
        raise DerError("truncated DER element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte DER tags are not supported")
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise DerError("bad DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise DerError("DER element runs past the end of the data")
    return tag, start, end, pos


def children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The TLVs inside a constructed value spanning data[start:end]."""
    out = []
    pos = start
    while pos < end:
        tlv = read_tlv(data, pos)
        out.append(tlv)
        pos = tlv[2]
    return out


def encode_tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes((tag, n)) + value
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(raw))) + raw + value


def _collect(data: bytes, start: int, end: int) -> bytes:
    """The content of a BER constructed string: its segments' contents, concatenated."""
    out = b""
    for tag, s, e, _hdr in children(data, start, end):
        out += _collect(data, s, e) if tag & 0x20 else data[s:e]
    return out


def _canon_value(tag: int, value: bytes) -> bytes:
    if tag & 0x20 and tag != 0x30 and (tag & ~0x20) in _ACCEPTED_TAGS:
        # BER constructed string (OpenSSL reads it as the primitive string of its segments)
        tag, value = tag & ~0x20, _collect(value, 0, len(value))
    if tag not in _ACCEPTED_TAGS:
        raise DerError("name attribute value has ASN.1 tag 0x%02x, which OpenSSL does not accept in a name" % tag)
    if tag == 0x1E:  # BMPString is UCS-2: surrogate code units are not characters
        if len(value) % 2 or any(0xD8 <= value[i] <= 0xDF for i in range(0, len(value), 2)):
            raise DerError("name attribute is not valid BMPString (UCS-2)")
    codec = _CANON_CODECS.get(tag)
    if codec is None:
        return encode_tlv(tag, value)
    try:
        text = value.decode(codec).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise DerError("name attribute is not valid %s" % codec) from exc
    # spaces trimmed, each run of them one space, ASCII letters lowercase (bytes.lower() changes only A-Z)
    return encode_tlv(0x0C, re.sub(rb"[ \t\n\v\f\r]+", b" ", text.strip(b" \t\n\v\f\r")).lower())


def canonical_name(name_der: bytes) -> bytes:
    """OpenSSL's canonical encoding of a Name (x509_name_canon): the input of the SHA-1 hash."""
    tag, start, end, _hdr = read_tlv(name_der)
    if tag != 0x30:
        raise DerError("a Name must be a SEQUENCE")
    out = bytearray()
    for rdn_tag, rs, re_, _hdr in children(name_der, start, end):
        if rdn_tag != 0x31:
            raise DerError("an RDN must be a SET")
        entries = []
        for atv_tag, as_, ae, _hdr in children(name_der, rs, re_):
            if atv_tag != 0x30:
                raise DerError("an attribute must be a SEQUENCE")
            parts = children(name_der, as_, ae)
            if len(parts) != 2 or parts[0][0] != 0x06:
                raise DerError("an attribute must be OID and value")
            oid = name_der[parts[0][3] : parts[0][2]]
            vtag, vs, ve, _hdr = parts[1]
            entries.append(encode_tlv(0x30, oid + _canon_value(vtag, name_der[vs:ve])))
        if not entries:  # OpenSSL keeps no trace of an empty RDN
            continue
        # DER SET OF: sort by encoded bytes (shorter first on a common prefix, as bytes compare).
        entries.sort()
        out += encode_tlv(0x31, b"".join(entries))
    return bytes(out)


def name_hash(name_der: bytes) -> str:
    """``openssl x509 -subject_hash`` of a DER Name: 8 lowercase hex digits."""
    return canonical_hash(canonical_name(name_der))


def canonical_hash(canon: bytes) -> str:
    """The name hash of an already canonical name (the output of ``canonical_name``)."""
    md = hashlib.sha1(canon).digest()
    return "%08x" % int.from_bytes(md[:4], "little")


def _tbs_fields(der: bytes) -> list[tuple[int, int, int, int]]:
    tag, start, end, _hdr = read_tlv(der)
    if tag != 0x30:
        raise DerError("not a DER SEQUENCE")
    tbs = children(der, start, end)
    if not tbs or tbs[0][0] != 0x30:
        raise DerError("no to-be-signed SEQUENCE")
    return children(der, tbs[0][1], tbs[0][2])


def certificate_names(cert_der: bytes) -> tuple[bytes, bytes]:
    """(issuer DER, subject DER) taken from a DER certificate."""
    fields = _tbs_fields(cert_der)
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject
    if len(fields) < 5:
        raise DerError("certificate too short")
    issuer, subject = fields[2], fields[4]
    return cert_der[issuer[3] : issuer[2]], cert_der[subject[3] : subject[2]]


def crl_issuer(crl_der: bytes) -> bytes:
    """The issuer Name DER of a DER CRL."""
    fields = _tbs_fields(crl_der)
    if fields and fields[0][0] == 0x02:  # version INTEGER
        fields = fields[1:]
    if len(fields) < 2:
        raise DerError("CRL too short")
    issuer = fields[1]
    return crl_der[issuer[3] : issuer[2]]


def subject_hash(cert_der: bytes) -> str:
    """``openssl x509 -hash -noout`` of a DER certificate."""
    return name_hash(certificate_names(cert_der)[1])
