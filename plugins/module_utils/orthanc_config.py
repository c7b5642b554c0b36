# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Orthanc's configuration folder: every top-level option defined exactly once.

Orthanc reads every ``*.json`` file of its configuration folder (``//`` and ``/* */`` comments
allowed) and refuses to start when one option is defined in two files. Debian's stock
``/etc/orthanc/orthanc.json`` already defines ``DicomTlsEnabled`` and
``DicomTlsRemoteCertificateRequired``. So an option is set where it is already defined (the value
is replaced in place, comments and layout of the rest of the file kept), and only options no file
defines go to a drop-in file this library owns.

Plan, then apply: ``plan(config_dir, settings, dropin)`` reads the folder and returns the new text
of each file that must change; ``apply(plan)`` writes them atomically. With ``seed_dir`` (Debian's
stock ``/etc/orthanc``), a folder without ``orthanc.json`` starts as a copy of that folder (every
file, modes kept) with the settings applied to the copy, in the same run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ansible_collections.medimg.dicom_tls.plugins.module_utils import reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import (
    atomic_write,
    backup_copy,
    make_dirs,
    read_bytes,
    read_optional,
)

_WS = " \t\r\n"


class _Scanner:
    """Walks JSON text that may hold ``//`` and ``/* */`` comments."""

    def __init__(self, text: str, path: str):
        self.text = text
        self.path = path

    def fail(self, pos: int, what: str):
        line = self.text.count("\n", 0, pos) + 1
        raise DicomTlsError("not valid JSON (line %d): %s" % (line, what), self.path)

    def skip(self, pos: int) -> int:
        """Skip whitespace and comments."""
        text = self.text
        while pos < len(text):
            c = text[pos]
            if c in _WS:
                pos += 1
            elif text.startswith("//", pos):
                end = text.find("\n", pos)
                pos = len(text) if end < 0 else end + 1
            elif text.startswith("/*", pos):
                end = text.find("*/", pos + 2)
                if end < 0:
                    self.fail(pos, "unterminated /* comment")
                pos = end + 2
            else:
                break
        return pos

    def string_end(self, pos: int) -> int:
        """``pos`` at an opening quote; returns the index after the closing quote."""
        text = self.text
        i = pos + 1
        while i < len(text):
            c = text[i]
            if c == "\\":
                i += 2
                continue
            if c == '"':
                return i + 1
            if c == "\n":
                break
            i += 1
        self.fail(pos, "unterminated string")

    def value_end(self, pos: int) -> int:
        text = self.text
        if pos >= len(text):
            self.fail(pos, "value expected")
        c = text[pos]
        if c == '"':
            return self.string_end(pos)
        if c in "{[":
            depth = 0
            for kind, i, j in self.tokens(pos, len(text)):
                if not kind and text[i] in "{[":
                    depth += 1
                elif not kind and text[i] in "}]":
                    depth -= 1
                    if depth == 0:
                        return j
            self.fail(pos, "unbalanced brackets")
        i = pos
        while i < len(text) and text[i] not in ",}]" + _WS and not text.startswith(("//", "/*"), i):
            i += 1
        if i == pos:
            self.fail(pos, "value expected")
        return i

    def strip_comments(self, start: int, end: int) -> str:
        """The JSON of text[start:end] without comments, and without a comma before a closing
        bracket (jsoncpp, Orthanc's reader, allows one)."""
        out = []
        for kind, i, j in self.tokens(start, end):
            if kind:
                out.append(" " if kind == " " else self.text[i:j])
            elif self.text[i] != "," or self.skip(j) >= end or self.text[self.skip(j)] not in "}]":
                out.append(self.text[i])
        return "".join(out)

    def tokens(self, pos: int, end: int):
        """(kind, start, end) of each token from ``pos`` to ``end``: a run of whitespace and comments
        (kind " "), a string ('"'), or one other character (kind "")."""
        while pos < end:
            nxt = self.skip(pos)
            kind = " " if nxt > pos else '"' if self.text[pos] == '"' else ""
            if kind != " ":
                nxt = self.string_end(pos) if kind else pos + 1
            yield kind, pos, nxt
            pos = nxt


