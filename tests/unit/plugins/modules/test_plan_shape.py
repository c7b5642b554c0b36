"""One plan shape: every module that writes files (or starts a listener) reports ``changed``, ``actions``
(a list of ``{path, action, reason}``) and, in diff mode, one Ansible ``{before_header, after_header,
before, after}`` per action, metadata only (no ``diff`` when nothing changes). Check mode returns the
same actions the run then carries out, a second run returns none, and a change of file attributes
alone (O(mode)) is an action too, ``attributes_changed``, predicted by check mode like any other."""

from __future__ import annotations

import ast
import os

import pytest
from support import dicom_files
from support.module_run import MODULES, run
from support.pki import TestPKI

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ACTION_WORDS = {
    "created",
    "updated",
    "renewed",
    "regenerated",
    "renumbered",
    "removed",
    "signed",
    "copied",
    "started",
    "restarted",
    "stopped",
    "recovered",
    "attributes_changed",
}
# Modules that write nothing a plan could list: they read, check or report.
READ_ONLY = {"dicom_cert_info", "dicom_csr_check", "dicom_ledger_info", "dicom_tls_echo"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return TestPKI(tmp_path_factory.mktemp("pki"), key_type="ecdsa")


def _read(path):
    with open(path, encoding="ascii") as fh:
        return fh.read()


def cases(pki, tmp):
    node = pki.node("plan shape signer")
    sign = dict(privatekey_path=node.key, certificate_path=node.cert)
    issuer = dict(issuer_cert_path=pki.inter.cert, issuer_privatekey_path=pki.inter.key)
    csr_dir = tmp.parent / (tmp.name + "-csr")
    csr_dir.mkdir(exist_ok=True)
    return {
        "dicom_crl": dict(path=str(tmp / "ca.crl"), **issuer),
        "dicom_crl database": dict(
            path=str(tmp / "ca.crl"), database=str(tmp / "index.txt"), revoked=[{"serial": "4242"}], **issuer
        ),
        "dicom_metrics": dict(path=str(tmp / "m.prom")),
        "dicom_truststore": dict(path=str(tmp / "trust"), certificates=[pki.root.cert]),
        "dicom_truststore bundle": dict(path=str(tmp / "ca.pem"), layout="bundle", certificates=[pki.root.cert]),
        "orthanc_config": dict(
            config_dir=str(tmp), settings={"DicomTlsEnabled": True, "DicomTlsRemoteCertificateRequired": True}
        ),
        "dicom_daemon": dict(
            name="plan-shape", command=["/bin/sleep", "300"], pidfile=str(tmp / "sleep.pid"), log_path=str(tmp / "log")
        ),
        "dicom_sign": dict(sign, path=[dicom_files.write_ct(str(tmp / "ct.dcm"))]),
        "dicom_sign dest": dict(sign, path=[dicom_files.write_ct(str(tmp / "ct.dcm"))], dest=str(tmp / "signed")),
        "dicom_cert": dict(
            path=str(tmp / "tls" / "node.pem"),
            privatekey_path=str(tmp / "private" / "node.key"),
            chain_path=str(tmp / "tls" / "node.chain.pem"),
            pkcs12_path=str(tmp / "private" / "node.p12"),
            pkcs12_passphrase="plan shape",
            subject={"CN": "plan shape node"},
            subject_alt_names=["DNS:node.example.org"],
            key_type="ecdsa",
            database=str(tmp / "index.txt"),
            **issuer,
        ),
        "dicom_cert csr": dict(
            state="csr",
            privatekey_path=str(tmp / "private" / "node.key"),
            csr_path=str(tmp / "node.csr"),
            subject={"CN": "plan shape node"},
            key_type="ecdsa",
        ),
        "dicom_cert self_signed": dict(
            path=str(tmp / "root.pem"),
            privatekey_path=str(tmp / "root.key"),
            usage="root_ca",
            subject={"CN": "plan shape root"},
            key_type="ecdsa",
        ),
        "dicom_pkcs12": dict(
            path=str(tmp / "appliance.p12"),
            passphrase="plan shape",
            subject="/O=medimg test/CN=appliance",
            certificate_path=str(tmp / "appliance.pem"),
            key_type="ecdsa",
            **issuer,
        ),
        "dicom_cert_export": dict(
            dest=str(tmp),
            name="appliance",
            certificate_content=_read(node.cert),
            ca_content=_read(pki.inter.cert) + _read(pki.root.cert),
        ),
        "dcmtk_option_files": dict(
            directory=str(tmp / "dcmtk-a"),
            tools={"storescp": ["+tls k c", "+cd trust", "-aet A"], "echoscu": ["+tls k c", "-aet A"]},
            backup=True,
        ),
        "dicom_csr_sign": dict(
            requests=[
                dict(name="node-a", path=str(tmp / "issued" / "a.pem"), chain_path=str(tmp / "issued" / "a.chain.pem"))
            ],
            database=str(tmp / "index.txt"),
            **issuer,
        ),
    }


def prepare(case, args, tmp_path):
    """Inputs a case needs that another module makes: dicom_csr_sign signs a CSR born with dicom_cert."""
    if case == "dicom_csr_sign":
        key, csr = str(tmp_path / "node.key"), str(tmp_path / "node.csr")
        spec = dict(state="csr", privatekey_path=key, csr_path=csr, subject={"CN": "node-a"}, key_type="ecdsa")
        failed, made = run("dicom_cert", spec)
        assert not failed, made
        args["requests"][0]["csr_content"] = made["csr"]
    return args


CASES = [
    "dicom_crl",
    "dicom_crl database",
    "dicom_metrics",
    "dicom_truststore",
    "dicom_truststore bundle",
    "orthanc_config",
    "dicom_daemon",
    "dicom_sign",
    "dicom_sign dest",
    "dicom_cert",
    "dicom_cert csr",
    "dicom_cert self_signed",
    "dicom_pkcs12",
    "dicom_cert_export",
    "dcmtk_option_files",
    "dicom_csr_sign",
]


def test_every_module_that_writes_is_covered():
    covered = {case.split()[0] for case in CASES}
    assert covered == set(MODULES) - READ_ONLY


@pytest.mark.parametrize("case", CASES)
def test_actions_check_mode_run_rerun(case, pki, tmp_path):
    args = prepare(case, cases(pki, tmp_path)[case], tmp_path)
    module = case.split()[0]
    try:
        check_run_rerun(module, args, tmp_path)
        # a change of attributes alone: listed, predicted, done, then nothing
        check_run_rerun(module, dict(args, mode="0600"), tmp_path, attributes_only=True)
    finally:
        if module == "dicom_daemon":  # the listener this test started, stopped by its PID file
            failed, stopped = run(module, dict(args, state="stopped"))
            assert not failed, stopped
            assert stopped["actions"] == [{"path": args["pidfile"], "action": "stopped", "reason": stopped["reason"]}]
            assert stopped["action"] == "stopped"


def check_run_rerun(module, args, tmp_path, attributes_only=False):
    failed, predicted = run(module, args, check_mode=True, diff=True)
    assert not failed, predicted
    failed, done = run(module, args, diff=True)
    assert not failed, done
    assert done["changed"] and done["actions"], done
    for a in done["actions"]:
        assert set(a) == {"path", "action", "reason"} and a["reason"], a
        assert a["action"] in ACTION_WORDS, a
        assert a["path"].startswith(str(tmp_path))
        if attributes_only:
            assert a["action"] == "attributes_changed", done["actions"]
    assert [(a["path"], a["action"]) for a in predicted["actions"]] == [
        (a["path"], a["action"]) for a in done["actions"]
    ]
    for result in (predicted, done):
        check_diff(result)
    failed, again = run(module, args, diff=True)
    assert not failed and not again["changed"] and again["actions"] == [] and "diff" not in again, again


def check_diff(result):
    """One Ansible diff per action, headed by its path, text on both sides, never a key."""
    diff = result["diff"]
    assert isinstance(diff, list) and len(diff) == len(result["actions"]), result
    for entry, action in zip(diff, result["actions"], strict=True):
        assert set(entry) == {"before_header", "after_header", "before", "after"}, entry
        assert entry["before_header"] == entry["after_header"] == action["path"]
        assert isinstance(entry["before"], str) and isinstance(entry["after"], str)
        assert entry["before"] != entry["after"], entry
        assert "PRIVATE KEY" not in entry["before"] + entry["after"]


def _module_calls(name):
    tree = ast.parse(open(os.path.join(ROOT, "plugins", "modules", name + ".py"), encoding="utf-8").read())
    return {
        ast.unparse(node.func)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name))
    }


@pytest.mark.parametrize("module", sorted(set(MODULES) - READ_ONLY))
def test_modules_report_through_the_one_helper(module):
    """changed, actions and diff come from reports.report in every module that writes: no module
    builds them its own way."""
    calls = _module_calls(module)
    assert "reports.report" in calls, module
    source = open(os.path.join(ROOT, "plugins", "modules", module + ".py"), encoding="utf-8").read()
    assert 'result["diff"]' not in source and "diff=dict(" not in source
