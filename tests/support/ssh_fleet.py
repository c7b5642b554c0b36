"""A fleet reached over SSH: one sshd per node on its own loopback address (127.0.0.x), an
unprivileged user with passwordless sudo (``become: true``), the CA on the control node.

Every sshd is started by the test (inside scripts/netns.sh) and stopped by its PID. The user and its
sudoers entry are made by scripts/bootstrap.sh (as root); without them the tests are skipped.
All "hosts" share this machine's file system, so each node's state lives below its own folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

import yaml
from support.fleet import LocalFleet
from support.servers import stop_pid, wait_port

USER = "dicomops"
SSH_PORT = 2222
SSHD = "/usr/sbin/sshd"


def missing() -> str | None:
    """Why the SSH fleet cannot run here (None when it can)."""
    if os.environ.get("DICOM_TLS_NETNS") != "1":
        return "sshd listeners only inside scripts/netns.sh (make integration)"
    if os.geteuid() != 0:
        return "sshd must start as root"
    if not os.access(SSHD, os.X_OK) or not shutil.which("ssh") or not shutil.which("sudo"):
        return "openssh-server, openssh-client and sudo are needed (scripts/bootstrap.sh installs them)"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return "user %s is missing (scripts/bootstrap.sh creates it, as root)" % USER
    return None


class SSHFleet(LocalFleet):
    """``nodes``: {name: (address, listener port)}; each node is reached at address:SSH_PORT as USER
    with become; the CA host ``ca`` stays the control node (local connection)."""

    def __init__(self, state, nodes: dict[str, tuple[str, int]], **extra_vars):
        super().__init__(state, {n: port for n, (_addr, port) in nodes.items()}, **extra_vars)
        self.nodes = nodes
        # sshd reads authorized_keys as the user: a folder it can enter, outside pytest's 0700 tmp
        self.ssh_dir = tempfile.mkdtemp(prefix="dicom-tls-ssh-")
        os.chmod(self.ssh_dir, 0o755)
        self.client_key = os.path.join(self.ssh_dir, "id_ed25519")
        self._keygen(self.client_key)
        with open(self.client_key + ".pub") as src, open(os.path.join(self.ssh_dir, "authorized_keys"), "w") as dst:
            dst.write(src.read())
        os.chmod(os.path.join(self.ssh_dir, "authorized_keys"), 0o644)
        self._keygen(os.path.join(self.ssh_dir, "host_ed25519"))
        self.sshd: dict[str, subprocess.Popen] = {}
        inv = yaml.safe_load(open(self.inventory))
        hosts = inv["all"]["children"]["dicom_nodes"]["children"]["dcmtk_nodes"]["hosts"]
        for name, (address, _port) in nodes.items():
            hosts[name].update(
                ansible_connection="ssh",
                ansible_host=address,
                ansible_port=SSH_PORT,
                ansible_user=USER,
                ansible_become=True,
                ansible_ssh_private_key_file=self.client_key,
                ansible_ssh_common_args="-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                # the same machine: the test's Python (cryptography, pydicom, pynetdicom) is the node's
                ansible_python_interpreter=sys.executable,
                dicom_tls_address=address,
            )
        with open(self.inventory, "w") as fh:
            yaml.safe_dump(inv, fh)

    @staticmethod
    def _keygen(path):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)

    def start(self):
        os.makedirs("/run/sshd", exist_ok=True)
        for name, (address, _port) in self.nodes.items():
            config = os.path.join(self.ssh_dir, "sshd_%s.conf" % name)
            log = os.path.join(self.ssh_dir, "sshd_%s.log" % name)
            with open(config, "w") as fh:
                fh.write(
                    "\n".join(
                        [
                            "ListenAddress %s:%d" % (address, SSH_PORT),
                            "HostKey %s/host_ed25519" % self.ssh_dir,
                            "PidFile none",
                            "AuthorizedKeysFile %s/authorized_keys" % self.ssh_dir,
                            "AllowUsers %s" % USER,
                            "PasswordAuthentication no",
                            "KbdInteractiveAuthentication no",
                            "UsePAM no",
                            # the key files live below /tmp (world-writable): sshd's path check would refuse them
                            "StrictModes no",
                            "MaxStartups 100",
                            "MaxSessions 100",
                            "Subsystem sftp internal-sftp",
                            "LogLevel ERROR",
                            "",
                        ]
                    )
                )
            os.chmod(config, stat.S_IRUSR | stat.S_IWUSR)
            proc = subprocess.Popen([SSHD, "-D", "-f", config, "-E", log], stdin=subprocess.DEVNULL)
            self.sshd[name] = proc
            wait_port(SSH_PORT, proc, log=log, host=address)

    def stop_sshd(self):
        for proc in self.sshd.values():
            stop_pid(proc.pid)
        self.sshd.clear()
        shutil.rmtree(self.ssh_dir, ignore_errors=True)
