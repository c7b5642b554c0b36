# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading keys, certificates and CSRs with clear errors, and describing them for results.

Every loader takes the bytes and the path they came from, so an error names the file and the
reason. Descriptions never contain private key material.

This file is also the one place that makes the library run on every supported platform: Python 3.9
to 3.13 and cryptography from 36.0 (RHEL 9's python3-cryptography 36.0.1; Debian 12 ships 38.0.4)
to the newest. The section "compatibility" below holds every version-dependent call; the other
files use its functions (not_valid_after(cert), UTC, ...) instead of attributes that newer
versions added (``not_valid_after_utc``, ``datetime.UTC``, ``unsafe_skip_rsa_key_validation``).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import datetime
import hashlib
import os
import re

from ansible_collections.medimg.dicom_tls.plugins.module_utils import deps, files, namehash
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.namehash import subject_hash

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
except ImportError:  # reported by the module (deps.require)
    pass

_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)

# Subject attribute names accepted in `subject` (OpenSSL short and long names) -> NameOID attribute.
NAME_OIDS = {
    "C": "COUNTRY_NAME",
    "countryName": "COUNTRY_NAME",
    "ST": "STATE_OR_PROVINCE_NAME",
    "stateOrProvinceName": "STATE_OR_PROVINCE_NAME",
    "L": "LOCALITY_NAME",
    "localityName": "LOCALITY_NAME",
    "O": "ORGANIZATION_NAME",
    "organizationName": "ORGANIZATION_NAME",
    "OU": "ORGANIZATIONAL_UNIT_NAME",
    "organizationalUnitName": "ORGANIZATIONAL_UNIT_NAME",
    "CN": "COMMON_NAME",
    "commonName": "COMMON_NAME",
    "emailAddress": "EMAIL_ADDRESS",
    "DC": "DOMAIN_COMPONENT",
    "domainComponent": "DOMAIN_COMPONENT",
    "serialNumber": "SERIAL_NUMBER",
    "title": "TITLE",
}
_ORDER = ["C", "ST", "L", "O", "OU", "CN", "emailAddress", "DC", "serialNumber", "title"]


# ---------------------------------------------------------------- compatibility
# Python 3.9 to 3.13; cryptography from the floor in deps.FLOORS (deps.require checks it on the host).

UTC = datetime.timezone.utc  # datetime.UTC is Python 3.11+


