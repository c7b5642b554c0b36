"""Run a module's main() in-process (arguments in, result dict out) and read its argument spec.

Fast enough for property-based tests: no fork, no Ansible controller, the module's own code
path from argument validation to exit_json/fail_json."""

from __future__ import annotations

import importlib
from unittest import mock

from ansible.module_utils.basic import FILE_COMMON_ARGUMENTS, AnsibleModule
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.testing import patch_module_args

PACKAGE = "ansible_collections.medimg.dicom_tls.plugins.modules."
MODULES = (
    "dcmtk_option_files",
    "dicom_cert",
    "dicom_cert_export",
    "dicom_cert_info",
    "dicom_crl",
    "dicom_csr_check",
    "dicom_csr_sign",
    "dicom_daemon",
    "dicom_ledger_info",
    "dicom_metrics",
    "dicom_pkcs12",
    "dicom_sign",
    "dicom_tls_echo",
    "dicom_truststore",
    "orthanc_config",
)


class _Done(Exception):
    def __init__(self, failed: bool, result: dict):
        super().__init__("module ended")
        self.failed = failed
        self.result = result


class _Spec(Exception):
    def __init__(self, spec: dict):
        super().__init__("argument spec")
        self.spec = spec


def run(name: str, args: dict, check_mode: bool = False, diff: bool = False) -> tuple[bool, dict]:
    """(failed, result) of one module run (``diff``: in diff mode); any other exception (a traceback)
    propagates."""
    module = importlib.import_module(PACKAGE + name)

    # "_shown": the result as Ansible prints it (invocation included), no_log values and key material masked
    def exit_json(self, **kw):
        shown = remove_values(dict(kw, invocation={"module_args": self.params}), self.no_log_values)
        raise _Done(False, dict(kw, _shown=shown))

    def fail_json(self, msg, **kw):
        shown = remove_values(dict(kw, msg=msg, invocation={"module_args": self.params}), self.no_log_values)
        raise _Done(True, dict(kw, msg=msg, _shown=shown))

    with (
        patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)),
        mock.patch.object(AnsibleModule, "exit_json", exit_json),
        mock.patch.object(AnsibleModule, "fail_json", fail_json),
    ):
        try:
            module.main()
        except _Done as done:
            return done.failed, done.result
    raise AssertionError("%s ended without exit_json or fail_json" % name)


def argument_spec(name: str) -> dict:
    """The argument spec the module hands to AnsibleModule, with the file options Ansible adds to it."""
    module = importlib.import_module(PACKAGE + name)

    def capture(self, argument_spec, **kw):
        spec = dict(argument_spec)
        if kw.get("add_file_common_args"):  # mode, owner, group, attributes, ...: options of the module too
            spec.update({k: v for k, v in FILE_COMMON_ARGUMENTS.items() if k not in spec})
        raise _Spec(spec)

    with patch_module_args({}), mock.patch.object(AnsibleModule, "__init__", capture):
        try:
            module.main()
        except _Spec as got:
            return got.spec
    raise AssertionError("%s built no AnsibleModule" % name)


def options(spec: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """Every option, suboptions as ``parent.child``."""
    out = []
    for key, value in spec.items():
        out.append((prefix + key, value))
        if value.get("options"):
            out += options(value["options"], prefix + key + ".")
    return out
