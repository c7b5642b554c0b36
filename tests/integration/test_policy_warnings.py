"""dicom_cert and dicom_truststore warn about a certificate OpenSSL 3 refuses at security level 2 while
dcmtk (level 0) accepts it: the oracle is ``openssl verify -auth_level 2`` (refuses, with error 68,
67 or 66) and ``-auth_level 0`` (OK). A SHA-256 / RSA-2048 certificate, and a self-signed SHA-1 root
(a trust anchor's own signature is not judged), give no warning."""

from __future__ import annotations

import re

import pytest
from support.ansible_run import run_tasks
from support.legacy_pki import LegacyPKI, openssl

M = "medimg.dicom_tls."


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    m = LegacyPKI(tmp_path_factory.mktemp("policy"))
    m.root("r_sha1", "-sha1")  # openssl req -x509 -sha1
    m.root("r_sha256")
    m.root("r_rsa1024", key="rsa:1024")
    m.root("r_p192", key="ec:prime192v1")
    m.child("i_md5", "r_sha256", "-md5", ca=True)
    m.child("n_sha1", "r_sha256", "-sha1", key="rsa:3072")  # a node certificate signed with SHA-1
    m.child("n_under_rsa1024", "r_rsa1024")
    m.child("n_under_p192", "r_p192")
    return m


def verify_error(m, ca: str, name: str, level: int) -> int | None:
    proc = openssl("verify", "-auth_level", level, "-CAfile", m.path(ca + ".pem"), m.path(name + ".pem"), check=False)
    if proc.returncode == 0:
        return None
    return int(re.search(r"error (\d+) at", proc.stdout + proc.stderr).group(1))


def policy(warnings) -> list[str]:
    return [w for w in warnings or [] if "security level 2" in w]