_VERSION = deps.installed_version("cryptography")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def aware(when: datetime.datetime | None) -> datetime.datetime | None:
    """A UTC-aware datetime from cryptography's naive UTC values (< 42) or aware ones (>= 42)."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


def _utc(obj, name: str) -> datetime.datetime | None:
    """``obj.<name>_utc`` where cryptography has it (42+), else ``obj.<name>`` made UTC-aware."""
    if hasattr(obj, name + "_utc"):
        return getattr(obj, name + "_utc")
    return aware(getattr(obj, name))


def not_valid_before(cert) -> datetime.datetime:
    """notBefore of a certificate, UTC-aware."""
    return _utc(cert, "not_valid_before")


def not_valid_after(cert) -> datetime.datetime:
    """notAfter of a certificate, UTC-aware."""
    return _utc(cert, "not_valid_after")


def last_update(crl) -> datetime.datetime:
    """thisUpdate of a CRL, UTC-aware."""
    return _utc(crl, "last_update")


def next_update(crl) -> datetime.datetime | None:
    """nextUpdate of a CRL, UTC-aware, None when the CRL has none."""
    return _utc(crl, "next_update")


def revocation_date(revoked) -> datetime.datetime:
    """revocationDate of a CRL entry, UTC-aware."""
    return _utc(revoked, "revocation_date")


def load_pem_private_key_raw(data: bytes, password: bytes | None, check_consistency: bool = True):
    """serialization.load_pem/der_private_key; the RSA consistency check is skipped only where the
    keyword exists (cryptography 39+), older versions always check (slower, same result)."""
    extra = {}
    if not check_consistency and _VERSION >= (39, 0):
        extra["unsafe_skip_rsa_key_validation"] = True
    if b"-----BEGIN" in data:
        return serialization.load_pem_private_key(data, password=password, **extra)
    return serialization.load_der_private_key(data, password=password, **extra)


def isoformat(when: datetime.datetime | None) -> str | None:
    """The collection's one date form, 2026-01-31T12:00:00Z (UTC); None for None."""
    return aware(when).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def fingerprint_der(der: bytes) -> str:
    """SHA-256 fingerprint of DER bytes, lowercase hex pairs joined by colons (the collection's one form)."""
    return hashlib.sha256(der).digest().hex(":")


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of a certificate (see fingerprint_der)."""
    return fingerprint_der(der(cert))


def serial_hex(serial: int) -> str:
    """A serial as ``openssl x509 -serial`` prints it: uppercase hex, even number of digits."""
    text = "%X" % serial
    return "0" + text if len(text) % 2 else text


def _pw(passphrase: str | None) -> bytes | None:
    return passphrase.encode("utf-8") if passphrase else None


# ---------------------------------------------------------------- loading


def load_private_key(data: bytes, path: str, passphrase: str | None = None, check_consistency: bool = True):
    """A PEM (or DER) private key; wrong or missing passphrase and garbage are distinct errors.

    ``check_consistency=False`` skips OpenSSL's RSA consistency check (about 0.1 s for a 3072-bit key):
    for reading the public half only, e.g. to decide whether anything is due. Keys that sign are
    loaded with the check."""
    try:
        return load_pem_private_key_raw(data, _pw(passphrase), check_consistency)
    except TypeError as exc:
        text = str(exc).lower()
        if "not encrypted" in text:
            raise DicomTlsError("private key is not encrypted, but a passphrase was given", path) from None
        if "encrypted" in text or "password" in text:
            raise DicomTlsError("private key is encrypted and no passphrase was given", path) from None
        raise DicomTlsError("not a readable private key (unparsable PEM/DER)", path) from None
    except ValueError as exc:
        if b"ENCRYPTED" in data and (passphrase or "decrypt" in str(exc).lower()):
            raise DicomTlsError("wrong passphrase for the private key", path) from None
        raise DicomTlsError("not a readable private key (unparsable PEM/DER)", path) from None
    except UnsupportedAlgorithm:
        raise DicomTlsError("private key uses an unsupported algorithm", path) from None


def load_certificates(data: bytes, path: str) -> list[x509.Certificate]:
    """Every certificate of a PEM file (other PEM blocks skipped) or the one of a DER file, each
    read as load_der_certificate reads it."""
    if b"-----BEGIN" not in data:
        return [load_der_certificate(data, path)]
    certs = [load_der_certificate(der, path) for der in _pem_blocks(data, path, b"CERTIFICATE")]
    if not certs:
        raise DicomTlsError("no PEM certificate found (unparsable PEM)", path)
    return certs


# The PEM labels OpenSSL reads each kind by (PEM_read_bio_X509: CERTIFICATE and X509 CERTIFICATE).
PEM_LABELS = {b"CERTIFICATE": (b"CERTIFICATE", b"X509 CERTIFICATE"), b"X509 CRL": (b"X509 CRL",)}
TRUSTED_REFUSED = (
    "'TRUSTED CERTIFICATE' PEM (openssl x509 -trustout) carries OpenSSL trust settings that change, per purpose, "
    "what dcmtk trusts it for: not supported, give the plain certificate (openssl x509 -in FILE)"
)


def _pem_blocks(data: bytes, path: str, label: bytes) -> list[bytes]:
    """The DER of each PEM block of kind ``label`` in ``data``, under every label OpenSSL reads it by
    (PEM_LABELS); a TRUSTED CERTIFICATE block is refused (TRUSTED_REFUSED)."""
    found = _PEM_RE.findall(data)
    if label == b"CERTIFICATE" and any(lab == b"TRUSTED CERTIFICATE" for lab, _body in found):
        raise DicomTlsError(TRUSTED_REFUSED, path)
    try:
        return [
            base64.b64decode(b"".join(body.split()), validate=True) for lab, body in found if lab in PEM_LABELS[label]
        ]
    except ValueError:
        what = "CRL" if b"CRL" in label else "X.509 certificate"
        raise DicomTlsError("not a readable %s (unparsable PEM/DER)" % what, path) from None


class Unusable(DicomTlsError):
    """A certificate OpenSSL 3 (so dcmtk) loads but verifies nothing with."""


def load_der_certificate(data: bytes, path: str) -> x509.Certificate:
    """One DER certificate (``path`` names where the bytes came from), judged as OpenSSL 3 (so
    dcmtk) judges it: what OpenSSL loads but cryptography's strict DER parser refuses is read from its
    DER form (_strict_form), and keeps its own bytes (der, pem, fingerprint) and signed bytes
    (signature_valid); what OpenSSL refuses is refused with OpenSSL's reason (Unusable where OpenSSL
    loads it but verifies nothing with it)."""
    cert = None
    with contextlib.suppress(ValueError, x509.InvalidVersion):
        cert = x509.load_der_x509_certificate(data)
    try:
        tbs, head, exts, tail = _strict_form(data)
        fields = [namehash.children(e, *namehash.read_tlv(e)[1:3]) for e in exts]
        oids = [_dotted(e[f[0][1] : f[0][2]]) for e, f in zip(exts, fields)]
        critical = {o for o, f in zip(oids, fields) if len(f) == 3}  # DEFAULT FALSE is left out
        strict = cert or x509.load_der_x509_certificate(_assemble(head, exts, tail))
    except _OpenSSLRefuses as exc:
        raise (Unusable if exc.args[1:] else DicomTlsError)(
            "not a certificate OpenSSL 3 or dcmtk can use: %s" % exc.args[0], path
        ) from None
    except (ValueError, IndexError, RecursionError, x509.InvalidVersion):  # DerError too
        raise DicomTlsError("not a readable X.509 certificate (unparsable PEM/DER)", path) from None
    if critical - _OPENSSL_HANDLES:
        raise Unusable(
            "certificate has a critical extension OpenSSL 3 does not handle (%s): openssl verify refuses what it "
            "signs (error 34, unhandled critical extension), and so does dcmtk"
            % ", ".join(sorted(critical - _OPENSSL_HANDLES)),
            path,
        )
    # An extension cryptography cannot decode, or one listed twice: where OpenSSL 3 decodes it too,
    # OpenSSL marks the certificate invalid and verifies nothing it signed; one OpenSSL ignores is
    # left out of the object here as well.
    bad = {
        o for e, o, f in zip(exts, oids, fields) if o in _SHAPES and not re.match(_SHAPES[o], _shape(e, *f[-1][1:3]))
    }
    ca = any(o == "2.5.29.19" and b"\x01\x01\xff" in e[f[-1][1] : f[-1][2]] for e, o, f in zip(exts, oids, fields))
    if _PROXY in oids and (ca or {"2.5.29.17", "2.5.29.18"} & set(oids)):  # OpenSSL takes it for a forgery
        bad.add(_PROXY)
    try:
        strict.extensions  # noqa: B018 - decoded lazily
    except (ValueError, x509.DuplicateExtension):
        bad |= {o for o in oids if oids.count(o) > 1}
        for ext, o in zip(exts, oids):
            try:
                x509.load_der_x509_certificate(_assemble(head, [ext], tail)).extensions  # noqa: B018
            except (ValueError, x509.DuplicateExtension):
                bad.add(o)
    refused = sorted(_OPENSSL_DECODES[o] for o in bad if o in _OPENSSL_DECODES)
    if refused:
        raise Unusable(
            "certificate has an undecodable or repeated %s extension%s: OpenSSL 3 marks it invalid and trusts "
            "nothing it signs (openssl verify error 20), nor does dcmtk"
            % (" and ".join(refused), " (or a proxyCertInfo on a CA or beside an alternative name)" * (_PROXY in bad)),
            path,
        )
    if bad:
        strict = x509.load_der_x509_certificate(_assemble(head, [e for e, o in zip(exts, oids) if o not in bad], tail))
    if strict is not cert:
        _READ_AS[strict.public_bytes(serialization.Encoding.DER)] = (data, tbs)
    return strict


class _OpenSSLRefuses(namehash.DerError):
    """An encoding OpenSSL refuses too: (its reason[, True where OpenSSL loads it but verifies nothing with it])."""


def _shape(data: bytes, start: int, end: int) -> str:
    """The structure of the DER elements in data[start:end]: each tag in hex, a constructed one's content in
    brackets, "xx" for what OpenSSL's decoder refuses in itself (no DER, a BIT STRING without an unused-bits
    count or with more than 7, a NULL with content)."""
    try:
        kids = namehash.children(data, start, end)
    except namehash.DerError:
        return "xx"
    out = ""
    for tag, s, e, _h in kids:
        bad = tag == 0x03 and (s == e or data[s] > 7) or tag == 0x05 and s != e
        out += "xx" if bad else "%02x" % tag + ("(%s)" % _shape(data, s, e) if tag & 0x20 else "")
    return out


def _dotted(oid: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content bytes."""
    arcs, n = [], 0
    for byte in oid:
        n = n << 7 | byte & 0x7F
        if not byte & 0x80:
            arcs.append(n)
            n = 0
    first = min(arcs[0] // 40, 2) if arcs else 0
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]])) if arcs else ""