@dataclass
class Member:
    key: str
    value: object
    start: int  # value span in the file text
    end: int
    earlier: list = field(default_factory=list)  # the same key defined before in the file


@dataclass
class ConfigFile:
    path: str
    text: str
    members: dict[str, Member]
    close: int  # index of the closing brace of the top-level object


def parse(text: str, path: str) -> ConfigFile:
    """Top-level members of one configuration file, with the span of each value in the text."""
    sc = _Scanner(text, path)
    pos = sc.skip(1 if text.startswith("\ufeff") else 0)  # a UTF-8 BOM, as Orthanc (jsoncpp) accepts: kept
    if pos >= len(text) or text[pos] != "{":
        sc.fail(pos, "the file must hold one JSON object")
    pos = sc.skip(pos + 1)
    members: dict[str, Member] = {}
    while True:
        if pos >= len(text):
            sc.fail(pos, "unterminated object")
        if text[pos] == "}":
            close = pos
            break
        if text[pos] != '"':
            sc.fail(pos, "option name expected")
        kend = sc.string_end(pos)
        key = json.loads(text[pos:kend])
        pos = sc.skip(kend)
        if pos >= len(text) or text[pos] != ":":
            sc.fail(pos, "':' expected after %r" % key)
        vstart = sc.skip(pos + 1)
        vend = sc.value_end(vstart)
        try:
            value = json.loads(sc.strip_comments(vstart, vend), parse_constant=_refuse_constant)
        except ValueError:
            sc.fail(
                vstart,
                "the value of %r is not JSON (a string in double quotes, a number, true, false, null, "
                "an object or a list)" % key,
            )
        # defined twice in one file: Orthanc (jsoncpp) takes the last; a change is made to each
        earlier = members[key].earlier + [members[key]] if key in members else []
        members[key] = Member(key, value, vstart, vend, earlier)
        pos = sc.skip(vend)
        if pos < len(text) and text[pos] == ",":
            pos = sc.skip(pos + 1)
        elif pos < len(text) and text[pos] != "}":
            sc.fail(pos, "',' or '}' expected after %r" % key)
    if sc.skip(close + 1) != len(text):
        sc.fail(close + 1, "text after the closing brace")
    return ConfigFile(path, text, members, close)


def _refuse_constant(name: str):
    raise ValueError(name)  # NaN, Infinity: Python reads them, Orthanc (jsoncpp) refuses to start


def read_folder(config_dir: str) -> dict[str, ConfigFile]:
    """Every ``*.json`` file Orthanc reads from the folder, by file name."""
    if not os.path.isdir(config_dir):
        raise DicomTlsError("Orthanc configuration folder does not exist", config_dir)
    out = {}
    for name in sorted(os.listdir(config_dir)):
        full = os.path.join(config_dir, name)
        if name.endswith(".json") and os.path.isfile(full):
            out[name] = _parse_bytes(read_bytes(full, "Orthanc configuration file"), full)
    return out


def _parse_bytes(raw: bytes, path: str) -> ConfigFile:
    # bytes that are not UTF-8 (an editor's Latin-1) are kept as they are: jsoncpp reads them
    return parse(raw.decode("utf-8", "surrogateescape"), path)


def read_seed(seed_dir: str) -> dict[str, tuple[bytes, int]]:
    """Every regular file of the stock folder: name -> (bytes, mode)."""
    if not os.path.isdir(seed_dir):
        raise DicomTlsError("seed_dir is not a folder (the stock Orthanc configuration to start from)", seed_dir)
    out = {}
    for name in sorted(os.listdir(seed_dir)):
        full = os.path.join(seed_dir, name)
        if os.path.isfile(full):
            out[name] = (read_bytes(full, "stock Orthanc configuration file"), os.stat(full).st_mode & 0o7777)
    if "orthanc.json" not in out:
        raise DicomTlsError("seed_dir holds no orthanc.json (the stock Orthanc configuration to start from)", seed_dir)
    return out


