"""A systemd to run the roles' systemd paths under: systemd-nspawn boots the Debian root that
scripts/systemd_root.sh builds (.build/systemd-root), with systemd as the container's PID 1.

The root is booted with --volatile=overlay (every boot starts from the cached root; what the roles
write lands in a tmpfs), --private-network (only a loopback of its own), and this checkout, the
venv and its Python bound read-only at the same paths, so that Ansible runs inside the container
(``nsenter`` into its namespaces) with connection local, as on a managed node.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

from support.ansible_run import ROOT

# DICOM_TLS_SYSTEMD_ROOT: another root built by scripts/systemd_root.sh (e.g. shared between checkouts)
SYSTEMD_ROOT = os.environ.get("DICOM_TLS_SYSTEMD_ROOT") or os.path.join(ROOT, ".build", "systemd-root")


def missing() -> str | None:
    """Why no container can be booted here, or None."""
    for tool in ("systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            return "%s is not installed (scripts/bootstrap.sh installs it)" % tool
    if not os.path.isfile(os.path.join(SYSTEMD_ROOT, ".dicom-tls-root")):
        return "%s is not built (scripts/bootstrap.sh runs scripts/systemd_root.sh)" % SYSTEMD_ROOT
    return None


def _children(pid: int) -> list[int]:
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _is_container_init(pid: int) -> bool:
    try:
        with open("/proc/%d/comm" % pid) as fh:
            comm = fh.read().strip()
        return comm == "systemd" and os.readlink("/proc/%d/ns/pid" % pid) != os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


class SystemdContainer:
    """A booted container; ``state`` (a folder of the test) is bound read-write at its own path."""

    def __init__(self, state: str, timeout: float = 120):
        self.state = str(state)
        self.timeout = timeout
        self.name = "dicomtls-" + uuid.uuid4().hex[:8]
        self.log_path = os.path.join(self.state, "nspawn.log")
        self.proc: subprocess.Popen | None = None
        self.leader: int | None = None

    def binds(self) -> list[str]:
        ro = {ROOT, os.path.realpath(os.path.join(ROOT, ".venv")), os.path.realpath(sys.base_prefix)}
        ro.add(os.path.dirname(os.path.realpath(sys.executable)))
        return ["--bind-ro=" + p for p in sorted(ro)] + ["--bind=" + self.state]

    def start(self):
        cmd = [
            "systemd-nspawn",
            "--quiet",
            "--directory=" + SYSTEMD_ROOT,
            "--boot",
            "--volatile=overlay",
            "--private-network",
            "--register=no",
            "--keep-unit",
            "--machine=" + self.name,
            *self.binds(),
        ]
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        # The container's PID 1 is systemd-nspawn's child once that child runs systemd in a PID
        # namespace of its own (before, it is nspawn's helper); then systemd answers on its bus.
        state = ""
        while state not in ("running", "degraded"):
            if self.proc.poll() is not None:
                raise AssertionError("systemd-nspawn exited with %s: %s" % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                raise AssertionError(
                    "the container's systemd did not boot in %ss (%s): %s" % (self.timeout, state, self.log())
                )
            if not self.leader:
                self.leader = next((p for p in _children(self.proc.pid) if _is_container_init(p)), None)
            if self.leader:
                state = self.run(["systemctl", "is-system-running", "--wait"], timeout=self.timeout).stdout.strip()
            if state not in ("running", "degraded"):
                time.sleep(0.1)
        return self

    def log(self) -> str:
        with open(self.log_path, errors="replace") as fh:
            return fh.read()[-3000:]

    def command(self, cmd: list[str]) -> list[str]:
        """``cmd`` run inside the container (its mount, PID, network, IPC, UTS and cgroup namespaces)."""
        # (nsenter --wd would resolve the folder before entering the mount namespace: env cds inside)
        return ["nsenter", "--target", str(self.leader), "--all", "--", "/usr/bin/env", "--chdir=" + ROOT, *cmd]

    def run(self, cmd: list[str], timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(cmd), capture_output=True, text=True, timeout=timeout, check=False, **kw)

    def systemctl(self, *args: str) -> str:
        return self.run(["systemctl", "--no-pager", *args]).stdout.strip()

    def stop(self):
        """Power the container off and wait for systemd-nspawn to exit (SIGKILL after the timeout)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.leader:
            subprocess.run(self.command(["systemctl", "poweroff", "--no-block"]), capture_output=True, check=False)
        try:
            self.proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(self.timeout)
        # the empty folder systemd-nspawn leaves behind (it refuses to remove it itself)
        try:
            os.rmdir("/run/systemd/nspawn/propagate/" + self.name)
        except OSError:
            pass
