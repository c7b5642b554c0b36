# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dcmtk option files (``TOOL @DIR/TOOL.args ...``): one option per line, several tools' files
planned and written in one pass (one module run per node instead of one per file)."""

from __future__ import annotations

import os
import re
import stat

from ansible_collections.medimg.dicom_tls.plugins.module_utils import files
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


def plan(directory: str, tools: dict, mode: int = 0o644) -> list[dict]:
    """Per tool, what brings DIRECTORY/TOOL.args to its lines: {path, action, reason, content}
    (action created, updated or mode); nothing for a file already right."""
    actions = []
    for tool in sorted(tools):
        if not TOOL_RE.match(tool or ""):
            raise DicomTlsError("option file name %r is not a dcmtk tool name (letters, digits, _ . -)" % tool)
        path = os.path.join(directory, tool + ".args")
        want = render(tools[tool] or [])
        have = files.read_optional(path)
        if have is None:
            action, reason = "created", "missing"
        elif have != want:
            action, reason = "updated", "options differ"
        elif stat.S_IMODE(os.stat(path).st_mode) != mode:
            action, reason = "mode", "mode differs"
        else:
            continue
        actions.append({"path": path, "action": action, "reason": reason, "content": want, "before": have})
    return actions


def apply(actions: list[dict], mode: int = 0o644, backup: bool = False) -> list[str]:
    """Write the planned files atomically (folders created on the way); with ``backup``, each file
    that existed is first copied beside itself. Returns the backups."""
    backups = []
    for a in actions:
        files.check_writable_dir(a["path"])
    for a in actions:
        files.make_parent_dirs(a["path"])
        if backup and a["action"] == "updated":
            backups.append(files.backup_copy(a["path"]))
        files.atomic_write(a["path"], a["content"], mode)
    return backups
