# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Trust stores as dcmtk and Orthanc read them: OpenSSL hashed directories and PEM bundles.

Shape: ``load_objects`` (inputs -> checked certificates and CRLs) -> ``plan_hashed_dir`` or
``plan_bundle`` (desired + what is on disk -> list of actions, a pure function) -> ``apply_*``.

Hashed directory rules (what OpenSSL's lazy ``-CApath`` lookup needs): a certificate lives in
``<subject_hash>.N``, a CRL in ``<issuer_hash>.rN``; N counts from 0 with no gaps (the reader stops
at the first missing N); every name of that pattern belongs to this module; other files are left
alone. Order inside a collision sequence is the order of the inputs (first occurrence wins for
duplicates), which is also what ``openssl rehash`` gives for files listed in sorted order.

Atomic update (``apply_hashed_dir``), per hash sequence, with ``old`` of length M and ``new`` of
length n:

1. every new content is first written to a hidden temporary file in the directory (fsync'd);
2. positions M..n-1 (pure appends) are renamed into place in ascending order, so the sequence
   grows from its end;
3. for every position j < min(M, n) whose content changes, a copy of the new content is first
   appended at a temporary tail position (max(M, n), +1, ...), ascending; then the positions j are
   replaced by rename. While a position is replaced, the object that used to be there and is
   still wanted is already visible elsewhere (its new place or the tail), and the object coming
   in is already visible at the tail;
4. the surplus positions (old ones >= n, then the tail copies) are unlinked from the highest N
   down, so the sequence shrinks from its end and never has a hole;
5. the directory is fsync'd.

A reader that probes ``.0, .1, ...`` at any instant therefore sees a gap-free sequence that holds
every object that is both in the old and the new store (plus, briefly, duplicates or objects
about to be removed), and each file is either complete old or complete new content.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import grp
import os
import pwd
import re
import stat
from dataclasses import dataclass, field

from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, files, namehash, options, reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.crypto import fingerprint_der
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError, reported
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import fsync_dir

ENTRY_RE = re.compile(r"^([0-9a-f]{8})\.(r?)([0-9]+)$")
PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)
LOCK_NAME = ".dicom_truststore.lock"
TMP_PREFIX = ".dicom_truststore."


@dataclass
class TrustObject:
    """One certificate or CRL, checked, with what the directory and the result need."""

    kind: str  # "cert" or "crl"
    der: bytes
    source: str  # file path or "certificates[i]" for inline PEM
    subject: str  # subject (cert) or issuer (crl), crypto.name_text's form
    subject_hash: str  # the file name hash: subject hash (cert) or issuer hash (crl)
    fingerprint_sha256: str
    not_after: datetime.datetime | None = None  # certificates
    next_update: datetime.datetime | None = None  # CRLs
    canon: bytes = b""  # canonical subject (cert) / issuer (crl) name
    obj: object = None  # the cryptography object
    self_signed: bool = False

    def pem(self) -> bytes:
        return to_pem(self.der, "CERTIFICATE" if self.kind == "cert" else "X509 CRL")

    def describe(self, name: str) -> dict:
        out = {
            "kind": self.kind,
            "subject": self.subject,
            "subject_hash": self.subject_hash,
            "fingerprint_sha256": self.fingerprint_sha256,
        }
        if self.kind == "cert":
            out["not_after"] = crypto.isoformat(self.not_after)
        else:
            out["next_update"] = crypto.isoformat(self.next_update)
        out["name"] = name
        return out


@dataclass
class Loaded:
    objects: list[TrustObject]
    warnings: list[str] = field(default_factory=list)


def to_pem(der: bytes, label: str) -> bytes:
    b64 = base64.b64encode(der)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label.encode(), b"\n".join(lines), label.encode())


# ---------------------------------------------------------------------------------------------
# Reading inputs


