"""dicom_truststore and dicom_crl through Ansible, judged by the real readers: openssl rehash (same
name -> object mapping), openssl verify -CApath -crl_check, storescp +cd +crv with echoscu, and
Orthanc loading a bundle."""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crl as crlib
from cryptography import x509
from support.ansible_run import run_module, run_tasks
from support.pki import NOW, TestPKI
from support.servers import Orthanc, StoreSCP, dcmtk

# ---------------------------------------------------------------------------------------------
# helpers


def fingerprint_of(path: str) -> str:
    data = open(path, "rb").read()
    cert_or_crl = x509.load_pem_x509_certificate if b"CERTIFICATE" in data else x509.load_pem_x509_crl
    from cryptography.hazmat.primitives.serialization import Encoding

    return hashlib.sha256(cert_or_crl(data).public_bytes(Encoding.DER)).hexdigest()


def mapping(directory: str) -> dict[str, str]:
    """hash.N / hash.rN entry -> SHA-256 of the object it holds (through symlinks)."""
    import re

    out = {}
    for name in os.listdir(directory):
        if re.fullmatch(r"[0-9a-f]{8}\.r?[0-9]+", name):
            out[name] = fingerprint_of(os.path.join(directory, name))
    return out


def snapshot(path: str) -> dict[str, tuple[bytes, int]]:
    out = {}
    if os.path.isfile(path):
        return {path: (open(path, "rb").read(), os.stat(path).st_mode)}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            out[name] = (open(full, "rb").read(), os.stat(full).st_mode)
    return out


def crl(path, ca, revoked=(), check=False, **kw):
    args = dict(path=str(path), issuer_cert_path=ca.cert, issuer_privatekey_path=ca.key, revoked=list(revoked), **kw)
    return run_module("dicom_crl", args, check=check, diff=True)


def store(path, certificates, crls=(), check=False, **kw):
    args = dict(path=str(path), certificates=list(certificates), crls=list(crls), **kw)
    return run_module("dicom_truststore", args, check=check, diff=True)


def run_many(calls: list) -> list[dict]:
    """Several tasks in one playbook run (each may fail): one Ansible start-up for all. A call is
    (module, args) or (module, args, check) with check=True for a task in check mode; a module name
    with a dot is used as is (ansible.builtin.stat ...), others are this collection's."""
    tasks = []
    for i, call in enumerate(calls):
        module, args = call[0], call[1]
        name = module if "." in module else "medimg.dicom_tls." + module
        task = {"name": "call %d" % i, name: args, "ignore_errors": True}
        if len(call) > 2 and call[2]:
            task["check_mode"] = True
        if "." not in module:
            task["diff"] = True
        tasks.append(task)
    play = run_tasks(tasks)
    results = play.results()
    assert len(results) == len(calls), play.output[-3000:]
    return results


def truststore_args(path, certificates, crls=(), **kw) -> dict:
    crls = [str(c) for c in crls]
    return dict(path=str(path), certificates=[str(c) for c in certificates], crls=crls, **kw)


def crl_args(path, ca, revoked=(), **kw) -> dict:
    return dict(path=str(path), issuer_cert_path=ca.cert, issuer_privatekey_path=ca.key, revoked=list(revoked), **kw)


def stat(path) -> tuple:
    return ("ansible.builtin.stat", {"path": str(path), "get_checksum": True})


def ok(res):
    assert res.get("failed") is not True, res.get("msg") or res["_output"][-3000:]
    return res


def verify(capath, leaf, untrusted, *flags):
    return subprocess.run(
        ["openssl", "verify", "-CApath", str(capath), *flags, "-untrusted", untrusted, leaf],
        capture_output=True,
        text=True,
        check=False,
    )