# Extensions OpenSSL 3 decodes when it first looks at a certificate (x509v3_cache_extensions).
_OPENSSL_DECODES = {
    "2.5.29.19": "basicConstraints",
    "2.5.29.15": "keyUsage",
    "2.5.29.37": "extendedKeyUsage",
    "2.5.29.14": "subjectKeyIdentifier",
    "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.17": "subjectAltName",
    "2.5.29.30": "nameConstraints",
    "2.5.29.31": "cRLDistributionPoints",
    "2.16.840.1.113730.1.1": "nsCertType",
    "1.3.6.1.5.5.7.1.14": "proxyCertInfo",
    "1.3.6.1.5.5.7.1.7": "sbgp-ipAddrBlock",
    "1.3.6.1.5.5.7.1.8": "sbgp-autonomousSysNum",
}
_PROXY = "1.3.6.1.5.5.7.1.14"
# Of those, the ones cryptography leaves undecoded: the shape OpenSSL's decoder needs (_shape's form;
# bytes after the value are not read). ASIdentifierChoice: inherit NULL or a list of ids and ranges.
_AS_IDS = r"(05|30\((02|30\(0202\))*\))"
_SHAPES = {
    "2.16.840.1.113730.1.1": r"03",  # BIT STRING
    _PROXY: r"30\((02)?30\(06(04)?\)\)",  # pCPathLenConstraint, proxyPolicy (language, policy)
    "1.3.6.1.5.5.7.1.7": r"30\((30\(04(05|30\((03|30\(0303\))*\))\))*\)",  # IPAddressFamily: prefixes, ranges
    "1.3.6.1.5.5.7.1.8": r"30\((a0\(%s\))?(a1\(%s\))?\)" % (_AS_IDS, _AS_IDS),  # asnum, rdi
}
# Critical extensions OpenSSL 3 handles (X509_supported_extension); any other makes it refuse.
_OPENSSL_HANDLES = {"2.5.29.%d" % n for n in (15, 17, 19, 30, 31, 32, 33, 36, 37, 54)}
_OPENSSL_HANDLES |= {"2.16.840.1.113730.1.1", "1.3.6.1.5.5.7.1.7", "1.3.6.1.5.5.7.1.8", "1.3.6.1.5.5.7.1.14"}
_OPENSSL_HANDLES.add("1.3.6.1.5.5.7.48.1.5")
# (bytes as read, signed bytes) of certificates read through _strict_form, by the DER of the object:
# they are stored and fingerprinted as read and their signatures checked over what was signed.
_READ_AS: dict[bytes, tuple[bytes, bytes]] = {}
_PRINTABLE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_TIME_FORMS = {0x17: re.compile(rb"[0-9]{12}Z"), 0x18: re.compile(rb"[0-9]{14}Z")}