def _split_blobs(data: bytes, source: str, kind: str, input_format: str) -> list[bytes]:
    """The DER objects of ``kind`` in ``data`` (PEM with one or more blocks, or one DER object)."""
    labels = crypto.PEM_LABELS[b"CERTIFICATE" if kind == "cert" else b"X509 CRL"]
    what = "certificate" if kind == "cert" else "CRL"
    is_pem = b"-----BEGIN " in data
    if is_pem and input_format == "der":
        raise DicomTlsError("PEM data where DER was declared (input_format: der)", source)
    if not is_pem:
        if input_format == "pem":
            raise DicomTlsError("not PEM (binary or DER data) where PEM was declared (input_format: pem)", source)
        if not data.strip():
            raise DicomTlsError("empty file: no %s in it" % what, source)
        if data[:1] != b"\x30":
            raise DicomTlsError("neither PEM nor DER: not a %s" % what, source)
        return [data]
    blobs = []
    for match in PEM_RE.finditer(data):
        label = match.group(1)
        if label not in labels:
            if label == b"TRUSTED CERTIFICATE":
                raise DicomTlsError(crypto.TRUSTED_REFUSED, source)
            if b"PRIVATE KEY" in label:
                raise DicomTlsError("holds a private key, not a %s: refusing to copy it" % what, source)
            raise DicomTlsError("PEM block '%s' is not a %s" % (label.decode(), what), source)
        body = re.sub(rb"^[A-Za-z-]+:.*$", b"", match.group(2), flags=re.M)  # no headers expected
        try:
            blobs.append(base64.b64decode(b"".join(body.split()), validate=True))
        except (binascii.Error, ValueError):
            raise DicomTlsError("PEM block %d has bad base64" % (len(blobs) + 1), source) from None
    if not blobs:
        raise DicomTlsError("no complete PEM %s block" % what, source)
    return blobs


def _blobs(items: list[str] | None, option: str, kind: str, input_format: str):
    """(DER, where) of every object of ``kind`` in the items of ``option``: each inline PEM text
    (contains '-----BEGIN') or a path; ``where`` names the item and, after its first, the object."""
    for index, item in enumerate(items or []):
        if "-----BEGIN " in item:
            data, source = item.encode("utf-8"), "%s[%d]" % (option, index)
        elif not item.strip():
            raise DicomTlsError("%s[%d] is empty: give a file path or PEM text" % (option, index))
        else:
            data, source = files.read_bytes(item, "file (an item of %s)" % option), item
        for n, der in enumerate(_split_blobs(data, source, kind, input_format)):
            yield der, source if n == 0 else "%s (%s %d)" % (source, "certificate" if kind == "cert" else "CRL", n + 1)


def _load_cert(der: bytes, where: str) -> TrustObject:
    cert = crypto.load_der_certificate(der, where)
    try:
        issuer_der, subject_der = namehash.certificate_names(der)
        not_after = crypto.not_valid_after(cert)
        subject_canon = namehash.canonical_name(subject_der)
        # identical bytes fold identically: only compute the issuer's form when they differ
        issuer_canon = subject_canon if issuer_der == subject_der else namehash.canonical_name(issuer_der)
    except (ValueError, namehash.DerError):
        raise DicomTlsError("not a readable X.509 certificate (unparsable PEM/DER)", where) from None
    # OpenSSL's chain builder takes a root by name and key identifier (X509_self_signed(x, 0))
    self_signed = subject_canon == issuer_canon and crypto.is_self_signed(cert, verify_signature=False)
    return TrustObject(
        kind="cert",
        der=der,
        source=where,
        subject=crypto.subject_text(cert),
        subject_hash=namehash.canonical_hash(subject_canon),
        fingerprint_sha256=fingerprint_der(der),
        not_after=not_after,
        canon=subject_canon,
        obj=cert,
        self_signed=self_signed,
    )


