"""Concurrent runs of every read-modify-write module (issue 14, one locking rule), real module runs
in child processes. Each round starts two runs together and releases them at their first lock
request (module_proc.run_together: no sleeps, no luck with process start-up), so both stand just
before the read when they go. The later run must see the earlier one's result (no lost update),
the files must end equal to one run's inputs, and nothing of ours may be left behind (temporaries,
processes).

dicom_crl, dicom_cert and orthanc_config have their own tests in test_crash_and_locks.py."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from support import module_proc
from support.dicom_files import write_ct
from support.pki import TestPKI
from support.servers import dcmtk, free_port, stop_pid

ROUNDS = 3
TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$|\.dicom_tls-journal$")


def leftovers(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if TEMP_RE.search(n))


def together(*runs) -> list[dict]:
    results = module_proc.run_together(list(runs))
    for rc, res in results:
        assert rc == 0 and res is not None and not res["failed"], res
    return [res for _rc, res in results]


def openssl(*args, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *map(str, args)], input=data, capture_output=True, timeout=60, check=False)


def read(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def ledger_serials(path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.split("\t")[3] for line in fh if line.strip()]


def test_dicom_pkcs12_two_runs_one_key_store(pki, tmp_path):
    """Two runs for one appliance at once: one issues, the other finds that key store and leaves it;
    the ledger records one certificate, the PKCS#12 holds the certificate written beside it."""
    for i in range(ROUNDS):
        d = tmp_path / ("r%d" % i)
        d.mkdir()
        args = {
            "path": str(d / "ct-01.p12"),
            "certificate_path": str(d / "ct-01.pem"),
            "passphrase": "appliance secret",
            "subject": "/O=medimg test/CN=ct-01-%d" % i,
            "key_type": "ecdsa",
            "issuer_cert_path": pki.inter.cert,
            "issuer_privatekey_path": pki.inter.key,
            "database": str(d / "index.txt"),
        }
        a, b = together(("dicom_pkcs12", args), ("dicom_pkcs12", args))
        assert sorted([a["changed"], b["changed"]]) == [False, True], (a["actions"], b["actions"])
        assert len(ledger_serials(args["database"])) == 1
        p12 = openssl("pkcs12", "-in", args["path"], "-passin", "pass:appliance secret", "-nokeys", "-clcerts")
        assert p12.returncode == 0, p12.stderr
        der = openssl("x509", "-outform", "DER", data=p12.stdout).stdout
        assert der == openssl("x509", "-in", args["certificate_path"], "-outform", "DER").stdout
        assert leftovers(d) == []


def test_dicom_csr_sign_two_runs_one_certificate(pki, tmp_path):
    """The same CSR signed by two runs at once: one certificate is issued and recorded, the other run
    finds it current and reports no change."""
    for i in range(ROUNDS):
        d = tmp_path / ("r%d" % i)
        d.mkdir()
        csr = openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", d / "appliance.key", "-subj", "/O=medimg test/CN=appliance-%d" % i,
        )  # fmt: skip
        assert csr.returncode == 0, csr.stderr
        args = {
            "requests": [{"name": "appliance", "path": str(d / "appliance.pem"), "csr_content": csr.stdout.decode()}],
            "issuer_cert_path": pki.inter.cert,
            "issuer_privatekey_path": pki.inter.key,
            "database": str(d / "index.txt"),
        }
        a, b = together(("dicom_csr_sign", args), ("dicom_csr_sign", args))
        assert sorted([a["changed"], b["changed"]]) == [False, True], (a["issued"], b["issued"])
        (serial,) = ledger_serials(args["database"])
        cert_serial = openssl("x509", "-in", d / "appliance.pem", "-noout", "-serial").stdout.decode()
        assert cert_serial.strip().split("=")[1].lstrip("0") == serial.lstrip("0")
        verify = openssl("verify", "-CAfile", pki.root.cert, "-untrusted", pki.inter.cert, d / "appliance.pem")
        assert verify.returncode == 0, verify.stdout
        assert leftovers(d) == []


