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


def run_together(runs: list[tuple[str, dict]], timeout: float = 120) -> list[tuple[int, dict | None]]:
    """Start the module runs ``[(name, args), ...]`` at once and let them go on together from their
    first lock request (files.py's DICOM_TLS_LOCK_RENDEZVOUS hook): every run has parsed its options
    and stands just before the lock when all are released, so the test does not depend on how fast
    each process starts. No sleeps: the test blocks on a FIFO until each run has arrived."""
    import select
    import shutil
    import tempfile
    import time

    where = tempfile.mkdtemp(prefix="rendezvous.")
    os.mkfifo(os.path.join(where, "arrived"))
    os.mkfifo(os.path.join(where, "go"))
    arrived = os.open(os.path.join(where, "arrived"), os.O_RDWR | os.O_NONBLOCK)
    go = os.open(os.path.join(where, "go"), os.O_RDWR)
    procs = []
    try:
        for name, args in runs:
            env = dict(os.environ, DICOM_TLS_LOCK_RENDEZVOUS=where)
            env.pop("DICOM_TLS_CRASH_AFTER_STEP", None)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", CODE, name, json.dumps(args), "0"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        seen, buf, deadline = 0, b"", time.monotonic() + timeout
        while seen < len(procs):
            ready, _w, _x = select.select([arrived], [], [], 1.0)  # wakes on arrival; 1 s bounds each wait
            if ready:
                buf += os.read(arrived, 4096)
                seen = buf.count(b"\n")
                continue
            gone = [p for p in procs if p.poll() is not None]
            if gone or time.monotonic() > deadline:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                errors = "; ".join((p.communicate()[1] or "")[-2000:] for p in procs)
                raise AssertionError("a run ended or hung before reaching its lock: %s" % errors)
        os.write(go, b"x" * len(procs))
        return [result(p, timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        os.close(arrived)
        os.close(go)
        shutil.rmtree(where, ignore_errors=True)
