# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CRLs that stay fresh: issue a CRL with CRL Number and Authority Key Identifier, only when needed.

Shape: ``read_issuer`` + ``read_existing`` -> ``plan_crl`` (pure: desired revocations, issuer and
the CRL on disk -> None or the reason to issue a new one) -> ``build_crl`` -> ``write_crl``.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, namehash, reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError, reported
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import atomic_write, read_bytes, read_optional

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519
except ImportError:  # reported by the module (deps.require)
    pass

# RFC 5280 reason codes by their cryptography.x509.ReasonFlags names (remove_from_crl is for
# delta CRLs and not offered).
REASONS = (
    "unspecified",
    "key_compromise",
    "ca_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "certificate_hold",
    "privilege_withdrawn",
    "aa_compromise",
)
DIGESTS = ("sha256", "sha384", "sha512")


def utcnow() -> datetime.datetime:
    return crypto.utcnow().replace(microsecond=0)


serial_hex = crypto.serial_hex


def parse_serial(value, where: str) -> int:
    """An integer is taken as is (decimal); a string is hex, as openssl prints serials
    (optional ``0x``, optional colons)."""
    if isinstance(value, bool):
        raise DicomTlsError("serial must be an integer or a hex string", where)
    if isinstance(value, int):
        serial = value
    else:
        text = str(value).strip().replace(":", "")
        if text.lower().startswith("0x"):
            text = text[2:]
        if not text or not re.fullmatch(r"[0-9A-Fa-f]+", text):
            raise DicomTlsError("serial %r is not hex (strings are read as hex, as openssl prints them)" % value, where)
        serial = int(text, 16)
    if serial <= 0:
        raise DicomTlsError("serial must be positive", where)
    if serial.bit_length() > 159:
        raise DicomTlsError(
            "serial is %d bits long; RFC 5280 serials fit in 20 octets (at most 159 bits)" % serial.bit_length(), where
        )
    return serial


def parse_date(value, where: str) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        when = value
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            when = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise DicomTlsError(
                "revocation_date %r is not ISO 8601 (like 2026-01-31T12:00:00Z)" % (value,), where
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=crypto.UTC)
    return when.astimezone(crypto.UTC).replace(microsecond=0)


@dataclass
class Issuer:
    cert: x509.Certificate
    key: object
    cert_path: str


def read_issuer(cert_path: str, key_path: str, passphrase: str | None) -> Issuer:
    cert = crypto.load_certificate(read_bytes(cert_path, "issuer certificate"), cert_path)
    key = crypto.load_private_key(read_bytes(key_path, "issuer private key"), key_path, passphrase)
    if crypto.public_key_der(key) != crypto.public_key_der(cert):
        raise DicomTlsError("issuer private key does not match the issuer certificate %s" % cert_path, key_path)
    unfit = crypto.issuer_problem(cert, "crl_sign")
    if unfit:
        raise DicomTlsError("the CRL issuer '%s' %s" % (crypto.subject_text(cert), unfit), cert_path)
    problem = crypto.validity_problem(cert)
    if problem:
        raise DicomTlsError(
            "the CRL issuer '%s' %s: OpenSSL and dcmtk refuse its certificates and its CRLs alike; "
            "renew the CA first" % (crypto.subject_text(cert), problem),
            cert_path,
        )
    return Issuer(cert, key, cert_path)


@dataclass
class Revocation:
    serial: int
    reason: str | None  # None: no reasonCode extension
    revocation_date: datetime.datetime | None  # None: keep the existing one, or now


