"""Every systemd unit and timer the roles install passes `systemd-analyze verify` without a warning.

The units are rendered by Ansible from the roles' own templates and defaults (the CRL schedule's
command by the expression schedule.yml uses), once as the defaults give them and once with values
that need quoting (spaces in paths and arguments). `systemd-analyze verify` needs no running systemd;
a unit it warns about (unknown key, bad value, missing executable, bad environment assignment) fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from support.ansible_run import ROOT, run_playbook

ANALYZE = shutil.which("systemd-analyze")

ROLES = os.path.join(ROOT, "roles")
DEFAULTS = [os.path.join(ROLES, r, "defaults", "main.yml") for r in ("dcmtk_tls", "orthanc_tls", "crl_refresh")]
UNITS = [
    ("dcmtk_tls/templates/storescp.service.j2", "{{ dcmtk_tls_service_name }}.service"),
    ("orthanc_tls/templates/orthanc.service.j2", "{{ orthanc_tls_service_name }}.service"),
    ("crl_refresh/templates/service.j2", "{{ crl_refresh_name }}.service"),
    ("crl_refresh/templates/timer.j2", "{{ crl_refresh_name }}.timer"),
]

# Values that need quoting in a unit file: a space in a path, an argument and an environment value.
QUOTING = {
    "dicom_tls_instance": "node-1",
    "dicom_tls_data_dir": "/var/lib/dicom tls",
    "dcmtk_tls_storescp_extra_args": ["--output-directory", "/var/lib/dicom tls/in coming"],
    "crl_refresh_environment": {
        "ANSIBLE_COLLECTIONS_PATH": "/opt/ansible collections",
        "ANSIBLE_CONFIG": '/srv/100%q "quoted".cfg',
    },
    "crl_refresh_project_dir": "/srv/dicom tls",
    "crl_refresh_inventory": "/srv/dicom tls/inventory.yml",
}


def crl_refresh_command_expression() -> str:
    """The expression roles/crl_refresh/tasks/schedule.yml sets crl_refresh_command from."""
    tasks = yaml.safe_load(open(os.path.join(ROLES, "crl_refresh", "tasks", "schedule.yml"), encoding="utf-8"))
    (expression,) = [
        t["ansible.builtin.set_fact"]["crl_refresh_command"]
        for t in tasks
        if "crl_refresh_command" in t.get("ansible.builtin.set_fact", {})
    ]
    return expression


def render(out_dir, extra_vars=None) -> list[str]:
    play = [
        {
            "name": "Render the roles' systemd units",
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": DEFAULTS,
            "vars": {"crl_refresh_command": crl_refresh_command_expression()},
            "tasks": [
                {
                    "name": "Render " + src,
                    "ansible.builtin.template": {
                        "src": os.path.join(ROLES, src),
                        "dest": os.path.join(str(out_dir), dest),
                        "mode": "0644",
                    },
                }
                for src, dest in UNITS
            ],
        }
    ]
    path = os.path.join(str(out_dir), "..", "render.yml")
    with open(path, "w") as fh:
        yaml.safe_dump(play, fh)
    res = run_playbook(path, extra_vars=extra_vars)
    assert res.rc == 0, res.output
    return sorted(os.listdir(out_dir))


def verify(unit_dir, names):
    assert ANALYZE, "systemd-analyze is missing (scripts/bootstrap.sh installs Debian's systemd package)"
    # verify loads units by path; a timer finds its service beside it
    proc = subprocess.run(
        [ANALYZE, "verify", "--man=no", *names],
        cwd=unit_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, (proc.stdout + proc.stderr).strip()


@pytest.mark.parametrize("case", ["defaults", "quoting"])
def test_rendered_units_verify_clean(tmp_path, case):
    out = tmp_path / "units"
    out.mkdir()
    names = render(out, QUOTING if case == "quoting" else None)
    assert names == sorted(
        [
            "dicom-tls-storescp-%s.service" % ("node-1" if case == "quoting" else "localhost"),
            "dicom-tls-orthanc-%s.service" % ("node-1" if case == "quoting" else "localhost"),
            "dicom-tls-crl-refresh.service",
            "dicom-tls-crl-refresh.timer",
        ]
    )
    rc, output = verify(out, ["./" + n for n in names])
    assert (rc, output) == (0, ""), output


def test_verify_catches_a_broken_unit(tmp_path):
    """The oracle itself: a misspelt key and a relative ExecStart are reported."""
    unit = tmp_path / "broken.service"
    unit.write_text("[Service]\nType=simple\nExecStart=storescp 11112\nRestrat=on-failure\n")
    rc, output = verify(tmp_path, ["./broken.service"])
    assert rc != 0 or output, "systemd-analyze verify accepted a broken unit"
    assert "Restrat" in output
