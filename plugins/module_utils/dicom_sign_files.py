# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sign, verify or unsign many DICOM files, one at a time: plan every file first (nothing is
written when any file cannot be handled), then apply. Each file is mapped read-only, parsed
without decoding, and written by streaming the original bytes around the edits into a
temporary file that replaces the target atomically."""

from __future__ import annotations

import contextlib
import mmap
import os
import stat

from ansible_collections.medimg.dicom_tls.plugins.module_utils import files, reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_signature import (
    SignRequest,
    meets_profile,
    plan_remove,
    plan_sign,
    read_signatures,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_stream import parse
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_trust import Signer, SignerChainVerifier
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import fsync_dir

LOCK_NAME = ".dicom_sign.lock"

PROFILE_REQUIRES = ("creator", "authorization", "sr")


@contextlib.contextmanager
def opened(path: str):
    """The parsed file, backed by a read-only memory map that is closed afterwards."""
    try:
        fh = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")
    except FileNotFoundError:
        raise DicomTlsError("file does not exist", path) from None
    except OSError as exc:
        raise DicomTlsError("cannot read file: %s" % exc.strerror, path) from None
    with fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise DicomTlsError("is not a regular file", path)
        size = st.st_size
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        try:
            try:
                parsed = parse(buf, path)
            except RecursionError:
                raise DicomTlsError(
                    "sequences are nested too deeply to parse (a damaged or hostile file)", path
                ) from None
            yield parsed
        finally:
            if size:
                with contextlib.suppress(BufferError):
                    buf.close()


def is_dicom(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def targets(paths, recursive: bool, dest: str | None):
    """(source, destination, named explicitly) for every input file, in a stable order."""
    single = len(paths) == 1 and os.path.isfile(paths[0])
    if dest and single and not os.path.isdir(dest) and not dest.endswith("/"):
        yield paths[0], dest, True
        return
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                if not recursive:
                    dirs[:] = []
                for name in sorted(names):
                    src = os.path.join(root, name)
                    if os.path.isfile(src) and not os.path.islink(src) and not name.startswith("."):
                        yield src, os.path.join(dest, os.path.relpath(src, path)) if dest else src, False
        elif os.path.exists(path):
            yield path, os.path.join(dest, os.path.basename(path)) if dest else path, True
        else:
            raise DicomTlsError("path does not exist", path)


def write_edited(src_path: str, dst: str, f, edits, dirs_to_sync: set) -> None:
    """Stream the edited file into a temporary file beside ``dst`` and rename it over ``dst``.
    The new file gets the source's mode (set before any byte is written) and owner."""
    st = os.stat(src_path)
    directory = os.path.dirname(os.path.abspath(dst))
    files.make_dirs(directory)
    dst = files.check_links(dst)

    def body(fh):
        if edits is None:
            fh.write(memoryview(f.buf))
        else:
            edits.write_to(fh, f.buf)

    root = os.geteuid() == 0
    tmp = files.write_temp(dst, body, stat.S_IMODE(st.st_mode), st.st_uid if root else -1, st.st_gid if root else -1)
    try:
        files.replace(tmp, dst)
    except BaseException:
        files.remove(tmp)
        raise
    dirs_to_sync.add(directory)