def test_stored_weak_certificates_are_warned_about_as_openssl_refuses_them(pki, tmp_path):
    m, d = pki, str(tmp_path)
    oracle = {
        "r_rsa1024": verify_error(m, "r_rsa1024", "n_under_rsa1024", 2),
        "r_p192": verify_error(m, "r_p192", "n_under_p192", 2),
        "i_md5": verify_error(m, "r_sha256", "i_md5", 2),
        "n_sha1": verify_error(m, "r_sha256", "n_sha1", 2),
        "r_sha1": verify_error(m, "r_sha1", "r_sha1", 2),
        "r_sha256": verify_error(m, "r_sha256", "r_sha256", 2),
    }
    assert oracle == {"r_rsa1024": 67, "r_p192": 67, "i_md5": 68, "n_sha1": 68, "r_sha1": None, "r_sha256": None}
    for ca, name in (("r_rsa1024", "n_under_rsa1024"), ("r_p192", "n_under_p192"), ("r_sha256", "i_md5")):
        assert verify_error(m, ca, name, 0) is None  # dcmtk's level
    assert verify_error(m, "r_sha256", "n_sha1", 0) is None

    node = {"subject": "/O=Hospital/CN=n_sha1", "subject_alt_names": ["DNS:localhost", "IP:127.0.0.1"]}
    tasks = [
        {
            "name": "store",
            M + "dicom_truststore": {
                "path": d + "/store",
                "allow_non_root": True,
                "certificates": [m.path(n + ".pem") for n in ("r_sha1", "r_sha256", "r_rsa1024", "r_p192", "i_md5")],
            },
        },
        {
            "name": "under rsa1024",
            M + "dicom_cert": {
                "path": d + "/a.pem",
                "privatekey_path": d + "/a.key",
                "subject": "/O=Hospital/CN=a",
                "issuer_cert_path": m.path("r_rsa1024.pem"),
                "issuer_privatekey_path": m.path("r_rsa1024.key"),
            },
        },
        {
            "name": "sha1 node kept",
            M + "dicom_cert": {
                **node,
                "path": m.path("n_sha1.pem"),
                "privatekey_path": m.path("n_sha1.key"),
                "issuer_cert_path": m.path("r_sha256.pem"),
                "issuer_privatekey_path": m.path("r_sha256.key"),
            },
        },
        {
            "name": "good",
            M + "dicom_cert": {
                "path": d + "/g.pem",
                "privatekey_path": d + "/g.key",
                "subject": "/O=Hospital/CN=g",
                "issuer_cert_path": m.path("r_sha1.pem"),
                "issuer_privatekey_path": m.path("r_sha1.key"),
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

    stored = policy(res["store"].get("warnings"))
    assert len(stored) == 3, stored
    for name, what in (("r_rsa1024", "1024-bit RSA key"), ("r_p192", "192-bit EC key"), ("i_md5", "signed with MD5")):
        [w] = [w for w in stored if "CN=%s'" % name in w]
        assert w.startswith(m.path(name + ".pem") + ": ") and what in w, w
        assert "error %d)" % oracle[name] in w and "dcmtk runs OpenSSL at level 0 and accepts it" in w, w
    [w] = policy(res["under rsa1024"].get("warnings"))
    assert w.startswith(m.path("r_rsa1024.pem") + ": ") and "1024-bit RSA key" in w and "error 67)" in w, w
    assert res["sha1 node kept"]["changed"] is False, res["sha1 node kept"]
    [w] = policy(res["sha1 node kept"].get("warnings"))
    assert w.startswith(m.path("n_sha1.pem") + ": ") and "signed with SHA-1" in w and "error 68)" in w, w
    assert policy(res["good"].get("warnings")) == []
    assert verify_error(m, "r_sha1", "r_sha1", 2) is None
    assert (
        openssl("verify", "-auth_level", 2, "-CAfile", m.path("r_sha1.pem"), d + "/g.pem", check=False).returncode == 0
    )


def test_a_weak_root_in_issuer_chain_path_is_warned_about(pki, tmp_path):
    """The roots listed in dicom_cert's issuer_chain_path are not copied into the chain, but a client
    verifies against them: each is judged like the issuer. Oracle: `openssl verify -auth_level 2` of the
    issued certificate with the chain file's root as -CAfile (67: the root's key; a SHA-1 root's own
    signature is not judged) and -auth_level 0 (dcmtk's level) accepting all of them."""
    m, d = pki, str(tmp_path)
    roots = ("r_rsa1024", "r_p192", "r_sha1", "r_sha256")
    tasks = []
    for root in roots:
        inter = "i_under_" + root
        m.child(inter, root, ca=True)
        chain = m.path(inter + ".chain.pem")
        with open(chain, "wb") as fh:
            fh.write(open(m.path(inter + ".pem"), "rb").read() + open(m.path(root + ".pem"), "rb").read())
        args = {"path": "%s/%s.pem" % (d, root), "privatekey_path": "%s/%s.key" % (d, root)}
        args.update(subject="/O=Hospital/CN=node-" + root, issuer_chain_path=chain)
        args.update(issuer_cert_path=m.path(inter + ".pem"), issuer_privatekey_path=m.path(inter + ".key"))
        tasks.append({"name": root, M + "dicom_cert": args})
    play = run_tasks(tasks)
    res = {r["_task"]: r for r in play.results()}
    assert play.rc == 0 and len(res) == len(roots), play.output[-3000:]
    for root in roots:
        untrusted = ["-untrusted", m.path("i_under_%s.pem" % root), "%s/%s.pem" % (d, root)]
        level2 = openssl("verify", "-auth_level", 2, "-CAfile", m.path(root + ".pem"), *untrusted, check=False)
        level0 = openssl("verify", "-auth_level", 0, "-CAfile", m.path(root + ".pem"), *untrusted, check=False)
        assert level0.returncode == 0, level0.stdout + level0.stderr
        code = re.search(r"error (\d+) at (\d+) depth", level2.stdout + level2.stderr)
        warned = [w for w in policy(res[root].get("warnings")) if "CN=%s'" % root in w]
        if code is None:
            assert warned == [], warned
        else:
            assert code.groups() == ("67", "2"), level2.stdout  # the root's key, at the root's depth
            [w] = warned
            assert w.startswith(m.path("i_under_%s.chain.pem" % root) + ": ") and "error 67)" in w, w
    assert sum(bool(policy(r.get("warnings"))) for r in res.values()) == 2
