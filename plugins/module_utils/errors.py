# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type the library raises for bad input or a failed check."""

from __future__ import annotations

import contextlib


class DicomTlsError(Exception):
    """A clear, user-facing failure: names the file (when there is one) and the reason."""

    def __init__(self, reason: str, path: str | None = None):
        self.reason = reason
        self.path = path
        super().__init__("%s: %s" % (path, reason) if path else reason)


@contextlib.contextmanager
def reported(what: str, path: str | None):
    """An OSError inside the block becomes the DicomTlsError '<what>: <its strerror>' naming ``path``."""
    try:
        yield
    except OSError as exc:
        raise DicomTlsError("%s: %s" % (what, exc.strerror), path) from None
