"""A fleet of local dcmtk nodes for the playbook tests: its inventory and its playbook runs.

Every node runs on this machine (local connection, the test's Python) with all of its state below
one folder; each test adds the variables it is about.
"""

from __future__ import annotations

import os

import yaml
from support.ansible_run import ROOT, run_playbook

PLAYBOOKS = os.path.join(ROOT, "playbooks")


class LocalFleet:
    """``nodes``: {name: port} of the dcmtk nodes (AE title = the name in upper case, ``-`` as ``_``);
    ``extra_vars``: inventory variables for all hosts, on top of the shared ones."""

    def __init__(self, state, nodes: dict[str, int], **extra_vars):
        self.state = str(state)
        self.outputs: list[str] = []
        self.inventory = os.path.join(self.state, "inventory.yml")
        hosts = {n: {"dicom_tls_port": p, "dicom_tls_ae_title": n.upper().replace("-", "_")} for n, p in nodes.items()}
        common = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "dicom_tls_state_dir": self.state,
            "dicom_tls_root": self.state + "/nodes",
            "dicom_tls_run_dir": self.state + "/run",
            "dicom_tls_log_dir": self.state + "/log",
            "dicom_tls_data_dir": self.state + "/data",
            "dicom_tls_pki_dir": self.state + "/pki",
            "dicom_tls_report_dir": self.state,
            "dicom_tls_address": "127.0.0.1",
            "dicom_tls_key_size": 2048,
            "crl_refresh_schedule": False,
        }
        inv = {
            "all": {
                "vars": {**common, **extra_vars},
                "children": {
                    "dicom_ca": {"hosts": {"ca": None}},
                    "dicom_nodes": {"children": {"dcmtk_nodes": {"hosts": hosts}, "orthanc_nodes": {"hosts": {}}}},
                },
            }
        }
        with open(self.inventory, "w") as fh:
            yaml.safe_dump(inv, fh)

    def play(self, name, *args, **extra_vars):
        """Run playbooks/NAME over this fleet; its output is kept in ``outputs``."""
        res = run_playbook(
            os.path.join(PLAYBOOKS, name), *args, inventory=self.inventory, extra_vars=extra_vars or None
        )
        self.outputs.append(res.output)
        return res
