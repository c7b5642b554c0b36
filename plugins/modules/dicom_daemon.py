#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dicom_daemon
short_description: Run a DICOM listener (storescp, Orthanc) as a pid-file daemon
version_added: "0.1.0"
author:
  - medimg.dicom_tls contributors (@medimg)
description:
  - For hosts without systemd (containers, CI runners), starts O(command) detached in its own
    session with its output appended to O(log_path), records its PID in O(pidfile), and waits
    until O(port) accepts connections. Where the host runs systemd, use a unit and
    M(ansible.builtin.systemd_service) instead (the collection's roles choose for you).
  - The process is found again by its PID file and its command line, so a recycled PID is not
    taken for the listener. A running listener whose command line differs from O(command) is
    restarted.
  - Fails with the last lines of the log when the listener exits before opening its port, and
    when the port is already taken by another process.
options:
  name:
    description: Name used in messages (for example the instance name).
    type: str
    required: true
  command:
    description:
      - The command line, executable first, by absolute path (for example C(/usr/bin/storescp), since
        pynetdicom installs a C(storescp) of its own that can shadow dcmtk's on the PATH).
    type: list
    elements: str
    required: true
  pidfile:
    description: PID file of the listener.
    type: path
    required: true
  state:
    description:
      - V(started) starts it when not running (or restarts it when its command line changed);
        V(restarted) always restarts it (use in handlers); V(stopped) stops it by PID (SIGTERM,
        then SIGKILL after O(timeout) seconds).
    type: str
    choices: [started, stopped, restarted]
    default: started
  port:
    description: TCP port to wait for after a start. Without it, the module does not wait.
    type: int
  host:
    description: Address to probe O(port) on.
    type: str
    default: 127.0.0.1
  log_path:
    description: File the listener's output is appended to.
    type: path
  chdir:
    description: Working directory of the listener.
    type: path
  environment:
    description: Extra environment variables for the listener.
    type: dict
    default: {}
  timeout:
    description: Seconds to wait for the port to open, or for the process to end on stop.
    type: int
    default: 30
extends_documentation_fragment:
  - ansible.builtin.files
notes:
  - O(pidfile) and O(log_path) are created mode 0644 unless O(mode) is octal (then with that mode, before any
    byte lands in them); O(owner), O(group), a symbolic O(mode), the SELinux context and O(attributes) are then
    set on both as M(ansible.builtin.file) sets them. A change of them alone is listed in RV(actions) as
    C(attributes_changed) and does not restart the listener.
attributes:
  check_mode:
    support: full
    description: Reports what would be done (start, restart, stop) without doing it.
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - the listener's PID before and after; a change of O(mode), O(owner), O(group), the SELinux
        context or O(attributes) alone shows them before and after.
  idempotent:
    support: partial
    description: V(started) and V(stopped) are idempotent; V(restarted) always changes.
seealso:
  - module: ansible.builtin.systemd_service
  - module: medimg.dicom_tls.dicom_tls_echo
"""

EXAMPLES = r"""
- name: A storescp listener with TLS from its option file
  medimg.dicom_tls.dicom_daemon:
    name: storescp-dcmtk-a
    command: [/usr/bin/storescp, "@/etc/dicom-tls/dcmtk-a/storescp.args", "11112"]
    pidfile: /run/dicom-tls/dcmtk-a/storescp.pid
    log_path: /var/log/dicom-tls/dcmtk-a/storescp.log
    port: 11112

- name: Restart it (in a handler, after its certificate or trust material changed)
  medimg.dicom_tls.dicom_daemon:
    name: storescp-dcmtk-a
    command: [/usr/bin/storescp, "@/etc/dicom-tls/dcmtk-a/storescp.args", "11112"]
    pidfile: /run/dicom-tls/dcmtk-a/storescp.pid
    log_path: /var/log/dicom-tls/dcmtk-a/storescp.log
    port: 11112
    state: restarted
"""

RETURN = r"""
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is the listener's O(pidfile) (or O(log_path) for attributes); C(action) is C(started), C(restarted),
      C(stopped), or C(attributes_changed) when only the file's mode, owner, group, SELinux context or attributes
      differed.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    action:
      description: What is done to it.
      type: str
    reason:
      description: Why, in words.
      type: str
  sample:
    - path: /run/dicom-tls/dcmtk-a/storescp.pid
      action: restarted
      reason: "command line changed"
pid:
  description: PID of the running listener; null when stopped.
  returned: always
  type: int
  sample: 4242
action:
  description:
    - What was done (or would be in check mode) to the listener - C(started), C(restarted), C(stopped) - or
      null; the word of its entry in RV(actions).
  returned: always
  type: str
  sample: restarted
reason:
  description: Why, in words (C(not running), C(command line changed), C(restart requested), ...).
  returned: always
  type: str
  sample: command line changed
"""

from ansible_collections.medimg.dicom_tls.plugins.module_utils import daemon, file_args, reports  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            command=dict(type="list", elements="str", required=True),
            pidfile=dict(type="path", required=True),
            state=dict(type="str", choices=["started", "stopped", "restarted"], default="started"),
            port=dict(type="int"),
            host=dict(type="str", default="127.0.0.1"),
            log_path=dict(type="path"),
            chdir=dict(type="path"),
            environment=dict(type="dict", default={}),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )
    guard(module, {"port": (1, 65535, ""), "timeout": (1, 86400, " seconds")}, outputs=("pidfile", "log_path"))
    p = module.params
    if not p["command"]:
        module.fail_json(msg="command must not be empty")
    try:
        action, reason = daemon.plan(p["state"], p["command"], p["pidfile"])
        pid = daemon.running_pid(p["pidfile"], p["command"])[0]
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    actions = daemon.plan_actions(action, reason, p["pidfile"], pid)
    if action and not module.check_mode:
        try:
            if action in ("stopped", "restarted") and pid:
                daemon.stop(p["pidfile"], pid, p["timeout"])
                pid = None
            if action in ("started", "restarted"):
                pid = daemon.start(
                    p["name"],
                    p["command"],
                    p["pidfile"],
                    log_path=p["log_path"],
                    chdir=p["chdir"],
                    port=p["port"],
                    host=p["host"],
                    timeout=p["timeout"],
                    env={k: str(v) for k, v in p["environment"].items()},
                    mode=file_args.create_mode(p["mode"]),
                )
        except DicomTlsError as exc:
            module.fail_json(msg=str(exc), path=exc.path, action=action, reason=reason)
    for step in actions:
        if module.check_mode and action != "stopped":
            step.after = {"pid": "(new)"}
        else:
            step.after = {"pid": pid} if pid else {"state": "absent"}
    # the PID file and the log take the file options (a start writes them with its own action)
    planned = [p["pidfile"], p["log_path"]] if action in ("started", "restarted") else []
    actions += file_args.set_attributes(module, [p["pidfile"], p["log_path"]], planned)
    module.exit_json(**reports.report(actions, module._diff, pid=pid, action=action, reason=reason))


if __name__ == "__main__":
    main()
