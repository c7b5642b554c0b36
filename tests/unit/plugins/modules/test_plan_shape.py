"""One plan shape: the modules report ``actions``, a list of ``{path, action, reason}``; check mode
returns the same list the run then carries out, and a second run returns an empty one."""

from __future__ import annotations

import pytest
from support import dicom_files
from support.module_run import run
from support.pki import TestPKI


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return TestPKI(tmp_path_factory.mktemp("pki"))


def cases(pki, tmp):
    node = pki.node("plan shape signer")
    sign = dict(privatekey_path=node.key, certificate_path=node.cert)
    crl = dict(path=str(tmp / "ca.crl"), issuer_cert_path=pki.inter.cert, issuer_privatekey_path=pki.inter.key)
    return {
        "dicom_crl": crl,
        "dicom_metrics": dict(path=str(tmp / "m.prom")),
        "dicom_truststore": dict(path=str(tmp / "trust"), certificates=[pki.root.cert]),
        "dicom_truststore bundle": dict(path=str(tmp / "ca.pem"), layout="bundle", certificates=[pki.root.cert]),
        "orthanc_config": dict(
            config_dir=str(tmp), settings={"DicomTlsEnabled": True, "DicomTlsRemoteCertificateRequired": True}
        ),
        "dicom_daemon": dict(name="plan-shape", command=["/bin/sleep", "300"], pidfile=str(tmp / "sleep.pid")),
        "dicom_sign": dict(sign, path=[dicom_files.write_ct(str(tmp / "ct.dcm"))]),
        "dicom_sign dest": dict(sign, path=[dicom_files.write_ct(str(tmp / "ct.dcm"))], dest=str(tmp / "signed")),
    }


CASES = [
    "dicom_crl",
    "dicom_metrics",
    "dicom_truststore",
    "dicom_truststore bundle",
    "orthanc_config",
    "dicom_daemon",
    "dicom_sign",
    "dicom_sign dest",
]


@pytest.mark.parametrize("case", CASES)
def test_actions_check_mode_run_rerun(case, pki, tmp_path):
    args = cases(pki, tmp_path)[case]
    module = case.split()[0]
    try:
        check_run_rerun(module, args, tmp_path)
    finally:
        if module == "dicom_daemon":  # the listener this test started, stopped by its PID file
            failed, stopped = run(module, dict(args, state="stopped"))
            assert not failed and stopped["actions"] == [
                {"path": args["pidfile"], "action": "stopped", "reason": stopped["reason"]}
            ], stopped


def check_run_rerun(module, args, tmp_path):
    failed, predicted = run(module, args, check_mode=True)
    assert not failed, predicted
    failed, done = run(module, args)
    assert not failed, done
    assert done["changed"] and done["actions"], done
    for a in done["actions"]:
        assert set(a) >= {"path", "action", "reason"} and a["reason"], a
        assert a["path"].startswith(str(tmp_path))
    assert [a["path"] for a in predicted["actions"]] == [a["path"] for a in done["actions"]]
    assert [a["action"] for a in predicted["actions"]] == [a["action"] for a in done["actions"]]
    failed, again = run(module, args)
    assert not failed and not again["changed"] and again["actions"] == [], again
