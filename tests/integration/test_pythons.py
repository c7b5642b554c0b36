"""Managed-node Pythons: every module once, run by Ansible with ``ansible_python_interpreter`` set to
each interpreter a hospital's nodes have (tests/config.yml declares the range, 3.9 to 3.13).

- pyenv 3.9 with cryptography 36.0.1: what RHEL 9 has (Python 3.9, python3-cryptography 36.0.1);
  dicom_sign and dicom_tls_echo must fail with one sentence (pydicom/pynetdicom 3 need 3.10).
- pyenv 3.10, 3.12, 3.13 with requirements.txt (newest cryptography, pydicom, pynetdicom).
- /usr/bin/python3 with Debian 12's python3-cryptography 38.0.4 and nothing from pip: the
  cryptography modules work; dicom_sign and dicom_tls_echo say which package is missing.
The venvs are made by scripts/bootstrap.sh under .build/pythons/; an interpreter missing on this
machine is skipped with the reason. The controller's Python (3.11) runs every other test.

One playbook per interpreter, a representative of each module: a CA, a CSR round trip, a node
certificate, its description, a CRL, a hashed trust directory, an Orthanc drop-in, a storescp under
dicom_daemon, a TLS C-ECHO to it, a signed DICOM file, a rerun that changes nothing, and stop.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from support.ansible_run import ROOT, run_tasks
from support.dicom_files import write_ct
from support.servers import dcmtk, free_port

PYTHONS = {
    "3.9-cryptography-36": os.path.join(ROOT, ".build", "pythons", "3.9", "bin", "python"),
    "3.10": os.path.join(ROOT, ".build", "pythons", "3.10", "bin", "python"),
    "3.12": os.path.join(ROOT, ".build", "pythons", "3.12", "bin", "python"),
    "3.13": os.path.join(ROOT, ".build", "pythons", "3.13", "bin", "python"),
    "debian-system": "/usr/bin/python3",
}
M = "medimg.dicom_tls."


def _facts(python: str) -> dict:
    code = (
        "import sys\ntry:\n import cryptography; c = cryptography.__version__\nexcept ImportError:\n c = None\n"
        "try:\n import pynetdicom, pydicom; d = True\nexcept ImportError:\n d = False\n"
        "print(sys.version_info[0], sys.version_info[1], c, d)"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"python": (int(out[0]), int(out[1])), "cryptography": out[2], "dicom": out[3] == "True"}


def _tasks(d: str, port: int) -> list[dict]:
    ca = {"issuer_cert_path": d + "/inter.pem", "issuer_privatekey_path": d + "/inter.key"}
    root = {
        "path": d + "/root.pem",
        "privatekey_path": d + "/root.key",
        "usage": "root_ca",
        "subject": {"O": "medimg test", "CN": "Matrix Root CA"},
        "key_size": 2048,
    }
    storescp = {
        "name": "storescp-matrix",
        "command": [
            dcmtk("storescp"),
            "+tls",
            d + "/node.key",
            d + "/node.pem",
            "+cf",
            d + "/root.pem",
            "-od",
            d + "/in",
            str(port),
        ],
        "pidfile": d + "/storescp.pid",
        "log_path": d + "/storescp.log",
        "port": port,
    }
    echo = {
        "host": "127.0.0.1",
        "port": port,
        "called_ae_title": "STORESCP",
        "certificate_path": d + "/node-chain.pem",
        "privatekey_path": d + "/node.key",
        "ca_file": d + "/ca-bundle.pem",
    }
    return [
        {"name": "root", M + "dicom_cert": root, "register": "root"},
        {
            "name": "intermediate",
            M + "dicom_cert": {
                "path": d + "/inter.pem",
                "privatekey_path": d + "/inter.key",
                "usage": "intermediate_ca",
                "subject": "/O=medimg test/CN=Matrix Issuing CA",
                "key_type": "ecdsa",
                "issuer_cert_path": d + "/root.pem",
                "issuer_privatekey_path": d + "/root.key",
            },
        },
        {
            "name": "node key and csr",
            M + "dicom_cert": {
                "state": "csr",
                "privatekey_path": d + "/node.key",
                "csr_path": d + "/node.csr",
                "subject": {"O": "medimg test", "CN": "matrix-node"},
                "subject_alt_names": ["DNS:localhost", "IP:127.0.0.1"],
                "key_size": 2048,
            },
            "register": "csr",
        },
        {
            "name": "node signed",
            M + "dicom_cert": dict(ca, path=d + "/node-issued.pem", csr_content="{{ csr.csr }}"),
            "register": "issued",
        },
        {
            "name": "node installed",
            M + "dicom_cert": {
                "path": d + "/node.pem",
                "privatekey_path": d + "/node.key",
                "chain_path": d + "/node-chain.pem",
                "certificate_content": "{{ issued.certificate }}{{ lookup('file', '%s/inter.pem') }}" % d,
                "issuer_cert_path": d + "/inter.pem",
            },
        },
        {"name": "info", M + "dicom_cert_info": {"path": d + "/node.pem"}, "register": "info"},
        {
            "name": "crl",
            M + "dicom_crl": dict(ca, path=d + "/inter.crl", revoked=[{"serial": "0A:0B", "reason": "superseded"}]),
        },
        {
            "name": "trust",
            M + "dicom_truststore": {
                "path": d + "/trust",
                "layout": "hashed_dir",
                "certificates": [d + "/root.pem"],
                "crls": [d + "/inter.crl"],
                "crl_issuers": [d + "/inter.pem"],
            },
        },
        {
            "name": "bundle",
            M + "dicom_truststore": {
                "path": d + "/ca-bundle.pem",
                "layout": "bundle",
                "certificates": [d + "/root.pem", d + "/inter.pem"],
                "allow_non_root": True,
            },
        },
        {
            "name": "orthanc",
            M + "orthanc_config": {"config_dir": d + "/orthanc", "settings": {"DicomTlsEnabled": True}},
        },
        {"name": "listener", M + "dicom_daemon": storescp},
        {"name": "echo", M + "dicom_tls_echo": echo, "ignore_errors": True},
        {
            "name": "sign",
            M + "dicom_sign": {
                "path": [d + "/ct.dcm"],
                "dest": d + "/signed.dcm",
                "privatekey_path": d + "/node.key",
                "certificate_path": d + "/node.pem",
            },
            "ignore_errors": True,
        },
        {"name": "rerun root", M + "dicom_cert": root, "register": "root_again"},
        {"name": "rerun listener", M + "dicom_daemon": storescp},
        {"name": "stop", M + "dicom_daemon": dict(storescp, state="stopped")},
    ]


@pytest.mark.parametrize("label", list(PYTHONS))
def test_modules_on_interpreter(label, tmp_path):
    python = PYTHONS[label]
    if not os.access(python, os.X_OK):
        pytest.skip("%s: %s not present (scripts/bootstrap.sh builds it from pyenv's %s)" % (label, python, label))
    facts = _facts(python)
    if facts["cryptography"] is None:
        pytest.skip("%s: no cryptography for %s (bootstrap installs python3-cryptography)" % (label, python))
    d = str(tmp_path)
    os.makedirs(d + "/orthanc")
    os.makedirs(d + "/in")
    with open(d + "/orthanc/orthanc.json", "w") as fh:
        fh.write('{\n  "Name" : "matrix"\n}\n')
    write_ct(d + "/ct.dcm")
    port = free_port()
    run = run_tasks(_tasks(d, port), env={"ANSIBLE_PYTHON_INTERPRETER": python})
    results = {r["_task"]: r for r in run.results()}
    try:
        assert run.rc == 0, run.output[-6000:]
        for name in ("root", "intermediate", "node key and csr", "node signed", "node installed", "crl", "trust"):
            assert results[name].get("changed") is True, (name, results[name])
        assert results["orthanc"]["changed"] is True
        assert results["info"]["subject"] == "/O=medimg test/CN=matrix-node"
        assert results["info"]["not_after"].endswith("Z") and results["info"]["expired"] is False
        assert results["rerun root"]["changed"] is False
        assert results["rerun listener"]["changed"] is False
        assert results["stop"]["changed"] is True
        echo, sign = results["echo"], results["sign"]
        if facts["dicom"] and facts["python"] >= (3, 10):
            assert echo.get("failed") is not True and echo.get("status") in (None, "success"), echo
            assert sign.get("failed") is not True, sign
            verify = subprocess.run(
                [dcmtk("dcmsign"), "--verify", "+cf", d + "/ca-bundle.pem", d + "/signed.dcm"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert verify.returncode == 0, verify.stdout + verify.stderr
        elif facts["python"] < (3, 10):
            assert "pynetdicom needs Python >= 3.10, found Python 3.9" in echo["msg"]
            assert "pydicom needs Python >= 3.10, found Python 3.9" in sign["msg"]
        else:  # Debian's python3 without pydicom/pynetdicom 3 from pip
            assert echo["failed"] and "pynetdicom" in echo["msg"] and "Traceback" not in echo["msg"]
            assert sign["failed"] and "pydicom" in sign["msg"] and "Traceback" not in sign["msg"]
        for r in results.values():
            assert "Traceback" not in str(r.get("msg", "")), r
    finally:
        pid_file = d + "/storescp.pid"
        if os.path.exists(pid_file):
            from support.servers import stop_pid

            stop_pid(int(open(pid_file).read().split()[0]))