def _load_crl(der: bytes, where: str) -> TrustObject:
    crl = crypto.load_crl(der, where)
    try:
        issuer_der = namehash.crl_issuer(der)
        canon = namehash.canonical_name(issuer_der)
        next_update = crypto.next_update(crl)
    except (ValueError, namehash.DerError):
        raise DicomTlsError("not a readable CRL (unparsable PEM/DER)", where) from None
    return TrustObject(
        kind="crl",
        der=der,
        source=where,
        subject=crypto.issuer_text(crl),
        subject_hash=namehash.canonical_hash(canon),
        fingerprint_sha256=fingerprint_der(der),
        next_update=next_update,
        canon=canon,
        obj=crl,
    )


def load_objects(
    certificates: list[str],
    crls: list[str] | None = None,
    allow_non_root: bool = False,
    on_expired: str = "fail",
    input_format: str = "auto",
    now: datetime.datetime | None = None,
    crl_issuers: list[str] | None = None,
) -> Loaded:
    """Read, parse and check every input; duplicates (same SHA-256 fingerprint) kept once.

    ``crl_issuers`` are CA certificates (intermediates that travel in the peers' chains) whose CRLs
    may be stored; they are not written to the store. Each must be issued by a certificate of the
    store or by another of them, so that a reader can connect its CRLs to a trusted root."""
    now = now or crypto.utcnow()
    warnings: list[str] = []
    objects: list[TrustObject] = []
    seen: set[str] = set()
    for der, where in _blobs(certificates, "certificates", "cert", input_format):
        obj = _load_cert(der, where)
        if obj.fingerprint_sha256 in seen:
            continue
        seen.add(obj.fingerprint_sha256)
        if not obj.self_signed and not allow_non_root:
            raise DicomTlsError(
                "certificate '%s' is not self-signed (issued by '%s'): dcmtk accepts only root "
                "(self-signed) certificates as trust anchors; give the root CA, or set "
                "allow_non_root: true" % (obj.subject, crypto.issuer_text(obj.obj)),
                obj.source,
            )
        if obj.not_after < now:
            msg = "certificate '%s' expired on %s" % (obj.subject, crypto.isoformat(obj.not_after))
            if on_expired == "fail":
                raise DicomTlsError(msg + " (on_expired: warn or drop to accept this)", obj.source)
            if on_expired == "drop":
                warnings.append("%s: %s; dropped (on_expired: drop)" % (obj.source, msg))
                continue
            warnings.append("%s: %s; kept (on_expired: warn)" % (obj.source, msg))
        weak = crypto.policy_warning(obj.obj, obj.source)
        if weak:
            warnings.append(weak)
        objects.append(obj)
    certs = list(objects)
    extra = [_load_cert(der, where) for der, where in _blobs(crl_issuers, "crl_issuers", "cert", input_format)]
    for obj in extra:
        issuer_canon = namehash.canonical_name(namehash.certificate_names(obj.der)[0])
        parents = [c for c in certs + extra if c is not obj and c.canon == issuer_canon]
        if not any(crypto.signature_valid(obj.obj, c.obj) for c in parents):
            raise DicomTlsError(
                "CRL issuer certificate '%s' is not issued by a certificate of the store (nor by another "
                "of crl_issuers)" % obj.subject,
                obj.source,
            )
    certs += extra
    by_canon: dict[bytes, list[TrustObject]] = {}
    for c in certs:
        by_canon.setdefault(c.canon, []).append(c)
    for der, where in _blobs(crls, "crls", "crl", input_format):
        obj = _load_crl(der, where)
        if obj.fingerprint_sha256 in seen:
            continue
        seen.add(obj.fingerprint_sha256)
        if obj.next_update is None:
            raise DicomTlsError("CRL from '%s' has no nextUpdate" % obj.subject, obj.source)
        if obj.next_update < now:
            raise DicomTlsError(
                "CRL from '%s' expired on %s (nextUpdate): with CRL checking on, dcmtk would refuse "
                "every peer; issue a fresh CRL" % (obj.subject, crypto.isoformat(obj.next_update)),
                obj.source,
            )
        issuers = by_canon.get(obj.canon, [])
        if not any(crypto.crl_issued_by(obj.obj, c.obj) for c in issuers):
            why = "no certificate in the store has its name" if not issuers else "its signature does not verify"
            raise DicomTlsError(
                "CRL issuer '%s' is not in the store (%s): a CRL that no trusted CA issued is of no "
                "use to a reader; add its CA to certificates, or to crl_issuers for an intermediate"
                % (obj.subject, why),
                obj.source,
            )
        objects.append(obj)
    return Loaded(objects, warnings)