class Runner:
    """One module call: ``params`` as the module receives them."""

    def __init__(self, params: dict, check_mode: bool = False):
        self.p = params
        self.check = check_mode
        self.totals = {"signed": 0, "verified": 0, "failed": 0, "unchanged": 0, "removed": 0, "skipped": 0}
        self.files = []
        self.errors = []
        self.req = None
        self.trust = None
        state = params["state"]
        if state == "signed":
            signer = Signer(params["privatekey_path"], params.get("privatekey_passphrase"), params["certificate_path"])
            self.req = SignRequest(
                signer,
                params.get("mac_algorithm") or "sha256",
                params.get("signature_profile") or "none",
                params.get("tags"),
                params.get("item"),
                params.get("purpose"),
            )
        if state == "verified" or any(params.get(k) for k in ("ca_file", "ca_path")):
            self.trust = SignerChainVerifier(
                params.get("ca_file"), params.get("ca_path"), params.get("untrusted_certs"), params.get("crl_files")
            )
            if state == "verified" and self.trust.empty:
                raise DicomTlsError(
                    "verification needs trusted certificates: ca_file or ca_path holds none%s"
                    % "".join("; " + note for note in self.trust.notes)
                )

    def _inputs(self):
        for src, dst, explicit in targets(self.p["path"], self.p.get("recursive", False), self.p.get("dest")):
            if not explicit and not is_dicom(src):
                self.totals["skipped"] += 1
                continue
            yield src, dst

    # ------------------------------------------------------------ verified
    def verify(self) -> dict:
        require = self.p.get("require") or []
        retry = self.p.get("retry_old_format", True)
        for src, _dst in self._inputs():
            entry = {"path": src}
            try:
                with opened(src) as f:
                    recs = read_signatures(f, self.trust, retry)
                    problems = [r.reason for r in recs if not r.valid]
                    if "signature" in require and not recs:
                        problems.append("no signature present (require: signature)")
                    for profile in PROFILE_REQUIRES:
                        if profile in require and not any(meets_profile(r, profile) for r in recs):
                            problems.append(
                                "no valid signature meets the %s profile (require: %s)" % (profile, profile)
                            )
                    entry["signatures"] = [r.public() for r in recs]
                    del recs
            except DicomTlsError as exc:
                problems = [exc.reason]
                entry["signatures"] = []
            entry["action"] = "failed" if problems else "verified"
            if problems:
                entry["reason"] = "; ".join(problems)
            self.totals[entry["action"]] += 1
            self.files.append(entry)
        return self.result()

    # ------------------------------------------------------------ signed / unsigned
    def _plan_one(self, path):
        """'sign' / 'remove' / None (already in state) for one file, plus its signature dicts."""
        with opened(path) as f:
            if self.req is not None:
                existing, _e, _n = plan_sign(f, self.req, make_edits=False)
                return (None, [existing.public()]) if existing is not None else ("sign", [])
            _edits, removed = plan_remove(f, self.p.get("signature_uid"))
            return ("remove", removed) if removed else (None, [])

    def change(self) -> dict:
        todo = []
        for src, dst in self._inputs():
            entry = {"path": src}
            if dst != src:
                entry["dest"] = dst
            try:
                action, sigs = None, []
                if dst != src and os.path.exists(dst):
                    action, sigs = self._plan_one(dst)
                if dst == src or not os.path.exists(dst) or action is not None:
                    action, sigs = self._plan_one(src)
                    if action is None and dst != src:
                        action = "copy"
            except DicomTlsError as exc:
                self.errors.append(str(exc))
                continue
            entry["signatures"] = sigs
            entry["action"] = {"sign": "signed", "remove": "removed", "copy": "copied", None: "unchanged"}[action]
            if action is None:
                self.totals["unchanged"] += 1
            else:
                todo.append((len(self.files), src, dst, action))
            self.files.append(entry)
        if self.errors:
            shown = self.errors[:10]
            more = len(self.errors) - len(shown)
            raise DicomTlsError(
                "nothing was changed; %d file(s) cannot be processed: %s%s"
                % (len(self.errors), "; ".join(shown), " (and %d more)" % more if more else "")
            )
        dirs = set()
        with contextlib.ExitStack() as stack:
            if not self.check:
                self._lock_and_clean(stack, [dst for _i, _s, dst, _a in todo])
            self._write(todo, dirs)
        for directory in dirs:
            fsync_dir(directory)
        return self.result()

    def _lock_and_clean(self, stack, dsts) -> None:
        """Lock every folder written (files.locked_for: an flock on the folder, no lock file; sorted:
        no deadlock between two runs), then remove temporaries an interrupted run left for the files
        about to be written."""
        for directory in sorted({os.path.dirname(os.path.abspath(dst)) for dst in dsts}):
            files.make_dirs(directory)
            stack.enter_context(files.locked_for(os.path.join(directory, LOCK_NAME)))
        files.remove_stale_temps(dsts)

    def _write(self, todo, dirs) -> None:
        for index, src, dst, action in todo:
            entry = self.files[index]
            if action in ("sign", "remove"):
                self.totals[entry["action"]] += 1
            if self.check:
                continue
            with opened(src) as f:
                if action == "sign":
                    existing, edits, new = plan_sign(f, self.req)
                    if existing is not None:  # someone signed it in between
                        entry["action"] = "unchanged"
                        entry["signatures"] = [existing.public()]
                        self.totals["signed"] -= 1
                        self.totals["unchanged"] += 1
                        continue
                    entry["signatures"] = [new]
                elif action == "remove":
                    edits, removed = plan_remove(f, self.p.get("signature_uid"))
                    entry["signatures"] = removed
                else:
                    edits = None
                write_edited(src, dst, f, edits, dirs)
                del edits

    def result(self) -> dict:
        """The run's own keys and its plan (``actions``, reports.Action): changed is "the plan is not empty"."""
        actions = plan_actions(self.files)
        return {"changed": bool(actions), "actions": actions, "files": self.files, "totals": self.totals}

    def run(self) -> dict:
        if self.p["state"] == "verified":
            return self.verify()
        return self.change()


_REASONS = {
    "signed": "no valid signature matching the request",
    "removed": "signature(s) to remove present",
    "copied": "the destination is missing or not in the requested state",
}


def plan_actions(entries) -> list[reports.Action]:
    """The plan in the collection's one shape (reports.Action), one per file written (in check mode, to be
    written), path being the file written (``dest`` when set); verified and unchanged files are left out.
    The diff's sides are the signature UIDs before and after."""
    actions = []
    for entry in entries:
        if entry.get("action") not in _REASONS:
            continue
        reason = _REASONS[entry["action"]]
        uids = ", ".join(s.get("uid", "") for s in entry.get("signatures") or [])
        if entry["action"] == "removed" and uids:
            reason = "signature(s) present: %s" % uids
        if entry["action"] == "signed":
            before, after = {"signatures": "-"}, {"signatures": "signed %s" % (uids or "(new)")}
        elif entry["action"] == "removed":
            before, after = {"signatures": uids}, {"signatures": "removed"}
        else:
            before, after = {"state": "absent"}, {"state": "copied from %s" % entry["path"]}
        actions.append(
            reports.Action(entry.get("dest", entry["path"]), entry["action"], reason, before=before, after=after)
        )
    return actions
