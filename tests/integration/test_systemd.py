"""The roles' systemd paths under a real systemd: a Debian root booted by systemd-nspawn (systemd as
the container's PID 1, see support/systemd_container.py), a dcmtk node, an Orthanc node (Debian's
Orthanc, installed in the root) and their CA inside,
Ansible run in the container with connection local and every service_manager left at auto.

What a user on a systemd host relies on: the listener runs as an enabled unit and answers a TLS
C-ECHO, a rerun leaves the running process alone, a certificate change restarts the unit, the CRL
refresh is a timer that systemd lists and whose service runs the refresh playbook, and stop stops it.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import yaml
from support.ansible_run import ROOT, PlayResult, ansible_env
from support.fleet import PLAYBOOKS, LocalFleet
from support.systemd_container import SystemdContainer, missing

pytestmark = pytest.mark.skipif(
    os.environ.get("DICOM_TLS_NETNS") != "1", reason="live listeners only inside scripts/netns.sh (make integration)"
)

NODE, PORT = "node1", 11112
NODE_AE = NODE.upper()
UNIT = "dicom-tls-storescp-%s.service" % NODE
ORTHANC, ORTHANC_AE, ORTHANC_PORT, ORTHANC_HTTP = "orth1", "ORTH1", 11115, 18045
ORTHANC_UNIT = "dicom-tls-orthanc-%s.service" % ORTHANC
TIMER = "dicom-tls-crl-refresh.timer"


class ContainerFleet(LocalFleet):
    """LocalFleet whose playbooks run inside the container."""

    def __init__(self, box: SystemdContainer, state):
        super().__init__(state, {NODE: PORT})
        self.box = box
        with open(self.inventory) as fh:
            inv = yaml.safe_load(fh)
        orthanc = {"dicom_tls_port": ORTHANC_PORT, "dicom_tls_http_port": ORTHANC_HTTP}
        orthanc["dicom_tls_ae_title"] = ORTHANC_AE
        inv["all"]["children"]["dicom_nodes"]["children"]["orthanc_nodes"]["hosts"] = {ORTHANC: orthanc}
        with open(self.inventory, "w") as fh:
            yaml.safe_dump(inv, fh)

    def play(self, name, *args, **extra_vars):
        cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), os.path.join(PLAYBOOKS, name)]
        cmd += ["-i", self.inventory, *args]
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        res = PlayResult(self.box.run(cmd, timeout=900, env=ansible_env(), cwd=ROOT))
        self.outputs.append(res.output)
        return res

    def echo(self, ae=NODE_AE, port=PORT):
        """dcmtk's echoscu with the dcmtk node's own option file (key, chain, trust directory, profile)."""
        args = os.path.join(self.state, "nodes", NODE, "echoscu.args")
        return self.box.run(["/usr/bin/echoscu", "@" + args, "-aec", ae, "127.0.0.1", str(port)])

    def echo_orthanc(self):
        return self.echo(ORTHANC_AE, ORTHANC_PORT)

    def main_pid(self, unit=UNIT) -> int:
        return int(self.box.systemctl("show", "--property=MainPID", "--value", unit))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    why = missing()
    if why:
        pytest.fail(why)
    state = tmp_path_factory.mktemp("systemd")
    box = SystemdContainer(str(state)).start()
    f = ContainerFleet(box, state)
    try:
        yield f
    finally:
        try:
            for out in f.outputs:
                assert "PRIVATE KEY" not in out
        finally:
            box.stop()


def test_auto_resolves_to_systemd_in_the_container(fleet):
    assert fleet.box.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"


def test_rollout_runs_the_listener_as_an_enabled_unit(fleet):
    res = fleet.play("rollout.yml")
    assert res.rc == 0, res.output[-4000:]
    assert fleet.box.systemctl("is-active", UNIT) == "active"
    assert fleet.box.systemctl("is-enabled", UNIT) == "enabled"
    assert "/usr/bin/storescp" in fleet.box.systemctl("show", "--property=ExecStart", UNIT)
    echo = fleet.echo()
    assert echo.returncode == 0, echo.stdout + echo.stderr
    # Debian's Orthanc under its dicom-tls unit, the drop-in's TLS settings in force
    assert fleet.box.systemctl("is-active", ORTHANC_UNIT) == "active"
    assert fleet.box.systemctl("is-enabled", ORTHANC_UNIT) == "enabled"
    assert "/usr/sbin/Orthanc" in fleet.box.systemctl("show", "--property=ExecStart", ORTHANC_UNIT)
    echo = fleet.echo_orthanc()
    assert echo.returncode == 0, echo.stdout + echo.stderr


def test_rerun_changes_nothing_and_keeps_the_process(fleet):
    pids = fleet.main_pid(), fleet.main_pid(ORTHANC_UNIT)
    res = fleet.play("rollout.yml")
    assert res.rc == 0, res.output[-4000:]
    assert res.stats(NODE)["changed"] == 0, res.output[-4000:]
    assert res.stats(ORTHANC)["changed"] == 0, res.output[-4000:]
    assert (fleet.main_pid(), fleet.main_pid(ORTHANC_UNIT)) == pids


def test_certificate_change_restarts_the_unit(fleet):
    pids = fleet.main_pid(), fleet.main_pid(ORTHANC_UNIT)
    res = fleet.play(
        "rollout.yml",
        dcmtk_tls_subject_alt_names=["DNS:" + NODE, "IP:127.0.0.1", "DNS:node1.example"],
        orthanc_tls_subject_alt_names=["DNS:" + ORTHANC, "IP:127.0.0.1", "DNS:orth1.example"],
    )
    assert res.rc == 0, res.output[-4000:]
    for unit, pid in ((UNIT, pids[0]), (ORTHANC_UNIT, pids[1])):
        assert fleet.box.systemctl("is-active", unit) == "active"
        assert fleet.main_pid(unit) not in (0, pid), unit
    echo = fleet.echo()
    assert echo.returncode == 0, echo.stdout + echo.stderr
    echo = fleet.echo_orthanc()
    assert echo.returncode == 0, echo.stdout + echo.stderr


def test_crl_refresh_is_a_listed_timer_whose_service_runs_the_refresh(fleet):
    res = fleet.play("crl_refresh.yml", crl_refresh_schedule=True)
    assert res.rc == 0, res.output[-4000:]
    timers = fleet.box.systemctl("list-timers", "--all", "--no-legend")
    assert TIMER in timers, timers
    assert fleet.box.systemctl("is-enabled", TIMER) == "enabled"
    # what the timer starts: the refresh playbook by collection name, with the rendered environment
    run = fleet.box.run(["systemctl", "start", TIMER.replace(".timer", ".service")], timeout=900)
    assert run.returncode == 0, run.stderr + fleet.box.run(["journalctl", "-u", "dicom-tls-crl-refresh"]).stdout
    assert fleet.box.systemctl("show", "--property=Result", "--value", TIMER.replace(".timer", ".service")) == "success"


def test_stop_stops_the_unit(fleet):
    res = fleet.play("stop.yml")
    assert res.rc == 0, res.output[-4000:]
    assert fleet.box.systemctl("is-active", UNIT) == "inactive"
    assert fleet.box.systemctl("is-active", ORTHANC_UNIT) == "inactive"
    assert fleet.echo().returncode != 0
    assert fleet.echo_orthanc().returncode != 0