def _strict_form(data: bytes) -> tuple[bytes, list[bytes], list[bytes], bytes]:
    """(signed bytes, TBS fields before the extensions, extensions, signature part) of a certificate
    re-encoded the way OpenSSL reads it, in DER: minimal lengths, BOOLEAN TRUE as FF, a DEFAULT
    (version v1, critical FALSE, cA FALSE) left out, version 2 or 4 read as v3, a PrintableString
    with other characters as UTF8String. _OpenSSLRefuses where OpenSSL refuses too (with its reason)."""
    _tag, start, end, _hdr = namehash.read_tlv(data)
    parts = namehash.children(data, start, end)
    tbs = parts[0]
    head, exts = [], []
    for tag, s, e, _h in namehash.children(data, tbs[1], tbs[2]):
        if tag == 0xA0:  # [0] EXPLICIT version
            if data[s:e] != b"\x02\x01\x00":
                head.append(b"\xa0\x03\x02\x01\x02")
        elif tag == 0xA3:  # [3] EXPLICIT extensions
            seq = namehash.children(data, s, e)[0]
            exts = [_der(data, *x[:3], ext=True) for x in namehash.children(data, seq[1], seq[2])]
        else:
            head.append(_der(data, tag, s, e))
    tail = b"".join(_der(data, *p[:3]) for p in parts[1:])
    return data[tbs[3] : tbs[2]], head, exts, tail


def _assemble(head: list[bytes], exts: list[bytes], tail: bytes) -> bytes:
    body = b"".join(head) + (namehash.encode_tlv(0xA3, namehash.encode_tlv(0x30, b"".join(exts))) if exts else b"")
    return namehash.encode_tlv(0x30, namehash.encode_tlv(0x30, body) + tail)


def _der(data: bytes, tag: int, start: int, end: int, ext: bool = False) -> bytes:
    body = data[start:end]
    if tag & 0x20:
        kids = namehash.children(data, start, end)
        if tag == 0x30:  # a BOOLEAN FALSE in a SEQUENCE is a DEFAULT left out in DER
            kids = [k for k in kids if k[0] != 0x01 or data[k[1] : k[2]] != b"\x00"]
        out = []
        for k in kids:
            if ext and k[0] == 0x04:  # extnValue: its content is DER too
                with contextlib.suppress(namehash.DerError):
                    inner = b"".join(_der(data, *x[:3]) for x in namehash.children(data, k[1], k[2]))
                    out.append(namehash.encode_tlv(0x04, inner))
                    continue
            out.append(_der(data, *k[:3]))
        return namehash.encode_tlv(tag, b"".join(out))
    if tag == 0x01:
        body = b"\x00" if body == b"\x00" else b"\xff"
    elif tag == 0x02 and len(body) > 1 and (body[0], body[1] >> 7) in ((0, 0), (0xFF, 1)):
        raise _OpenSSLRefuses("an INTEGER has a redundant leading byte (not DER), which OpenSSL refuses too")
    elif tag in _TIME_FORMS and not _TIME_FORMS[tag].fullmatch(body):
        raise _OpenSSLRefuses(
            "its date %r is not in RFC 5280's form (YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ): openssl verify refuses it "
            "(error 13/14, format error in certificate's notBefore/notAfter field)" % body.decode("latin-1"),
            True,
        )
    elif tag == 0x13 and body.isascii() and not set(body) <= _PRINTABLE:
        tag = 0x0C
    return namehash.encode_tlv(tag, body)


def load_certificate(data: bytes, path: str) -> x509.Certificate:
    """The first certificate of a PEM or DER file."""
    return load_certificates(data, path)[0]


def load_csr(data: bytes, path: str) -> x509.CertificateSigningRequest:
    try:
        if b"-----BEGIN" in data:
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError:
        raise DicomTlsError("not a readable certificate signing request (unparsable PEM/DER)", path) from None
    if not signature_valid(csr, csr.public_key()):
        raise DicomTlsError("the CSR's signature is invalid (it was altered or not signed by its key)", path)
    return csr


# ---------------------------------------------------------------- keys


def public_key_der(key) -> bytes:
    """The SubjectPublicKeyInfo DER of a public key, private key, certificate or CSR."""
    if hasattr(key, "public_key"):  # a private key, certificate or CSR
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_description(key) -> dict:
    """{'key_type': 'rsa'|'ecdsa'|..., 'key_size': bits, 'curve': name or None} of a (public) key."""
    if hasattr(key, "public_key"):  # a private key, certificate or CSR
        key = key.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return {"key_type": "rsa", "key_size": key.key_size, "curve": None}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"key_type": "ecdsa", "key_size": key.curve.key_size, "curve": key.curve.name}
    return {"key_type": type(key).__name__, "key_size": None, "curve": None}


def is_ca(cert: x509.Certificate) -> bool:
    constraints = extension(cert, x509.BasicConstraints)
    return bool(constraints and constraints.ca)


_WEAK_DIGESTS = {"sha1": "SHA-1", "md5": "MD5"}


def policy_problems(cert: x509.Certificate) -> dict:
    """What OpenSSL 3 at security level 2 (Debian's and Ubuntu's default) refuses in ``cert``, as
    {'signature': 'is signed with SHA-1', 'key': 'has a 1024-bit RSA key'} (only the weak parts).

    'signature' is ``openssl verify`` error 68: a SHA-1 or MD5 signature, not judged on a self-signed
    certificate (a trust anchor's own signature is not checked). 'key' is error 67 for a CA, 66 for
    any other certificate: an RSA or DSA key under 2048 bits, an EC key under 224 bits. dcmtk runs
    OpenSSL at level 0, which accepts all of them."""
    out = {}
    try:
        digest = getattr(cert.signature_hash_algorithm, "name", "")
    except UnsupportedAlgorithm:
        digest = ""
    if digest in _WEAK_DIGESTS and not is_self_signed(cert):
        out["signature"] = "is signed with %s" % _WEAK_DIGESTS[digest]
    key = cert.public_key()
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)) and key.key_size < 2048:
        out["key"] = "has a %d-bit %s key" % (key.key_size, "RSA" if isinstance(key, rsa.RSAPublicKey) else "DSA")
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 224:
        out["key"] = "has a %d-bit EC key (%s)" % (key.curve.key_size, key.curve.name)
    return out