def desired_revocations(revoked: list[dict], issuer: Issuer) -> list[Revocation]:
    out: dict[int, Revocation] = {}
    issuer_canon = namehash.canonical_name(issuer.cert.subject.public_bytes())
    for i, item in enumerate(revoked or []):
        where = "revoked[%d]" % i
        serial = item.get("serial")
        cert_path = item.get("certificate_path")
        if (serial is None) == (cert_path is None):
            raise DicomTlsError("give exactly one of serial or certificate_path", where)
        if cert_path is not None:
            cert = crypto.load_certificate(read_bytes(cert_path, "certificate to revoke"), cert_path)
            if namehash.canonical_name(cert.issuer.public_bytes()) != issuer_canon:
                raise DicomTlsError(
                    "certificate was issued by '%s', not by the CRL issuer '%s'"
                    % (crypto.issuer_text(cert), crypto.subject_text(issuer.cert)),
                    cert_path,
                )
            serial = cert.serial_number
        else:
            serial = parse_serial(serial, where)
        reason = item.get("reason")
        if reason is not None and reason not in REASONS:
            raise DicomTlsError("reason %r is not one of %s" % (reason, ", ".join(REASONS)), where)
        when = item.get("revocation_date")
        rev = Revocation(serial, reason, parse_date(when, where) if when not in (None, "") else None)
        if serial in out:
            raise DicomTlsError("serial %s listed twice" % serial_hex(serial), where)
        out[serial] = rev
    return sorted(out.values(), key=lambda r: r.serial)


@dataclass
class Existing:
    crl: x509.CertificateRevocationList
    der: bytes
    fmt: str
    number: int | None
    signed_by_issuer: bool
    entries: dict[int, tuple[str | None, datetime.datetime]]


def read_existing(path: str, issuer: Issuer) -> Existing | None:
    data = read_optional(path)
    if data is None:
        return None
    fmt = "pem" if b"-----BEGIN" in data else "der"
    try:
        crl = crypto.load_crl(data, path)
    except DicomTlsError:
        raise DicomTlsError(
            "exists and is not a CRL (unparsable PEM/DER); refusing to overwrite it: remove it or choose another path",
            path,
        ) from None
    number = crypto.extension(crl, x509.CRLNumber)
    entries = {}
    for rc in crl:
        reason = crypto.extension(rc, x509.CRLReason)
        entries[rc.serial_number] = (reason and reason.reason.name, crypto.revocation_date(rc).replace(microsecond=0))
    return Existing(
        crl, crypto.der(crl), fmt, number and number.crl_number, crypto.crl_issued_by(crl, issuer.cert), entries
    )


@dataclass
class CrlPlan:
    reason: str | None  # why a new CRL is issued; None: nothing to do
    number: int  # the CRL number after the run
    revocations: list[tuple[int, str | None, datetime.datetime]]
    last_update: datetime.datetime
    next_update: datetime.datetime
    removed: list[str]
    added: list[str]

    @property
    def changed(self) -> bool:
        return self.reason is not None


def plan_actions(plan: CrlPlan, path: str, existing) -> list[reports.Action]:
    """The plan in the collection's one shape (reports.Action) for the CRL file: empty when nothing is
    issued; else created or updated, with the CRL's number, dates and serials before and after as the
    diff's sides."""
    if not plan.changed:
        return []
    if existing is None:
        return [reports.Action(path, "created", plan.reason, before="")]
    crl = existing.crl
    before = _facts(existing.number, crypto.last_update(crl), crypto.next_update(crl), sorted(existing.entries))
    return [reports.Action(path, "updated", plan.reason, before=before)]


def _facts(number, last_update, next_update, serials) -> dict:
    return {
        "crl_number": number,
        "last_update": crypto.isoformat(last_update),
        "next_update": crypto.isoformat(next_update),
        "revoked_serials": [serial_hex(s) for s in serials],
    }


def _same_entry(want: Revocation, have: tuple[str | None, datetime.datetime]) -> bool:
    reason = None if want.reason == "unspecified" else want.reason
    have_reason = None if have[0] == "unspecified" else have[0]
    if reason != have_reason:
        return False
    return want.revocation_date is None or want.revocation_date == have[1]


