# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CA ledger: OpenSSL's ``ca`` database (``index.txt`` and ``index.txt.attr``).

One line per certificate the CA issued, six tab-separated fields, as ``openssl ca`` writes them:
status (``V`` valid, ``R`` revoked, ``E`` expired - set by ``openssl ca -updatedb``), expiry
(UTCTime ``YYMMDDHHMMSSZ`` up to 2049, GeneralizedTime after), revocation (``YYMMDDHHMMSSZ[,reason]``
or empty), serial (uppercase hex, even number of digits), file name (``unknown``, as openssl writes)
and subject (the one-line ``/O=.../CN=...`` form). ``index.txt.attr`` says ``unique_subject = no``:
a renewed certificate keeps its subject while its predecessor is still listed.

Every change is made under an exclusive lock (``<database>.lock``) and written atomically through
files.py. ``update()`` reads the ledger, lets the caller change it, writes it, then runs the
deliveries the caller registered (writing the certificate); a delivery that fails puts the previous
ledger back, so a failed issuance leaves the ledger as it was.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

from ansible_collections.medimg.dicom_tls.plugins.module_utils import crl, crypto
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import (
    atomic_write,
    check_writable_dir,
    locked,
    read_optional,
    remove,
)

try:
    from cryptography import x509
except ImportError:  # reported by the module (deps.require)
    pass

UTC = crypto.UTC
ATTR = b"unique_subject = no\n"
# The collection's reason names (dicom_crl's, cryptography's ReasonFlags) and OpenSSL ca's.
# privilege_withdrawn and aa_compromise have no name in openssl ca's database.
OPENSSL_REASONS = {
    "unspecified": "unspecified",
    "key_compromise": "keyCompromise",
    "ca_compromise": "CACompromise",
    "affiliation_changed": "affiliationChanged",
    "superseded": "superseded",
    "cessation_of_operation": "cessationOfOperation",
    "certificate_hold": "certificateHold",
}
REASONS_FROM_OPENSSL = {v.lower(): k for k, v in OPENSSL_REASONS.items()}


