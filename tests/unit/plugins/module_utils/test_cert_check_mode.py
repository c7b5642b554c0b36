"""Check mode of dicom_cert's library on a fleet: inputs an earlier task of the run would create may
be missing (predicted, not failed), CSRs and CA-signed certificates are built in memory so the next
task can predict from them, and nothing is written."""

from __future__ import annotations

import os

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as backend
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError


def files(d) -> list[str]:
    return sorted(os.path.join(r, f) for r, _d, fs in os.walk(d) for f in fs)


def test_issuing_ca_on_a_root_that_does_not_exist_yet(tmp_path):
    d = str(tmp_path)
    spec = backend.CertSpec(
        path=d + "/issuing.pem",
        privatekey_path=d + "/private/issuing.key",
        usage="intermediate_ca",
        subject={"CN": "Issuing"},
        key_type="ecdsa",
        issuer_cert_path=d + "/root.pem",
        issuer_privatekey_path=d + "/private/root.key",
        database=d + "/ca/index.txt",
    )
    with pytest.raises(DicomTlsError, match="issuer certificate does not exist"):
        backend.plan(spec)  # a real run: the missing root is an error
    p = backend.plan(spec, check_mode=True)
    assert {a.role for a in p.actions} == {"privatekey", "certificate"}
    assert backend.predict(p)["certificate"] is None
    assert files(d) == []


def test_csr_then_sign_then_install_predicted_in_memory(tmp_path):
    d = str(tmp_path)
    for name, usage, issuer in (("root", "root_ca", None), ("issuing", "intermediate_ca", "root")):
        spec = backend.CertSpec(
            path="%s/%s.pem" % (d, name),
            privatekey_path="%s/%s.key" % (d, name),
            usage=usage,
            subject={"CN": name},
            key_type="ecdsa",
            issuer_cert_path="%s/%s.pem" % (d, issuer) if issuer else None,
            issuer_privatekey_path="%s/%s.key" % (d, issuer) if issuer else None,
        )
        backend.apply(backend.plan(spec))
    before = files(d)
    node = d + "/node"
    csr_spec = backend.CertSpec(
        state="csr",
        privatekey_path=node + "/private/node.key",
        csr_path=node + "/tls/node.csr",
        subject={"CN": "node"},
        subject_alt_names=["DNS:node"],
        key_type="ecdsa",
    )
    csr = backend.predict(backend.plan(csr_spec, check_mode=True))["csr"]
    assert crypto.name_text(csr.subject) == "/CN=node"
    issued = backend.sign_many(
        {"issuer_cert_path": d + "/issuing.pem", "issuer_privatekey_path": d + "/issuing.key"},
        [{"name": "node", "path": d + "/issued/node.pem", "csr_content": crypto.csr_pem(csr).decode("ascii")}],
        check_mode=True,
    )["node"]
    assert issued["changed"] and issued["predicted"] and "chain" in issued
    # the node's key does not exist yet (the CSR task would make it): the install is predicted
    install = backend.CertSpec(
        path=node + "/tls/node.pem",
        privatekey_path=node + "/private/node.key",
        certificate_content=issued["chain"],
    )
    with pytest.raises(DicomTlsError, match="private key does not exist"):
        backend.plan(install)
    p = backend.plan(install, check_mode=True)
    assert [(a.role, a.action) for a in p.actions] == [("certificate", "created")]
    assert files(d) == before
