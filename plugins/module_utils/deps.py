# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Third-party libraries the modules need, reported cleanly when missing or too old on a managed host.

The library files import cryptography, pydicom and pynetdicom inside ``try`` blocks, so that a
module can load and say which package is missing instead of dying with a traceback.

Floors (docs/real-hosts.md says why): Python 3.9; cryptography 36.0 (RHEL 9's python3-cryptography
is 36.0.1, Debian 12's 38.0.4); pydicom and pynetdicom 3.0, which need Python 3.10."""

from __future__ import annotations

import importlib
import re
import sys
import traceback

# package -> (lowest version, lowest Python it runs on)
FLOORS = {
    "cryptography": ((36, 0), (3, 9)),
    "pydicom": ((3, 0), (3, 10)),
    "pynetdicom": ((3, 0), (3, 10)),
}


def _version_tuple(text: str) -> tuple[int, ...]:
    """(major, minor) of a version string, a part's non-digit tail ignored ('42.0rc1' -> (42, 0))."""
    return tuple(int(re.match(r"\d*", part).group() or 0) for part in text.split(".")[:2])


def installed_version(name: str) -> tuple[int, ...]:
    """(major, minor) of an installed package, (0, 0) when it is absent or unreadable."""
    try:
        return _version_tuple(importlib.import_module(name).__version__)
    except (ImportError, AttributeError):
        return (0, 0)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(v) for v in version)


def missing_library(*names: str) -> tuple[str, str] | None:
    """(package name, traceback) of the first of ``names`` that cannot be imported, else None."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            return name, traceback.format_exc()
    return None


def version_problem(*names: str) -> str | None:
    """One sentence when the Python or an installed package of ``names`` is older than its floor."""
    python = sys.version_info[:2]
    for name in names:
        floor, python_floor = FLOORS.get(name, ((0,), (3, 9)))
        if python < python_floor:
            return "%s needs Python >= %s, found Python %s (%s); use a newer ansible_python_interpreter" % (
                name,
                _dotted(python_floor),
                _dotted(python),
                sys.executable,
            )
        try:
            found = importlib.import_module(name).__version__
        except (ImportError, AttributeError):
            continue
        if _version_tuple(found) < floor:
            return "needs %s >= %s, found %s (Python %s at %s)" % (
                name,
                _dotted(floor),
                found,
                _dotted(python),
                sys.executable,
            )
    return None


def require(module, *names: str) -> None:
    """Fail an AnsibleModule when a package is absent (missing_required_lib()), too old, or needs a
    newer Python than the host's."""
    from ansible.module_utils.basic import missing_required_lib

    problem = version_problem(*names)
    if problem:
        module.fail_json(msg=problem)
    missing = missing_library(*names)
    if missing:
        module.fail_json(msg=missing_required_lib(missing[0]), exception=missing[1])
