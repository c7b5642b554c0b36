"""Hostile inputs against every option of every module (property-based), in-process.

Each run starts from a valid task in a fresh copy of a workspace, replaces one option with a hostile
value and asserts: the module ends through exit_json or fail_json (no traceback); a refusal names
the option or a file in the collection's words (no library text); a refusal changed nothing on disk."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import module_run
from support.hostile import HOSTILE, KEY_LINES, Workspace, check_refusal, snapshot

# Options whose values a run would send to a resolver or a peer: only syntactically hostile values.
NETWORK_NAMES = {("dicom_tls_echo", "host"), ("dicom_tls_echo", "server_name"), ("dicom_tls_echo", "targets.host")}
NETWORK_NAMES |= {("dicom_tls_echo", "targets.server_name")}
SAFE_NAMES = ["", " ", "\x00", "a" * 300, "-x", "127.0.0.1\n", "a..b", "[::1", "a b", "a/b", "x" * 64 + ".test"]


def _all_options():
    out = []
    for name in module_run.MODULES:
        for option, spec in module_run.options(module_run.argument_spec(name)):
            out.append((name, option, spec.get("type", "str")))
    return out


ALL_OPTIONS = _all_options()


def _hostile_paths(work: str, args: dict) -> list:
    fifo = os.path.join(work, "fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    others = [v for v in args.values() if isinstance(v, str) and v.startswith(work)]
    return [
        "",
        "\x00",
        os.path.join(work, "nonexistent", "x"),
        work,
        fifo,
        "a/" * 3000,
        os.path.join(work, "x" * 300),
    ] + others


def _values(module: str, option: str, kind: str):
    if (module, option) in NETWORK_NAMES:
        return st.sampled_from(SAFE_NAMES)
    fixed = st.sampled_from(HOSTILE.get(kind, HOSTILE["raw"]))
    generic = {
        "int": st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
        "float": st.floats(allow_nan=True, allow_infinity=True),
        "str": st.text(max_size=40),
        "bool": st.sampled_from(["maybe", 2, -1]),
        "list": st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=10)), max_size=4),
        "dict": st.dictionaries(st.text(max_size=8), st.one_of(st.floats(), st.integers(), st.none()), max_size=3),
    }.get(kind, st.one_of(st.integers(), st.floats(), st.text(max_size=20)))
    return st.one_of(fixed, generic)


def set_option(args: dict, option: str, value) -> dict:
    args = dict(args)
    if "." in option:
        parent, child = option.split(".", 1)
        items = args.get(parent) or [{}]
        if isinstance(items, dict):
            items = dict(items)
            items[child] = value
        else:
            items = [dict(items[0], **{child: value})] + list(items[1:])
        args[parent] = items
    else:
        args[option] = value
    return args


def assert_no_key_material(module: str, option: str, result: dict) -> None:
    """A private key given in any option never comes back in the result (invocation, msg, ...)."""
    text = json.dumps(result.pop("_shown"), default=str)
    for line in KEY_LINES:
        assert line not in text, "%s %s: private key material in the result: %s" % (module, option, text[:300])


def hostile_run(ws: Workspace, module: str, option: str, value) -> dict:
    """One run with one hostile option; returns the result after asserting the contract."""
    work = ws.copy()
    cwd = os.getcwd()
    try:
        args = ws.base(module, work)
        if value == "<paths>":
            raise AssertionError("unreachable")
        if isinstance(value, tuple) and value and value[0] == "<path>":
            value = _hostile_paths(work, args)[value[1]]
        args = set_option(args, option, value)
        before = snapshot(work)
        os.chdir(work)
        failed, result = module_run.run(module, args)
        os.chdir(cwd)
        assert_no_key_material(module, option, result)
        if failed and not result.get("results"):  # results: the module ran and reports outcomes
            check_refusal(option, args, result)
            assert snapshot(work) == before, "%s %s=%r failed after changing files" % (module, option, value)
        return result
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


def test_options_counted():
    """Every module and every option of it (file options Ansible adds included) is in the property test;
    at least 228 options (268 in 15 modules when this was last counted)."""
    modules_dir = os.path.join(os.path.dirname(module_run.__file__), "..", "..", "plugins", "modules")
    shipped = sorted(f[:-3] for f in os.listdir(modules_dir) if f.endswith(".py") and not f.startswith("_"))
    assert sorted(module_run.MODULES) == shipped
    assert len(ALL_OPTIONS) >= 228, len(ALL_OPTIONS)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_hostile_option_values(workspace, data):
    module, option, kind = data.draw(st.sampled_from(ALL_OPTIONS), label="option")
    if kind == "path" or (kind == "list" and option.endswith(("path", "certs", "files"))):
        value = ("<path>", data.draw(st.integers(0, 6), label="path"))
    else:
        value = data.draw(_values(module, option, kind), label="value")
    hostile_run(workspace, module, option, value)


@pytest.mark.parametrize(("module", "option", "kind"), ALL_OPTIONS, ids=["%s.%s" % o[:2] for o in ALL_OPTIONS])
def test_every_option_every_fixed_value(workspace, module, option, kind):
    """Each option against each fixed hostile value of its type (the same checks, exhaustively)."""
    if kind == "path":
        values = [("<path>", i) for i in range(7)]
    elif (module, option) in NETWORK_NAMES:
        values = SAFE_NAMES
    else:
        values = HOSTILE.get(kind, HOSTILE["raw"])
    for value in values:
        hostile_run(workspace, module, option, value)
