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
    """Fail before any change when the file's directory is missing or not writable.

    Probes with a real temporary file: permission bits say nothing for root, while read-only
    mounts, immutable directories and pseudo file systems still refuse."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise DicomTlsError("is a directory, not a file", path)
    if not os.path.isdir(directory):
        raise DicomTlsError("directory %s does not exist" % directory, path)
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=directory)
    except OSError as exc:
        raise DicomTlsError("directory %s is not writable: %s" % (directory, exc.strerror), path) from None
    os.close(fd)
    os.unlink(probe)


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