# ---------------------------------------------------------------------------------------------
# Planning


@dataclass
class FileMeta:
    mode: int = 0o644
    uid: int = -1  # -1: leave as the process creates it
    gid: int = -1


def file_meta(mode, owner: str | None, group: str | None) -> FileMeta:
    return FileMeta(
        options.octal_mode("mode", mode),
        options.principal_id("owner", owner, "user", pwd.getpwnam),
        options.principal_id("group", group, "group", grp.getgrnam),
    )


@dataclass
class Current:
    """What a hashed directory holds now: entry name -> (bytes or None, is regular file with right meta)."""

    exists: bool
    entries: dict[str, tuple[bytes | None, bool]]
    meta_only: set[str] = field(default_factory=set)  # regular files whose mode or owner alone differs


def read_hashed_dir(path: str, meta: FileMeta) -> Current:
    if not os.path.lexists(path):
        return Current(False, {})
    if not os.path.isdir(path):
        raise DicomTlsError("exists and is not a directory", path)
    entries: dict[str, tuple[bytes | None, bool]] = {}
    meta_only: set[str] = set()
    with reported("cannot list directory", path):
        names = os.listdir(path)
    for name in names:
        if not ENTRY_RE.match(name):
            continue
        full = os.path.join(path, name)
        st = os.lstat(full)
        ok = stat.S_ISREG(st.st_mode) and _meta_ok(st, meta)
        if stat.S_ISREG(st.st_mode) and not ok:
            meta_only.add(name)
        data = None
        if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            try:
                with open(full, "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:  # dangling symlink
                data = None
            except OSError as exc:
                raise DicomTlsError("cannot read entry: %s" % exc.strerror, full) from None
        entries[name] = (data, ok)
    return Current(True, entries, meta_only)


def _meta_ok(st: os.stat_result, meta: FileMeta) -> bool:
    return (
        stat.S_IMODE(st.st_mode) == meta.mode
        and (meta.uid < 0 or st.st_uid == meta.uid)
        and (meta.gid < 0 or st.st_gid == meta.gid)
    )


def desired_entries(objects: list[TrustObject]) -> dict[str, TrustObject]:
    """Entry name -> object, numbering each (hash, kind) sequence from 0 in input order."""
    counters: dict[tuple[str, str], int] = {}
    out: dict[str, TrustObject] = {}
    for obj in objects:
        key = (obj.subject_hash, obj.kind)
        n = counters.get(key, 0)
        counters[key] = n + 1
        out["%s.%s%d" % (obj.subject_hash, "r" if obj.kind == "crl" else "", n)] = obj
    return out


@dataclass
class Plan:
    """What to do to a hashed directory. ``steps`` are executed in order by apply_hashed_dir."""

    path: str
    create_dir: bool
    desired: dict[str, TrustObject]
    steps: list[tuple[str, str, bytes | None]]  # ("write", name, data) / ("unlink", name, None)
    added: list[str]
    removed: list[str]
    renumbered: list[str]
    rewritten: list[str]  # same object, file rewritten (content form, symlink)
    before: list[str]
    after: list[str]
    reattributed: list[str] = field(default_factory=list)  # same bytes, rewritten for its mode or owner

    @property
    def changed(self) -> bool:
        return self.create_dir or bool(self.steps)


def _fp_of(data: bytes | None) -> str | None:
    """Fingerprint of the first object in an existing entry (PEM or DER; for diffs), None if unreadable."""
    fingerprints = _pem_fingerprints(data)
    return fingerprints[0] if fingerprints else fingerprint_der(data) if data else None


def _pem_fingerprints(data: bytes | None) -> list[str | None]:
    """The SHA-256 fingerprint of each PEM block of ``data`` (None for a block with bad base64)."""
    out = []
    for m in PEM_RE.finditer(data or b""):
        try:
            out.append(fingerprint_der(base64.b64decode(b"".join(m.group(2).split()))))
        except (binascii.Error, ValueError):
            out.append(None)
    return out


def plan_hashed_dir(path: str, objects: list[TrustObject], current: Current) -> Plan:
    desired = desired_entries(objects)
    want = {name: obj.pem() for name, obj in desired.items()}
    old_fp = {name: _fp_of(data) for name, (data, _ok) in current.entries.items()}
    new_fp = {name: obj.fingerprint_sha256 for name, obj in desired.items()}
    # Group by sequence: existing indices and wanted length.
    seqs: dict[tuple[str, str], tuple[set[int], int]] = {}
    for name in set(want) | set(current.entries):
        h, r, n = ENTRY_RE.match(name).groups()
        have, new_len = seqs.get((h, r), (set(), 0))
        if name in current.entries:
            have.add(int(n))
        if name in want:
            new_len = max(new_len, int(n) + 1)
        seqs[(h, r)] = (have, new_len)
    steps: list[tuple[str, str, bytes | None]] = []
    for (h, r), (have, n) in sorted(seqs.items()):

        def nm(i, h=h, r=r):
            return "%s.%s%d" % (h, r, i)

        # 0. entries behind a gap are invisible to readers: remove them first (a reader cannot
        #    notice), leaving a gap-free sequence of the m entries readers do see
        m = 0
        while m in have:
            m += 1
        steps += [("unlink", nm(i), None) for i in sorted((i for i in have if i > m), reverse=True)]
        # 1. appends, growing the sequence from its end
        steps += [("write", nm(j), want[nm(j)]) for j in range(m, n)]
        # 2. replacements: each new content first visible at a tail copy, then put in place
        replace = [j for j in range(min(m, n)) if differs_entry(current, nm(j), want[nm(j)])]
        tail = max(m, n)
        steps += [("write", nm(tail + k), want[nm(j)]) for k, j in enumerate(replace)]
        steps += [("write", nm(j), want[nm(j)]) for j in replace]
        # 3. shrink from the end: surplus old positions and the tail copies
        steps += [("unlink", nm(i), None) for i in range(tail + len(replace) - 1, n - 1, -1) if i < m or i >= tail]
    added, renumbered, rewritten, reattributed = [], [], [], []
    old_by_fp = {}
    for name in sorted(current.entries, key=_sort_key):
        if old_fp[name]:
            old_by_fp.setdefault(old_fp[name], name)
    new_fps = set(new_fp.values())
    for name in sorted(want, key=_sort_key):
        fp = new_fp[name]
        if fp not in old_by_fp:
            added.append(name)
        elif old_by_fp[fp] != name:
            renumbered.append("%s -> %s" % (old_by_fp[fp], name))
        elif differs_entry(current, name, want[name]):
            same_bytes = current.entries[name][0] == want[name]
            (reattributed if same_bytes and name in current.meta_only else rewritten).append(name)
    # unreadable, no longer wanted, or a duplicate of an object kept elsewhere
    removed = [
        n for n in sorted(current.entries, key=_sort_key) if old_fp[n] not in new_fps or old_by_fp[old_fp[n]] != n
    ]
    before = [
        "%s %s" % (name, old_fp[name] or "(unreadable or not a regular file)")
        for name in sorted(current.entries, key=_sort_key)
    ]
    after = ["%s %s %s" % (name, new_fp[name], desired[name].subject) for name in sorted(want, key=_sort_key)]
    return Plan(
        path=path,
        create_dir=not current.exists,
        desired=desired,
        steps=steps,
        added=added,
        removed=removed,
        renumbered=renumbered,
        rewritten=rewritten,
        before=before,
        after=after,
        reattributed=reattributed,
    )


def differs_entry(current: Current, name: str, data: bytes) -> bool:
    cur = current.entries.get(name)
    return cur is None or cur[0] != data or not cur[1]


def _sort_key(name: str):
    h, r, n = ENTRY_RE.match(name).groups()
    return (h, r, int(n))


# ---------------------------------------------------------------------------------------------
# Applying


STALE_TEMP_RE = re.compile(r"^%s[A-Za-z0-9_]{8}\.(tmp|probe)$" % re.escape(TMP_PREFIX))


def remove_stale_temps(path: str) -> list[str]:
    """Temporaries an interrupted run left in the hashed directory ``path`` (call under ``lock``)."""
    if not os.path.isdir(path):
        return []
    return files.remove_stale_temps([os.path.join(path, LOCK_NAME)], [STALE_TEMP_RE])


def _write_temps(directory: str, contents: list[bytes], meta: FileMeta) -> list[str]:
    """Temporary files for every content, all durable on disk when this returns."""
    temps: list[str] = []
    try:
        for data in contents:
            temps.append(
                files.write_temp(
                    os.path.join(directory, "x"), data, meta.mode, meta.uid, meta.gid, sync=False, prefix=TMP_PREFIX
                )
            )
        if not files.syncfs(directory):
            for tmp in temps:
                files.fsync_file(tmp)
    except BaseException:
        for tmp in temps:
            files.remove(tmp)
        raise
    return temps


def apply_hashed_dir(plan: Plan, meta: FileMeta, dir_mode: int = 0o755) -> None:
    """Execute the plan (see the module docstring for why the order is safe for readers)."""
    path = plan.path
    if plan.create_dir:
        ensure_dir(path, dir_mode)
    writes = [data for action, _name, data in plan.steps if action == "write"]
    with reported("cannot write into hashed directory", path):
        # 1. every new content written and made durable next to the old entries before any rename
        temps = _write_temps(path, writes, meta)
    pending = iter(temps)
    try:
        with reported("cannot update hashed directory", path):  # 2-4. renames and unlinks in plan order
            for action, name, _data in plan.steps:
                target = os.path.join(path, name)
                if action == "write":
                    files.replace(next(pending), target)
                else:
                    files.remove(target)
    finally:
        for tmp in pending:
            with contextlib.suppress(OSError):
                files.remove(tmp)
    fsync_dir(path)


def check_parent(path: str) -> None:
    """Check mode (no write): fail when no directory could hold ``path``. A missing parent is fine
    when the nearest existing folder above it is a directory: an earlier task of the same run (the
    certificate's, which writes next to it) would create it."""
    files.existing_folder(os.path.dirname(os.path.abspath(path)), path)


def check_dir_writable(path: str, probe: bool = True) -> None:
    """Fail before any change when the directory (or its parent, to create it) is not writable.
    ``probe=False`` (check mode) only checks what can be seen without writing."""
    target = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise DicomTlsError("exists and is not a directory", path)
    if not probe:  # check mode: see check_parent
        files.existing_folder(target, path)
        return
    if not os.path.isdir(target):
        raise DicomTlsError("parent directory %s does not exist" % target, path)
    with reported("directory %s is not writable" % target, path):
        files.probe_writable(target, prefix=TMP_PREFIX)


def ensure_dir(path: str, dir_mode: int = 0o755) -> bool:
    """Create the hashed directory if missing; True when it was created."""
    if os.path.isdir(path):
        return False
    with reported("cannot create directory", path):
        return files.make_dir(path, dir_mode)


def lock(path: str):
    """The exclusive lock of the store for the whole read-plan-apply: an flock on the store folder
    itself (files.locked_for, the collection's one locking rule; no lock file is created). Older
    releases locked ``.dicom_truststore.lock`` inside it; a leftover one is ignored."""
    return files.locked_for(os.path.join(path, LOCK_NAME))


# ---------------------------------------------------------------------------------------------
# Bundle


@dataclass
class BundlePlan:
    path: str
    data: bytes
    current: bytes | None
    meta_ok: bool
    entries: list[dict]
    added: list[str]
    removed: list[str]
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.current != self.data or not self.meta_ok


def plan_actions(plan) -> list[reports.Action]:
    """The plan of a hashed directory or a bundle in the collection's one shape (reports.Action): one per
    file that the run writes or removes, empty when nothing changes. The diff's sides are the entry's
    fingerprint (and subject) before and after; for a bundle, the fingerprints it holds."""
    if isinstance(plan, BundlePlan):
        if not plan.changed:
            return []
        if plan.current is None:
            action, reason = "created", "no bundle yet"
        elif plan.current == plan.data:
            action, reason = "attributes_changed", "mode or owner differs"
        else:
            action, reason = "updated", "%d added, %d removed" % (len(plan.added), len(plan.removed))
        return [reports.Action(plan.path, action, reason, before=plan.before, after=plan.after)]
    before = dict(line.split(" ", 1) for line in plan.before)
    after = dict(line.split(" ", 1) for line in plan.after)

    def step(name, action, reason):
        return reports.Action(
            os.path.join(plan.path, name), action, reason, before=before.get(name, ""), after=after.get(name, "")
        )

    out = []
    if plan.create_dir:
        out.append(reports.Action(plan.path, "created", "no directory yet"))
    out += [step(n, "created", "new in the store") for n in plan.added]
    for move in plan.renumbered:
        old, new = move.split(" -> ")
        out.append(step(new, "renumbered", "moved from %s in its collision sequence" % old))
    out += [step(n, "updated", "content form or link differs") for n in plan.rewritten]
    for n in plan.reattributed:
        out.append(step(n, "attributes_changed", "mode or owner differs"))
        out[-1].before, out[-1].after = before[n] + " (mode or owner differs)", after[n] + " (mode and owner set)"
    out += [step(n, "removed", "no longer in the store, unreadable or a duplicate") for n in plan.removed]
    return out


def plan_bundle(path: str, objects: list[TrustObject], meta: FileMeta) -> BundlePlan:
    certs = [o for o in objects if o.kind == "cert"]
    data = b"".join(o.pem() for o in certs)
    current = None
    meta_ok = False
    if os.path.lexists(path):
        if os.path.isdir(path):
            raise DicomTlsError("is a directory; layout bundle needs a file path", path)
        st = os.lstat(path)
        meta_ok = stat.S_ISREG(st.st_mode) and _meta_ok(st, meta)
        current = files.read_optional(path)
    old = [fp for fp in _pem_fingerprints(current) if fp]
    new = [o.fingerprint_sha256 for o in certs]
    base = os.path.basename(path)
    entries = [o.describe("%s#%d" % (base, i)) for i, o in enumerate(certs)]
    return BundlePlan(
        path=path,
        data=data,
        current=current,
        meta_ok=meta_ok,
        entries=entries,
        added=[fp for fp in new if fp not in old],
        removed=[fp for fp in old if fp not in new],
        before="".join("%s\n" % fp for fp in old),
        after="".join("%s %s\n" % (o.fingerprint_sha256, o.subject) for o in certs),
    )


def apply_bundle(plan: BundlePlan, meta: FileMeta) -> None:
    directory = os.path.dirname(os.path.abspath(plan.path))
    with reported("cannot write bundle", plan.path):
        files.remove_stale_temps([plan.path])
        tmp = files.write_temp(files.check_links(plan.path), plan.data, meta.mode, meta.uid, meta.gid)
        try:
            files.replace(tmp, files.check_links(plan.path))
        except OSError:
            files.remove(tmp)
            raise
    fsync_dir(directory)


def result_entries(plan: Plan) -> list[dict]:
    return [plan.desired[name].describe(name) for name in sorted(plan.desired, key=_sort_key)]


def earliest_next_update(objects: list[TrustObject]) -> str | None:
    dates = [o.next_update for o in objects if o.kind == "crl" and o.next_update]
    return crypto.isoformat(min(dates)) if dates else None
