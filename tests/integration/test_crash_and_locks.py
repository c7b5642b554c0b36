"""Crash safety and locks (issue 14 items 2 and 3), against the real modules in child processes.

- kill -9 during dicom_truststore and dicom_sign: the next run leaves no temporary behind (the kills
  of dicom_cert and dicom_pkcs12, key + certificate + chain + PKCS#12, are in test_crash_pairs.py).
- two dicom_crl runs at once revoking different serials through one ledger: both revocations end
  in the CRL and the CRL Number went up twice; two dicom_cert runs at once: the key and the
  certificate on disk come from the same run; two orthanc_config runs: both settings land."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest
from support import module_proc
from support.dicom_files import write_ct

TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$|\.dicom_tls-journal$|^\.dicom_truststore\.[A-Za-z0-9_]{8}\.tmp$")


def leftovers(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if TEMP_RE.search(n))


def openssl(*args, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *map(str, args)], input=data, capture_output=True, timeout=60, check=False)


def pubkey_of_key(path) -> bytes:
    proc = openssl("pkey", "-in", path, "-pubout")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def pubkey_of_cert(path) -> bytes:
    proc = openssl("x509", "-in", path, "-noout", "-pubkey")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def digest(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def cert_args(pki, d, **kw):
    args = {
        "path": str(d / "node.pem"),
        "privatekey_path": str(d / "node.key"),
        "chain_path": str(d / "node.chain.pem"),
        "pkcs12_path": str(d / "node.p12"),
        "pkcs12_passphrase": "changeit",
        "subject": {"O": "medimg test", "CN": "node-crash"},
        "key_type": "ecdsa",
        "issuer_cert_path": pki.inter.cert,
        "issuer_privatekey_path": pki.inter.key,
    }
    args.update(kw)
    return args


def consistent_set(a: dict) -> bool:
    """openssl's verdict: the key matches the certificate, the chain starts with it, the PKCS#12
    opens and holds the same key and certificate."""
    key_pub = pubkey_of_key(a["privatekey_path"])
    if key_pub != pubkey_of_cert(a["path"]):
        return False
    chain_leaf = openssl("x509", "-in", a["chain_path"], "-outform", "DER").stdout
    if chain_leaf != openssl("x509", "-in", a["path"], "-outform", "DER").stdout:
        return False
    p12 = openssl("pkcs12", "-in", a["pkcs12_path"], "-passin", "pass:changeit", "-nodes")
    assert p12.returncode == 0, p12.stderr
    p12_key = openssl("pkey", "-pubout", data=p12.stdout).stdout
    p12_cert = openssl("x509", "-noout", "-pubkey", data=p12.stdout).stdout
    return p12_key == key_pub and p12_cert == key_pub


def test_dicom_truststore_kill_leaves_no_temporaries_after_next_run(pki, tmp_path):
    from support.pki import TestPKI

    sources = [TestPKI(tmp_path / ("p%d" % i), key_type="ecdsa", prefix="Store%d" % i).root.cert for i in range(8)]
    store = tmp_path / "store"
    args = {"path": str(store), "certificates": sources}
    kills, worst = 0, 0
    for k in range(1, 33):
        shutil.rmtree(store, ignore_errors=True)  # each kill interrupts a full first write of 8 CAs
        rc, _res = module_proc.run("dicom_truststore", args, crash_after=k)
        if rc == 0:
            break
        kills += 1
        worst = max(worst, len(leftovers(store)))
        if k % 8 == 0:  # the next run cleans up and ends with every CA reachable
            rc, res = module_proc.run("dicom_truststore", args)
            assert rc == 0 and not res["failed"], res
            assert leftovers(store) == []
            for src in sources:
                assert openssl("verify", "-CApath", store, src).returncode == 0
    assert kills >= 20
    assert worst > 0  # the kills did leave temporaries behind
    print("dicom_truststore: %d kills, up to %d temporaries left, 0 after the next run" % (kills, worst))


def test_dicom_sign_kill_leaves_no_temporaries_after_next_run(pki, tmp_path):
    signer = pki.node("crash-signer")
    d = tmp_path / "study"
    d.mkdir()
    for i in range(6):
        write_ct(str(d / ("ct%d.dcm" % i)), seed=i + 1)
    args = {"path": [str(d)], "privatekey_path": signer.key, "certificate_path": signer.cert}
    kills, worst = 0, 0
    for k in range(1, 21):
        for name in os.listdir(d):  # start each kill from unsigned files
            if name.endswith(".dcm"):
                write_ct(str(d / name), seed=int(name[2:-4]) + 1)
        rc, _res = module_proc.run("dicom_sign", args, crash_after=k)
        if rc == 0:
            continue
        kills += 1
        worst = max(worst, len(leftovers(d)))
    assert kills >= 20
    assert worst > 0
    rc, res = module_proc.run("dicom_sign", args)
    assert rc == 0 and not res["failed"], res
    assert leftovers(d) == []
    print("dicom_sign: %d kills, up to %d temporaries left, 0 after the next run" % (kills, worst))


# ---------------------------------------------------------------- locks


def _crl_number(path) -> int:
    out = openssl("crl", "-in", path, "-noout", "-crlnumber").stdout.decode()
    return int(out.strip().split("=")[1], 16)


def _crl_serials(path) -> set[int]:
    out = openssl("crl", "-in", path, "-noout", "-text").stdout.decode()
    return {int(s, 16) for s in re.findall(r"Serial Number: ([0-9A-Fa-f]+)", out)}


def _serial_of(cert_path) -> int:
    out = openssl("x509", "-in", cert_path, "-noout", "-serial").stdout.decode()
    return int(out.strip().split("=")[1], 16)


def test_two_dicom_crl_runs_at_once_lose_no_revocation(pki, tmp_path):
    """Certificates issued through one ledger (OpenSSL index.txt), then revoked two at a time by
    two dicom_crl runs started together: both revocations reach the CRL, its number goes up by 2."""
    base = {
        "path": str(tmp_path / "ca.crl"),
        "issuer_cert_path": pki.inter.cert,
        "issuer_privatekey_path": pki.inter.key,
        "database": str(tmp_path / "index.txt"),
    }
    issued = []
    for i in range(6):
        a = cert_args(
            pki, tmp_path, path=str(tmp_path / ("n%d.pem" % i)), privatekey_path=str(tmp_path / ("n%d.key" % i))
        )
        a.update(chain_path=None, pkcs12_path=None, pkcs12_passphrase=None, database=base["database"])
        a["subject"] = {"CN": "node-%d" % i}
        rc, res = module_proc.run("dicom_cert", a)
        assert rc == 0 and not res["failed"], res
        issued.append(a["path"])
    rc, res = module_proc.run("dicom_crl", base)
    assert rc == 0 and not res["failed"], res
    number = _crl_number(base["path"])
    for one, two in zip(issued[0::2], issued[1::2], strict=True):
        procs = [
            module_proc.start("dicom_crl", dict(base, revoked=[{"certificate_path": one}])),
            module_proc.start("dicom_crl", dict(base, revoked=[{"certificate_path": two}])),
        ]
        for proc in procs:
            rc, res = module_proc.result(proc)
            assert rc == 0 and not res["failed"], res
        assert {_serial_of(one), _serial_of(two)} <= _crl_serials(base["path"])
        assert _crl_number(base["path"]) == number + 2
        number += 2
    assert _crl_serials(base["path"]) == {_serial_of(p) for p in issued}
    assert openssl("crl", "-in", base["path"], "-CAfile", pki.inter.cert, "-noout").returncode == 0


def test_two_dicom_cert_runs_at_once_leave_one_runs_pair(pki, tmp_path):
    a = cert_args(pki, tmp_path)
    assert module_proc.run("dicom_cert", a)[0] == 0
    renew = dict(a, force=True, regenerate_key=True)
    for _round in range(3):
        procs = [module_proc.start("dicom_cert", renew) for _run in range(2)]
        serials = []
        for proc in procs:
            rc, res = module_proc.result(proc)
            assert rc == 0 and not res["failed"], res
            serials.append(res["serial"])
        assert len(set(serials)) == 2
        assert consistent_set(a)
        assert leftovers(tmp_path) == []


def test_two_orthanc_config_runs_at_once_keep_both_settings(tmp_path):
    d = tmp_path / "orthanc"
    d.mkdir()
    for i in range(3):
        procs = [
            module_proc.start("orthanc_config", {"config_dir": str(d), "settings": {"DicomTlsEnabled": True}}),
            module_proc.start("orthanc_config", {"config_dir": str(d), "settings": {"DicomPort": 4242 + i}}),
        ]
        for proc in procs:
            rc, res = module_proc.result(proc)
            assert rc == 0 and not res["failed"], res
        with open(d / "dicom-tls.json", encoding="utf-8") as fh:
            got = json.load(fh)
        assert got.get("DicomTlsEnabled") is True and got.get("DicomPort") == 4242 + i, got


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-s"])