def plan_crl(
    desired: list[Revocation],
    existing: Existing | None,
    issuer: Issuer,
    fmt: str,
    digest: str,
    next_update_days: int,
    renew_before_days: float | None,
    now: datetime.datetime | None = None,
) -> CrlPlan:
    now = (now or utcnow()).replace(microsecond=0)
    validity = datetime.timedelta(days=next_update_days)
    refresh = datetime.timedelta(days=renew_before_days) if renew_before_days is not None else validity / 2
    have = existing.entries if existing else {}
    revocations = []
    for r in desired:
        when = r.revocation_date or (have[r.serial][1] if r.serial in have else now)
        revocations.append((r.serial, r.reason, when))
    want_serials = {r.serial for r in desired}
    added = [serial_hex(r.serial) for r in desired if r.serial not in have]
    removed = [serial_hex(s) for s in sorted(have) if s not in want_serials]
    reason = None
    if existing is None:
        reason = "no CRL yet"
    elif not existing.signed_by_issuer:
        reason = "issuer changed (existing CRL is not signed by the issuer certificate)"
    elif added or removed:
        changes = (("revoked %s", added), ("no longer revoked %s", removed))
        reason = "revoked set changed: " + "; ".join(form % ", ".join(serials) for form, serials in changes if serials)
    elif any(not _same_entry(r, have[r.serial]) for r in desired):
        reason = "revocation reason or date changed"
    elif crypto.next_update(existing.crl) is None or crypto.next_update(existing.crl) <= now:
        reason = "existing CRL expired"
    elif crypto.next_update(existing.crl) - now <= refresh:
        reason = "refresh window reached (%s left, renew_before_days %s)" % (
            crypto.next_update(existing.crl) - now,
            refresh,
        )
    elif existing.fmt != fmt:
        reason = "format changed to %s" % fmt
    elif existing.number is None:
        reason = "existing CRL has no CRL Number"
    elif crypto.extension(existing.crl, x509.AuthorityKeyIdentifier) is None:
        reason = "existing CRL has no Authority Key Identifier"
    elif getattr(existing.crl.signature_hash_algorithm, "name", None) != digest and not _is_eddsa(issuer.key):
        reason = "digest changed to %s" % digest
    if reason is None:
        return CrlPlan(
            None,
            existing.number,
            [(s, r, d) for s, (r, d) in sorted(existing.entries.items())],
            crypto.last_update(existing.crl),
            crypto.next_update(existing.crl),
            [],
            [],
        )
    number = (existing.number + 1) if existing and existing.number is not None else 1
    return CrlPlan(reason, number, revocations, now, now + validity, removed, added)


def _is_eddsa(key) -> bool:
    return isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))


def build_crl(plan: CrlPlan, issuer: Issuer, digest: str) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(plan.last_update)
        .next_update(plan.next_update)
        .add_extension(x509.CRLNumber(plan.number), critical=False)
        .add_extension(crypto.authority_key_identifier(issuer.cert), critical=False)
    )
    for serial, reason, when in plan.revocations:
        rb = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason and reason != "unspecified":
            rb = rb.add_extension(x509.CRLReason(getattr(x509.ReasonFlags, reason)), critical=False)
        builder = builder.add_revoked_certificate(rb.build())
    algorithm = None if _is_eddsa(issuer.key) else getattr(hashes, digest.upper())()
    return builder.sign(issuer.key, algorithm)


def write_crl(path: str, crl: x509.CertificateRevocationList, fmt: str, mode: int = 0o644) -> None:
    with reported("cannot write CRL", path):
        atomic_write(path, crypto.pem(crl) if fmt == "pem" else crypto.der(crl), mode)


def summary(plan: CrlPlan, issuer: Issuer) -> dict:
    out = _facts(plan.number, plan.last_update, plan.next_update, [s for s, _r, _d in plan.revocations])
    out.update(issuer_hash=namehash.subject_hash(crypto.der(issuer.cert)), reason=plan.reason)
    return out
