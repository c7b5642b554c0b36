"""`service_manager: auto` is resolved in one place: roles/pki/tasks/service_manager.yml gathers
the host's service_mgr fact when it is not known, and each role reads its setting through the
uses_systemd filter (its vars/main.yml), which says systemd exactly when the host runs systemd or
the role is told to use it. No task is spent on setting a fact."""

from __future__ import annotations

import os
import re

import pytest
import yaml
from ansible_collections.medimg.dicom_tls.plugins.filter.dicom_tls import FilterModule

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = os.path.join(ROOT, "roles")
RESOLVER = "roles/pki/tasks/service_manager.yml"
USES_SYSTEMD = FilterModule().filters()["uses_systemd"]

# Every task file that starts, restarts, schedules or stops through systemd or the other manager
# gathers what auto needs first (restart.yml too: as a handler or in the rescue it may run before
# the start tasks did). main.yml includes apply.yml (which resolves) before listener.yml/service.yml.
ENTRY_POINTS = {
    "roles/dcmtk_tls/tasks/apply.yml": "dcmtk_tls",
    "roles/dcmtk_tls/tasks/restart.yml": "dcmtk_tls",
    "roles/dcmtk_tls/tasks/stop.yml": "dcmtk_tls",
    "roles/orthanc_tls/tasks/apply.yml": "orthanc_tls",
    "roles/orthanc_tls/tasks/restart.yml": "orthanc_tls",
    "roles/orthanc_tls/tasks/stop.yml": "orthanc_tls",
    "roles/crl_refresh/tasks/schedule.yml": "crl_refresh",
}
# Files that branch on the resolved setting after an entry point above resolved it in the same run.
AFTER_RESOLUTION = {
    "roles/dcmtk_tls/tasks/listener.yml": ("roles/dcmtk_tls/tasks/main.yml", "apply.yml", "listener.yml"),
    "roles/orthanc_tls/tasks/service.yml": ("roles/orthanc_tls/tasks/main.yml", "apply.yml", "service.yml"),
}
ROLE_VARS = {role: "roles/%s/vars/main.yml" % role for role in set(ENTRY_POINTS.values())}


def role_files():
    for dirpath, _dirs, names in os.walk(ROLES):
        for name in names:
            if name.endswith((".yml", ".yaml", ".j2")):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, ROOT), open(path, encoding="utf-8").read()


def test_only_the_resolver_reads_the_service_mgr_fact():
    readers = sorted(rel for rel, text in role_files() if "service_mgr" in text)
    assert readers == [RESOLVER]


@pytest.mark.parametrize("role, rel", sorted(ROLE_VARS.items()))
def test_each_role_resolves_its_setting_through_the_filter(role, rel):
    data = yaml.safe_load(open(os.path.join(ROOT, rel), encoding="utf-8"))
    assert data["%s_use_systemd" % role] == (
        "{{ %s_service_manager | medimg.dicom_tls.uses_systemd(ansible_facts) }}" % role
    )


def test_every_file_that_branches_on_systemd_resolves_first():
    branching = {rel for rel, text in role_files() if re.search(r"\b\w+_use_systemd\b", text)}
    main = {"roles/dcmtk_tls/tasks/main.yml", "roles/orthanc_tls/tasks/main.yml"}
    assert branching - {RESOLVER} - set(ROLE_VARS.values()) - main == set(ENTRY_POINTS) | set(AFTER_RESOLUTION)


@pytest.mark.parametrize("rel, role", sorted(ENTRY_POINTS.items()))
def test_entry_point_imports_the_resolver_before_its_first_branch(rel, role):
    tasks = yaml.safe_load(open(os.path.join(ROOT, rel), encoding="utf-8"))
    first = next(i for i, t in enumerate(tasks) if re.search(r"\b\w+_use_systemd\b", yaml.safe_dump(t, sort_keys=True)))
    resolver = "../../pki/tasks/service_manager.yml"
    imports = [i for i, t in enumerate(tasks) if t.get("ansible.builtin.import_tasks") == resolver]
    assert imports and imports[0] < first, rel
    assert tasks[imports[0]]["vars"] == {"pki_service_manager": "{{ %s_service_manager }}" % role}


@pytest.mark.parametrize("rel, order", sorted(AFTER_RESOLUTION.items()))
def test_the_start_comes_after_the_include_that_resolves(rel, order):
    main, resolving, branching = order
    text = yaml.safe_dump(yaml.safe_load(open(os.path.join(ROOT, main), encoding="utf-8")), sort_keys=False)
    assert text.index("include_tasks: %s" % resolving) < text.index("import_tasks: %s" % branching), rel


@pytest.mark.parametrize(
    "setting, service_mgr, systemd",
    [
        ("auto", "systemd", True),
        ("auto", "sysvinit", False),
        ("auto", "openrc", False),
        ("auto", "process_api", False),
        ("auto", None, None),
        ("systemd", "sysvinit", True),
        ("systemd", None, True),
        ("pidfile", "systemd", False),
        ("pidfile", None, False),
        ("cron", "systemd", False),
    ],
)
def test_resolution(setting, service_mgr, systemd):
    facts = {} if service_mgr is None else {"service_mgr": service_mgr}
    assert USES_SYSTEMD(setting, facts) is systemd


def test_auto_gathers_the_fact_only_when_the_play_has_not():
    tasks = yaml.safe_load(open(os.path.join(ROOT, RESOLVER), encoding="utf-8"))
    assert tasks == [
        {
            "name": "Find out which service manager the host runs",
            "ansible.builtin.setup": {"gather_subset": ["!all", "!min", "service_mgr"]},
            "when": "pki_service_manager == 'auto' and ansible_facts.service_mgr is not defined",
        }
    ]
