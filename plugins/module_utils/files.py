# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes and reads with clear errors."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile

from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError


def _read_regular(path: str) -> bytes:
    """Read a regular file; a FIFO, device or directory is refused without blocking on it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DicomTlsError("is not a regular file", path)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


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
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise DicomTlsError("is a directory, not a file", path)
    while not os.path.isdir(directory):
        if os.path.lexists(directory):
            raise DicomTlsError("%s exists and is not a directory" % directory, path)
        directory = os.path.dirname(directory)
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=directory)
    except OSError as exc:
        raise DicomTlsError("directory %s is not writable: %s" % (directory, exc.strerror), path) from None
    os.close(fd)
    os.unlink(probe)


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
    ``mode`` before any byte lands in it, fsync, rename, fsync of the directory."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


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
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def backup_copy(path: str) -> str:
    """Copy ``path`` beside itself as ``path.YYYYmmddTHHMMSS.ffffff~`` with the same mode; return its name."""
    import datetime
    import shutil

    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S.%f")
    dest = "%s.%s~" % (path, stamp)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, os.stat(path).st_mode & 0o7777)
    with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
        shutil.copyfileobj(src, out)
        out.flush()
        os.fsync(out.fileno())
    return dest


def backup_tree(path: str, ignore: tuple[str, ...] = ()) -> str:
    """Copy the folder ``path`` beside itself as ``path.YYYYmmddTHHMMSS.ffffff~`` (symbolic links
    kept as links, modes kept; names matching ``ignore`` patterns left out); return its name.
    Built under a temporary name and renamed: the backup is whole or absent."""
    import datetime
    import shutil

    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S.%f")
    dest = "%s.%s~" % (path.rstrip("/"), stamp)
    tmp = dest + ".tmp"
    try:
        shutil.copytree(path, tmp, symlinks=True, ignore=shutil.ignore_patterns(*ignore) if ignore else None)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(dest)))
    return dest