@dataclass
class Entry:
    status: str  # V | R | E
    expires: datetime.datetime
    serial: int
    subject: str
    revoked: datetime.datetime | None = None
    reason: str | None = None  # the collection's name (key_compromise, ...)
    filename: str = "unknown"

    def revoked_as(self, when: datetime.datetime, reason: str | None) -> bool:
        return self.status == "R" and self.revoked == when and self.reason == reason

    def as_dict(self, now: datetime.datetime | None = None) -> dict:
        now = now or crypto.utcnow()
        return {
            "status": self.status,
            "serial": crypto.serial_hex(self.serial),
            "subject": self.subject,
            "not_after": crypto.isoformat(self.expires),
            "days_remaining": int((self.expires - now).total_seconds() // 86400),
            "revocation_date": crypto.isoformat(self.revoked),
            "revocation_reason": self.reason,
        }


# ---------------------------------------------------------------- the file format


def format_time(when: datetime.datetime) -> str:
    """ASN.1 time as OpenSSL stores it: UTCTime for 1950-2049, GeneralizedTime otherwise."""
    when = when.astimezone(UTC)
    if 1950 <= when.year < 2050:
        return when.strftime("%y%m%d%H%M%SZ")
    return when.strftime("%Y%m%d%H%M%SZ")


def parse_time(text: str) -> datetime.datetime:
    if len(text) == 13 and text.endswith("Z"):
        when = datetime.datetime.strptime(text, "%y%m%d%H%M%SZ")
        if when.year >= 2050:  # RFC 5280: YY >= 50 is 19YY
            when = when.replace(year=when.year - 100)
    elif len(text) == 15 and text.endswith("Z"):
        when = datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError(text)
    return when.replace(tzinfo=UTC)


def openssl_reason(reason: str | None, where: str | None = None) -> str | None:
    if reason is None:
        return None
    if reason in OPENSSL_REASONS:
        return OPENSSL_REASONS[reason]
    if reason in ("privilege_withdrawn", "aa_compromise"):
        raise DicomTlsError(
            "reason %s has no name in OpenSSL's index.txt (openssl ca knows %s)"
            % (reason, ", ".join(sorted(OPENSSL_REASONS))),
            where,
        )
    return reason  # a name read from the file (removeFromCRL, ...), written back as it was


def format_entry(e: Entry) -> str:
    rev = ""
    if e.status == "R":
        rev = format_time(e.revoked or crypto.utcnow())
        name = openssl_reason(e.reason)
        if name == "certificateHold":
            rev += ",certificateHold,holdInstructionNone"
        elif name:
            rev += "," + name
    return "\t".join((e.status, format_time(e.expires), rev, crypto.serial_hex(e.serial), e.filename, e.subject))


def render(entries: list[Entry]) -> bytes:
    return "".join(format_entry(e) + "\n" for e in entries).encode("utf-8")


def parse(data: bytes, path: str) -> list[Entry]:
    """The entries of an index.txt; a line openssl ca would not read is an error naming it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DicomTlsError("not an OpenSSL ca database (index.txt): not UTF-8 text", path) from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        where = "line %d" % number
        if len(fields) != 6:
            raise DicomTlsError("%s has %d tab-separated fields, index.txt has 6" % (where, len(fields)), path)
        status, exp, rev, serial, filename, subject = fields
        if status not in ("V", "R", "E"):
            raise DicomTlsError("%s: status %r is not V, R or E" % (where, status), path)
        try:
            expires = parse_time(exp)
            revoked, reason = None, None
            if rev:
                parts = rev.split(",")
                revoked = parse_time(parts[0])
                if len(parts) > 1:
                    reason = REASONS_FROM_OPENSSL.get(parts[1].lower(), parts[1])
            number_value = int(serial, 16)
        except ValueError:
            raise DicomTlsError("%s: unreadable date or serial" % where, path) from None
        if status == "R" and revoked is None:
            raise DicomTlsError("%s: status R without a revocation date" % where, path)
        out.append(Entry(status, expires, number_value, subject, revoked, reason, filename))
    return out


def read(path: str) -> list[Entry]:
    """The ledger's entries; a missing ledger is empty."""
    return parse(read_optional(path) or b"", path)


# ---------------------------------------------------------------- changing it


class Ledger:
    """The entries read under the lock, and what the caller does with them."""

    def __init__(self, path: str, entries: list[Entry]):
        self.path = path
        self.entries = entries
        self.deliveries: list = []

    def find(self, serial: int) -> Entry | None:
        return find(self.entries, serial)

    def new_serial(self) -> int:
        """A random positive serial (up to 159 bits, as openssl ca's rand_serial) not in the ledger."""
        taken = {e.serial for e in self.entries}
        while True:
            serial = x509.random_serial_number()
            if serial not in taken:
                return serial

    def record(self, cert: x509.Certificate) -> bool:
        """Add a V entry for an issued certificate (nothing when its serial is there already)."""
        if self.find(cert.serial_number) is not None:
            return False
        expires, subject = crypto.not_valid_after(cert), crypto.name_text(cert.subject)
        self.entries.append(Entry("V", expires, cert.serial_number, subject))
        return True

    def revoke(self, serial: int, when: datetime.datetime, reason: str | None) -> bool:
        """Mark an entry R with its date and reason; False when it is not listed or already so."""
        e = self.find(serial)
        if e is None or e.revoked_as(when, reason):
            return False
        openssl_reason(reason, self.path)
        e.status, e.revoked, e.reason = "R", when, reason
        return True

    def then(self, delivery) -> None:
        """Run ``delivery()`` once the ledger is written; if it fails the ledger is put back."""
        self.deliveries.append(delivery)


def check(path: str) -> list[Entry]:
    """Before any change: the ledger is readable and its directory writable."""
    check_writable_dir(path)
    return read(path)


@contextlib.contextmanager
def update(path: str):
    """Read the ledger under its lock and yield it; on a clean exit write it (atomically, only
    when it changed) and run the deliveries. Nothing is written when the block raises; a delivery
    that raises puts the previous ledger back."""
    check_writable_dir(path)
    with locked(path + ".lock"):
        before = read_optional(path)
        book = Ledger(path, parse(before or b"", path))
        yield book
        after = render(book.entries)
        written = after != (before or b"")
        if written:
            atomic_write(path, after, 0o644)
        if not os.path.exists(path + ".attr"):
            atomic_write(path + ".attr", ATTR, 0o644)
        try:
            for delivery in book.deliveries:
                delivery()
        except BaseException:
            if written and before is None:
                remove(path)
            elif written:
                atomic_write(path, before, 0o644)
            raise


def issue(database: str | None, sign, deliver):
    """``deliver(sign(serial))``, returning the certificate; with a ``database``, under its lock (``update``):
    the serial a new one of the ledger (else None: random), the certificate recorded before delivery."""
    if not database:
        cert = sign(None)
        deliver(cert)
        return cert
    with update(database) as book:
        cert = sign(book.new_serial())
        book.record(cert)
        book.then(lambda: deliver(cert))
    return cert


# ---------------------------------------------------------------- reading it for people


def report(entries: list[Entry], within_days: int, now: datetime.datetime | None = None) -> dict:
    """Every entry as a dict (status E also for V entries past their expiry, as -updatedb would
    mark them), whether a later valid entry with the same subject supersedes it, and the
    valid, not superseded ones that expire within ``within_days``."""
    now = now or crypto.utcnow()
    latest: dict[str, int] = {}  # subject -> index of its last valid entry (the ledger is in issuance order)
    for i, e in enumerate(entries):
        if e.status == "V" and e.expires > now:
            latest[e.subject] = i
    rows = []
    for i, e in enumerate(entries):
        row = e.as_dict(now)
        if row["status"] == "V" and e.expires <= now:
            row["status"] = "E"
        row["superseded"] = row["status"] == "V" and latest.get(e.subject, i) > i
        rows.append(row)
    limit = now + datetime.timedelta(days=within_days)
    expiring = [r for r, e in zip(rows, entries) if r["status"] == "V" and not r["superseded"] and e.expires <= limit]
    expiring.sort(key=lambda r: r["not_after"])
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("V", "R", "E")}
    return {"entries": rows, "expiring": expiring, "counts": counts}