def policy_warning(cert: x509.Certificate, source: str) -> str | None:
    """One sentence for a module's warning about what ``policy_problems`` finds, or None."""
    found = policy_problems(cert)
    if not found:
        return None
    codes = ([68] if "signature" in found else []) + ([67 if is_ca(cert) else 66] if "key" in found else [])
    return (
        "%s: certificate '%s' %s: OpenSSL 3 clients at security level 2 (Debian's and Ubuntu's default, and "
        "dicom_tls_echo's default profile rfc8996) refuse it (openssl verify error %s); dcmtk runs OpenSSL at "
        "level 0 and accepts it; re-issue it"
        % (source, subject_text(cert), " and ".join(found.values()), " and ".join(map(str, codes)))
    )


# ---------------------------------------------------------------- verdicts, as OpenSSL 3 gives them

_RSASSA_PSS = "1.2.840.113549.1.1.10"


def signature_valid(obj, issuer) -> bool:
    """Does the signature of a certificate, CRL or CSR verify with ``issuer`` (a certificate or a
    public key), by the algorithm the object names?

    OpenSSL 3's verdict (``openssl verify``, ``openssl crl -CAfile``, ``openssl req -verify``): every
    digest it knows counts, MD5 and SHA-1 included, with RSA (PKCS#1 v1.5 or PSS), ECDSA, DSA,
    Ed25519 and Ed448. Whether a security level allows the algorithm is a separate verdict
    (policy_problems)."""
    key = issuer.public_key() if hasattr(issuer, "public_key") else issuer
    for attr in ("tbs_certificate_bytes", "tbs_certlist_bytes", "tbs_certrequest_bytes"):
        if hasattr(obj, attr):
            data = getattr(obj, attr)
            break
    if _READ_AS and isinstance(obj, x509.Certificate):
        data = _READ_AS.get(obj.public_bytes(serialization.Encoding.DER), (None, data))[1]
    try:
        digest = obj.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey):
            pad = getattr(obj, "signature_algorithm_parameters", None)
            if not isinstance(pad, (padding.PSS, padding.PKCS1v15)):  # MD5, or cryptography < 42
                pss = obj.signature_algorithm_oid.dotted_string == _RSASSA_PSS
                pad = padding.PSS(padding.MGF1(digest), padding.PSS.AUTO) if pss else padding.PKCS1v15()
            key.verify(obj.signature, data, pad, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(obj.signature, data, ec.ECDSA(digest))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(obj.signature, data, digest)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            if digest is not None:
                return False
            key.verify(obj.signature, data)
        else:
            return False
        return True
    except (InvalidSignature, UnsupportedAlgorithm, TypeError, ValueError):
        return False


def der(obj) -> bytes:
    """DER of a certificate (the bytes it was read from), CSR or CRL."""
    out = obj.public_bytes(serialization.Encoding.DER)
    return _READ_AS[out][0] if out in _READ_AS else out


def extension(obj, cls):
    """The value of the extension ``cls`` of a certificate, CSR, CRL or CRL entry; None when absent
    (or when cryptography cannot decode the extensions)."""
    try:
        return obj.extensions.get_extension_for_class(cls).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def authority_key_identifier(issuer: x509.Certificate):
    """The authorityKeyIdentifier of what ``issuer`` signs: its subjectKeyIdentifier, or one derived
    from its public key when it has none."""
    ski = extension(issuer, x509.SubjectKeyIdentifier)
    if ski is not None:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())


def _same_name(name_der: bytes, other_der: bytes) -> bool:
    """X509_NAME_cmp: names compare by their canonical form (case and spaces folded)."""
    return name_der == other_der or namehash.canonical_name(name_der) == namehash.canonical_name(other_der)


