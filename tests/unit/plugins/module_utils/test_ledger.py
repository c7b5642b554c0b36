"""The CA ledger (OpenSSL's index.txt): recorded when dicom_cert issues, revoked by dicom_crl, read by
``openssl ca -status`` and rewritten by ``openssl ca -updatedb`` (the oracle), unchanged after a
failed issuance, and reported (what expires within N days)."""

from __future__ import annotations

import datetime
import os
import subprocess
import threading

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as backend
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crl as crlib
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, ledger
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UTC = datetime.UTC


def run(**kw) -> backend.Plan:
    p = backend.plan(backend.CertSpec(**kw))
    backend.apply(p)
    return p


@pytest.fixture
def ca(tmp_path):
    d = str(tmp_path)
    run(
        path=d + "/root.pem", privatekey_path=d + "/root.key", usage="root_ca", subject={"CN": "Root"}, key_type="ecdsa"
    )
    run(
        path=d + "/inter.pem",
        privatekey_path=d + "/inter.key",
        usage="intermediate_ca",
        subject={"CN": "Inter"},
        key_type="ecdsa",
        issuer_cert_path=d + "/root.pem",
        issuer_privatekey_path=d + "/root.key",
    )
    with open(d + "/openssl.cnf", "w") as fh:
        fh.write(
            "[ca]\ndefault_ca = CA_default\n[CA_default]\ndir = %s\ndatabase = $dir/index.txt\n"
            "certificate = $dir/inter.pem\nprivate_key = $dir/inter.key\nnew_certs_dir = $dir\n"
            "default_md = sha256\npolicy = policy_any\n[policy_any]\ncommonName = supplied\n" % d
        )
    return d


def issue(ca, name, **kw) -> backend.Plan:
    args = dict(
        path="%s/%s.pem" % (ca, name),
        privatekey_path="%s/%s.key" % (ca, name),
        subject={"CN": name},
        key_type="ecdsa",
        issuer_cert_path=ca + "/inter.pem",
        issuer_privatekey_path=ca + "/inter.key",
        database=ca + "/index.txt",
    )
    args.update(kw)
    return run(**args)