def echoscu(port, key, cert, *trust):
    return subprocess.run(
        [dcmtk("echoscu"), "+tls", key, cert, *trust, "-aec", "STORESCP", "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# ---------------------------------------------------------------------------------------------
# A corpus with colliding subject hashes: four roots with the same name, different keys.


@pytest.fixture(scope="module")
def collide(tmp_path_factory):
    base = tmp_path_factory.mktemp("collide")
    pki = TestPKI(base / "pki", prefix="Plain")
    src = base / "src"
    src.mkdir()
    roots = {}
    for stem in ["alpha", "beta", "delta", "gamma"]:
        roots[stem] = pki._issue("Collide Root", None, ca=True, file_stem="collide-" + stem)
        shutil.copy(roots[stem].cert, src / (stem + ".pem"))
    shutil.copy(pki.root.cert, src / "plain-root.pem")
    # CRLs of two colliding roots: same issuer hash -> .r0 and .r1
    results = run_many([("dicom_crl", crl_args(src / ("%s-crl.pem" % s), roots[s])) for s in ["beta", "gamma"]])
    assert all(ok(r)["changed"] for r in results)
    return base, src, roots, pki


def _inputs(src):
    files = sorted(os.listdir(src))
    certs = [str(src / f) for f in files if not f.endswith("-crl.pem")]
    crls = [str(src / f) for f in files if f.endswith("-crl.pem")]
    return certs, crls


def test_same_mapping_as_openssl_rehash_and_idempotent(collide, tmp_path):
    _base, src, roots, _pki = collide
    certs, crls = _inputs(src)
    rehashed = tmp_path / "rehashed"
    shutil.copytree(src, rehashed)
    subprocess.run(["openssl", "rehash", str(rehashed)], check=True, capture_output=True)
    expected = mapping(str(rehashed))
    assert len([n for n in expected if n.endswith((".1", ".2", ".3"))]) == 3  # a real collision sequence
    assert any(n.endswith(".r1") for n in expected)

    target = tmp_path / "trust"
    args = truststore_args(target, certs, crls)
    predicted, after_check, first, second, second_check = run_many(
        [("dicom_truststore", args, True), stat(target), ("dicom_truststore", args), ("dicom_truststore", args)]
        + [("dicom_truststore", args, True)]
    )
    assert ok(predicted)["changed"] and not after_check["stat"]["exists"]  # check mode touches nothing
    assert ok(first)["changed"]
    assert mapping(str(target)) == expected  # same name -> object as openssl rehash, same order
    for key in ("entries", "added", "removed", "renumbered", "crl_next_update"):
        assert predicted[key] == first[key], key  # check mode predicted the run exactly
    assert predicted["diff"] == first["diff"]
    assert sorted(first["added"]) == sorted(expected)
    assert all(os.path.isfile(target / n) and not os.path.islink(target / n) for n in expected)
    assert ok(second)["changed"] is False and "diff" not in second
    assert ok(second_check)["changed"] is False
    assert first["crl_next_update"] == min(e["next_update"] for e in first["entries"] if e["kind"] == "crl")


def test_removing_from_the_middle_of_a_collision_leaves_no_gap(collide, tmp_path):
    _base, src, roots, _pki = collide
    certs, crls = _inputs(src)
    target = tmp_path / "trust"
    target.mkdir()
    (target / "README").write_text("not ours")
    leaf_issuer = roots["gamma"]  # last of the sequence: hidden if a gap appeared before it
    leaf = TestPKI.__new__(TestPKI)
    leaf.dir, leaf.key_type, leaf.root = str(tmp_path), "rsa", None
    node = leaf._issue("gamma-node", leaf_issuer, file_stem="gamma-node")
    without_beta = [c for c in certs if not c.endswith("beta.pem")]
    crls_no_beta = [c for c in crls if "beta" not in c]
    smaller = truststore_args(target, without_beta, crls_no_beta)
    full, predicted, res, again = run_many(
        [
            ("dicom_truststore", truststore_args(target, certs, crls)),
            ("dicom_truststore", smaller, True),
            ("dicom_truststore", smaller),
            ("dicom_truststore", smaller),
        ]
    )
    assert ok(full)["changed"] and ok(res)["changed"] and ok(again)["changed"] is False
    assert predicted["removed"] == res["removed"] and predicted["renumbered"] == res["renumbered"]
    assert res["renumbered"] and res["removed"]
    assert [e["before_header"] for e in res["diff"]] == [a["path"] for a in res["actions"]]
    # same as openssl rehash on the same inputs
    rehashed = tmp_path / "rehashed"
    rehashed.mkdir()
    for path in without_beta + crls_no_beta:
        shutil.copy(path, rehashed)
    subprocess.run(["openssl", "rehash", str(rehashed)], check=True, capture_output=True)
    assert mapping(str(target)) == mapping(str(rehashed))
    names = sorted(mapping(str(target)))
    for name in names:  # every sequence numbered from 0 without gaps
        stem, _dot, n = name.rpartition(".")
        n = int(n.lstrip("r"))
        for i in range(n):
            assert "%s.%s%d" % (stem, "r" if ".r" in name else "", i) in names
    assert (target / "README").read_text() == "not ours"
    assert verify(target, node.cert, leaf_issuer.cert).returncode == 0


# ---------------------------------------------------------------------------------------------
# CRLs: openssl verify and storescp agree


@pytest.fixture(scope="module")
def revocation(tmp_path_factory, pki):
    base = tmp_path_factory.mktemp("revocation")
    good = pki.node("valid-client")
    bad = pki.node("revoked-client")
    inter_crl = base / "inter.crl"
    root_crl = base / "root.crl"
    revoked = [{"certificate_path": bad.cert, "reason": "key_compromise"}]
    trust = base / "trust"
    store_args = truststore_args(trust, [pki.root.cert], [root_crl, inter_crl], crl_issuers=[pki.inter.cert])
    first, root_res, res = run_many(
        [
            ("dicom_crl", crl_args(inter_crl, pki.inter, revoked)),
            ("dicom_crl", crl_args(root_crl, pki.root)),
            ("dicom_truststore", store_args),
        ]
    )
    assert ok(first)["changed"] and first["crl_number"] == 1 and ok(root_res)["changed"]
    assert first["revoked_serials"] == [crlib.serial_hex(bad.certificate.serial_number)]
    assert [e["kind"] for e in ok(res)["entries"]].count("crl") == 2
    return base, trust, good, bad, str(inter_crl)


def test_dicom_crl_idempotent_and_numbered(revocation, pki):
    base, _trust, _good, bad, inter_crl = revocation
    revoked = [{"certificate_path": bad.cert, "reason": "key_compromise"}]
    copy = base / "copy.crl"
    shutil.copy(inter_crl, copy)
    more = revoked + [{"serial": "7F"}]
    again, predicted, after_check, done = run_many(
        [
            ("dicom_crl", crl_args(inter_crl, pki.inter, revoked)),
            ("dicom_crl", crl_args(copy, pki.inter, more), True),
            stat(copy),
            ("dicom_crl", crl_args(copy, pki.inter, more)),
        ]
    )
    assert ok(again)["changed"] is False and again["crl_number"] == 1 and again["reason"] is None
    assert ok(predicted)["changed"] and predicted["crl_number"] == 2 and "7F" in predicted["revoked_serials"]
    assert after_check["stat"]["checksum"] == hashlib.sha1(open(inter_crl, "rb").read()).hexdigest()
    keys = ("crl_number", "revoked_serials", "reason", "issuer_hash")
    assert {k: ok(done)[k] for k in keys} == {k: predicted[k] for k in keys}
    text = subprocess.run(
        ["openssl", "crl", "-in", str(copy), "-noout", "-text"], capture_output=True, text=True, check=False
    ).stdout
    assert "X509v3 CRL Number: \n                2" in text and "Authority Key Identifier" in text
    hash_ = subprocess.run(
        ["openssl", "crl", "-in", str(copy), "-noout", "-hash"], capture_output=True, text=True, check=False
    )
    assert hash_.stdout.strip() == done["issuer_hash"]
    # refresh window: a CRL issued 5 of its 7 days ago has less than the default half left
    issuer = crlib.read_issuer(pki.inter.cert, pki.inter.key, None)
    desired = crlib.desired_revocations(more, issuer)
    old = crlib.plan_crl(desired, None, issuer, "pem", "sha256", 7, None, now=NOW - datetime.timedelta(days=5))
    old.number = 41
    crlib.write_crl(str(copy), crlib.build_crl(old, issuer, "sha256"), "pem")
    refreshed = ok(crl(copy, pki.inter, more))
    assert refreshed["changed"] and refreshed["crl_number"] == 42 and "refresh window" in refreshed["reason"]


def test_openssl_verify_crl_check_agrees(revocation, pki):
    _base, trust, good, bad, _crl = revocation
    assert verify(trust, good.cert, pki.inter.cert, "-crl_check").returncode == 0
    assert verify(trust, good.cert, pki.inter.cert, "-crl_check_all").returncode == 0
    refused = verify(trust, bad.cert, pki.inter.cert, "-crl_check")
    assert refused.returncode != 0 and "revoked" in refused.stdout + refused.stderr


def test_storescp_crv_accepts_valid_and_refuses_revoked(revocation, pki, tmp_path):
    _base, trust, good, bad, _crl = revocation
    server = pki.node("crl-listener")
    with StoreSCP(["+tls", server.key, server.chain, "+cd", str(trust), "+crv"], str(tmp_path)) as scp:
        accepted = echoscu(scp.port, good.key, good.chain, "+cf", pki.root.cert)
        assert accepted.returncode == 0, accepted.stderr + scp.output()[-2000:]
        refused = echoscu(scp.port, bad.key, bad.chain, "+cf", pki.root.cert)
        assert refused.returncode != 0
    # same CA, same listener: the only difference between the two clients is the CRL entry
    assert "certificate verify failed" in scp.output()


# ---------------------------------------------------------------------------------------------
# Orthanc reads a bundle


def test_orthanc_loads_bundle(pki, tmp_path):
    other = TestPKI(tmp_path / "other", prefix="Partner")
    bundle = tmp_path / "trusted.pem"
    args = truststore_args(bundle, [pki.root.cert, other.root.cert], layout="bundle")
    predicted, res, again = run_many(
        [("dicom_truststore", args, True), ("dicom_truststore", args), ("dicom_truststore", args)]
    )
    assert ok(res)["changed"] and len(res["entries"]) == 2 and ok(again)["changed"] is False
    assert predicted["entries"] == res["entries"] and predicted["added"] == res["added"]
    server = pki.node("orthanc-server")
    settings = {
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": server.chain,
        "DicomTlsPrivateKey": server.key,
        "DicomTlsTrustedCertificates": str(bundle),
        "DicomTlsRemoteCertificateRequired": True,
    }
    partner = other.node("partner-modality")
    stranger = TestPKI(tmp_path / "stranger", prefix="Stranger").node("stranger")
    with Orthanc(str(tmp_path / "orthanc"), settings) as orthanc:

        def echo(node):
            return subprocess.run(
                [dcmtk("echoscu"), "+tls", node.key, node.chain, "+cf", pki.root.cert, "-aec", "ORTHANC"]
                + ["127.0.0.1", str(orthanc.port)],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )

        mine = echo(pki.node("local-modality"))
        assert mine.returncode == 0, mine.stderr + orthanc.output()[-3000:]
        theirs = echo(partner)
        assert theirs.returncode == 0, theirs.stderr
        assert echo(stranger).returncode != 0


# ---------------------------------------------------------------------------------------------
# Bad input: a clear message naming the file, and nothing changed on disk


@pytest.fixture
def populated(pki, tmp_path):
    """A hashed directory holding the root CA."""
    trust = tmp_path / "trust"
    ok(store(trust, [pki.root.cert]))
    return trust


def test_bad_inputs_change_nothing(populated, pki, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    der = tmp_path / "root.der"
    subprocess.run(["openssl", "x509", "-in", pki.root.cert, "-outform", "DER", "-out", str(der)], check=True)
    expired_root = pki.self_signed(
        "Expired Root", not_before=NOW - datetime.timedelta(days=9), not_after=NOW - datetime.timedelta(days=2)
    )
    # expired CRL: issued in the past with a short validity (via the library: no module makes one)
    issuer = crlib.read_issuer(pki.root.cert, pki.root.key, None)
    plan = crlib.plan_crl([], None, issuer, "pem", "sha256", 1, None, now=NOW - datetime.timedelta(days=3))
    expired_crl = tmp_path / "expired.crl"
    crlib.write_crl(str(expired_crl), crlib.build_crl(plan, issuer, "sha256"), "pem")
    foreign = TestPKI(tmp_path / "foreign", prefix="Foreign")
    foreign_crl = tmp_path / "foreign.crl"
    ok(crl(foreign_crl, foreign.root))
    root = pki.root.cert
    cases = [
        ({"certificates": [str(garbage)]}, "neither PEM nor DER", str(garbage)),
        ({"certificates": [str(der)], "input_format": "pem"}, "where PEM was declared", str(der)),
        ({"certificates": [root], "input_format": "der"}, "PEM data where DER was declared", root),
        ({"certificates": [pki.inter.cert]}, "not self-signed", pki.inter.cert),
        ({"certificates": [expired_root.cert]}, "expired on", expired_root.cert),
        ({"certificates": [root], "crls": [str(expired_crl)]}, "expired on", str(expired_crl)),
        ({"certificates": [root], "crls": [str(foreign_crl)]}, "not in the store", str(foreign_crl)),
        ({"certificates": [root], "crls": [root]}, "is not a CRL", root),
        ({"certificates": [root], "crls": [root], "layout": "bundle"}, "Orthanc does not check CRLs", ""),
    ]
    before = snapshot(str(populated))
    results = run_many([("dicom_truststore", dict(path=str(populated), **args)) for args, _m, _p in cases])
    for (args, match, path), res in zip(cases, results, strict=True):
        assert res.get("failed"), (args, res)
        assert match in res["msg"] and path in res["msg"], (args, res["msg"])
    assert snapshot(str(populated)) == before
    # and the on_expired escapes work
    kept, dropped = run_many(
        [
            ("dicom_truststore", dict(path=str(populated), certificates=[root, expired_root.cert], on_expired=how))
            for how in ("warn", "drop")
        ]
    )
    assert len(kept["entries"]) == 2 and any("expired" in w for w in kept.get("warnings", []))
    assert len(dropped["entries"]) == 1 and dropped["removed"]


def test_unwritable_directory(pki, tmp_path):
    trust = tmp_path / "trust"
    ok(store(trust, [pki.root.cert]))
    other = TestPKI(tmp_path / "o", prefix="Other").root
    before = snapshot(str(trust))
    in_place = tmp_path / "a-file"
    in_place.write_text("x")
    ro = tmp_path / "ro"
    ro.mkdir()
    # immutable directories refuse even root (the tests run as root, so modes would not do)
    subprocess.run(["chattr", "+i", str(trust), str(ro)], check=True)
    try:
        changed, file_in_place, bundle, proc_crl = run_many(
            [
                ("dicom_truststore", dict(path=str(trust), certificates=[pki.root.cert, other.cert])),
                ("dicom_truststore", dict(path=str(in_place), certificates=[pki.root.cert])),
                ("dicom_truststore", dict(path=str(ro / "trusted.pem"), certificates=[pki.root.cert], layout="bundle")),
                (
                    "dicom_crl",
                    dict(
                        path="/proc/dicom-tls-test.crl",
                        issuer_cert_path=pki.root.cert,
                        issuer_privatekey_path=pki.root.key,
                    ),
                ),
            ]
        )
    finally:
        subprocess.run(["chattr", "-i", str(trust), str(ro)], check=True)
    assert changed.get("failed") and "not writable" in changed["msg"] and str(trust) in changed["msg"]
    assert snapshot(str(trust)) == before
    assert file_in_place.get("failed") and "not a directory" in file_in_place["msg"]
    assert in_place.read_text() == "x"
    assert bundle.get("failed") and "not writable" in bundle["msg"] and not os.listdir(ro)
    assert proc_crl.get("failed") and "/proc" in proc_crl["msg"]


def test_crl_bad_inputs(pki, tmp_path):
    precious = tmp_path / "precious.crl"
    precious.write_text("not a CRL")
    base = dict(issuer_cert_path=pki.inter.cert, issuer_privatekey_path=pki.inter.key)
    wrong_key, not_crl, foreign = run_many(
        [
            ("dicom_crl", dict(base, path=str(tmp_path / "x.crl"), issuer_privatekey_path=pki.root.key)),
            ("dicom_crl", dict(base, path=str(precious))),
            ("dicom_crl", dict(base, path=str(tmp_path / "y.crl"), revoked=[{"certificate_path": pki.inter.cert}])),
        ]
    )
    assert wrong_key["failed"] and "does not match" in wrong_key["msg"] and pki.root.key in wrong_key["msg"]
    assert not_crl["failed"] and "refusing to overwrite" in not_crl["msg"]
    assert precious.read_text() == "not a CRL"
    assert foreign["failed"] and "not by the CRL issuer" in foreign["msg"]
    assert sorted(os.listdir(tmp_path)) == ["precious.crl"]