def crl_revocations(desired: list, entries: list[Entry]) -> list:
    """dicom_crl's revocations with the ledger's R entries added (their date and reason); a listed
    revocation without a date takes the ledger's."""
    by_serial = {r.serial: r for r in desired}
    for e in entries:
        if e.status != "R":
            continue
        r = by_serial.get(e.serial)
        if r is None:
            reason = e.reason if e.reason in crl.REASONS else None
            by_serial[e.serial] = crl.Revocation(e.serial, reason, e.revoked)
        elif r.revocation_date is None:
            r.revocation_date = e.revoked
    return sorted(by_serial.values(), key=lambda r: r.serial)


def record_revocations(book: Ledger, revocations: list) -> list[str]:
    """Mark the CRL's (serial, reason, date) entries R in the ledger; the serials changed."""
    return [crypto.serial_hex(s) for s, reason, when in revocations if book.revoke(s, when, reason)]


def revocations_to_record(entries: list[Entry], revocations: list) -> list[str]:
    """Which of the CRL's revocations the ledger does not hold yet (serials, hex)."""
    out = []
    for serial, reason, when in revocations:
        e = find(entries, serial)
        if e is not None and not e.revoked_as(when, reason):
            out.append(crypto.serial_hex(serial))
    return out


def find(entries: list[Entry], serial: int) -> Entry | None:
    return next((e for e in entries if e.serial == serial), None)


def status_of(entries: list[Entry], serial: int) -> str | None:
    e = find(entries, serial)
    return e.status if e is not None else None
