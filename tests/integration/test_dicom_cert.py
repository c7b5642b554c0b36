"""dicom_cert through Ansible: a PKI that openssl and dcmtk accept, idempotence, check mode, diff,
renewals and bad input."""

from __future__ import annotations

import os
import subprocess

import pytest
from support.ansible_run import run_module, run_tasks
from support.servers import StoreSCP, dcmtk

SUBJ = {"O": "medimg test"}


def pki_tasks(d: str) -> list[dict]:
    """Root, issuing CA, node A via the CSR round trip, node B issued where its key lives."""
    m = "medimg.dicom_tls.dicom_cert"
    issuer = {"issuer_cert_path": d + "/inter.pem", "issuer_privatekey_path": d + "/inter.key"}
    return [
        {
            "name": "root",
            m: {
                "path": d + "/root.pem",
                "privatekey_path": d + "/root.key",
                "usage": "root_ca",
                "subject": dict(SUBJ, CN="Test Root CA"),
                "key_size": 2048,
            },
        },
        {
            "name": "intermediate",
            m: {
                "path": d + "/inter.pem",
                "privatekey_path": d + "/inter.key",
                "usage": "intermediate_ca",
                "subject": "/O=medimg test/CN=Test Issuing CA",
                "key_type": "ecdsa",
                "issuer_cert_path": d + "/root.pem",
                "issuer_privatekey_path": d + "/root.key",
            },
        },
        {
            "name": "node a key and csr",
            m: {
                "state": "csr",
                "privatekey_path": d + "/a.key",
                "csr_path": d + "/a.csr",
                "subject": dict(SUBJ, CN="node-a"),
                "subject_alt_names": ["DNS:localhost", "IP:127.0.0.1"],
                "key_size": 2048,
            },
            "register": "a_csr",
        },
        {
            "name": "node a signed on the CA side",
            m: dict(issuer, path=d + "/ca-issued-a.pem", csr_content="{{ a_csr.csr }}"),
            "register": "a_issued",
        },
        {
            "name": "node a installed",
            m: {
                "path": d + "/a.pem",
                "privatekey_path": d + "/a.key",
                "chain_path": d + "/a-chain.pem",
                "certificate_content": "{{ a_issued.certificate }}{{ lookup('file', '%s/inter.pem') }}" % d,
                "issuer_cert_path": d + "/inter.pem",
            },
        },
        {
            "name": "node b issued locally",
            m: dict(
                issuer,
                path=d + "/b.pem",
                privatekey_path=d + "/b.key",
                chain_path=d + "/b-chain.pem",
                subject=dict(SUBJ, CN="node-b"),
                key_type="ecdsa",
                subject_alt_names=["IP:127.0.0.1"],
            ),
        },
    ]


def tree(d: str) -> dict:
    """name -> (bytes, mode) of every file under d."""
    out = {}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            with open(p, "rb") as fh:
                out[name] = (fh.read(), os.stat(p).st_mode & 0o777)
    return out


@pytest.fixture(scope="module")
def built_pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("cert"))
    first = run_tasks(pki_tasks(d))
    assert first.rc == 0, first.output[-3000:]
    return d, first


def test_chain_verifies_with_openssl(built_pki):
    d = built_pki[0]
    for node in ("a", "b"):
        res = subprocess.run(
            ["openssl", "verify", "-CAfile", d + "/root.pem", "-untrusted", d + "/inter.pem", d + "/%s.pem" % node],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, res.stdout + res.stderr


def test_keys_are_0600_and_never_in_output(built_pki):
    d, first = built_pki
    for key in ("root.key", "inter.key", "a.key", "b.key"):
        assert os.stat(os.path.join(d, key)).st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in first.output
    assert all(r["changed"] for r in first.results())


def test_storescp_accepts_echo_between_two_nodes(built_pki, tmp_path):
    d = built_pki[0]
    with StoreSCP(["+tls", d + "/a.key", d + "/a-chain.pem", "+cf", d + "/root.pem"], str(tmp_path)) as scp:
        res = subprocess.run(
            [
                dcmtk("echoscu"),
                "+tls",
                d + "/b.key",
                d + "/b-chain.pem",
                "+cf",
                d + "/root.pem",
                "-aec",
                scp.aet,
                "127.0.0.1",
                str(scp.port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert res.returncode == 0, res.stderr + scp.output()[-2000:]


def test_second_run_changes_nothing(built_pki):
    d = built_pki[0]
    before = tree(d)
    again = run_tasks(pki_tasks(d), diff=True)
    assert again.rc == 0, again.output[-3000:]
    assert [r["_task"] for r in again.results() if r["changed"]] == []
    assert tree(d) == before


def test_check_mode_on_fresh_tree_predicts_and_writes_nothing(tmp_path):
    d = str(tmp_path)
    # Tasks that read files an earlier task would write (the issuing CA needs the root) cannot run in
    # check mode on an empty tree; the independent ones predict a change and write nothing.
    tasks = pki_tasks(d)
    res = run_tasks([tasks[0], tasks[2]], check=True, diff=True)
    assert res.rc == 0, res.output[-3000:]
    results = res.results()
    assert [r["changed"] for r in results] == [True, True]
    assert os.listdir(d) == []
    assert "PRIVATE KEY" not in res.output
    # one Ansible diff per action, headed by its file; the certificate's shows its subject
    diff = results[0]["diff"]
    assert [e["before_header"] for e in diff] == [a["path"] for a in results[0]["actions"]]
    assert any("subject: /O=medimg test/CN=Test Root CA\n" in e["after"] for e in diff), diff


def test_diff_shows_metadata_never_key_bytes(tmp_path):
    d = str(tmp_path)
    res = run_module(
        "dicom_cert",
        {
            "path": d + "/r.pem",
            "privatekey_path": d + "/r.key",
            "usage": "root_ca",
            "subject": {"CN": "Diff Root"},
            "key_size": 2048,
            "privatekey_passphrase": "s3cret-pass",
        },
        diff=True,
    )
    assert res["changed"] and res["_rc"] == 0
    (after,) = [e["after"] for e in res["diff"] if e["after_header"] == d + "/r.pem"]
    assert "subject: /CN=Diff Root\n" in after and "\nserial: " in after and "\nnot_after: " in after
    assert "PRIVATE KEY" not in res["_output"] and "s3cret-pass" not in res["_output"]


def test_cert_info_reports_chain_key_match_and_issuer(built_pki):
    d = built_pki[0]
    res = run_module(
        "dicom_cert_info",
        {"path": d + "/a-chain.pem", "privatekey_path": d + "/a.key", "issuer_cert_path": d + "/inter.pem"},
    )
    assert res["_rc"] == 0 and not res["changed"]
    assert res["subject"] == "/O=medimg test/CN=node-a"
    assert [c["subject"] for c in res["chain"]] == ["/O=medimg test/CN=node-a", "/O=medimg test/CN=Test Issuing CA"]
    assert res["privatekey_matches"] is True and res["issued_by_issuer"] is True and res["expired"] is False
    expected = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", d + "/a.pem"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert res["subject_hash"] == expected
    other = run_module("dicom_cert_info", {"path": d + "/a.pem", "privatekey_path": d + "/b.key"})
    assert other["privatekey_matches"] is False
    assert "PRIVATE KEY" not in res["_output"] + other["_output"]
