"""dicom_csr_sign with O(backup): a re-issued certificate leaves a copy of the one it replaces, and the
result names that copy in ``backup_files`` (top level and per request), as dicom_cert does."""

from __future__ import annotations

import pytest
from support.module_run import run
from support.pki import TestPKI


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return TestPKI(tmp_path_factory.mktemp("pki"), key_type="ecdsa")


def test_reissue_names_the_copy_of_the_replaced_certificate(pki, tmp_path):
    failed, made = run(
        "dicom_cert",
        dict(
            state="csr", privatekey_path=str(tmp_path / "n.key"), csr_path=str(tmp_path / "n.csr"), subject={"CN": "n"}
        ),
    )
    assert not failed, made
    request = dict(name="n", path=str(tmp_path / "n.pem"), csr_content=made["csr"], subject_alt_names=["DNS:n"])
    args = dict(requests=[request], issuer_cert_path=pki.inter.cert, issuer_privatekey_path=pki.inter.key, backup=True)
    failed, first = run("dicom_csr_sign", args)
    assert not failed and first["changed"], first
    assert first["backup_files"] == [] and first["issued"]["n"]["backup_files"] == []
    with open(request["path"], "rb") as fh:
        before = fh.read()

    request["subject_alt_names"] = ["DNS:n", "DNS:n.example"]
    failed, second = run("dicom_csr_sign", args)
    assert not failed and second["changed"], second
    assert second["issued"]["n"]["backup_files"] == second["backup_files"]
    assert len(second["backup_files"]) == 1, second
    with open(second["backup_files"][0], "rb") as fh:
        assert fh.read() == before
    with open(request["path"], "rb") as fh:
        assert fh.read() != before

    failed, third = run("dicom_csr_sign", args)
    assert not failed and not third["changed"] and third["backup_files"] == [], third
