# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The only code of the collection that writes files: atomic writes, groups of files that move
together (key + certificate + chain + PKCS#12), locks, temporary files, and the symlink policy.

Symlink policy (issue 14):
- A symbolic link is *trusted* when nobody but the running user (or root) could have planted or
  replaced it: its directory belongs to the running user or root and is not group/other-writable,
  or it is sticky (like /tmp) and the link itself belongs to the running user or root.
- Reads and writes follow trusted links (a link's target is written atomically, the link stays).
- An untrusted link on the way to a file (any component of the path) is refused with a reason;
  the final component of a file in another user's directory is opened with O_NOFOLLOW.
- Locks (``locked_for``): an flock on the folder of the files read and written, opened with
  O_NOFOLLOW; no lock file. The only lock file left is the CA ledger's ``index.txt.lock``
  (``locked``, opened with O_NOFOLLOW), shared by dicom_cert, dicom_crl and dicom_pkcs12.
- Temporary files are named ``.<name>.XXXXXXXX.tmp`` beside their target; a run that holds the
  target's lock removes leftovers of that naming (``remove_stale_temps``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import stat
import tempfile

from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError, reported

# ---------------------------------------------------------------- crash-test hook

_CRASH_ENV = "DICOM_TLS_CRASH_AFTER_STEP"
_steps = [0]


def _step() -> None:
    """Count one durable step (temp written, rename, unlink); tests set DICOM_TLS_CRASH_AFTER_STEP=k
    to SIGKILL the process right after the k-th step, as a power cut or kill -9 would."""
    want = os.environ.get(_CRASH_ENV)
    if not want:
        return
    _steps[0] += 1
    if _steps[0] >= int(want):
        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------- symlink policy

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _ours(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _entry_trusted(dir_st: os.stat_result, entry_st: os.stat_result | None) -> bool:
    """Could only the running user (or root) have put this entry into this directory?"""
    if not _ours(dir_st.st_uid):
        return False
    if dir_st.st_mode & 0o022:
        return bool(dir_st.st_mode & stat.S_ISVTX) and entry_st is not None and _ours(entry_st.st_uid)
    return True


def dir_is_shared(directory: str) -> bool:
    """True when someone other than the running user (or root) can add or replace entries in it."""
    try:
        st = os.stat(directory)
    except OSError:
        return False
    return not _ours(st.st_uid) or bool(st.st_mode & 0o022)


def check_links(path: str, private: bool = False) -> str:
    """Walk ``path`` and refuse a symbolic link someone else could have planted (see the policy
    above); ``private`` (a private key or key store): refuse any link whose directory is shared.
    Returns the path the bytes really live at (trusted links resolved)."""
    path = os.path.abspath(path)
    seen = 0
    parts = [p for p in path.split("/") if p]
    current = "/"
    while parts:
        name = parts.pop(0)
        if name == ".":
            continue
        if name == "..":
            current = os.path.dirname(current)
            continue
        nxt = os.path.join(current, name)
        try:
            st = os.lstat(nxt)
        except OSError:  # missing (or unreadable): the rest of the path is taken as written
            return os.path.join(nxt, *parts) if parts else nxt
        if stat.S_ISLNK(st.st_mode):
            seen += 1
            if seen > 40:
                raise DicomTlsError("too many levels of symbolic links", path)
            dir_st = os.stat(current)
            if not _entry_trusted(dir_st, st) or (private and dir_is_shared(current)):
                raise DicomTlsError(
                    "%s is a symbolic link in %s, a directory other users can write; refusing to follow it"
                    % (nxt, current),
                    path,
                )
            target = os.readlink(nxt)
            rest = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                current = "/"
            parts = rest
            continue
        current = nxt
    return current


def _open_regular(path: str) -> int:
    """A descriptor of the regular file at ``path``, opened read-only; a FIFO, device or directory is
    refused without blocking on it. Links are followed only where the symlink policy trusts them."""
    real = check_links(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC
    if dir_is_shared(os.path.dirname(real)):
        flags |= _NOFOLLOW
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DicomTlsError("became a symbolic link while being read; refusing to follow it", path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DicomTlsError("is not a regular file", path)
    return fd


def _read_regular(path: str) -> bytes:
    """Read a regular file (see ``_open_regular``). In check mode a target of a pending journal reads
    as the real run will find it (``reading_pending``)."""
    if _pending_reads and os.path.abspath(path) in _pending_reads:
        path = _pending_reads[os.path.abspath(path)]
    with os.fdopen(_open_regular(path), "rb") as fh:
        return fh.read()


def read_bytes(path: str, what: str = "file") -> bytes:
    """Read a whole file; a missing or unreadable file is a DicomTlsError naming it."""
    try:
        return _read_regular(path)
    except FileNotFoundError:
        raise DicomTlsError("%s does not exist" % what, path) from None
    except OSError as exc:
        raise DicomTlsError("cannot read %s: %s" % (what, exc.strerror), path) from None


def read_optional(path: str | None) -> bytes | None:
    """The file's bytes, or None when it does not exist (other errors still raise)."""
    if not path:
        return None
    try:
        return _read_regular(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DicomTlsError("cannot read file: %s" % exc.strerror, path) from None


def check_writable_dir(path: str) -> None:
    """Fail before any change when the file's directory cannot be written (or created).

    Probes with a real temporary file: permission bits say nothing for root, while read-only
    mounts, immutable directories and pseudo file systems still refuse.
    A missing directory is fine when the nearest existing one above it is writable: the module
    that writes the file creates the folders on the way (make_parent_dirs)."""
    if os.path.isdir(path):
        raise DicomTlsError("is a directory, not a file", path)
    directory = existing_folder(os.path.dirname(os.path.abspath(path)), path)
    with reported("directory %s is not writable" % directory, path):
        probe_writable(directory, suffix="")


def existing_folder(directory: str, path: str) -> str:
    """The nearest existing folder at or above ``directory`` (where the missing ones would be made);
    something else than a folder on the way is refused, naming ``path``."""
    while not os.path.isdir(directory):
        if os.path.lexists(directory):
            raise DicomTlsError("%s exists and is not a directory" % directory, path)
        directory = os.path.dirname(directory)
    return directory


def make_parent_dirs(path: str, mode: int = 0o755) -> list[str]:
    """Create the missing folders above ``path``; the file's own folder gets ``mode`` (0700 for a
    private key's), the ones above it 0755. Returns the folders created, outermost first."""
    return make_dirs(os.path.dirname(os.path.abspath(path)), mode)


def make_dirs(directory: str, mode: int = 0o755) -> list[str]:
    """Create ``directory`` (mode ``mode``) and the missing folders above it (0755)."""
    directory = os.path.abspath(directory)
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    created = []
    for d in reversed(missing):
        want = mode if d == missing[0] else 0o755
        try:
            os.mkdir(d, want)
        except FileExistsError:
            continue
        except OSError as exc:
            raise DicomTlsError("cannot create directory: %s" % exc.strerror, d) from None
        os.chmod(d, want)
        created.append(d)
    return created


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same directory created with
    ``mode`` before any byte lands in it, fsync, rename, fsync of the directory.
    A trusted symbolic link at ``path`` stays a link and its target is written; an untrusted one
    is refused (see the symlink policy). ``mode`` without group/other bits marks a private file.
    A link of ours into a generation store gets a new generation (``write_generation``)."""
    member = store_member(path)
    if member and _generation_fits(member[0], [os.path.abspath(path)]):
        write_generation(member[0], [(path, data, mode)])
        return
    path = check_links(path, private=not mode & 0o077)
    directory = os.path.dirname(path) or "."
    _replace(write_temp(path, data, mode), path, directory)


def temp_name_re(path: str):
    """The names ``write_temp`` gives temporaries of ``path`` (mkstemp's 8 random characters)."""
    return re.compile(r"^\.%s\.[A-Za-z0-9_]{8}\.tmp$" % re.escape(os.path.basename(path)))


def write_temp(
    path: str, data, mode: int = 0o644, uid: int = -1, gid: int = -1, sync: bool = True, prefix: str | None = None
) -> str:
    """A new temporary file beside ``path`` holding ``data`` (bytes, or a callable given the open
    binary file), its mode and owner set before the first byte; fsync'ed unless ``sync`` is False.
    Returns its name; the caller renames it (``replace``) or removes it (``remove``)."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if prefix is None:
        prefix = ".%s." % os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        if uid >= 0 or gid >= 0:
            os.fchown(fd, uid, gid)
        _step()  # an empty temporary exists
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            _step()  # written, not yet durable
            if sync:
                os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _step()
    return tmp


def replace(src: str, dst: str) -> None:
    """Rename ``src`` over ``dst`` (same directory; never follows a link at ``dst``)."""
    os.replace(src, dst)
    _step()


def remove(path: str, missing_ok: bool = True) -> bool:
    """Unlink ``path`` (a link itself, never its target); True when something was removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        if not missing_ok:
            raise
        return False
    _step()
    return True


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | _CLOEXEC | _NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def syncfs(directory: str) -> bool:
    """Flush the whole filesystem holding ``directory`` in one call (Linux syncfs(2)): one journal
    commit instead of one fsync per file. False when unavailable (then fsync each file)."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        call = libc.syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(directory, os.O_RDONLY)
    try:
        return call(fd) == 0
    finally:
        os.close(fd)


def file_mode(path: str) -> int | None:
    """The permission bits of a regular file (not following a final symbolic link, except a link of
    ours into a generation store); None when absent."""
    try:
        st = os.lstat(real_path(path))
    except FileNotFoundError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None


def loose_key_warning(path: str | None, option: str) -> str | None:
    """A warning for a private key that a module only reads (and so leaves as it is) when its mode lets
    other users read it (group or other bits, as dicom_cert's privatekey_mode would tighten); None if not."""
    try:
        st = os.stat(path) if path else None  # the file the module reads, through a symbolic link
    except OSError:
        return None  # missing or unreadable: the module's own read reports it
    mode = stat.S_IMODE(st.st_mode) if st is not None and stat.S_ISREG(st.st_mode) else 0
    if not mode & 0o077:
        return None
    return (
        "%s %s has mode %04o: other users may read the private key. This task only reads it and leaves its "
        "mode alone; chmod 0600 it, and consider replacing the key" % (option, path, mode)
    )


def set_mode(path: str, mode: int) -> None:
    """chmod a regular file through a descriptor opened without following a symbolic link (a link of
    ours into a generation store leads to the file it names)."""
    fd = os.open(real_path(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def make_dir(path: str, mode: int = 0o755) -> bool:
    """Create one directory with exactly ``mode``; False when it exists already."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return False
    os.chmod(path, mode)
    return True


def probe_writable(directory: str, prefix: str = ".probe.", suffix: str = ".probe") -> None:
    """Create and remove a temporary file in ``directory`` (raises OSError when it cannot)."""
    fd, probe = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def open_append(path: str, mode: int = 0o644):
    """A binary file handle appending to ``path`` (created with ``mode``, before any byte lands in
    it), e.g. a daemon's log."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
    return os.fdopen(fd, "ab")


@contextlib.contextmanager
def scratch_file(data: bytes, prefix: str = "dicom-tls-", suffix: str = ""):
    """A private (0600) temporary file holding ``data`` for a library that only reads paths;
    removed when the block ends. Yields its name."""
    with tempfile.NamedTemporaryFile(prefix=prefix, suffix=suffix) as fh:
        fh.write(data)
        fh.flush()
        yield fh.name


def remove_stale_temps(paths, patterns=()) -> list[str]:
    """Remove temporaries of our naming left beside ``paths`` by an interrupted run (call it under
    the lock that guards those paths), plus names in the paths' directories matching any regex of
    ``patterns``. Returns the names removed."""
    removed: list[str] = []
    by_dir: dict[str, list] = {}
    for path in paths:
        if path:
            by_dir.setdefault(os.path.dirname(os.path.abspath(path)), []).append(temp_name_re(path))
    for directory, regexes in by_dir.items():
        regexes = regexes + [re.compile(p) if isinstance(p, str) else p for p in patterns]
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if any(r.match(name) for r in regexes):
                full = os.path.join(directory, name)
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(os.lstat(full).st_mode) or stat.S_ISLNK(os.lstat(full).st_mode):
                        os.unlink(full)  # a link of that name is a half-made link of ours
                        removed.append(full)
    return removed


# ---------------------------------------------------------------- groups of files
#
# Two ways to move several files (key + certificate + chain + PKCS#12) from one state to the next:
#
# - A generation store, when the private key (the group's anchor) changes and more than one file is
#   written, or when the files already live in a store. Beside the key ``D/node.key`` sits the folder
#   ``D/.node.key.dicom_tls/`` holding generations ``g.XXXXXXXX/`` (one file per member, named after
#   it) and one link ``current -> g.XXXXXXXX``. Each member path is a relative link through it, e.g.
#   ``D/node.key -> .node.key.dicom_tls/current/node.key`` and
#   ``T/node.pem -> ../D/.node.key.dicom_tls/current/node.pem``. A new generation is written and
#   fsync'ed whole, then ``current`` is replaced by one rename(2): a reader (dcmtk, Orthanc, openssl)
#   resolves every member through the same link, so it sees the old set or the new set at every
#   instant, also straight after a kill -9. The previous generation is removed right after; the next
#   run removes whatever a kill left (``clean_store``). Plain files become links the first time
#   (each plain file is hard-linked into the current generation first, so no reader sees a change).
#   The key's bytes never leave the key's folder.
# - A journal, in every other case (the key does not change: any mix of old and new certificate
#   files still matches the key; a folder other users can write; a member that is a link of the
#   user's own): temporaries fsync'ed, a journal, renames, the journal removed; ``recover_group``
#   rolls a journaled group forward on the next run.

STORE_SUFFIX = ".dicom_tls"
_CURRENT = "current"
_GEN_RE = re.compile(r"^g\.[A-Za-z0-9_]{8}$")
_STORE_TEMP_RE = re.compile(r"^\.current\.[A-Za-z0-9_]{8}\.tmp$")
_LINK_TARGET_RE = re.compile(r"(?:^|/)(\.[^/]+%s)/%s/([^/]+)$" % (re.escape(STORE_SUFFIX), _CURRENT))


def journal_path(anchor: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(anchor)), ".%s.dicom_tls-journal" % os.path.basename(anchor))


def store_path(anchor: str) -> str:
    """The generation store of the group whose anchor (private key) is ``anchor``."""
    anchor = os.path.abspath(anchor)
    return os.path.join(os.path.dirname(anchor), ".%s%s" % (os.path.basename(anchor), STORE_SUFFIX))


def store_member(path: str) -> tuple[str, str] | None:
    """(store, member name) when ``path`` is a link of ours into a generation store, else None."""
    path = os.path.abspath(path)
    try:
        target = os.readlink(path)
    except OSError:
        return None
    m = _LINK_TARGET_RE.search(target)
    if not m:
        return None
    store = os.path.normpath(os.path.join(os.path.dirname(path), target[: m.end(1)]))
    return store, m.group(2)


def real_path(path: str) -> str:
    """Where the bytes of ``path`` live when it is a link of ours into a generation store (for
    Ansible's owner, group and mode, which must reach the file, not the link); else ``path``."""
    if path and store_member(path):
        try:
            return check_links(path)
        except DicomTlsError:  # no longer trusted: left to the caller's own refusal
            return path
    return path


def _current_gen(store: str) -> str | None:
    try:
        target = os.readlink(os.path.join(store, _CURRENT))
    except OSError:
        return None
    return target if _GEN_RE.match(target) and os.path.isdir(os.path.join(store, target)) else None


def _random_name(directory: str, prefix: str, suffix: str, make) -> str:
    """Create an entry ``prefix + 8 random characters + suffix`` with ``make(full_path)``; its name."""
    import random

    chars = random.SystemRandom()
    for _attempt in range(1000):
        name = "".join(chars.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _i in range(8))
        full = os.path.join(directory, prefix + name + suffix)
        try:
            make(full)
        except FileExistsError:
            continue
        return full
    raise FileExistsError(errno.EEXIST, "no usable temporary name", directory)


def _link_atomically(target: str, path: str) -> None:
    """Make ``path`` a symbolic link to ``target`` with one rename (a new link beside it first)."""
    directory = os.path.dirname(path)
    tmp = _random_name(directory, ".%s." % os.path.basename(path), ".tmp", lambda full: os.symlink(target, full))
    _step()
    _replace(tmp, path, directory)


def _replace(tmp: str, path: str, directory: str) -> None:
    """Rename ``tmp`` over ``path`` (removing ``tmp`` when that fails), then make the rename durable."""
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _step()
    fsync_dir(directory)


def _make_store_dir(path: str, parent: str) -> None:
    """A folder of the store gets its parent's mode without group/other write, and its group."""
    st = os.stat(parent)
    os.chmod(path, stat.S_IMODE(st.st_mode) & 0o755 | 0o700)
    with contextlib.suppress(OSError):
        os.chown(path, -1, st.st_gid)


def _new_gen(store: str) -> str:
    gen = _random_name(store, "g.", "", lambda full: os.mkdir(full, 0o700))
    _make_store_dir(gen, os.path.dirname(store))
    _step()
    return gen


def _write_new(path: str, data: bytes, mode: int) -> None:
    """A new file (never an existing one, never through a link) with ``mode`` before its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        _step()
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        if fd >= 0:
            os.close(fd)
    _step()


def _copy_in(src: str, dst: str) -> None:
    """Put the file ``src`` into a generation as ``dst``: a hard link (same bytes, owner and mode,
    no copy of a key's bytes), or a copy with the same mode where links cannot be made."""
    try:
        os.link(src, dst, follow_symlinks=True)
    except OSError:
        st = os.stat(src)
        _write_new(dst, read_bytes(src), stat.S_IMODE(st.st_mode))
        with contextlib.suppress(OSError):
            os.chown(dst, st.st_uid, st.st_gid)
    _step()


def _swap_current(store: str, gen: str) -> None:
    """Point ``current`` at ``gen`` with one rename(2): the commit point of a generation."""
    _link_atomically(os.path.basename(gen), os.path.join(store, _CURRENT))


def clean_store(store: str, drop_empty: bool = True) -> list[str]:
    """Remove what a run left in a generation store besides the current generation: earlier
    generations and half-made ones, temporary links; and the store itself when no generation is
    in use (``drop_empty``). Returns the names removed."""
    keep = _current_gen(store)
    removed = []
    try:
        names = os.listdir(store)
    except OSError:
        return removed
    for name in names:
        full = os.path.join(store, name)
        if name == keep:
            continue
        if _GEN_RE.match(name) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
            _step()
            removed.append(full)
        elif _STORE_TEMP_RE.match(name) or (name == _CURRENT and keep is None):
            remove(full)
            removed.append(full)
    if keep is None and drop_empty:  # nothing in use: a store a kill left before its first generation was committed
        with contextlib.suppress(OSError):
            os.rmdir(store)
            removed.append(store)
    if removed:
        fsync_dir(os.path.dirname(store) if keep is None else store)
    return removed


def remove_store(anchor: str) -> bool:
    """Remove the generation store of ``anchor`` (its key is being removed); True if there was one."""
    store = store_path(anchor)
    if not os.path.isdir(store) or os.path.islink(store):
        return False
    shutil.rmtree(store)
    _step()
    fsync_dir(os.path.dirname(store))
    return True


def _generation_fits(store: str, paths: list[str]) -> bool:
    """A generation store can hold these files: their folders (and the store's) are not writable by
    other users (the links must be trusted), and each file is absent, a regular file, or already a
    link of ours into this store (a link of the user's own stays theirs: the journal is used)."""
    folders = {os.path.dirname(store)} | {os.path.dirname(p) for p in paths}
    if any(not os.path.isdir(d) or dir_is_shared(d) for d in folders):
        return False
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            continue
        member = store_member(path)
        if not (stat.S_ISLNK(st.st_mode) and member and member[0] == store):
            return False
    return True


def _member_names(store: str, paths: list[str], current: str | None) -> list[str]:
    """The name of each file inside a generation: the one its link already uses, else its base name
    (made unique when another file of the group or of the current generation holds that name)."""
    taken = set(os.listdir(os.path.join(store, current))) if current else set()
    names = [m[1] if m and m[0] == store else None for m in map(store_member, paths)]
    used = {n for n in names if n}
    for i, path in enumerate(paths):
        if names[i]:
            continue
        base = os.path.basename(path)
        name, n = base, 1
        while name in used or name in taken:
            n += 1
            name = "%s.%d" % (base, n)
        names[i] = name
        used.add(name)
    return names


def write_generation(store: str, files: list[tuple[str, bytes, int]]) -> None:
    """Write ``files`` as a new generation of ``store`` and switch to it with one rename (see above)."""
    paths = [os.path.abspath(p) for p, _d, _m in files]
    parent = os.path.dirname(store)
    if not os.path.isdir(store):
        os.mkdir(store, 0o700)
        _make_store_dir(store, parent)
        _step()
        fsync_dir(parent)
    clean_store(store, drop_empty=False)
    current = _current_gen(store)
    names = _member_names(store, paths, current)
    # 1. the new generation, whole and durable; nobody looks at it yet
    gen = _new_gen(store)
    if current:
        for name in os.listdir(os.path.join(store, current)):
            if name not in names:
                _copy_in(os.path.join(store, current, name), os.path.join(gen, name))
    for (_p, data, mode), name in zip(files, names):
        _write_new(os.path.join(gen, name), data, mode)
    fsync_dir(gen)
    # 2. every member becomes a link through ``current`` without any reader seeing a change: a plain
    #    file is first hard-linked into the current generation (one is made from the plain files
    #    when there is none yet); an absent file becomes a link that leads nowhere until step 3.
    plain = [(p, n) for p, n in zip(paths, names) if os.path.lexists(p) and not store_member(p)]
    if plain:
        into = _new_gen(store) if current is None else os.path.join(store, current)
        for path, name in plain:
            if not os.path.lexists(os.path.join(into, name)):
                _copy_in(path, os.path.join(into, name))
        fsync_dir(into)
        if current is None:
            _swap_current(store, into)
            current = os.path.basename(into)
    for path, name in zip(paths, names):
        member = store_member(path)
        if member and member == (store, name):
            continue
        target = os.path.relpath(os.path.join(store, _CURRENT, name), os.path.dirname(path))
        _link_atomically(target, path)
    # 3. the commit: one rename of ``current``; 4. the previous generation goes
    _swap_current(store, gen)
    clean_store(store)


def write_group(anchor: str, files: list[tuple[str, bytes, int]]) -> None:
    """Move several files ``[(path, data, mode), ...]`` from one consistent state to the next.

    When the private key ``anchor`` is among them (created or regenerated) with other files, or a
    file already lives in the anchor's generation store, and no folder is writable by other users:
    a new generation switched with one rename (``write_generation``), so key and certificate match
    at every instant. Otherwise: 1. every new content is written to a temporary beside its target
    and fsync'ed; 2. a journal beside ``anchor`` lists temp -> target, written atomically;
    3. the temporaries are renamed over their targets in order; 4. the journal is removed.
    A crash before 2 leaves the old files (and temporaries that the next run removes); a crash
    after 2 is rolled forward by ``recover_group`` at the start of the next run, so the files end
    as the whole new set. Call it (and ``recover_group``) under the anchor's lock."""
    if not files:
        return
    store = store_path(anchor)
    paths = [os.path.abspath(p) for p, _d, _m in files]
    key_changes = any(p == os.path.abspath(anchor) and not m & 0o077 for p, (_x, _d, m) in zip(paths, files))
    linked = any((store_member(p) or ("",))[0] == store for p in paths)
    if (linked or (key_changes and len(files) > 1)) and _generation_fits(store, paths):
        write_generation(store, files)
        return
    if len(files) == 1:
        path, data, mode = files[0]
        atomic_write(path, data, mode)
        return
    targets = [(check_links(path, private=not mode & 0o077), data, mode) for path, data, mode in files]
    temps: list[str] = []
    try:
        for path, data, mode in targets:
            temps.append(write_temp(path, data, mode))
        journal = json.dumps([[t, p] for t, (p, _d, _m) in zip(temps, targets)]).encode("utf-8")
        atomic_write(journal_path(anchor), journal, 0o600)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    for tmp, (path, _d, _m) in zip(temps, targets):
        replace(tmp, path)
    for directory in sorted({os.path.dirname(p) for p, _d, _m in targets}):
        fsync_dir(directory)
    remove(journal_path(anchor))
    fsync_dir(os.path.dirname(journal_path(anchor)))


def pending_group(anchor: str) -> list[tuple[str, str]]:
    """The (temporary, target) pairs of a journal an interrupted ``write_group`` left, whose
    temporaries still exist: what ``recover_group`` renames into place."""
    try:
        raw = _read_regular(journal_path(anchor))
    except FileNotFoundError:
        return []
    try:
        pairs = json.loads(raw.decode("utf-8"))
    except ValueError:
        return []
    return [
        (tmp, path) for tmp, path in pairs if os.path.isfile(tmp) and temp_name_re(path).match(os.path.basename(tmp))
    ]


def recover_group(anchor: str, paths=()) -> list[str]:
    """Finish a ``write_group`` that a crash interrupted (roll forward from its journal), remove our
    leftover temporaries beside ``paths`` and what a kill left in the anchor's generation store.
    Returns the targets restored. Call it under the lock."""
    jpath = journal_path(anchor)
    restored: list[str] = []
    if os.path.lexists(jpath):
        for tmp, path in pending_group(anchor):
            replace(tmp, path)
            restored.append(path)
        for directory in sorted({os.path.dirname(p) for p in restored}):
            fsync_dir(directory)
        remove(jpath)
    remove_stale_temps(list(paths) + [jpath])
    store = store_path(anchor)
    if os.path.isdir(store) and not os.path.islink(store):
        clean_store(store)
    return restored


@contextlib.contextmanager
def locked_group(anchor: str | None, paths, enabled: bool = True):
    """``locked_for(anchor)`` for plan + apply, then ``recover_group`` (beside ``paths``); yields the files
    it completes. ``enabled=False`` (check mode): no lock, nothing written, reads see what recovery leaves."""
    with locked_for(anchor, enabled):
        if not anchor or not os.path.isdir(os.path.dirname(os.path.abspath(anchor))):
            yield []
        elif enabled:
            yield recover_group(anchor, [x for x in paths if x])
        else:
            with reading_pending(anchor) as pending:
                yield pending


_pending_reads: dict[str, str] = {}


@contextlib.contextmanager
def reading_pending(anchor: str | None):
    """Check mode: for the block, reads of a target of a pending journal return the bytes the
    real run's ``recover_group`` would rename into place (nothing is written). Yields the targets."""
    pairs = pending_group(anchor) if anchor else []
    _pending_reads.update({os.path.abspath(path): tmp for tmp, path in pairs})
    try:
        yield [path for _tmp, path in pairs]
    finally:
        _pending_reads.clear()


def fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(dfd)


@contextlib.contextmanager
def locked(lock_path: str):
    """An exclusive advisory lock (flock) held for the duration of the block."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DicomTlsError("lock file is a symbolic link; refusing to follow it", lock_path) from None
        raise DicomTlsError("cannot open lock file: %s" % exc.strerror, lock_path) from None
    with _flock(fd):
        yield


@contextlib.contextmanager
def _flock(fd: int):
    """Hold an exclusive flock on the open descriptor ``fd`` for the block, then release and close it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


_held: dict = {}  # (pid, st_dev, st_ino) of the folders this process holds locked -> depth
_RENDEZVOUS_ENV = "DICOM_TLS_LOCK_RENDEZVOUS"
_met = [False]


def _rendezvous() -> None:
    """Test hook for concurrency tests: with DICOM_TLS_LOCK_RENDEZVOUS=DIR, the first lock request of
    the process announces itself on the FIFO DIR/arrived and waits for a byte on DIR/go, so that runs
    started together reach their locks together (no sleeps, no timing luck)."""
    where = os.environ.get(_RENDEZVOUS_ENV)
    if not where or _met[0]:
        return
    _met[0] = True
    try:  # only ever set by the tests; a stray value without the FIFOs is ignored
        fd = os.open(os.path.join(where, "arrived"), os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, b"%d\n" % os.getpid())
    finally:
        os.close(fd)
    fd = os.open(os.path.join(where, "go"), os.O_RDONLY)
    try:
        os.read(fd, 1)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked_for(path: str | None, enabled: bool = True):
    """The exclusive lock guarding ``path`` for the block: an flock on the folder that holds it
    (opened with O_NOFOLLOW after the symlink policy resolved trusted links), so no lock file is
    created and a refused run leaves the disk as it was. Nothing when ``path`` is None, ``enabled``
    is False (check mode) or the folder does not exist yet (nobody can be reading it either).

    The one locking rule of the collection: every module that reads files, then writes them, holds
    this lock from the read to the last write. Re-entrant within a process (a folder already held
    is not locked twice, which flock would deadlock on); a caller that needs several folders takes
    them in sorted order (dicom_sign), so two runs never wait on each other in a cycle."""
    if not path or not enabled:
        yield
        return
    _rendezvous()
    directory = check_links(os.path.dirname(os.path.abspath(path)))
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC)
    except FileNotFoundError:
        yield
        return
    except OSError as exc:
        raise DicomTlsError("cannot lock directory: %s" % exc.strerror, directory) from None
    st = os.fstat(fd)
    ident = (os.getpid(), st.st_dev, st.st_ino)  # a forked child holds nothing of its parent's
    if ident in _held:
        os.close(fd)
        _held[ident] += 1
        try:
            yield
        finally:
            _held[ident] -= 1
        return
    with _flock(fd):
        _held[ident] = 1
        try:
            yield
        finally:
            del _held[ident]


def _backup_name(path: str) -> str:
    import datetime

    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S.%f")
    return "%s.%s~" % (path.rstrip("/"), stamp)


def backup_copy(path: str) -> str:
    """Copy ``path`` beside itself as ``path.YYYYmmddTHHMMSS.ffffff~`` with the same mode; return its name.

    The symlink policy holds for both ends: the file is read through ``_open_regular`` (an untrusted
    link is refused, a private key is never read through a link in a shared folder), and the copy is
    created with O_EXCL|O_NOFOLLOW, so a link planted at its name is never written through."""
    fd = _open_regular(path)
    with os.fdopen(fd, "rb") as src:
        mode = stat.S_IMODE(os.fstat(src.fileno()).st_mode)
        if not mode & 0o077:
            check_links(path, private=True)
        directory = check_links(os.path.dirname(os.path.abspath(path)))
        dest = _backup_name(path)
        try:
            out_fd = os.open(
                os.path.join(directory, os.path.basename(dest)),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                0o600,
            )
        except OSError as exc:
            raise DicomTlsError("cannot create the backup %s: %s" % (dest, exc.strerror), path) from None
        _copy_durably(src, out_fd, mode)
    return dest


def _copy_durably(src, out_fd: int, mode: int) -> None:
    """Copy the open file ``src`` into the new file open as ``out_fd`` with ``mode``, fsynced."""
    with os.fdopen(out_fd, "wb") as out:
        os.fchmod(out.fileno(), mode)
        shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def _copy_tree_nofollow(src_fd: int, dst: str, ignore: tuple[str, ...]) -> None:
    """Copy the folder open as ``src_fd`` into the new folder ``dst``: links recreated as links (never
    followed), regular files opened with O_NOFOLLOW relative to the folder, modes kept, others skipped."""
    import fnmatch

    for name in sorted(os.listdir(src_fd)):
        if any(fnmatch.fnmatch(name, pattern) for pattern in ignore):
            continue
        st = os.lstat(name, dir_fd=src_fd)
        target = os.path.join(dst, name)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src_fd), target)
        elif stat.S_ISDIR(st.st_mode):
            sub = os.open(name, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC, dir_fd=src_fd)
            try:
                os.mkdir(target, 0o700)
                _copy_tree_nofollow(sub, target, ignore)
                os.chmod(target, stat.S_IMODE(st.st_mode))
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC, dir_fd=src_fd)
            with os.fdopen(fd, "rb") as src:
                if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                    continue
                out_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
                _copy_durably(src, out_fd, stat.S_IMODE(st.st_mode))


def backup_tree(path: str, ignore: tuple[str, ...] = ()) -> str:
    """Copy the folder ``path`` beside itself as ``path.YYYYmmddTHHMMSS.ffffff~`` (symbolic links
    kept as links, modes kept; names matching ``ignore`` patterns left out); return its name.
    Built in a fresh private temporary folder and renamed: the backup is whole or absent.
    Nothing is followed: the folder itself is reached through the symlink policy and opened with
    O_NOFOLLOW, every entry is read relative to it without following a link."""
    real = check_links(path)
    parent = os.path.dirname(os.path.abspath(path.rstrip("/")))
    dest = _backup_name(path)
    try:
        src_fd = os.open(real, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        raise DicomTlsError("cannot read the folder to back up: %s" % exc.strerror, path) from None
    tmp = None
    try:
        tmp = tempfile.mkdtemp(prefix=".%s." % os.path.basename(dest), suffix=".tmp", dir=check_links(parent))
        _copy_tree_nofollow(src_fd, tmp, ignore)
        os.chmod(tmp, stat.S_IMODE(os.fstat(src_fd).st_mode))
        if os.path.lexists(dest):
            raise DicomTlsError("cannot create the backup: %s exists" % dest, path)
        os.rename(tmp, dest)
        tmp = None
    except OSError as exc:
        raise DicomTlsError("cannot back up the folder: %s" % exc.strerror, path) from None
    finally:
        os.close(src_fd)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(parent)
    return dest
