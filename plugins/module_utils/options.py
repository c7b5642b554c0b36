# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option checks every module runs before it reads or writes anything.

Ansible converts types; this checks what Ansible lets through: NUL bytes, empty or overlong paths,
NaN and infinities (also inside dicts and lists), integers and durations outside what the libraries
and X.509 can hold, oversized texts and passphrases. Each failure is one sentence naming the option."""

from __future__ import annotations

import datetime
import math

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


def guard(module, ranges: dict | None = None) -> None:
    """check_params plus the module's ranges; fail_json on the first problem, before any I/O.

    ``ranges``: option -> (low, high, unit) for integers, or (low, high, unit, 'float'[, low_open]) for numbers;
    a dotted name ``parent.child`` applies to each element of a list of dicts."""
    try:
        check_params(module.argument_spec, module.params)
        for option, bounds in (ranges or {}).items():
            low, high, unit = bounds[:3]
            is_float = len(bounds) > 3 and bounds[3] == "float"
            low_open = len(bounds) > 4 and bounds[4]
            parent, _sep, child = option.partition(".")
            if child:
                values = [
                    ("%s[%d].%s" % (parent, i, child), item.get(child))
                    for i, item in enumerate(module.params.get(parent) or [])
                    if isinstance(item, dict)
                ]
            else:
                values = [(option, module.params.get(option))]
            for name, value in values:
                if is_float:
                    check_number(name, value, low, high, unit, low_open)
                else:
                    check_int(name, value, low, high, unit)
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
