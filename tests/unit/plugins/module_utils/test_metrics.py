"""Prometheus textfile metrics: one series per node, appliance, CRL and echo pair, accepted by
``promtool check metrics``; the last successful verify time survives a failed run; the alert rule
example passes ``promtool check rules``."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as backend
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crl as crlib
from ansible_collections.medimg.dicom_tls.plugins.module_utils import metrics
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian's prometheus package) is not installed")

CERTS = [
    {"node": "dcmtk-a", "kind": "dcmtk", "not_after": "2027-01-31T12:00:00Z", "subject": "/CN=dcmtk-a"},
    {"node": "ct-01", "kind": "appliance", "not_after": "2026-12-31T00:00:00Z"},
    {"node": "mr-02", "kind": "appliance", "not_after": "?"},  # served nothing: no series
]
PAIRS = [
    {"client": "dcmtk-a", "server": "dcmtk-a", "status": "success", "expect": "success", "reason": "ok"},
    {"client": "dcmtk-a", "server": "ct-01", "status": "server_certificate_rejected", "expect": "failure"},
    {"client": "dcmtk-a", "server": 'we"ird\\name', "status": "association_rejected", "expect": "success"},
]


def promtool_check(data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, "check", "metrics"], input=data, capture_output=True, check=False)


@needs_promtool
def test_verify_metrics_parse_and_hold_one_series_each(tmp_path):
    data = metrics.render(metrics.build(CERTS, None, PAIRS, verify_success=True, now=1764548100.0))
    r = promtool_check(data)
    assert r.returncode == 0, r.stdout + r.stderr
    text = data.decode()
    assert 'dicom_tls_certificate_not_after_timestamp_seconds{kind="dcmtk",name="dcmtk-a"} 1801396800.0' in text
    assert 'dicom_tls_certificate_not_after_timestamp_seconds{kind="appliance",name="ct-01"}' in text
    assert 'name="mr-02"' not in text
    assert 'dicom_tls_echo_as_expected{client="dcmtk-a",server="ct-01"} 1' in text
    assert 'dicom_tls_echo_success{client="dcmtk-a",expect="failure",server="ct-01"} 0' in text
    assert 'dicom_tls_echo_as_expected{client="dcmtk-a",server="we\\"ird\\\\name"} 0' in text
    assert "dicom_tls_verify_last_success_timestamp_seconds 1764548100.0" in text
    assert text.count("# TYPE") == 5


def test_last_success_kept_when_a_run_fails(tmp_path):
    path = str(tmp_path / "dicom_tls_verify.prom")
    assert metrics.write(path, metrics.render(metrics.build(CERTS, None, PAIRS, True, now=100.0)))
    failed = metrics.render(metrics.build(CERTS, None, PAIRS, False, now=200.0, path=path))
    assert b"dicom_tls_verify_last_success_timestamp_seconds 100.0" in failed
    assert b"dicom_tls_verify_last_run_timestamp_seconds 200.0" in failed
    assert metrics.write(path, failed)
    assert not metrics.write(path, failed)  # same content: not rewritten
    assert os.listdir(tmp_path) == ["dicom_tls_verify.prom"]  # no temporary file left


@needs_promtool
def test_crl_metrics(tmp_path):
    d = str(tmp_path)
    for usage, name, issuer in (("root_ca", "root", None), ("intermediate_ca", "inter", "root")):
        p = backend.plan(
            backend.CertSpec(
                path="%s/%s.pem" % (d, name),
                privatekey_path="%s/%s.key" % (d, name),
                usage=usage,
                subject={"CN": name},
                key_type="ecdsa",
                issuer_cert_path=issuer and "%s/%s.pem" % (d, issuer),
                issuer_privatekey_path=issuer and "%s/%s.key" % (d, issuer),
            )
        )
        backend.apply(p)
    issuer = crlib.read_issuer(d + "/inter.pem", d + "/inter.key", None)
    plan = crlib.plan_crl([], None, issuer, "pem", "sha256", 7, None)
    crlib.write_crl(d + "/inter.crl.pem", crlib.build_crl(plan, issuer, "sha256"), "pem")
    data = metrics.render(metrics.build(crl_files=[{"ca": "site-ca", "path": d + "/inter.crl.pem"}]))
    assert promtool_check(data).returncode == 0
    series = 'dicom_tls_crl_next_update_timestamp_seconds{ca="site-ca"} %r' % plan.next_update.timestamp()
    assert series.encode() in data
    assert b'dicom_tls_crl_number{ca="site-ca"} 1' in data
    assert b"verify" not in data


def test_bad_input_named():
    with pytest.raises(DicomTlsError, match="echo_pairs\\[0\\]"):
        metrics.build(echo_pairs=[{"client": "a"}])
    with pytest.raises(DicomTlsError, match="not ISO 8601"):
        metrics.build([{"name": "a", "not_after": "tomorrow"}])


@needs_promtool
def test_alert_rule_example_is_valid():
    rules = os.path.join(ROOT, "docs", "prometheus", "dicom_tls.rules.yml")
    r = subprocess.run([PROMTOOL, "check", "rules", rules], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 rules found" in r.stdout
