"""A private key a module only reads (dicom_sign's signer key, the CA key of dicom_pkcs12, dicom_cert,
dicom_csr_sign and dicom_crl, dicom_tls_echo's client key) that other users may read: the task warns,
naming the option, the file and its mode, and leaves the file as it is; a 0600 key gives no warning."""

from __future__ import annotations

import os
import stat
from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule
from support import module_run


def _args(workspace, work, module):
    """(arguments, the option naming the key, its path) of a task that reads a private key."""
    if module == "dicom_tls_echo":
        sign = workspace.base("dicom_sign", work)
        args = dict(
            workspace.base(module, work),
            certificate_path=sign["certificate_path"],
            privatekey_path=sign["privatekey_path"],
        )
        return args, "privatekey_path", args["privatekey_path"]
    option = "privatekey_path" if module == "dicom_sign" else "issuer_privatekey_path"
    args = workspace.base(module, work)
    return args, option, args[option]


def _run(module, args):
    warnings = []
    with mock.patch.object(AnsibleModule, "warn", lambda self, msg: warnings.append(msg)):
        failed, result = module_run.run(module, args)
    if module == "dicom_tls_echo":  # nothing listens on the port: the run ends with a verdict, not a traceback
        assert result["summary"] == {"connection_refused": 1}, result
    else:
        assert not failed, result
    return warnings


@pytest.mark.parametrize(
    "module", ["dicom_sign", "dicom_pkcs12", "dicom_tls_echo", "dicom_cert", "dicom_csr_sign", "dicom_crl"]
)
def test_loose_key_read_is_warned_about_and_left_alone(workspace, work, module):
    args, option, key = _args(workspace, work, module)
    os.chmod(key, 0o640)
    with open(key, "rb") as fh:
        before = fh.read()

    warnings = _run(module, args)
    loose = [w for w in warnings if key in w]
    assert len(loose) == 1, warnings
    assert loose[0].startswith(option + " ") and "0640" in loose[0], loose
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o640  # only read: the mode is the user's to change
    with open(key, "rb") as fh:
        assert fh.read() == before
    assert "PRIVATE KEY" not in " ".join(warnings)


def test_tight_key_gives_no_warning(workspace, work):
    args, _option, key = _args(workspace, work, "dicom_sign")
    os.chmod(key, 0o600)
    assert not [w for w in _run("dicom_sign", args) if key in w]