def _akid_matches(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """X509_check_akid: the authority key identifier, where present, points at ``issuer``."""
    akid = extension(cert, x509.AuthorityKeyIdentifier)
    if akid is None:
        return True
    skid = extension(issuer, x509.SubjectKeyIdentifier)
    if akid.key_identifier is not None and skid is not None and akid.key_identifier != skid.digest:
        return False
    if akid.authority_cert_serial_number is not None and akid.authority_cert_serial_number != issuer.serial_number:
        return False
    dirs = [g.value for g in akid.authority_cert_issuer or [] if isinstance(g, x509.DirectoryName)]
    return not dirs or any(d == issuer.issuer for d in dirs)


def _allows(cert: x509.Certificate, usage: str) -> bool:
    ku = extension(cert, x509.KeyUsage)
    return ku is None or getattr(ku, usage)


def issuer_problem(cert: x509.Certificate, usage: str = "key_cert_sign") -> str | None:
    """Why ``cert`` cannot sign certificates (``key_cert_sign``) or CRLs (``crl_sign``) as OpenSSL 3
    judges it, or None: not a CA, or a keyUsage without the bit (``openssl verify``: "key usage does
    not include certificate signing"; CRLs: "key usage does not include CRL signing")."""
    if not is_ca(cert):
        return "is not a CA (basicConstraints CA:FALSE or absent)"
    if not _allows(cert, usage):
        name = {"key_cert_sign": "keyCertSign", "crl_sign": "cRLSign"}[usage]
        return "has a keyUsage without %s: OpenSSL refuses what it would sign" % name
    return None


def is_self_signed(cert: x509.Certificate, verify_signature: bool = True) -> bool:
    """X509_self_signed: subject and issuer names match, the authority key identifier (if any)
    is the certificate's own, and (``verify_signature``) its own key verifies its signature
    (any digest, SHA-1 and MD5 included, as ``openssl verify`` accepts a SHA-1 root)."""
    issuer_der, subject_der = namehash.certificate_names(der(cert))
    if not _same_name(issuer_der, subject_der) or not _akid_matches(cert, cert):
        return False
    return not verify_signature or signature_valid(cert, cert)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate, verify_signature: bool = True) -> bool:
    """X509_check_issued plus the signature check of ``openssl verify``: ``cert`` names
    ``issuer``'s subject, its authority key identifier (if any) points at ``issuer``, ``issuer``'s
    keyUsage (if any) allows keyCertSign, and (``verify_signature``) ``issuer``'s key verifies
    ``cert``'s signature."""
    issuer_name = namehash.certificate_names(der(cert))[0]
    subject_name = namehash.certificate_names(der(issuer))[1]
    return (
        _same_name(issuer_name, subject_name)
        and _akid_matches(cert, issuer)
        and _allows(issuer, "key_cert_sign")
        and (not verify_signature or signature_valid(cert, issuer))
    )


def crl_issued_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """OpenSSL's CRL check (``openssl crl -CAfile``, ``verify -crl_check``): the CRL names
    ``issuer``'s subject, ``issuer``'s keyUsage (if any) allows cRLSign, its key verifies the CRL."""
    crl_name = namehash.crl_issuer(crl.public_bytes(serialization.Encoding.DER))
    return (
        _same_name(crl_name, namehash.certificate_names(der(issuer))[1])
        and _allows(issuer, "crl_sign")
        and signature_valid(crl, issuer)
    )


def validity_problem(cert: x509.Certificate, when: datetime.datetime | None = None) -> str | None:
    """None when ``cert`` is valid at ``when`` (now), else OpenSSL's reason with the date."""
    when = when or utcnow()
    if when < not_valid_before(cert):
        return "is not yet valid (notBefore %s)" % isoformat(not_valid_before(cert))
    if when > not_valid_after(cert):
        return "has expired (notAfter %s)" % isoformat(not_valid_after(cert))
    return None


# ---------------------------------------------------------------- names


def _split_subject(text: str) -> list[list[tuple[str, str]]]:
    """RDNs of a /A=v/B=w+C=x string as ``openssl req -subj ... -multivalue-rdn`` reads it (parse_name
    in OpenSSL's apps): an unescaped '+' adds the next attribute to the same RDN, a backslash makes
    the next character literal (\\/ \\+ \\= \\\\), a backslash at the end is refused."""
    rdns: list[list[tuple[str, str]]] = []
    i, n, join = 1, len(text), False
    while i < n:
        if text[i] == "/":  # empty part (// or a trailing /)
            i, join = i + 1, False
            continue
        eq, slash = text.find("=", i), text.find("/", i)
        if eq < 0 or 0 <= slash < eq:
            raise DicomTlsError("subject part %r has no '='" % text[i : slash if slash >= 0 else n])
        key, value, i = text[i:eq].strip(), [], eq + 1
        while i < n and text[i] not in "/+":
            if text[i] == "\\":
                i += 1
                if i == n:
                    raise DicomTlsError("subject %r ends with an escape character (\\)" % text)
            value.append(text[i])
            i += 1
        if not join:
            rdns.append([])
        rdns[-1].append((key, "".join(value)))
        join = i < n and text[i] == "+"
        i += 1
    return rdns


def parse_subject(subject) -> x509.Name:
    """A subject from a dict ({CN: ..., O: ...}) or an OpenSSL-style string (/C=BE/O=x/CN=a+OU=b),
    read as ``openssl req -subj ... -multivalue-rdn`` reads it."""
    rdns: list[list[tuple[str, str]]] = []
    if isinstance(subject, dict):
        items = sorted(subject.items(), key=lambda kv: _ORDER.index(kv[0]) if kv[0] in _ORDER else len(_ORDER))
        for key, value in items:
            for v in value if isinstance(value, list) else [value]:
                rdns.append([(key, str(v))])
    elif isinstance(subject, str):
        text = subject.strip()
        if not text.startswith("/"):
            raise DicomTlsError("subject string must look like /C=BE/O=Hospital/CN=node (got %r)" % subject)
        rdns = _split_subject(text)
    else:
        raise DicomTlsError("subject must be a dict or a /A=B/C=D string")
    out = []
    for pairs in rdns:
        attrs = []
        for key, value in pairs:
            if key not in NAME_OIDS:
                raise DicomTlsError("unknown subject attribute %r (known: %s)" % (key, ", ".join(_ORDER)))
            if value == "":  # OpenSSL skips it with a warning; a silent drop would hide a typo
                raise DicomTlsError("subject attribute %s has no value" % key)
            try:
                attrs.append(x509.NameAttribute(getattr(x509.NameOID, NAME_OIDS[key]), value))
            except ValueError:
                why = {
                    "COUNTRY_NAME": "must be a two-letter country code (ISO 3166)",
                    "COMMON_NAME": "must be 1 to 64 characters (the X.509 upper bound)",
                }.get(NAME_OIDS[key], "is not a value X.509 allows for it")
                raise DicomTlsError("subject attribute %s=%r %s" % (key, value, why)) from None
        try:
            out.append(x509.RelativeDistinguishedName(attrs))
        except ValueError:
            raise DicomTlsError("subject %r names one attribute twice in one RDN (+)" % subject) from None
    if not out:
        raise DicomTlsError("subject is empty")
    return x509.Name(out)


