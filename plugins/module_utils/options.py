# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option checks every module runs before it reads or writes anything.

Ansible converts types; this checks what Ansible lets through: NUL bytes, empty or overlong paths,
NaN and infinities (also inside dicts and lists), integers and durations outside what the libraries
and X.509 can hold, oversized texts and passphrases. Each failure is one sentence naming the option."""

from __future__ import annotations

import datetime
import grp
import math
import os
import pwd
import re

from ansible.module_utils import basic
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError

_UTC = datetime.timezone(datetime.timedelta(0))
PATH_MAX = 4095
NAME_MAX = 255
TEXT_MAX = 1024 * 1024  # PEM bundles and settings; nothing legitimate comes near
PASSPHRASE_MAX = 1023  # OpenSSL's PEM_BUFSIZE - 1
NEST_MAX = 32  # dict/list depth of a raw or dict option


def days_max() -> int:
    """The most days from now that still fit an X.509 date (GeneralizedTime ends at 9999-12-31)."""
    last = datetime.datetime(9999, 12, 31, tzinfo=_UTC)
    return (last - datetime.datetime.now(_UTC)).days - 1


def check_int(name: str, value, low: int, high: int, unit: str = "") -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise DicomTlsError("%s must be an integer, got %r" % (name, value))
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 24 else "%s... (%d digits)" % (str(value)[:12], len(str(value)))
        raise DicomTlsError("%s %s is out of range: %d to %d%s" % (name, shown, low, high, unit))


def check_number(name: str, value, low: float, high: float, unit: str = "", low_open: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DicomTlsError("%s must be a number, got %r" % (name, value))
    if isinstance(value, float) and not math.isfinite(value):
        raise DicomTlsError("%s must be a finite number, got %s" % (name, value))
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        shown = "%g" % value if abs(value) < 1e300 else ("a %d-digit number" % len(str(int(value))))
        raise DicomTlsError(
            "%s %s is out of range: %s%g to %g%s" % (name, shown, "above " if low_open else "", low, high, unit)
        )


def octal_mode(name: str, value, default: int = 0o644) -> int:
    """A file mode option as Ansible reads one: an int is the mode itself (YAML's 0644), a string is octal."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise DicomTlsError("%s must be an octal mode like '0644', got %r" % (name, value))
    if isinstance(value, int):
        mode = value
    else:
        text = str(value)
        if not text or len(text) > 6 or any(c not in "01234567" for c in text):
            raise DicomTlsError("%s must be an octal mode like '0644', got %r" % (name, text[:40]))
        mode = int(text, 8)
    if not 0 <= mode <= 0o7777:
        raise DicomTlsError("%s %s is out of range: 0000 to 7777 (octal)" % (name, oct(mode)[2:][:24]))
    return mode


_SYMBOLIC = re.compile(r"^[ugoa]*([-+=]([rwxXst]*|[ugo]))+$")
CHATTR_FLAGS = "aAcCdDeFijmPsStTux"  # what chattr(1) sets


def check_mode(name: str, value, symbolic: bool) -> None:
    """A mode Ansible's file options would accept (octal, or symbolic like u=rw,g=r where the module takes it)."""
    if value is None:
        return
    if isinstance(value, str) and symbolic and not re.fullmatch(r"[0-7]+", value):
        clauses = value.split(",")
        if value and len(value) <= 64 and all(_SYMBOLIC.match(c) for c in clauses):
            return
        raise DicomTlsError("%s must be octal like '0644' or symbolic like 'u=rw,g=r,o=r', got %r" % (name, value[:40]))
    octal_mode(name, value)


def principal_id(name: str, value, kind: str, lookup) -> int:
    """The number of an owner (``kind`` user, ``lookup`` pwd.getpwnam) or group (grp.getgrnam) given by
    name or number; -1 when ``value`` is empty."""
    text = str(value or "")
    if not text:
        return -1
    try:
        return int(text) if text.isdigit() else lookup(text)[2]  # pw_uid / gr_gid
    except KeyError:
        raise DicomTlsError("%s: no such %s %r on this host" % (name, kind, text[:64])) from None


# owner and group: an existing user or group (by name or number) that the running user may give files
# to, when not root: only itself (a user), a group it belongs to.
_PRINCIPALS = {
    "owner": ("user", pwd.getpwnam, lambda uid: uid == os.geteuid(), "only root can give files to another user"),
    "group": (
        "group",
        grp.getgrnam,
        lambda gid: gid == os.getegid() or gid in os.getgroups(),
        "the running user is not in that group",
    ),
}


def _check_principal(name: str, value) -> None:
    kind, lookup, may_give, refusal = _PRINCIPALS[name]
    if value is None:
        return
    text = str(value)
    if not text.strip():
        raise DicomTlsError("%s is empty (leave it out to keep the %s)" % (name, name))
    number = principal_id(name, text, kind, lookup)
    if os.geteuid() != 0 and not may_give(number):
        raise DicomTlsError("%s %s: %s (use become: true)" % (name, text, refusal))


def check_file_options(spec: dict, params: dict) -> None:
    """mode, owner, group and attributes checked before anything is written (Ansible applies them after)."""
    symbolic = "unsafe_writes" in spec  # Ansible's own file options take symbolic modes
    if "mode" in spec:
        check_mode("mode", params.get("mode"), symbolic)
    for name in ("owner", "group"):
        if name in spec:
            _check_principal(name, params.get(name))
    text = str(params.get("attributes")) if "attributes" in spec and params.get("attributes") is not None else None
    flags = text[1:] if text and text[:1] in "+-=" else text
    if text is not None and (not flags or any(c not in CHATTR_FLAGS for c in flags)):
        raise DicomTlsError("attributes must be chattr flags like '+i' (%s), got %r" % (CHATTR_FLAGS, text[:40]))


def _walk(name: str, value, depth: int = 0) -> None:
    """NaN, infinities, NUL bytes and runaway nesting anywhere inside a value."""
    if depth > NEST_MAX:
        raise DicomTlsError("%s nests deeper than %d levels" % (name, NEST_MAX))
    if isinstance(value, float) and not math.isfinite(value):
        raise DicomTlsError(
            "%s holds %s, which JSON, YAML files and the programs reading them do not accept" % (name, value)
        )
    if isinstance(value, str):
        if "\x00" in value:
            raise DicomTlsError("%s contains a NUL byte" % name)
        if has_private_key(value):
            raise DicomTlsError(
                "%s holds a PEM private key: refused (and masked in the output); a private key never travels"
                " in a task's options, give its path on the host that uses it" % name
            )
        if len(value) > TEXT_MAX:
            raise DicomTlsError("%s is longer than %d characters" % (name, TEXT_MAX))
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk("%s.%s" % (name, key), key, depth + 1)
            _walk("%s.%s" % (name, key), item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _walk("%s[%d]" % (name, index), item, depth + 1)


def check_path(name: str, value) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise DicomTlsError("%s is empty" % name)
    if "\x00" in value:
        raise DicomTlsError("%s contains a NUL byte" % name)
    if len(value.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise DicomTlsError("%s is longer than %d bytes (PATH_MAX)" % (name, PATH_MAX))
    for part in value.split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise DicomTlsError("%s has a file name longer than %d bytes: %s..." % (name, NAME_MAX, part[:40]))


def _identity(path: str):
    """What makes two names the same file: the device and inode when it exists, else the resolved path."""
    try:
        st = os.stat(path)
        return ("inode", st.st_dev, st.st_ino)
    except (OSError, ValueError):
        return ("path", os.path.realpath(os.path.abspath(path)))


def _values_of(params: dict, option: str) -> list:
    """(name, value) for an option; ``parent.child`` for each element of a list of dicts."""
    parent, _sep, child = option.partition(".")
    if not child:
        value = params.get(option)
        if isinstance(value, list):
            return [("%s[%d]" % (option, i), v) for i, v in enumerate(value)]
        return [(option, value)]
    out = []
    for i, item in enumerate(params.get(parent) or []):
        if isinstance(item, dict):
            out.append(("%s[%d].%s" % (parent, i, child), item.get(child)))
    return out


def check_distinct(params: dict, outputs: tuple = (), inputs: tuple = ()) -> None:
    """Each file the module writes has one role: two output options naming the same file, or an output
    naming one of the module's inputs (issuer key, certificate, ...), would overwrite one with the other."""
    check_distinct_paths(
        [pair for option in outputs for pair in _values_of(params, option)],
        [pair for option in inputs for pair in _values_of(params, option)],
    )


def _identified(pairs):
    """``(name, path, identity)`` for each ``(name, path)`` pair whose path is a non-empty string."""
    return ((name, value, _identity(value)) for name, value in pairs if value and isinstance(value, str))


def check_distinct_paths(outputs, inputs=()) -> None:
    """``check_distinct`` over ``(name, path)`` pairs, for files a module derives from its options
    (``DIRECTORY/TOOL.args``, ``dest/NAME.pem``, a setting's file relative to a folder)."""
    seen: dict = {}
    for name, value, ident in _identified(outputs):
        if ident in seen:
            raise DicomTlsError(
                "%s and %s name the same file %s: each role needs its own file" % (seen[ident], name, value)
            )
        seen[ident] = name
    for name, value, ident in _identified(inputs):
        if ident in seen:
            raise DicomTlsError(
                "%s names the same file as %s (%s): writing it would destroy that input" % (seen[ident], name, value)
            )


def guard_distinct(module, outputs, inputs=()) -> None:
    """``check_distinct_paths`` for a module: fail_json on the first collision, before any write."""
    try:
        check_distinct_paths(outputs, inputs)
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)


def check_params(spec: dict, params: dict, prefix: str = "") -> None:
    """Walk an argument spec and its (already type-converted) values."""
    for key, opt in spec.items():
        value = params.get(key) if isinstance(params, dict) else None
        name = prefix + key
        if value is None:
            continue
        kind = opt.get("type", "str")
        elements = opt.get("elements")
        if kind == "path":
            check_path(name, value)
        elif kind == "list" and elements == "path":
            for index, item in enumerate(value):
                check_path("%s[%d]" % (name, index), item)
        elif opt.get("no_log") and isinstance(value, str) and len(value.encode("utf-8")) > PASSPHRASE_MAX:
            raise DicomTlsError("%s is longer than %d bytes, the most OpenSSL accepts" % (name, PASSPHRASE_MAX))
        _walk(name, value)
        if opt.get("options"):
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    continue
                where = "%s[%d]." % (name, index) if isinstance(value, list) else name + "."
                check_params(opt["options"], item, where)


_KEY_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S)


def has_private_key(text: str) -> bool:
    """A PEM private key block (PKCS#8, RSA, EC, encrypted, OpenSSH) in ``text``."""
    return "PRIVATE KEY-----" in text and _KEY_BLOCK.search(text) is not None


def key_material(value, depth: int = 0) -> set:
    """The strings to mask wherever ``value`` (an option, nested or not) holds private key material:
    the whole text, each PEM private key block, and each line of its body (so the key is masked in a
    message quoting one line, and in Ansible's one-line invocation log of a list or dict option)."""
    out: set = set()
    if depth > NEST_MAX:
        return out
    if isinstance(value, str):
        if not has_private_key(value):
            return out
        out.add(value)
        for block in _KEY_BLOCK.finditer(value):
            out.add(block.group(0))
            for line in block.group(0).splitlines():
                line = line.strip()
                if len(line) >= 16 and not line.startswith("-----") and ":" not in line:
                    out.add(line)
    elif isinstance(value, dict):
        for key, item in value.items():
            out |= key_material(key, depth + 1) | key_material(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            out |= key_material(item, depth + 1)
    return out


def _masked_keys(value, depth: int = 0):
    """``value`` with dict keys that hold key material replaced (Ansible masks values, not keys)."""
    if depth > NEST_MAX:
        return value
    if isinstance(value, dict):
        return {
            ("********" if isinstance(k, str) and has_private_key(k) else k): _masked_keys(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_masked_keys(v, depth + 1) for v in value]
    return value


class AnsibleModule(basic.AnsibleModule):
    """Ansible's AnsibleModule, with any option value that holds private key material treated as no_log:
    masked in the result (the task's invocation under -vvv, ANSIBLE_LOG_PATH), in messages, and in the
    "Invoked with" line logged on the managed host. A key pasted into a certificate option by mistake
    is refused, and never printed back."""

    def _mask_key_material(self) -> None:
        params = getattr(self, "params", None) or {}
        no_log_values = getattr(self, "no_log_values", None)
        found = key_material(params)
        if no_log_values is not None and found:
            no_log_values.update(found)
            self.params = _masked_keys(params)  # the result's invocation shows self.params

    def _log_invocation(self):
        self._mask_key_material()
        super()._log_invocation()

    def fail_json(self, msg, **kwargs):
        self._mask_key_material()  # argument validation fails inside __init__, before _log_invocation
        super().fail_json(msg, **kwargs)


def guard(module, ranges: dict | None = None, outputs: tuple = (), inputs: tuple = ()) -> None:
    """check_params plus the module's ranges; fail_json on the first problem, before any write.
    ``outputs``/``inputs``: path options the module writes / reads (check_distinct).

    ``ranges``: option -> (low, high, unit) for integers, or (low, high, unit, 'float'[, low_open]) for numbers;
    a dotted name ``parent.child`` applies to each element of a list of dicts."""
    try:
        check_params(module.argument_spec, module.params)
        check_file_options(module.argument_spec, module.params)
        for option, bounds in (ranges or {}).items():
            check = check_number if bounds[3:4] == ("float",) else check_int
            for name, value in _values_of(module.params, option):
                check(name, value, *bounds[:3], *bounds[4:5])  # low, high, unit[, low_open]
        check_distinct(module.params, outputs, inputs)
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
