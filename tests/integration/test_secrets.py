"""A private key pasted into an option by mistake is refused and never printed back: not with -vvv
(the task's invocation), not in ANSIBLE_LOG_PATH. An existing key readable by others is tightened to
0600 with a warning. Through ansible-playbook with Ansible's default output, as a user sees it."""

from __future__ import annotations

import os
import stat

import yaml
from support.ansible_run import run_playbook


def test_key_in_options_never_printed_and_loose_key_tightened(pki, tmp_path):
    node = pki.node("secrets node")
    with open(node.key) as fh:
        key_pem = fh.read()
    body = [line for line in key_pem.splitlines() if line and not line.startswith("-----")]
    out = tmp_path / "out"
    out.mkdir()
    loose = out / "loose.key"
    loose.write_text(key_pem)
    os.chmod(loose, 0o644)
    mistakes = [
        {"medimg.dicom_tls.dicom_cert_info": {"content": "{{ key_pem }}"}},
        {
            "medimg.dicom_tls.dicom_cert": {
                "path": str(out / "node.pem"),
                "privatekey_path": str(out / "node.key"),
                "certificate_content": "{{ key_pem }}",
            }
        },
        {
            "medimg.dicom_tls.dicom_csr_sign": {
                "requests": [{"name": "{{ key_pem }}", "path": str(out / "a.pem"), "csr_content": "{{ key_pem }}"}],
                "issuer_cert_path": pki.inter.cert,
                "issuer_privatekey_path": pki.inter.key,
            }
        },
        {
            "medimg.dicom_tls.orthanc_config": {
                "config_dir": str(out),
                "settings": {"DicomTlsCertificate": "{{ key_pem }}"},
            }
        },
    ]
    tasks = [dict(t, ignore_errors=True, name="mistake %d" % i) for i, t in enumerate(mistakes)]
    tasks.append(
        {
            "name": "loose key",
            "medimg.dicom_tls.dicom_cert": {
                "path": str(out / "loose.pem"),
                "privatekey_path": str(loose),
                "subject": "/CN=loose",
                "key_size": 2048,  # the test PKI's: the same key is kept
                "issuer_cert_path": pki.inter.cert,
                "issuer_privatekey_path": pki.inter.key,
            },
        }
    )
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    log = tmp_path / "ansible.log"
    res = run_playbook(
        str(play),
        "-vvv",
        extra_vars={"key_pem": key_pem},
        env={"ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_LOG_PATH": str(log)},
    )
    assert res.rc == 0, res.output[-3000:]
    assert res.output.count("holds a PEM private key") >= 4, res.output[-3000:]
    logged = log.read_text()
    assert "holds a PEM private key" in logged
    for line in body:
        assert line not in res.output, "private key line printed with -vvv"
        assert line not in logged, "private key line in ANSIBLE_LOG_PATH"
    assert "lets other users read the private key" in res.output  # the warning
    assert stat.S_IMODE(os.stat(loose).st_mode) == 0o600
    assert loose.read_text() == key_pem
