"""Run a module's main() in a child process (so it can be killed or run twice at once).

``start`` returns the Popen; ``result`` waits and returns (returncode, result dict or None).
``DICOM_TLS_CRASH_AFTER_STEP=k`` in ``env`` makes files.py SIGKILL the child after its k-th
durable step (temporary written, rename, unlink), as kill -9 or a power cut would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODE = """
import json, sys
sys.path[:0] = [%r, %r]
from support import module_run
failed, result = module_run.run(sys.argv[1], json.loads(sys.argv[2]), check_mode=sys.argv[3] == "1")
print(json.dumps(dict(result, failed=failed), default=str))
""" % (os.path.join(ROOT, ".build", "collections"), os.path.join(ROOT, "tests"))


def start(name: str, args: dict, crash_after: int | None = None, check_mode: bool = False) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("DICOM_TLS_CRASH_AFTER_STEP", None)
    if crash_after is not None:
        env["DICOM_TLS_CRASH_AFTER_STEP"] = str(crash_after)
    return subprocess.Popen(
        [sys.executable, "-c", CODE, name, json.dumps(args), "1" if check_mode else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def result(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, dict | None]:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        return proc.returncode, None
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, err
    return 0, json.loads(lines[-1])


def run(name: str, args: dict, crash_after: int | None = None, check_mode: bool = False) -> tuple[int, dict | None]:
    return result(start(name, args, crash_after, check_mode))
