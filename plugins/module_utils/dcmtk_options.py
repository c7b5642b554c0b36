# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dcmtk option files (``TOOL @DIR/TOOL.args ...``): one option per line, several tools' files
planned and written in one pass (one module run per node instead of one per file)."""

from __future__ import annotations

import os
import re

from ansible_collections.medimg.dicom_tls.plugins.module_utils import files, reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError

TOOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def render(lines: list) -> bytes:
    """The bytes of one option file: each option (with its values) on a line of its own."""
    out = []
    for line in lines:
        text = str(line)
        if "\n" in text or "\r" in text or "\x00" in text:
            raise DicomTlsError("an option file line may not hold a line break or NUL byte: %r" % text)
        if text.strip():
            out.append(text.strip() + "\n")
    return "".join(out).encode("utf-8")


def _path(directory: str, tool: str) -> str:
    if not TOOL_RE.match(tool or ""):
        raise DicomTlsError("option file name %r is not a dcmtk tool name (letters, digits, _ . -)" % tool)
    return os.path.join(directory, tool + ".args")


def plan(directory: str, tools: dict) -> list[reports.Action]:
    """Per tool, what brings DIRECTORY/TOOL.args to its lines (reports.Action: created or updated, the
    lines before and after as the diff's sides); nothing for a file already right. File attributes
    are Ansible's (file_args)."""
    actions = []
    for tool in sorted(tools):
        path = _path(directory, tool)
        want = render(tools[tool] or [])
        have = files.read_optional(path)
        if have == want:
            continue
        action, reason = ("created", "no option file yet") if have is None else ("updated", "options differ")
        before = (have or b"").decode("utf-8", "replace")
        actions.append(reports.Action(path, action, reason, role=tool, before=before, after=want.decode("utf-8")))
    return actions


def apply(actions: list[reports.Action], tools: dict, mode: int = 0o644, backup: bool = False) -> list[str]:
    """Write the planned files atomically (folders created on the way; a new file is created with
    ``mode``); with ``backup``, each file that existed is first copied beside itself. Returns the backups."""
    backups = []
    for a in actions:
        files.check_writable_dir(a.path)
    for a in actions:
        files.make_parent_dirs(a.path)
        if backup and a.action == "updated":
            backups.append(files.backup_copy(a.path))
        files.atomic_write(a.path, render(tools[a.role] or []), mode)
    return backups
