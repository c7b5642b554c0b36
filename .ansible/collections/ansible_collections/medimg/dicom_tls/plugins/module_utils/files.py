# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes and reads with clear errors."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile

from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError


def read_bytes(path: str, what: str = "file") -> bytes:
    """Read a whole file; a missing or unreadable file is a DicomTlsError naming it."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise DicomTlsError("%s does not exist" % what, path) from None
    except OSError as exc:
        raise DicomTlsError("cannot read %s: %s" % (what, exc.strerror), path) from None


def read_optional(path: str | None) -> bytes | None:
    """The file's bytes, or None when it does not exist (other errors still raise)."""
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DicomTlsError("cannot read file: %s" % exc.strerror, path) from None


def check_writable_dir(path: str) -> None:
    """Fail before any change when the file's directory is missing or not writable."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise DicomTlsError("directory %s does not exist" % directory, path)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DicomTlsError("directory %s is not writable" % directory, path)


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
