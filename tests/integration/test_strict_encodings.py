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
from cryptography.hazmat.primitives import serialization
from support import module_run
from support.ansible_run import run_tasks
from support.der import LEAF_EXTENSIONS, OID_CN, UTF8, certificate, extension, name_der, new_key
from support.dicom_files import write_ct
from support.servers import StoreSCP, dcmtk
from support.strict_der import NS, make_cases, openssl_rehash_dir, openssl_verdict, pem


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


def test_tls_echo_on_a_server_certificate_openssl_marks_invalid(tmp_path):
    """storescp serves a leaf with a garbage nsCertType: `openssl verify` refuses it (error 20) and
    echoscu +cf fails, echoscu -ic (no verification) succeeds; dicom_tls_echo gives the same verdicts
    with a status (not an error) and says why in its reason."""
    ca_key, leaf_key = new_key(), new_key()
    root = name_der([[(OID_CN, UTF8, "Root for a bad leaf")]])
    leaf = certificate(name_der([[(OID_CN, UTF8, "bad leaf")]]), root, key=leaf_key, signer=ca_key,
                       extensions=LEAF_EXTENSIONS + (extension(NS, b"\x05\x00", None),))  # fmt: skip
    paths = {name: str(tmp_path / name) for name in ("ca.pem", "leaf.pem", "key.pem")}
    for name, data in (("ca.pem", pem(certificate(root, key=ca_key, signer=ca_key))), ("leaf.pem", pem(leaf)),
                       ("key.pem", leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))):  # fmt: skip
        open(paths[name], "wb").write(data)
    proc = subprocess.run(["openssl", "verify", "-CAfile", paths["ca.pem"], paths["leaf.pem"]],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode != 0 and "error 20" in proc.stdout + proc.stderr
    with StoreSCP(["+tls", paths["key.pem"], paths["leaf.pem"], "-ic"], str(tmp_path)) as scp:
        for flags, verification in ((["+cf", paths["ca.pem"]], "require"), (["-ic"], "ignore")):
            argv = [dcmtk("echoscu"), "+tls", paths["key.pem"], paths["leaf.pem"], *flags, "-aec", scp.aet]
            oracle = subprocess.run(argv + ["127.0.0.1", str(scp.port)], capture_output=True, check=False)
            args = {"host": "127.0.0.1", "port": scp.port, "called_ae_title": scp.aet, "ca_file": paths["ca.pem"],
                    "peer_verification": verification, "timeout": 5,
                    "expect": "success" if oracle.returncode == 0 else "failure"}  # fmt: skip
            failed, res = module_run.run("dicom_tls_echo", args)
            assert not failed, (verification, res.get("msg"))
            assert res["status"] == ("success" if verification == "ignore" else "server_certificate_rejected")
            assert "nsCertType extension" in res["reason"], res["reason"]


# ---------------------------------------------------------------------------------------------
# PEM labels: OpenSSL reads a certificate under "CERTIFICATE" and the older "X509 CERTIFICATE"
# (PEM_read_bio_X509), so dcmtk's +cf/+cd do too; "TRUSTED CERTIFICATE" (openssl x509 -trustout)
# it reads with trust settings that change per purpose what it trusts: refused here, saying so.


def _relabel(src: str, dest: str, label: str) -> str:
    text = open(src, encoding="ascii").read().replace("BEGIN CERTIFICATE", "BEGIN " + label)
    open(dest, "w", encoding="ascii").write(text.replace("END CERTIFICATE", "END " + label))
    return dest


def test_pem_labels_openssl_reads(tmp_path):
    from support.pki import TestPKI

    pki = TestPKI(str(tmp_path / "pki"), key_type="ecdsa", prefix="Label")
    node = pki.node("label node")
    old = _relabel(pki.root.cert, str(tmp_path / "old-label.pem"), "X509 CERTIFICATE")
    old_dir = tmp_path / "old-dir"
    old_dir.mkdir()
    hashed = subprocess.run(["openssl", "x509", "-noout", "-subject_hash", "-in", pki.root.cert],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    _relabel(pki.root.cert, str(old_dir / (hashed + ".0")), "X509 CERTIFICATE")
    trusted = str(tmp_path / "trusted.pem")
    subprocess.run(["openssl", "x509", "-in", pki.root.cert, "-addtrust", "serverAuth", "-addtrust", "clientAuth",
                    "-trustout", "-out", trusted], check=True)  # fmt: skip
    # OpenSSL reads both; the TRUSTED form is trusted for the purposes it names only (none given: rejected)
    for ca, purpose, ok in ((old, [], True), (trusted, ["-purpose", "sslserver"], True), (trusted, [], False)):
        proc = subprocess.run(["openssl", "verify", *purpose, "-CAfile", ca, "-untrusted", pki.inter.cert, node.cert],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert (proc.returncode == 0) == ok, (ca, purpose, proc.stdout + proc.stderr)

    with StoreSCP(["+tls", node.key, node.chain, "-ic"], str(tmp_path)) as scp:
        base = {"host": "127.0.0.1", "port": scp.port, "called_ae_title": scp.aet, "timeout": 5,
                "certificate_path": node.chain, "privatekey_path": node.key}  # fmt: skip
        for option, flag, trust in (("ca_file", "+cf", old), ("ca_path", "+cd", str(old_dir))):
            argv = [dcmtk("echoscu"), "+tls", node.key, node.chain, flag, trust, "-aec", scp.aet]
            proc = subprocess.run(argv + ["127.0.0.1", str(scp.port)], capture_output=True, text=True, check=False)
            assert proc.returncode == 0, (option, proc.stdout + proc.stderr)  # dcmtk reads the old label
            failed, res = module_run.run("dicom_tls_echo", dict(base, **{option: trust}))
            assert not failed and res["status"] == "success", (option, res)
        failed, res = module_run.run("dicom_tls_echo", dict(base, ca_file=trusted))
        assert failed and res["msg"].startswith(trusted) and "TRUSTED CERTIFICATE" in res["msg"], res

    # dicom_cert issues under a root read from the old label; the trust store takes it, refuses TRUSTED
    issued = str(tmp_path / "issued.pem")
    args = {"path": issued, "privatekey_path": str(tmp_path / "issued.key"), "subject": {"CN": "issued"},
            "issuer_cert_path": old, "issuer_privatekey_path": pki.root.key}  # fmt: skip
    failed, res = module_run.run("dicom_cert", args)
    assert not failed and res["changed"], res
    proc = subprocess.run(["openssl", "verify", "-CAfile", pki.root.cert, issued], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    failed, res = module_run.run("dicom_truststore", {"path": str(tmp_path / "store"), "certificates": [old]})
    assert not failed and res["changed"], res
    failed, res = module_run.run("dicom_truststore", {"path": str(tmp_path / "store2"), "certificates": [trusted]})
    assert failed and "TRUSTED CERTIFICATE" in res["msg"] and not os.path.exists(tmp_path / "store2"), res
