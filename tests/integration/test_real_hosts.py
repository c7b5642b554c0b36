"""What broke on real hosts (issue 10), each through Ansible itself:
a node address that is a DNS name, the CRL refresh schedule (what it runs, how often, removal)."""

from __future__ import annotations

import os

import pytest
import yaml
from support.ansible_run import ROOT, run_playbook, run_tasks


def _write(path: str, data) -> str:
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh)
    return path


@pytest.mark.parametrize("role", ["dcmtk_tls", "orthanc_tls"])
def test_node_address_by_name_or_ip_gets_the_right_san_type(role, tmp_path):
    """The role's own default (defaults/main.yml) rendered for three nodes by Ansible."""
    defaults = yaml.safe_load(open(os.path.join(ROOT, "roles", role, "defaults", "main.yml")))
    expression = defaults[role + "_subject_alt_names"]
    inventory = _write(
        str(tmp_path / "inv.yml"),
        {
            "all": {
                "vars": {"ansible_connection": "local"},
                "hosts": {
                    "ct-01": {role + "_address": "pacs-01.example.org"},
                    "ct-02": {role + "_address": "10.1.2.3"},
                    "ct-03": {role + "_address": "fd00::7"},
                    "pacs-04.example.org": {role + "_address": "pacs-04.example.org"},
                },
            }
        },
    )
    play = _write(
        str(tmp_path / "play.yml"),
        [
            {
                "hosts": "all",
                "gather_facts": False,
                "tasks": [{"name": "sans", "ansible.builtin.debug": {"msg": expression}}],
            }
        ],
    )
    run = run_playbook(play, inventory=inventory)
    assert run.rc == 0, run.output[-3000:]
    sans = {h: run.results(h)[0]["msg"] for h in ("ct-01", "ct-02", "ct-03", "pacs-04.example.org")}
    assert sans == {
        "ct-01": ["DNS:ct-01", "DNS:pacs-01.example.org"],
        "ct-02": ["DNS:ct-02", "IP:10.1.2.3"],
        "ct-03": ["DNS:ct-03", "IP:fd00::7"],
        "pacs-04.example.org": ["DNS:pacs-04.example.org"],
    }


def _schedule(tmp_path, **variables):
    base = {
        "crl_refresh_service_manager": "cron",
        "crl_refresh_cron_file": str(tmp_path / "dicom-tls-crl-refresh"),
        "crl_refresh_inventory": str(tmp_path / "inventory.yml"),
        "crl_refresh_log": str(tmp_path / "refresh.log"),
    }
    base.update(variables)
    task = {
        "name": "schedule",
        "ansible.builtin.include_role": {"name": "medimg.dicom_tls.crl_refresh", "tasks_from": "schedule.yml"},
        "vars": base,
    }
    return run_tasks([task])


def test_crl_refresh_schedule_runs_the_collection_playbook_every_n_hours_and_can_be_removed(tmp_path):
    cron = tmp_path / "dicom-tls-crl-refresh"
    run = _schedule(tmp_path, crl_refresh_renew_before_days=3.5)  # a quarter is 21 h: rounded down to 12
    assert run.rc == 0, run.output[-3000:]
    line = [x for x in cron.read_text().splitlines() if x and not x.startswith(("#", "SHELL", "PATH"))][0]
    minute, hour = line.split()[:2]
    assert (minute, hour) == ("17", "*/12"), line
    assert " medimg.dicom_tls.crl_refresh " in line and "playbooks/crl_refresh.yml" not in line

    again = _schedule(tmp_path, crl_refresh_renew_before_days=3.5)
    assert again.rc == 0 and again.stats()["changed"] == 0

    bad_interval = _schedule(tmp_path, crl_refresh_interval_hours=21)
    assert bad_interval.rc != 0 and "crl_refresh_interval_hours 21 is not a divisor of 24" in bad_interval.output

    missing = _schedule(tmp_path, crl_refresh_playbook=str(tmp_path / "site" / "crl_refresh.yml"))
    assert missing.rc != 0 and "crl_refresh.yml does not exist on localhost" in missing.output

    own = tmp_path / "refresh.yml"
    own.write_text("- hosts: all\n  tasks: []\n")
    assert _schedule(tmp_path, crl_refresh_playbook=str(own)).rc == 0
    assert str(own) in cron.read_text()

    removed = _schedule(tmp_path, crl_refresh_schedule_state="absent")
    assert removed.rc == 0, removed.output[-3000:]
    assert not cron.exists()


def test_expected_refusal_passes_only_on_a_real_refusal():
    """Nothing listens on the port: that is 'no listener', never the refusal a revocation expects."""
    from ansible_collections.medimg.dicom_tls.plugins.module_utils.reports import echo_matrix
    from support.ansible_run import run_module
    from support.servers import free_port

    res = run_module(
        "dicom_tls_echo",
        {"host": "127.0.0.1", "port": free_port(), "expect": "failure", "retries": 0, "timeout": 5},
    )
    one = res["results"][0]
    assert one["status"] == "connection_refused" and one["as_expected"] is False
    assert res.get("failed") is True, res
    pair = {"client": "ct-01", "server": "mr-02", "status": one["status"], "expect": "failure"}
    assert "FAIL no listener" in echo_matrix([pair])
    refused = dict(pair, status="client_certificate_rejected")
    assert "FAIL" not in echo_matrix([refused]) and "refused" in echo_matrix([refused])