def _line_indent(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    line = text[start:pos]
    return line[: len(line) - len(line.lstrip())]


@dataclass
class Plan:
    config_dir: str
    dropin: str
    changes: list[dict] = field(default_factory=list)  # {key, file, action, before, after}
    files: dict[str, str] = field(default_factory=dict)  # file name -> new text
    defined_in: dict[str, str] = field(default_factory=dict)  # key -> file name
    warnings: list[str] = field(default_factory=list)
    seed_dir: str | None = None
    seeded: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # copied from seed_dir: (bytes, mode)


def _lines(changes: list[dict], side: str) -> str:
    return "".join(
        "%s = %s\n" % (c["key"], json.dumps(c[side], sort_keys=True)) for c in changes if c[side] is not None
    )


def plan_actions(todo: Plan) -> list[reports.Action]:
    """The plan in the collection's one shape (reports.Action): one per file written, the reason naming
    the options that change in it (empty when nothing changes); the diff's sides are those options'
    values before and after."""
    out = []
    for name in written(todo):
        path = os.path.join(todo.config_dir, name)
        changes = [c for c in todo.changes if c["file"] == name]
        keys = ["%s %s" % (c["key"], c["action"]) for c in changes]
        if name in todo.seeded:
            keys.insert(0, "copied from %s" % os.path.join(todo.seed_dir, name))
        action = "updated" if os.path.lexists(path) else "created"
        out.append(
            reports.Action(
                path,
                action,
                ", ".join(keys) or "rewritten",
                before=_lines(changes, "before"),
                after=_lines(changes, "after"),
            )
        )
    return out


def written(todo: Plan) -> list[str]:
    """The file names the plan writes (changed files and the copies from seed_dir)."""
    return sorted(set(todo.files) | set(todo.seeded))


def plan(config_dir: str, settings: dict, dropin: str = "dicom-tls.json", seed_dir: str | None = None) -> Plan:
    """What to write so that each option of ``settings`` has its value, defined exactly once;
    with ``seed_dir``, a folder without orthanc.json is first planned as a copy of seed_dir."""
    if not dropin.endswith(".json") or os.sep in dropin:
        raise DicomTlsError("the drop-in must be a file name ending in .json, got %r" % dropin, config_dir)
    seeded: dict[str, tuple[bytes, int]] = {}
    if seed_dir and not os.path.lexists(os.path.join(config_dir, "orthanc.json")):
        seeded = read_seed(seed_dir)
        files = {
            name: _parse_bytes(data, os.path.join(seed_dir, name))
            for name, (data, _mode) in seeded.items()
            if name.endswith(".json")
        }
    else:
        files = read_folder(config_dir)
    elsewhere: dict[str, list[str]] = {}  # option -> the files besides the drop-in that define it
    for name, cfg in files.items():
        for key in cfg.members if name != dropin else ():
            elsewhere.setdefault(key, []).append(name)
    for key, others in sorted(elsewhere.items()):
        if len(others) > 1:
            raise DicomTlsError(
                "option %r is defined in %s: Orthanc refuses to start; keep it in one file"
                % (key, " and ".join(os.path.join(config_dir, n) for n in others)),
                config_dir,
            )
    result = Plan(config_dir, dropin, seed_dir=seed_dir if seeded else None, seeded=seeded)

    def change(key, name, action, before, after=None):
        result.changes.append({"key": key, "file": name, "action": action, "before": before, "after": after})

    edits: dict[str, list[tuple[int, int, str]]] = {}
    dropin_cfg = files.get(dropin)
    dropin_values = {k: m.value for k, m in dropin_cfg.members.items()} if dropin_cfg else {}
    new_dropin = dict(dropin_values)
    # Options another file defines do not belong in the drop-in (Orthanc would refuse to start).
    for key in list(new_dropin):
        if key in elsewhere:
            if key not in settings:
                change(key, dropin, "removed duplicate", new_dropin[key])
            del new_dropin[key]
    for key in sorted(settings):
        value = settings[key]
        if key in elsewhere:
            name = elsewhere[key][0]
            cfg = files[name]
            member = cfg.members[key]
            result.defined_in[key] = name
            if member.value != value or type(member.value) is not type(value):
                newline = "\r\n" if "\r\n" in cfg.text else "\n"  # the file's own line endings
                for m in member.earlier + [member]:
                    indent = newline + _line_indent(cfg.text, m.start)
                    new = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", indent)
                    edits.setdefault(name, []).append((m.start, m.end, new))
                change(key, name, "set", member.value, value)
            if key in dropin_values:
                change(key, dropin, "removed duplicate", dropin_values[key])
        else:
            result.defined_in[key] = dropin
            before = dropin_values.get(key)
            new_dropin[key] = value
            if key not in dropin_values or before != value or type(before) is not type(value):
                change(key, dropin, "set" if key in dropin_values else "added", before, value)
    for name, spans in edits.items():
        text = files[name].text
        for start, end, new in sorted(spans, reverse=True):
            text = text[:start] + new + text[end:]
        result.files[name] = text
    if any(c["file"] == dropin for c in result.changes):
        result.files[dropin] = json.dumps(new_dropin, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        if dropin_cfg is not None and _has_comments(dropin_cfg.text, os.path.join(config_dir, dropin)):
            result.warnings.append(
                "%s is rewritten as plain JSON: its comments are lost (Debian's stock orthanc.json documents"
                " every option in comments); keep the stock file and let the drop-in be a file of its own"
                % os.path.join(config_dir, dropin)
            )
    return result


def _has_comments(text: str, path: str) -> bool:
    """Does the JSON text hold // or /* */ comments (outside strings)? A trailing comma is not one."""
    return any(kind == " " and "/" in text[s:e] for kind, s, e in _Scanner(text, path).tokens(0, len(text)))


def apply(p: Plan, mode: int = 0o644, backup: bool = False) -> list[str]:
    """Write the changed files; with ``backup``, keep a timestamped copy of each one first.
    Returns the copies made."""
    backups = []
    if p.seeded:
        make_dirs(p.config_dir)
        for name, (data, seed_mode) in sorted(p.seeded.items()):
            if name not in p.files:
                atomic_write(os.path.join(p.config_dir, name), data, seed_mode)
    for name, text in sorted(p.files.items()):
        path = os.path.join(p.config_dir, name)
        file_mode = p.seeded[name][1] if name in p.seeded else mode
        if os.path.exists(path):
            file_mode = os.stat(path).st_mode & 0o7777
            if backup:
                backups.append(backup_copy(path))
        atomic_write(path, text.encode("utf-8", "surrogateescape"), file_mode)
    return backups


def check_private_key_usable(path: str) -> None:
    """Orthanc cannot read a passphrase-protected key: say so before it fails to start."""
    if b"ENCRYPTED" in (read_optional(path) or b""):  # PKCS#8 and the old Proc-Type: 4,ENCRYPTED alike
        raise DicomTlsError(
            "the private key is passphrase-protected; Orthanc (DicomTlsPrivateKey) cannot read it",
            path,
        )


TLS_FILE_SETTINGS = ("DicomTlsCertificate", "DicomTlsPrivateKey", "DicomTlsTrustedCertificates")


def config_roles(config_dir: str, dropin: str, settings: dict) -> tuple[list, list]:
    """(outputs, inputs) as ``(name, path)`` pairs for options.check_distinct_paths: the drop-in the
    module writes, and the TLS files Orthanc reads (relative names are taken from the configuration
    folder, as check_private_key_usable reads them)."""
    outputs = [("dropin", os.path.join(config_dir, dropin))] if isinstance(dropin, str) else []
    inputs = []
    for key in TLS_FILE_SETTINGS:
        value = settings.get(key) if isinstance(settings, dict) else None
        if isinstance(value, str) and value.strip():
            inputs.append(("settings.%s" % key, value if value.startswith("/") else os.path.join(config_dir, value)))
    return outputs, inputs