def name_text(name: x509.Name) -> str:
    """OpenSSL-style one-line form, most significant first: /C=BE/O=Hospital/CN=node."""
    out = []
    for rdn in name.rdns:
        parts = []
        for attr in rdn:
            short = attr.rfc4514_attribute_name
            if attr.oid == x509.NameOID.EMAIL_ADDRESS:
                short = "emailAddress"
            value = attr.value if isinstance(attr.value, str) else attr.value.hex()
            parts.append("%s=%s" % (short, value.replace("/", "\\/").replace("+", "\\+")))
        out.append("+".join(parts))
    return "/" + "/".join(out) if out else ""


def _name_or_hash(obj, attr: str) -> str:
    """name_text of ``obj.<attr>``; a name OpenSSL reads but cryptography cannot decode is shown
    by its OpenSSL name hash instead of failing."""
    try:
        return name_text(getattr(obj, attr))
    except ValueError:
        if isinstance(obj, x509.Certificate):
            name_der = namehash.certificate_names(der(obj))[0 if attr == "issuer" else 1]
        else:
            name_der = namehash.crl_issuer(der(obj))
        return "<name with hash %s>" % namehash.name_hash(name_der)


def subject_text(cert) -> str:
    """The subject of a certificate in the collection's one form (name_text)."""
    return _name_or_hash(cert, "subject")


def issuer_text(obj) -> str:
    """The issuer of a certificate or CRL in the collection's one form (name_text)."""
    return _name_or_hash(obj, "issuer")


def parse_sans(sans: list[str] | None) -> list[x509.GeneralName]:
    import ipaddress

    out: list[x509.GeneralName] = []
    for san in sans or []:
        kind, sep, value = str(san).partition(":")
        kind = kind.strip().upper()
        if not sep or not value:
            raise DicomTlsError("subject_alt_names: %r must look like DNS:name, IP:addr or URI:uri" % san)
        try:
            if kind == "DNS":
                out.append(x509.DNSName(value))
            elif kind in ("IP", "IP ADDRESS"):
                out.append(x509.IPAddress(ipaddress.ip_address(value)))
            elif kind == "URI":
                out.append(x509.UniformResourceIdentifier(value))
            elif kind == "EMAIL":
                out.append(x509.RFC822Name(value))
            else:
                raise DicomTlsError("subject alternative name %r: type must be DNS, IP, URI or email" % san)
        except ValueError:
            if kind in ("IP", "IP ADDRESS"):
                why = "not an IPv4 or IPv6 address"
            elif not value.isascii():
                why = "not ASCII: give the IDNA A-label form (xn--...), the form OpenSSL and dcmtk compare"
            else:
                why = "not a valid %s value" % kind
            raise DicomTlsError("subject alternative name %r: %s" % (san, why)) from None
    return out


def san_text(names) -> list[str]:
    out = []
    for n in names:
        if isinstance(n, x509.DNSName):
            out.append("DNS:" + n.value)
        elif isinstance(n, x509.IPAddress):
            out.append("IP:" + str(n.value))
        elif isinstance(n, x509.UniformResourceIdentifier):
            out.append("URI:" + n.value)
        elif isinstance(n, x509.RFC822Name):
            out.append("email:" + n.value)
        else:
            out.append(str(n.value))
    return out


def cert_sans(cert) -> list[str]:
    """The subjectAltNames of a certificate or CSR, as san_text writes them."""
    return san_text(extension(cert, x509.SubjectAlternativeName) or [])


# ---------------------------------------------------------------- descriptions


