# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""files.py is the only door to writing files (DESIGN rule 7): no other plugin code opens a file
for writing, renames, changes modes or owners, makes temporary files, links or removes files."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[4] / "plugins"
DOOR = ROOT / "module_utils" / "files.py"

OS_WRITERS = {
    "rename", "renames", "replace", "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown",
    "unlink", "remove", "rmdir", "removedirs", "mkdir", "makedirs", "symlink", "link",
    "truncate", "ftruncate", "mkfifo", "mknod", "utime", "write", "pwrite", "writev",
}  # fmt: skip
SHUTIL_WRITERS = {
    "move", "copy", "copy2", "copyfile", "copyfileobj", "copytree", "rmtree", "copymode", "copystat", "chown",
}  # fmt: skip
WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND", "O_TMPFILE"}
PATH_WRITERS = {"write_text", "write_bytes", "touch", "symlink_to", "hardlink_to", "mkdir", "rmdir", "unlink"}


def _mode_writes(node: ast.Call, position: int) -> bool:
    mode = node.args[position] if len(node.args) > position else None
    for kw in node.keywords:
        if kw.arg == "mode":
            mode = kw.value
    if mode is None:
        return False
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return any(c in mode.value for c in "wax+")
    return True  # a mode we cannot read is a write until proven otherwise


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mod = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names]
            if "tempfile" in names or mod == "tempfile":
                found.append("line %d: imports tempfile" % node.lineno)
            if mod in ("os", "shutil") and set(names) & (OS_WRITERS | SHUTIL_WRITERS):
                found.append("line %d: imports a writer from %s" % (node.lineno, mod))
            continue
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "open" and _mode_writes(node, 1):
            found.append("line %d: open() for writing" % node.lineno)
        if not isinstance(f, ast.Attribute):
            continue
        owner = f.value.id if isinstance(f.value, ast.Name) else None
        if owner == "os" and f.attr in OS_WRITERS:
            found.append("line %d: os.%s" % (node.lineno, f.attr))
        elif owner == "os" and f.attr == "open":
            flags = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)} & WRITE_FLAGS
            if flags:
                found.append("line %d: os.open with %s" % (node.lineno, ", ".join(sorted(flags))))
        elif owner == "os" and f.attr == "fdopen" and _mode_writes(node, 1):
            found.append("line %d: os.fdopen for writing" % node.lineno)
        elif owner == "shutil" and f.attr in SHUTIL_WRITERS:
            found.append("line %d: shutil.%s" % (node.lineno, f.attr))
        elif owner == "tempfile":
            found.append("line %d: tempfile.%s" % (node.lineno, f.attr))
        elif f.attr in PATH_WRITERS and owner not in ("os", "files", "shutil"):
            found.append("line %d: .%s()" % (node.lineno, f.attr))
        elif f.attr == "open" and owner not in ("os", "io", "tarfile", "zipfile") and _mode_writes(node, 0):
            found.append("line %d: .open() for writing" % node.lineno)
        elif owner == "io" and f.attr in ("open", "FileIO") and _mode_writes(node, 1):
            found.append("line %d: io.%s for writing" % (node.lineno, f.attr))
    return found


SOURCES = sorted(p for p in ROOT.rglob("*.py") if p != DOOR)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_files_py_writes(path):
    assert violations(path.read_text(encoding="utf-8")) == [], (
        "%s writes files itself; use module_utils/files.py" % path.relative_to(ROOT)
    )


@pytest.mark.parametrize(
    "snippet",
    [
        "open(p, 'w')",
        "open(p, mode='ab')",
        "open(p, m)",
        "os.rename(a, b)",
        "os.replace(a, b)",
        "os.chmod(p, 0o600)",
        "os.fchown(fd, 0, 0)",
        "os.unlink(p)",
        "os.remove(p)",
        "os.open(p, os.O_WRONLY | os.O_CREAT)",
        "os.fdopen(fd, 'wb')",
        "import tempfile",
        "from tempfile import mkstemp",
        "tempfile.mkstemp()",
        "shutil.move(a, b)",
        "shutil.rmtree(d)",
        "from os import replace",
        "pathlib.Path(p).write_bytes(b'')",
        "Path(p).open('w')",
    ],
)
def test_fence_catches(snippet):
    assert violations("import os, shutil, pathlib\n" + snippet + "\n")


@pytest.mark.parametrize("snippet", ["open(p)", "open(p, 'rb')", "os.open(p, os.O_RDONLY)", "files.remove(p)"])
def test_fence_lets_reads_through(snippet):
    assert violations("import os\n" + snippet + "\n") == []