def openssl_status(ca, serial: str) -> str:
    r = subprocess.run(
        ["openssl", "ca", "-config", ca + "/openssl.cnf", "-status", serial],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [x for x in (r.stderr + r.stdout).splitlines() if x.startswith(serial + "=")]
    return lines[0] if lines else r.stderr + r.stdout


def test_issued_certificates_recorded_and_openssl_ca_status_agrees(ca):
    a = issue(ca, "node-a").cert
    b = issue(ca, "node-b").cert
    entries = ledger.read(ca + "/index.txt")
    assert [e.serial for e in entries] == [a.serial_number, b.serial_number]
    assert [e.subject for e in entries] == ["/CN=node-a", "/CN=node-b"]
    assert open(ca + "/index.txt.attr").read() == "unique_subject = no\n"
    for cert in (a, b):
        serial = crypto.serial_hex(cert.serial_number)
        assert openssl_status(ca, serial) == "%s=Valid (V)" % serial
        line = next(x for x in open(ca + "/index.txt").read().splitlines() if serial in x).split("\t")
        assert line[1] == cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")


def test_renewal_keeps_the_old_entry_and_second_run_changes_nothing(ca):
    first = issue(ca, "node-a").cert
    again = backend.plan(
        backend.CertSpec(
            path=ca + "/node-a.pem",
            privatekey_path=ca + "/node-a.key",
            subject={"CN": "node-a"},
            key_type="ecdsa",
            issuer_cert_path=ca + "/inter.pem",
            issuer_privatekey_path=ca + "/inter.key",
            database=ca + "/index.txt",
        )
    )
    assert again.actions == []
    second = issue(ca, "node-a", force=True).cert
    assert second.serial_number != first.serial_number
    assert [e.serial for e in ledger.read(ca + "/index.txt")] == [first.serial_number, second.serial_number]
    # Same subject twice: openssl ca reads it because index.txt.attr says unique_subject = no.
    serial = crypto.serial_hex(second.serial_number)
    assert openssl_status(ca, serial) == "%s=Valid (V)" % serial
    report = ledger.report(ledger.read(ca + "/index.txt"), within_days=400)
    assert [r["serial"] for r in report["expiring"]] == [serial]  # the superseded one is left out


def test_existing_certificate_missing_from_the_ledger_is_recorded_not_reissued(ca):
    cert = issue(ca, "node-a", database=None).cert
    p = issue(ca, "node-a")
    assert [a.role for a in p.actions] == ["database"]
    assert p.cert == cert
    assert [e.serial for e in ledger.read(ca + "/index.txt")] == [cert.serial_number]
    assert issue(ca, "node-a").actions == []


def test_failed_issuance_leaves_the_ledger_unchanged(ca, monkeypatch):
    issue(ca, "node-a")
    before = open(ca + "/index.txt", "rb").read()
    # Refused while planning: a CSR whose signature does not verify.
    with pytest.raises(DicomTlsError):
        run(
            path=ca + "/x.pem",
            csr_content="-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
            issuer_cert_path=ca + "/inter.pem",
            issuer_privatekey_path=ca + "/inter.key",
            database=ca + "/index.txt",
        )
    assert open(ca + "/index.txt", "rb").read() == before
    # Failing while writing the certificate, after the ledger was written: the ledger is put back.
    real = backend.files.write_group  # key, certificate, chain move together through files.py

    def broken(anchor, writes):
        if any(path.endswith("node-b.pem") for path, _data, _mode in writes):
            raise OSError(28, "No space left on device", anchor)
        return real(anchor, writes)

    monkeypatch.setattr(backend.files, "write_group", broken)
    with pytest.raises(OSError):
        issue(ca, "node-b")
    assert open(ca + "/index.txt", "rb").read() == before
    assert not os.path.exists(ca + "/node-b.pem")
    # The first issuance of a new ledger fails: no ledger is left behind.
    with pytest.raises(OSError):
        issue(ca, "node-b", database=ca + "/fresh.txt")
    assert not os.path.exists(ca + "/fresh.txt")


def test_two_issuances_at_once_both_recorded(ca):
    plans = [
        backend.plan(
            backend.CertSpec(
                path="%s/n%d.pem" % (ca, i),
                privatekey_path="%s/n%d.key" % (ca, i),
                subject={"CN": "n%d" % i},
                key_type="ecdsa",
                issuer_cert_path=ca + "/inter.pem",
                issuer_privatekey_path=ca + "/inter.key",
                database=ca + "/index.txt",
            )
        )
        for i in range(6)
    ]
    threads = [threading.Thread(target=backend.apply, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = ledger.read(ca + "/index.txt")
    assert sorted(e.serial for e in entries) == sorted(p.cert.serial_number for p in plans)
    assert len({e.serial for e in entries}) == 6


def _expired_cert(ca) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    inter = crypto.load_certificate(open(ca + "/inter.pem", "rb").read(), "inter")
    inter_key = crypto.load_private_key(open(ca + "/inter.key", "rb").read(), "inter.key")
    now = datetime.datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=old"))
        .issuer_name(inter.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .sign(inter_key, hashes.SHA256())
    )


def test_revocation_and_openssl_ca_updatedb(ca):
    a = issue(ca, "node-a").cert
    old = _expired_cert(ca)
    with ledger.update(ca + "/index.txt") as book:
        book.record(old)
    when = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    with ledger.update(ca + "/index.txt") as book:
        assert ledger.record_revocations(book, [(a.serial_number, "key_compromise", when)]) == [
            crypto.serial_hex(a.serial_number)
        ]
    line = open(ca + "/index.txt").read().splitlines()[0].split("\t")
    assert line[0] == "R" and line[2] == "260501120000Z,keyCompromise"
    serial = crypto.serial_hex(a.serial_number)
    assert openssl_status(ca, serial) == "%s=Revoked (R)" % serial
    r = subprocess.run(
        ["openssl", "ca", "-config", ca + "/openssl.cnf", "-updatedb"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stderr
    entries = {e.serial: e for e in ledger.read(ca + "/index.txt")}
    assert entries[old.serial_number].status == "E"
    assert entries[a.serial_number].status == "R" and entries[a.serial_number].reason == "key_compromise"
    assert openssl_status(ca, crypto.serial_hex(old.serial_number)).endswith("=Expired (E)")


def test_crl_reads_revocations_from_the_ledger(ca):
    a = issue(ca, "node-a").cert
    b = issue(ca, "node-b").cert
    when = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    with ledger.update(ca + "/index.txt") as book:
        book.revoke(a.serial_number, when, "superseded")
    issuer = crlib.read_issuer(ca + "/inter.pem", ca + "/inter.key", None)
    listed = [crlib.Revocation(b.serial_number, None, None)]
    desired = ledger.crl_revocations(listed, ledger.read(ca + "/index.txt"))
    assert [(r.serial, r.reason, r.revocation_date) for r in desired] == sorted(
        [(a.serial_number, "superseded", when), (b.serial_number, None, None)]
    )
    plan = crlib.plan_crl(desired, None, issuer, "pem", "sha256", 7, None)
    assert ledger.revocations_to_record(ledger.read(ca + "/index.txt"), plan.revocations) == [
        crypto.serial_hex(b.serial_number)
    ]


def test_reason_without_an_openssl_name_refused(ca):
    a = issue(ca, "node-a").cert
    before = open(ca + "/index.txt", "rb").read()
    with pytest.raises(DicomTlsError, match="privilege_withdrawn has no name"):
        with ledger.update(ca + "/index.txt") as book:
            book.revoke(a.serial_number, datetime.datetime.now(UTC), "privilege_withdrawn")
    assert open(ca + "/index.txt", "rb").read() == before


@pytest.mark.parametrize(
    "line, match",
    [
        ("V\t271130120000Z\t\t0A\tunknown", "has 5 tab-separated fields"),
        ("X\t271130120000Z\t\t0A\tunknown\t/CN=a", "status 'X'"),
        ("V\t2711301200Z\t\t0A\tunknown\t/CN=a", "unreadable date"),
        ("R\t271130120000Z\t\t0A\tunknown\t/CN=a", "without a revocation date"),
    ],
)
def test_unreadable_ledger_line_named(tmp_path, line, match):
    path = str(tmp_path / "index.txt")
    open(path, "w").write("V\t271130120000Z\t\t0B\tunknown\t/CN=b\n" + line + "\n")
    with pytest.raises(DicomTlsError, match="line 2"):
        ledger.read(path)
    with pytest.raises(DicomTlsError, match=match):
        ledger.read(path)


def test_times_past_2049_are_generalized_time():
    when = datetime.datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert ledger.format_time(when) == "20510102030405Z"
    assert ledger.parse_time("20510102030405Z") == when
    assert ledger.parse_time("490102030405Z").year == 2049
    assert ledger.parse_time("500102030405Z").year == 1950


def test_report_expiring_within(ca):
    issue(ca, "soon", valid_days=10)
    issue(ca, "later", valid_days=100)
    report = ledger.report(ledger.read(ca + "/index.txt"), within_days=30)
    assert [r["subject"] for r in report["expiring"]] == ["/CN=soon"]
    assert report["counts"] == {"V": 2, "R": 0, "E": 0}