def describe_certificate(cert: x509.Certificate, now: datetime.datetime | None = None) -> dict:
    """Facts about a certificate for results, diffs and reports (no key material)."""
    now = now or utcnow()
    not_after = not_valid_after(cert)
    info = {
        "serial": serial_hex(cert.serial_number),
        "subject": subject_text(cert),
        "issuer": issuer_text(cert),
        "not_before": isoformat(not_valid_before(cert)),
        "not_after": isoformat(not_after),
        "days_remaining": int((not_after - now).total_seconds() // 86400),
        "fingerprint_sha256": fingerprint(cert),
        "subject_hash": subject_hash(der(cert)),
        "subject_alt_names": cert_sans(cert),
        "is_ca": is_ca(cert),
        "self_signed": is_self_signed(cert),
    }
    info.update(key_description(cert.public_key()))
    return info


def pem(obj) -> bytes:
    """PEM of a certificate (the bytes it was read from), CSR or CRL."""
    data = der(obj)
    if data == obj.public_bytes(serialization.Encoding.DER):
        return obj.public_bytes(serialization.Encoding.PEM)
    b64 = base64.b64encode(data)
    lines = b"\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return b"-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % lines


cert_pem = csr_pem = crl_pem = pem


def load_crl(data: bytes, path: str) -> x509.CertificateRevocationList:
    """A CRL, PEM or DER."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise DicomTlsError("not a readable CRL (unparsable PEM/DER)", path) from None


# ---------------------------------------------------------------- trust material

Trust = collections.namedtuple("Trust", "certificates crls notes")
_HASHED = re.compile(r"([0-9a-f]{8})\.(r?)([0-9]+)")


def read_trust(ca_file: str | None = None, ca_path: str | None = None, crl_files=()) -> Trust:
    """The certificates and CRLs OpenSSL 3 and dcmtk read from ca_file (+cf, -CAfile: PEM),
    ca_path (+cd, -CApath: PEM files named HHHHHHHH.N for certificates and HHHHHHHH.rN for CRLs by
    the subject hash, probed from 0 up to the first missing number) and crl_files (PEM or DER).

    What OpenSSL cannot load in ca_file or crl_files is an error. Left out, each with a note (one
    sentence naming the file and the reason): a certificate OpenSSL loads but verifies nothing with
    (Unusable), a ca_path entry it cannot read, and a certificate in ca_path under no name OpenSSL
    looks it up by."""
    certs, crls, notes, strays = [], [], [], []
    if ca_file:
        data = files.read_bytes(ca_file, "ca_file")
        blocks = _pem_blocks(data, ca_file, b"CERTIFICATE")
        if not blocks:
            raise DicomTlsError("no PEM certificate found (DER is converted with openssl x509 -inform der)", ca_file)
        for block in blocks:
            try:
                certs.append(load_der_certificate(block, ca_file))
            except Unusable as exc:
                notes.append("%s, left out" % exc)
        crls += [load_crl(block, ca_file) for block in _pem_blocks(data, ca_file, b"X509 CRL")]
    if ca_path:
        if not os.path.isdir(ca_path):
            raise DicomTlsError("ca_path is not a directory", ca_path)
        names = set(os.listdir(ca_path))
        for name in sorted(names):
            full, hashed = os.path.join(ca_path, name), _HASHED.fullmatch(name)
            if not hashed or any("%s.%s%d" % (*hashed.groups()[:2], n) not in names for n in range(int(hashed[3]))):
                strays += [full] if os.path.isfile(full) and not name.startswith(".") else []
                continue
            try:
                data = files.read_bytes(full, "ca_path entry")
                label = b"X509 CRL" if hashed[2] else b"CERTIFICATE"
                blocks = _pem_blocks(data, full, label)
                if not blocks:
                    raise DicomTlsError(
                        "holds no PEM %s, the form OpenSSL reads in a hashed directory" % label.decode(), full
                    )
                if hashed[2]:
                    crls += [load_crl(block, full) for block in blocks]
                    continue
                found = [load_der_certificate(block, full) for block in blocks]
            except DicomTlsError as exc:
                notes.append("%s, left out" % exc)
                continue
            kept = [c for c in found if subject_hash(der(c)) == hashed[1]]
            certs += kept
            strays += [full] if len(kept) < len(found) else []
    known = {der(c) for c in certs}
    for full in strays:
        with contextlib.suppress(DicomTlsError):
            for cert in load_certificates(files.read_bytes(full), full):
                if der(cert) not in known:
                    notes.append(
                        "%s: certificate '%s' is under no name OpenSSL and dcmtk look it up by (%s.N by its subject "
                        "hash, numbered from 0 with no gap), left out: openssl rehash or dicom_truststore names it"
                        % (full, subject_text(cert), subject_hash(der(cert)))
                    )
    for path in crl_files or ():
        data = files.read_bytes(path, "CRL file")
        crls += [load_crl(block, path) for block in _pem_blocks(data, path, b"X509 CRL")] or [load_crl(data, path)]
    return Trust(certs, crls, notes)


# ---------------------------------------------------------------- PKCS#12

PKCS12_ENCRYPTIONS = ("modern", "legacy")
_PBES2_OID = bytes.fromhex("06092a864886f70d01050d")


def pkcs12_encryption(data: bytes) -> str:
    """'modern' (PBES2: PBKDF2 + AES-256-CBC) or 'legacy' (PBE-SHA1-3DES) as read from the bytes."""
    return "modern" if _PBES2_OID in data else "legacy"


def load_pkcs12(data: bytes, passphrase: str | None) -> tuple | None:
    """(key, certificate, [CA certificates]) of a PKCS#12, None when ``passphrase`` does not open it."""
    try:
        store = pkcs12.load_pkcs12(data, _pw(passphrase))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return store.key, store.cert.certificate if store.cert else None, [c.certificate for c in store.additional_certs]


def pkcs12_bytes(key, cert, cas: list, passphrase: str | None, encryption: str = "modern") -> bytes:
    """A PKCS#12 (friendly name = the CN). modern: PBES2 AES-256-CBC, HMAC-SHA256 MAC; legacy:
    PBE-SHA1-3DES, SHA-1 MAC, which Java 8 before 8u301 and old dcm4che read. OpenSSL's 2048 rounds."""
    name = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    friendly = (name[0].value if name else "dicom").encode("utf-8")
    if not passphrase:
        enc = serialization.NoEncryption()
    elif hasattr(serialization.PrivateFormat, "PKCS12"):  # cryptography 38+
        legacy = encryption == "legacy"
        enc = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048)
            .key_cert_algorithm(
                pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC if legacy else pkcs12.PBES.PBESv2SHA256AndAES256CBC
            )
            .hmac_hash(hashes.SHA1() if legacy else hashes.SHA256())  # noqa: S303 - what legacy readers need
            .build(_pw(passphrase))
        )
    elif encryption == "legacy":  # older cryptography writes only the legacy form
        enc = serialization.BestAvailableEncryption(_pw(passphrase))
    else:
        raise DicomTlsError("pkcs12_encryption modern needs cryptography 38 or newer on this host (or use legacy)")
    return pkcs12.serialize_key_and_certificates(friendly, key, cert, cas or None, enc)
