"""A legacy root as hospitals have it: ``openssl req -x509 -sha1`` over a SHA-256 issuing CA and its
nodes, and the root's CRL from ``openssl ca -gencrl`` with ``default_md = sha1``. Every module judges
it as OpenSSL 3 and dcmtk do: the root is self-signed (``openssl verify -check_ss_sig``), it is not
copied into a node's chain, ``dcmsign --verify`` and ``dicom_sign state=verified`` agree, and the
SHA-1 CRL goes into the trust store as ``openssl verify -crl_check`` accepts it."""

from __future__ import annotations

import os
import subprocess

import pytest
from support.ansible_run import run_tasks
from support.dicom_files import write_ct
from support.legacy_pki import LegacyPKI, openssl, openssl_crl_verified, openssl_ok
from support.servers import dcmtk

M = "medimg.dicom_tls."


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    m = LegacyPKI(tmp_path_factory.mktemp("legacy"))
    m.root("root", "-sha1", cn="Legacy Root SHA1")
    m.child("issuing", "root", "-sha256", ca=True)
    m.child("signer", "issuing", "-sha256")
    m.crl_path = m.crl("root", "sha1")
    with open(m.path("issuing-bundle.pem"), "w") as fh:  # what a CA admin hands out: issuing CA + root
        fh.write(open(m.path("issuing.pem")).read() + open(m.path("root.pem")).read())
    return m


def count_certs(path) -> int:
    return open(path).read().count("BEGIN CERTIFICATE")


def test_sha1_root_judged_as_openssl_and_dcmsign_judge_it(legacy, tmp_path):
    m, d = legacy, str(tmp_path)
    # the oracles' verdicts on the material
    assert openssl_ok("verify", "-check_ss_sig", "-CAfile", m.path("root.pem"), m.path("root.pem"))
    assert openssl_crl_verified(m.crl_path, m.path("root.pem"))
    assert openssl_ok(
        "verify", "-crl_check", "-CAfile", m.path("root.pem"), "-CRLfile", m.crl_path, m.path("issuing.pem")
    )
    dcm = write_ct(os.path.join(d, "signed.dcm"), seed=3)
    signed = subprocess.run(
        [dcmtk("dcmsign"), "+s", m.path("signer.key"), m.path("signer.pem"), dcm, dcm], capture_output=True, check=False
    )
    assert signed.returncode == 0, signed.stderr
    dcmsign = subprocess.run(
        [dcmtk("dcmsign"), "--verify", "+cf", m.path("root.pem"), "+uf", m.path("issuing.pem"), dcm],
        capture_output=True,
        text=True,
        check=False,
    )
    assert dcmsign.returncode == 0, dcmsign.stdout + dcmsign.stderr

    node = {
        "path": d + "/node.pem",
        "privatekey_path": d + "/node.key",
        "chain_path": d + "/node-chain.pem",
        "subject": "/O=Hospital/CN=node-1",
        "subject_alt_names": ["IP:127.0.0.1"],
        "issuer_cert_path": m.path("issuing.pem"),
        "issuer_privatekey_path": m.path("issuing.key"),
        "issuer_chain_path": m.path("issuing-bundle.pem"),
    }
    tasks = [
        {"name": "info", M + "dicom_cert_info": {"path": m.path("root.pem")}},
        {"name": "node", M + "dicom_cert": node},
        {"name": "node again", M + "dicom_cert": node},
        {
            "name": "ca under the root",
            M + "dicom_cert": {
                "path": d + "/sub.pem",
                "privatekey_path": d + "/sub.key",
                "chain_path": d + "/sub-chain.pem",
                "usage": "intermediate_ca",
                "subject": "/O=Hospital/CN=Sub CA",
                "issuer_cert_path": m.path("root.pem"),
                "issuer_privatekey_path": m.path("root.key"),
            },
        },
        {
            "name": "verify",
            M + "dicom_sign": {
                "path": [dcm],
                "state": "verified",
                "ca_file": m.path("root.pem"),
                "untrusted_certs": [m.path("issuing.pem")],
            },
        },
        {
            "name": "store",
            M + "dicom_truststore": {
                "path": d + "/store",
                "certificates": [m.path("root.pem")],
                "crls": [m.crl_path],
            },
        },
    ]
    for t in tasks:
        t["ignore_errors"] = True
    play = run_tasks(tasks)
    res = {r["_task"]: r for r in play.results()}
    assert len(res) == len(tasks), play.output[-3000:]
    for name, r in res.items():
        assert not r.get("failed"), "%s: %s" % (name, r.get("msg") or r)

    assert res["info"]["self_signed"] is True
    # the root is not copied into a node's chain: leaf + issuing CA, as `openssl verify` needs
    assert count_certs(d + "/node-chain.pem") == 2
    assert openssl_ok("verify", "-CAfile", m.path("root.pem"), "-untrusted", d + "/node-chain.pem", d + "/node.pem")
    assert res["node again"]["changed"] is False
    assert count_certs(d + "/sub-chain.pem") == 1
    # dicom_sign agrees with dcmsign --verify
    assert res["verify"]["totals"]["verified"] == 1, res["verify"]["files"]
    # the SHA-1 CRL is stored, and OpenSSL reads the hashed directory with CRL checking
    assert any(e.endswith(".r0") for e in os.listdir(d + "/store"))
    assert openssl_ok("verify", "-crl_check", "-CApath", d + "/store", m.path("issuing.pem"))
    assert openssl("x509", "-noout", "-in", m.path("root.pem"), "-text").stdout.count("sha1WithRSAEncryption") == 2
