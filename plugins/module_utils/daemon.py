# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A listener (storescp, Orthanc) run as a pid-file daemon, for hosts without systemd
(containers, CI). Started detached in its own session, output to a log file, found again by
its PID file and its command line (a recycled PID is not mistaken for it), stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

from ansible_collections.medimg.dicom_tls.plugins.module_utils import reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import (
    atomic_write,
    make_dirs,
    make_parent_dirs,
    open_append,
    read_optional,
    remove,
)


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str] | None:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return [p.decode("utf-8", "surrogateescape") for p in raw.split(b"\0")[:-1]]


def running_pid(pidfile: str, command: list[str] | None = None) -> tuple[int | None, list[str] | None]:
    """(PID, its command line) of the process the PID file names, when it is alive; else (None, None).

    With ``command``, a live process whose executable differs is not ours (a recycled PID)."""
    try:
        pid = int((read_optional(pidfile) or b"").split()[0])  # no file, or no number in it: not running
    except (ValueError, IndexError):
        return None, None
    argv = cmdline(pid) if _alive(pid) else None
    if not argv or (command and os.path.basename(argv[0]) != os.path.basename(command[0])):
        return None, None
    return pid, argv


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: str | None, n: int = 2000) -> str:
    if not path:
        return ""
    try:
        with open(path, errors="replace") as fh:
            return fh.read()[-n:]
    except OSError:
        return ""


def start(
    name: str,
    command: list[str],
    pidfile: str,
    log_path: str | None = None,
    chdir: str | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    env: dict | None = None,
    mode: int = 0o644,
) -> int:
    """Start ``command`` detached, write its PID (a new PID file and log are created with ``mode``),
    wait until ``port`` accepts connections."""
    if not os.path.isfile(command[0]) or not os.access(command[0], os.X_OK):
        raise DicomTlsError("%s: executable not found" % name, command[0])
    if port and port_open(host, port):
        raise DicomTlsError("%s: port %d on %s is already in use by another process" % (name, port, host), pidfile)
    for path in (pidfile, log_path):
        if path:
            make_parent_dirs(path)
    if chdir:
        make_dirs(chdir)
    log = open_append(log_path, mode) if log_path else open_append(os.devnull)
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=chdir or "/",
            env=dict(os.environ, **(env or {})),
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise DicomTlsError("%s: cannot start: %s" % (name, exc.strerror), command[0]) from None
    finally:
        log.close()
    atomic_write(pidfile, b"%d\n" % proc.pid, mode)
    if port:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                with contextlib.suppress(OSError):
                    remove(pidfile)
                raise DicomTlsError(
                    "%s exited with status %s before opening port %d; last output:\n%s"
                    % (name, proc.returncode, port, _tail(log_path)),
                    log_path or command[0],
                )
            if port_open(host, port):
                return proc.pid
            time.sleep(0.05)
        stop(pidfile, proc.pid)
        raise DicomTlsError(
            "%s did not open port %d within %.0fs; last output:\n%s" % (name, port, timeout, _tail(log_path)),
            log_path or command[0],
        )
    return proc.pid


def stop(pidfile: str, pid: int, timeout: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
    remove(pidfile)


def plan(state: str, command: list[str], pidfile: str) -> tuple[str | None, str]:
    """(action, reason): action is None (nothing to do), ``started``, ``restarted`` or ``stopped``, the
    words of the collection's plan shape."""
    pid, argv = running_pid(pidfile, command)
    if state == "stopped":
        return ("stopped", "running as PID %d" % pid) if pid else (None, "not running")
    if state == "restarted":
        return ("restarted", "restart requested") if pid else ("started", "not running")
    if not pid:
        return "started", "not running"
    if argv != list(command):
        return "restarted", "command line changed"
    return None, "running as PID %d" % pid


def plan_actions(action: str | None, reason: str, pidfile: str, pid: int | None = None) -> list[reports.Action]:
    """The plan in the collection's one shape (reports.Action) for the listener's PID file (started,
    restarted or stopped); empty when nothing is to be done. ``pid`` is the running listener's, for the diff."""
    if action is None:
        return []
    before = {"pid": pid} if pid else {"state": "absent"}
    return [reports.Action(pidfile, action, reason, before=before)]
