"""Roots whose encoding OpenSSL 3 reads but a strict DER parser may refuse (support.strict_der):
dicom_truststore takes every root OpenSSL and dcmtk trust (each root alone, and the refusals with
OpenSSL's reason: tests/unit/plugins/modules/test_strict_encodings.py).

The verdict of each case comes from the readers at test time: `openssl x509 -noout` and
`openssl verify -CApath` (an `openssl rehash` directory), and storescp +cd over the same directory
accepting or refusing a client each root signed. The collection's hashed directory and bundle are
then read by the same readers."""

from __future__ import annotations

import base64
import os
import re
import subprocess

import pytest
from support import module_run
from support.ansible_run import run_tasks
from support.dicom_files import write_ct
from support.servers import StoreSCP, dcmtk
from support.strict_der import make_cases, openssl_rehash_dir, openssl_verdict


def echo(port: int, case, *trust) -> bool:
    proc = subprocess.run(
        [dcmtk("echoscu"), "+tls", case.key, case.leaf, *trust, "-aec", "STORESCP", "127.0.0.1", str(port)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return proc.returncode == 0


def der_of(path: str) -> bytes:
    text = open(path, "rb").read()
    body = re.search(rb"-----BEGIN CERTIFICATE-----(.*?)-----END", text, re.S).group(1)
    return base64.b64decode(b"".join(body.split()))


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """Every root with OpenSSL's verdict, and the collection's hashed directory and bundle of the
    roots OpenSSL takes (one Ansible run; each root alone is judged in the unit test)."""
    base = tmp_path_factory.mktemp("strict")
    cases = make_cases(base)
    verdicts = {c.name: openssl_verdict(c, base)[0] for c in cases}
    accepted = [c for c in cases if verdicts[c.name]]
    assert 10 <= len(accepted) < len(cases), verdicts  # both kinds, or the test proves nothing
    ours, bundle = str(base / "ours"), str(base / "trusted.pem")
    tasks = [
        {
            "medimg.dicom_tls.dicom_truststore": {
                "path": path,
                "certificates": [c.ca for c in accepted],
                "layout": layout,
            }
        }
        for layout, path in (("hashed_dir", ours), ("bundle", bundle))
    ]
    play = run_tasks(tasks)
    assert play.rc == 0, play.output[-3000:]
    return base, cases, verdicts, ours, bundle


def test_our_hashed_dir_is_openssl_rehash_and_verifies(judged):
    base, cases, verdicts, ours, bundle = judged
    accepted = [c for c in cases if verdicts[c.name]]
    theirs = openssl_rehash_dir(accepted, base / "rehash")
    names = {n for n in os.listdir(theirs) if re.fullmatch(r"[0-9a-f]{8}\.\d+", n)}
    assert {n for n in os.listdir(ours) if not n.startswith(".")} == names
    # the bytes are kept as given (no re-encoding: the signature is over them)
    assert sorted(der_of(os.path.join(ours, n)) for n in names) == sorted(der_of(c.ca) for c in accepted)
    for c in accepted:
        for flags in (["-CApath", ours], ["-CAfile", bundle]):
            proc = subprocess.run(["openssl", "verify", *flags, c.leaf], capture_output=True, text=True, check=False)
            assert proc.returncode == 0, (c.name, proc.stdout + proc.stderr)


def test_storescp_trusts_what_openssl_trusts(judged, tmp_path):
    """storescp +cd over openssl's directory of every root: dcmtk accepts exactly the clients whose
    root OpenSSL accepts; over our directory it accepts all of those."""
    base, cases, verdicts, ours, _bundle = judged
    server = next(c for c in cases if verdicts[c.name])
    every = openssl_rehash_dir(cases, base / "rehash-all")
    with StoreSCP(["+tls", server.key, server.leaf, "+cd", every], str(tmp_path)) as scp:
        dcmtk_says = {c.name: echo(scp.port, c, "+cd", every) for c in cases}
    assert dcmtk_says == verdicts
    with StoreSCP(["+tls", server.key, server.leaf, "+cd", ours], str(tmp_path / "ours")) as scp:
        for c in cases:
            if verdicts[c.name]:
                assert echo(scp.port, c, "+cd", ours), c.name


# ---------------------------------------------------------------------------------------------
# The other readers of trust material and certificates (crypto.load_certificates, crypto.read_trust):
# dicom_tls_echo's ca_file/ca_path, dicom_cert's issuer files and dicom_sign's trust read a root as
# OpenSSL and dcmtk do. Three roots OpenSSL takes and cryptography's parser refuses, one OpenSSL refuses.
READERS = ["printable-with-underscore", "boolean-true-as-01", "version-4", "duplicate-keyusage"]


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    base = tmp_path_factory.mktemp("readers")
    cases = {c.name: c for c in make_cases(base, READERS)}
    verdicts = {name: openssl_verdict(c, base)[0] for name, c in cases.items()}
    assert verdicts == {name: name != "duplicate-keyusage" for name in READERS}, verdicts
    dirs = {name: openssl_rehash_dir([c], base / ("dir-" + name)) for name, c in cases.items()}
    return cases, verdicts, dirs


@pytest.mark.parametrize("name", READERS)
def test_tls_echo_trusts_what_echoscu_trusts(readers, name, tmp_path):
    """storescp serves the leaf the root signed; echoscu +cf/+cd with the same root is the oracle."""
    cases, _verdicts, dirs = readers
    case = cases[name]
    with StoreSCP(["+tls", case.key, case.leaf, "-ic"], str(tmp_path)) as scp:
        for option, flag, trust in (("ca_file", "+cf", case.ca), ("ca_path", "+cd", dirs[name])):
            argv = [dcmtk("echoscu"), "+tls", case.key, case.leaf, flag, trust, "-aec", scp.aet]
            proc = subprocess.run(argv + ["127.0.0.1", str(scp.port)], capture_output=True, text=True, check=False)
            args = {"host": "127.0.0.1", "port": scp.port, "called_ae_title": scp.aet, option: trust, "timeout": 5,
                    "certificate_path": case.leaf, "privatekey_path": case.key,
                    "expect": "success" if proc.returncode == 0 else "failure"}  # fmt: skip
            failed, res = module_run.run("dicom_tls_echo", args)
            assert not failed, (option, res.get("msg"), proc.stdout + proc.stderr)
            assert (res["status"] == "success") == (proc.returncode == 0), (option, res["status"])
            if proc.returncode != 0:  # the root left out is named, with OpenSSL's reason
                assert "repeated keyUsage extension" in res["reason"] and name in res["reason"], res["reason"]


@pytest.mark.parametrize("name", READERS)
def test_dicom_cert_issues_and_installs_under_the_root_as_openssl_verifies(readers, name, tmp_path):
    """dicom_cert reads the root as issuer_cert_path and issuer_chain_path, and the leaf it signed as
    certificate_content, and writes that leaf as given: `openssl verify -CAfile root` is the oracle."""
    cases, verdicts, _dirs = readers
    case = cases[name]
    d = str(tmp_path)
    failed, res = module_run.run("dicom_cert", {
        "path": d + "/node.pem", "privatekey_path": d + "/node.key", "chain_path": d + "/chain.pem",
        "subject": "/O=Hospital/CN=node", "issuer_cert_path": case.ca, "issuer_privatekey_path": case.ca_key,
        "issuer_chain_path": case.ca,
    })  # fmt: skip
    if not verdicts[name]:
        assert failed and res["msg"].startswith(case.ca + ": ") and "repeated keyUsage" in res["msg"], res["msg"]
        assert not os.path.exists(d + "/node.pem")
        return
    assert not failed, res.get("msg")
    for path in (d + "/node.pem", d + "/chain.pem"):
        proc = subprocess.run(
            ["openssl", "verify", "-CAfile", case.ca, path], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    failed, res = module_run.run("dicom_cert", {
        "path": d + "/installed.pem", "privatekey_path": case.key, "chain_path": d + "/installed-chain.pem",
        "certificate_content": open(case.leaf).read(), "issuer_cert_path": case.ca,
    })  # fmt: skip
    assert not failed, res.get("msg")
    assert der_of(d + "/installed.pem") == der_of(case.leaf)  # the bytes as signed, not re-encoded
    proc = subprocess.run(
        ["openssl", "verify", "-CAfile", case.ca, d + "/installed.pem"], capture_output=True, check=False
    )
    assert proc.returncode == 0


@pytest.mark.parametrize("name", READERS)
def test_dicom_sign_verifies_as_dcmsign(readers, name, tmp_path):
    """A file signed with the leaf the root signed: `dcmsign --verify +cf root` / `+cd DIR` is the
    oracle of dicom_sign state=verified with ca_file / ca_path."""
    cases, _verdicts, dirs = readers
    case = cases[name]
    path = write_ct(str(tmp_path / "signed.dcm"), seed=9)
    failed, res = module_run.run("dicom_sign", {"path": [path], "privatekey_path": case.key,
                                                "certificate_path": case.leaf})  # fmt: skip
    assert not failed, res.get("msg")
    for option, flag, trust in (("ca_file", "+cf", case.ca), ("ca_path", "+cd", dirs[name])):
        argv = [dcmtk("dcmsign"), "--verify", flag, trust, path]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        failed, res = module_run.run("dicom_sign", {"path": [path], "state": "verified", option: trust})
        assert failed == (proc.returncode != 0), (option, res.get("msg"), proc.stdout + proc.stderr)
        if failed:
            assert "repeated keyUsage extension" in res["msg"] and name in res["msg"], res["msg"]