def test_dicom_sign_two_signers_at_once_keep_both_signatures(pki, tmp_path):
    """Two signers sign the same files at once: every file ends with both signatures, and dcmsign
    verifies both (a lost update would leave only the later writer's)."""
    signers = [pki.node("concurrent-signer-a"), pki.node("concurrent-signer-b")]
    for i in range(ROUNDS):
        d = tmp_path / ("r%d" % i)
        d.mkdir()
        paths = [write_ct(str(d / ("ct%d.dcm" % n)), seed=n + 1) for n in range(2)]
        runs = [
            ("dicom_sign", {"path": [str(d)], "privatekey_path": s.key, "certificate_path": s.cert}) for s in signers
        ]
        a, b = together(*runs)
        assert a["totals"]["signed"] == b["totals"]["signed"] == 2, (a["totals"], b["totals"])
        for path in paths:
            proc = subprocess.run(
                [dcmtk("dcmsign"), "--verify", "+cf", pki.root.cert, "+uf", pki.inter.cert, path],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0 and out.count("Signature Verification : OK") == 2, out
        assert leftovers(d) == []


def test_dicom_truststore_bundle_later_run_sees_the_earlier_bundle(tmp_path):
    """Two bundle runs at once, with backup: the later run's backup is the earlier run's bundle (its
    plan was read under the lock), the bundle ends as one run's certificates."""
    roots = [TestPKI(tmp_path / ("p%d" % i), key_type="ecdsa", prefix="Bundle%d" % i).root.cert for i in range(3)]
    expected = {}
    for i in range(ROUNDS):
        d = tmp_path / ("r%d" % i)
        d.mkdir()
        bundle = str(d / "trusted.pem")
        base = {"path": bundle, "layout": "bundle"}
        assert module_proc.run("dicom_truststore", dict(base, certificates=[roots[0]]))[0] == 0
        start = read(bundle)
        for name, root in (("a", roots[1]), ("b", roots[2])):
            expected[name] = read(root)
        a, b = together(
            ("dicom_truststore", dict(base, certificates=[roots[1]], backup=True)),
            ("dicom_truststore", dict(base, certificates=[roots[2]], backup=True)),
        )
        final = read(bundle)
        assert final in (expected["a"], expected["b"])
        first = expected["b"] if final == expected["a"] else expected["a"]
        backups = sorted(read(p) for res in (a, b) for p in res["backup_files"])
        assert backups == sorted([start, first]), "the later run did not see the earlier run's bundle"
        assert leftovers(d) == []


def _last_success(path):
    m = re.search(r"^dicom_tls_verify_last_success_timestamp_seconds (\S+)$", read(path).decode(), re.M)
    return m and float(m.group(1))


def test_dicom_metrics_success_is_not_lost_to_a_failed_run(tmp_path):
    """A verify run that succeeded and two that failed write the textfile at once (3-way): the last
    success survives whichever writes last (a failed run carries it over from the file it read)."""
    for i in range(ROUNDS):
        d = tmp_path / ("r%d" % i)
        d.mkdir()
        path = str(d / "dicom_tls.prom")
        pairs = [{"client": "a", "server": "b", "status": "success"}]
        assert module_proc.run("dicom_metrics", {"path": path, "echo_pairs": pairs, "verify_success": False})[0] == 0
        assert _last_success(path) is None
        together(
            ("dicom_metrics", {"path": path, "echo_pairs": pairs, "verify_success": False}),
            ("dicom_metrics", {"path": path, "echo_pairs": pairs, "verify_success": True}),
            ("dicom_metrics", {"path": path, "echo_pairs": pairs, "verify_success": False}),
        )
        assert _last_success(path), "the failed run wrote over the successful run's last success"
        assert leftovers(d) == []


def _listeners(argv) -> list[int]:
    """PIDs of live processes running exactly ``argv`` (the listeners these tests started)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as fh:
                raw = fh.read()
            with open("/proc/%s/stat" % entry) as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and [p.decode() for p in raw.split(b"\0")[:-1]] == argv:
            out.append(int(entry))
    return out


@pytest.mark.skipif(os.environ.get("DICOM_TLS_NETNS") != "1", reason="live listeners only inside scripts/netns.sh")
def test_dicom_daemon_two_starts_leave_one_listener(tmp_path):
    """Two dicom_daemon runs start one storescp at once: one starts it, the other finds it running;
    one listener, named by the PID file; stopping it leaves none."""
    started = []
    try:
        for i in range(ROUNDS):
            d = tmp_path / ("r%d" % i)
            port = free_port()
            argv = [dcmtk("storescp"), "-aet", "CONCURRENT", str(port)]
            args = {"name": "storescp", "command": argv, "pidfile": str(d / "run" / "storescp.pid"), "port": port}
            args["log_path"] = str(d / "storescp.log")
            started.append(argv)  # whatever runs it is stopped below if the round ends early
            a, b = together(("dicom_daemon", args), ("dicom_daemon", args))
            live = _listeners(argv)
            assert sorted([a["changed"], b["changed"]]) == [False, True], (a["reason"], b["reason"])
            assert a["pid"] == b["pid"] and live == [a["pid"]], (a["pid"], b["pid"], live)
            assert read(args["pidfile"]).split() == [str(a["pid"]).encode()]
            rc, res = module_proc.run("dicom_daemon", dict(args, state="stopped"))
            assert rc == 0 and res["changed"], res
            assert _listeners(argv) == []
            assert leftovers(d / "run") == []
    finally:
        for argv in started:
            for pid in _listeners(argv):
                stop_pid(pid)


def test_dcmtk_option_files_end_as_one_runs_set(tmp_path):
    """Two runs write storescp.args and echoscu.args at once, with backup: both files end from the
    same run, and the later run's backups hold what the earlier run wrote."""
    for i in range(ROUNDS):
        d = tmp_path / ("r%d" % i)

        def tools(tag):
            storescp = ["+tls %s.key %s.pem" % (tag, tag), "-aet %s" % tag]
            return {"storescp": storescp, "echoscu": ["+tls", "-aec %s" % tag]}

        assert module_proc.run("dcmtk_option_files", {"directory": str(d), "tools": tools("START")})[0] == 0
        a, b = together(
            ("dcmtk_option_files", {"directory": str(d), "tools": tools("A"), "backup": True}),
            ("dcmtk_option_files", {"directory": str(d), "tools": tools("B"), "backup": True}),
        )
        final = {t: read(d / (t + ".args")).decode() for t in ("storescp", "echoscu")}
        winner = "A" if "-aet A" in final["storescp"] else "B"
        assert final["echoscu"].endswith("-aec %s\n" % winner), final
        later, earlier = (a, b) if winner == "A" else (b, a)
        assert len(earlier["backup_files"]) == len(later["backup_files"]) == 2
        later_backups = "".join(read(p).decode() for p in later["backup_files"])
        assert ("-aet %s" % ("B" if winner == "A" else "A")) in later_backups, "the later run saw a stale file"
        assert leftovers(d) == []


def test_dicom_cert_export_files_come_from_one_run(pki, tmp_path):
    """Three exports of different certificates to the same name at once: all five files end from one."""
    leaves = [pki.node("export-a"), pki.node("export-b"), pki.node("export-c")]

    def pem(path):
        return read(path).decode()

    ca = pem(pki.inter.cert) + pem(pki.root.cert)
    for i in range(ROUNDS):
        d = tmp_path / ("r%d" % i)
        d.mkdir()
        runs = [
            ("dicom_cert_export", {"dest": str(d), "name": "ct", "certificate_content": pem(x.cert), "ca_content": ca})
            for x in leaves
        ]
        together(*runs)
        leaf_der = openssl("x509", "-in", d / "ct.pem", "-outform", "DER").stdout
        assert read(d / "ct.der") == leaf_der
        chain_leaf = openssl("x509", "-in", d / "ct.chain.pem", "-outform", "DER").stdout
        assert chain_leaf == leaf_der
        subject = openssl("x509", "-in", d / "ct.pem", "-noout", "-subject").stdout.decode().strip()
        p7 = openssl("pkcs7", "-inform", "DER", "-in", d / "ct.p7b", "-print_certs").stdout.decode()
        assert [line for line in p7.splitlines() if "export-" in line] == [subject], p7  # one leaf, this one
        assert leftovers(d) == []
