"""Real DICOM TLS listeners for the tests: dcmtk storescp and Orthanc on 127.0.0.1.

Each listener runs as a child process, is waited for until its port accepts connections, and is
stopped by PID. Usable from pytest (``StoreSCP(...)`` as a context manager) and from a shell
or a playbook::

    python tests/support/servers.py storescp --pidfile X --port P -- +tls key crt +cf ca.pem
    python tests/support/servers.py stop --pidfile X

The test suite runs inside a network namespace with only loopback (scripts/netns.sh), because
neither storescp 3.6.7 nor Orthanc 1.10.1 can be told to bind to 127.0.0.1 alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

LOOPBACK = "127.0.0.1"
# pynetdicom installs its own storescp/echoscu/storescu into the venv's bin: always call dcmtk's.
DCMTK_BIN = os.environ.get("DCMTK_BIN", "/usr/bin")


def dcmtk(tool: str) -> str:
    """Absolute path of a dcmtk command-line tool (storescp, echoscu, dcmsign, ...)."""
    return os.path.join(DCMTK_BIN, tool)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_port(
    port: int, proc: subprocess.Popen | None = None, timeout: float = 20.0, log: str = "", host: str = LOOPBACK
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                "listener exited with %s before opening port %d\n%s" % (proc.returncode, port, _tail(log))
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d not open after %.0fs\n%s" % (port, timeout, _tail(log)))


def _tail(path: str, n: int = 4000) -> str:
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as fh:
        return fh.read()[-n:]


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:  # not our child: poll for existence
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


class Listener:
    """A child process listening on a loopback port; stop() ends it by PID."""

    def __init__(self, argv: list[str], port: int, workdir: str, env: dict | None = None):
        self.argv = argv
        self.port = port
        self.workdir = workdir
        self.log = os.path.join(workdir, "listener.log")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir, env=env
            )
        self.pid = self.proc.pid
        try:
            wait_port(port, self.proc, log=self.log)
        except Exception:
            self.stop()
            raise

    def output(self) -> str:
        return _tail(self.log, 100000)

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop_pid(self.pid)
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class StoreSCP(Listener):
    """dcmtk storescp with the given options (``+tls key cert +cf ca.pem``, ``+cd DIR +crv``, ...)."""

    def __init__(self, options: list[str], workdir: str, aet: str = "STORESCP", port: int | None = None):
        port = port or free_port()
        out = os.path.join(workdir, "received")
        os.makedirs(out, exist_ok=True)
        argv = [dcmtk("storescp"), "-d", "-aet", aet, "-od", out, *options, str(port)]
        super().__init__(argv, port, workdir)
        self.aet = aet


class Orthanc(Listener):
    """Orthanc with DICOM TLS; ``settings`` are merged into a minimal configuration."""

    def __init__(self, workdir: str, settings: dict, aet: str = "ORTHANC"):
        dicom_port, http_port = free_port(), free_port()
        storage = os.path.join(workdir, "db")
        os.makedirs(storage, exist_ok=True)
        config = {
            "Name": "test",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "DicomAet": aet,
            "DicomPort": dicom_port,
            "HttpPort": http_port,
            "RemoteAccessAllowed": False,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "Plugins": [],
        }
        config.update(settings)
        confdir = os.path.join(workdir, "config")
        os.makedirs(confdir, exist_ok=True)
        with open(os.path.join(confdir, "orthanc.json"), "w") as fh:
            json.dump(config, fh, indent=2)
        binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        super().__init__([binary, "--verbose", confdir], dicom_port, workdir)
        self.aet = aet
        self.http_port = http_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("storescp", help="start storescp in the background, write its PID")
    s.add_argument("--pidfile", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--aet", default="STORESCP")
    s.add_argument("--workdir", default=None)
    s.add_argument("options", nargs=argparse.REMAINDER)
    t = sub.add_parser("stop", help="stop the process named by a PID file")
    t.add_argument("--pidfile", required=True)
    args = parser.parse_args(argv)
    if args.cmd == "stop":
        with open(args.pidfile) as fh:
            stop_pid(int(fh.read().strip()))
        os.unlink(args.pidfile)
        return 0
    workdir = args.workdir or tempfile.mkdtemp(prefix="storescp-")
    options = [o for o in args.options if o != "--"]
    listener = StoreSCP(options, workdir, aet=args.aet, port=args.port)
    with open(args.pidfile, "w") as fh:
        fh.write("%d\n" % listener.pid)
    print(json.dumps({"pid": listener.pid, "port": listener.port, "log": listener.log}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
