# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Third-party libraries the modules need, reported cleanly when missing on a managed host.

The library files import cryptography, pydicom and pynetdicom inside ``try`` blocks, so that a
module can load and say which package is missing instead of dying with a traceback."""

from __future__ import annotations

import importlib
import traceback


def missing_library(*names: str) -> tuple[str, str] | None:
    """(package name, traceback) of the first of ``names`` that cannot be imported, else None."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            return name, traceback.format_exc()
    return None


def require(module, *names: str) -> None:
    """Fail an AnsibleModule with missing_required_lib() when a package is absent."""
    from ansible.module_utils.basic import missing_required_lib

    missing = missing_library(*names)
    if missing:
        module.fail_json(msg=missing_required_lib(missing[0]), exception=missing[1])
