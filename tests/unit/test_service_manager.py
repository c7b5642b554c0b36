"""`service_manager: auto` is resolved in one place (roles/pki/tasks/service_manager.yml), and that
place says systemd exactly when the host runs systemd or the role is told to use it."""

from __future__ import annotations

import os
import re

import jinja2
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = os.path.join(ROOT, "roles")
RESOLVER = "roles/pki/tasks/service_manager.yml"

# Every task file that starts, restarts, schedules or stops through systemd or the other manager
# resolves service_manager first (restart.yml too: as a handler or in the rescue it may run before
# the start tasks did).
ENTRY_POINTS = {
    "roles/dcmtk_tls/tasks/listener.yml": "dcmtk_tls",
    "roles/dcmtk_tls/tasks/restart.yml": "dcmtk_tls",
    "roles/dcmtk_tls/tasks/trust_refresh.yml": "dcmtk_tls",
    "roles/dcmtk_tls/tasks/stop.yml": "dcmtk_tls",
    "roles/orthanc_tls/tasks/service.yml": "orthanc_tls",
    "roles/orthanc_tls/tasks/restart.yml": "orthanc_tls",
    "roles/orthanc_tls/tasks/stop.yml": "orthanc_tls",
    "roles/crl_refresh/tasks/schedule.yml": "crl_refresh",
}


def role_files():
    for dirpath, _dirs, names in os.walk(ROLES):
        for name in names:
            if name.endswith((".yml", ".yaml", ".j2")):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, ROOT), open(path, encoding="utf-8").read()


def test_only_the_resolver_reads_the_service_mgr_fact():
    readers = sorted(rel for rel, text in role_files() if "service_mgr" in text)
    assert readers == [RESOLVER]


def test_every_file_that_branches_on_systemd_resolves_first():
    branching = {rel for rel, text in role_files() if re.search(r"\b\w+_use_systemd\b", text)}
    assert branching - {RESOLVER} == set(ENTRY_POINTS)


@pytest.mark.parametrize("rel, role", sorted(ENTRY_POINTS.items()))
def test_entry_point_imports_the_resolver_before_its_first_branch(rel, role):
    tasks = yaml.safe_load(open(os.path.join(ROOT, rel), encoding="utf-8"))
    first = tasks[0]
    assert first.get("ansible.builtin.import_tasks") == "../../pki/tasks/service_manager.yml", rel
    assert first["vars"] == {
        "pki_service_manager": "{{ %s_service_manager }}" % role,
        "pki_service_manager_fact": "%s_use_systemd" % role,
    }


def resolve(setting, service_mgr):
    """The resolver's expression, rendered by Jinja as Ansible renders it."""
    tasks = yaml.safe_load(open(os.path.join(ROOT, RESOLVER), encoding="utf-8"))
    (expression,) = tasks[1]["ansible.builtin.set_fact"].values()
    facts = {} if service_mgr is None else {"service_mgr": service_mgr}
    rendered = (
        jinja2.Environment().from_string(expression.strip()).render(pki_service_manager=setting, ansible_facts=facts)
    )
    return {"True": True, "False": False}[rendered]


@pytest.mark.parametrize(
    "setting, service_mgr, systemd",
    [
        ("auto", "systemd", True),
        ("auto", "sysvinit", False),
        ("auto", "openrc", False),
        ("auto", "process_api", False),
        ("auto", None, False),
        ("systemd", "sysvinit", True),
        ("systemd", None, True),
        ("pidfile", "systemd", False),
        ("cron", "systemd", False),
    ],
)
def test_resolution(setting, service_mgr, systemd):
    assert resolve(setting, service_mgr) is systemd


def test_auto_gathers_the_fact_only_when_the_play_has_not():
    tasks = yaml.safe_load(open(os.path.join(ROOT, RESOLVER), encoding="utf-8"))
    assert tasks[0]["ansible.builtin.setup"] == {"gather_subset": ["!all", "!min", "service_mgr"]}
    assert tasks[0]["when"] == "pki_service_manager == 'auto' and ansible_facts.service_mgr is not defined"
