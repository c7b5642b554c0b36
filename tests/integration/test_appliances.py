"""Vendor appliances on a live fleet of two dcmtk nodes: one enrolled from a CSR made with
``openssl req`` (uploaded as DER, standing in for a console), one as a PKCS#12 made on the CA host;
each then runs as a dcmtk storescp with the exported material. verify.yml shows both in the matrix
and the expiry table; revoking one by name makes every dcmtk node refuse it. The CA ledger
(index.txt) agrees with ``openssl ca -status`` for every serial.

One ansible-playbook start-up per phase: rollout, enrolment (and its rerun), verify, revoke (which
verifies), CRL refresh (its metrics).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess

import pytest
from support.fleet import LocalFleet
from support.servers import StoreSCP, dcmtk

pytestmark = pytest.mark.skipif(
    os.environ.get("DICOM_TLS_NETNS") != "1", reason="live listeners only inside scripts/netns.sh (make integration)"
)

NODES = {"dcmtk-a": 11612, "dcmtk-b": 11613}
APPLIANCES = [
    {"name": "ct-01", "address": "127.0.0.1", "port": 11620, "ae_title": "CT_01", "enrolment": "csr"},
    {
        "name": "mr-02",
        "address": "127.0.0.1",
        "port": 11621,
        "ae_title": "MR_02",
        "enrolment": "pkcs12",
        "pkcs12_encryption": "legacy",
    },
]
PASSPHRASE = "appliance-test-passphrase"


def openssl(*args, check=True):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if check:
        assert r.returncode == 0, r.stderr
    return r


class Site(LocalFleet):
    def __init__(self, state):
        self.state = str(state)
        self.csr_dir = os.path.join(self.state, "appliance-csr")
        self.export = os.path.join(self.state, "appliances")
        self.pki = os.path.join(self.state, "pki", "site-ca")
        self.console = os.path.join(self.state, "console")  # the appliances' own side
        os.makedirs(self.csr_dir)
        os.makedirs(os.path.join(self.state, "metrics"))  # node_exporter's textfile directory
        os.makedirs(self.console, mode=0o700)
        super().__init__(
            state,
            NODES,
            dicom_tls_metrics_dir=self.state + "/metrics",
            dicom_tls_organization="medimg appliances",
            dicom_tls_appliances=APPLIANCES,
            dicom_tls_appliance_csr_dir=self.csr_dir,
            dicom_tls_appliance_export_dir=self.export,
        )
        self.listeners: list[StoreSCP] = []

    def ledger(self):
        with open(os.path.join(self.pki, "index.txt")) as fh:
            return [line.split("\t") for line in fh.read().splitlines()]

    def ca_status(self, serial):
        cnf = os.path.join(self.state, "openssl.cnf")
        with open(cnf, "w") as fh:
            fh.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\n" % self.pki)
        r = openssl("ca", "-config", cnf, "-status", serial, check=False)
        return next((x for x in (r.stderr + r.stdout).splitlines() if x.startswith(serial + "=")), r.stderr)

    def appliance_echo(self, name, node):
        """echoscu with the appliance's own material (as the console calls a node)."""
        key, chain = os.path.join(self.console, name + ".key"), os.path.join(self.export, name + ".chain.pem")
        return subprocess.run(
            [dcmtk("echoscu"), "+tls", key, chain, "+cf", os.path.join(self.export, name + ".ca.pem")]
            + ["-aet", name.upper().replace("-", "_"), "-aec", node.upper().replace("-", "_")]
            + ["127.0.0.1", str(NODES[node])],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = Site(tmp_path_factory.mktemp("appliances"))
    # The CT console makes its key and CSR itself; the operator uploads the CSR (here as DER).
    pem = os.path.join(s.console, "ct-01.csr.pem")
    openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", os.path.join(s.console, "ct-01.key"),
        "-out", pem, "-subj", "/O=medimg appliances/CN=ct-01", "-addext", "subjectAltName=IP:127.0.0.1",
    )  # fmt: skip
    openssl("req", "-in", pem, "-outform", "DER", "-out", os.path.join(s.csr_dir, "ct-01.csr"))
    res = s.play("rollout.yml")
    try:
        assert res.rc == 0, res.output[-4000:]
        yield s
    finally:
        for listener in s.listeners:
            listener.stop()
        s.play("stop.yml")
        for out in s.outputs:
            assert "PRIVATE KEY" not in out
            assert PASSPHRASE not in out


def test_enrol_export_and_ledger(site):
    res = site.play("enrol_appliances.yml", dicom_tls_appliance_pkcs12_passphrase=PASSPHRASE)
    assert res.rc == 0, res.output[-4000:]
    assert "an exception to 'keys are born where they are used'" in res.output
    for a in APPLIANCES:
        name = a["name"]
        # The forms consoles import: PEM, DER and PKCS#7 with the whole chain.
        listed = openssl("pkcs7", "-inform", "DER", "-in", os.path.join(site.export, name + ".p7b"), "-print_certs")
        subjects = re.findall(r"^subject=(.*)$", listed.stdout, re.M)  # a PKCS#7 SET: any order
        assert sorted(s.replace(" = ", "=") for s in subjects) == [
            "O=medimg appliances, CN=%s" % name,
            "O=medimg appliances, CN=site-ca Issuing CA",
            "O=medimg appliances, CN=site-ca Root CA",
        ], listed.stdout
        der = openssl("x509", "-inform", "DER", "-in", os.path.join(site.export, name + ".der"), "-noout", "-serial")
        pem = openssl("x509", "-in", os.path.join(site.export, name + ".pem"), "-noout", "-serial")
        assert der.stdout == pem.stdout
        chain = os.path.join(site.export, name + ".chain.pem")
        ca = os.path.join(site.export, name + ".ca.pem")
        assert openssl("verify", "-CAfile", ca, chain, check=False).returncode == 0
    # The PKCS#12: mode 0600, legacy encryption (3DES, SHA-1 MAC), the key nowhere else.
    p12 = os.path.join(site.pki, "appliances", "mr-02.p12")
    assert stat.S_IMODE(os.stat(p12).st_mode) == 0o600
    info = openssl("pkcs12", "-in", p12, "-info", "-noout", "-passin", "pass:" + PASSPHRASE)
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in info.stderr + info.stdout
    assert "MAC: sha1" in info.stderr + info.stdout
    for dirpath, _dirs, files in os.walk(site.state):
        for f in files:
            if f.startswith("mr-02") and f.endswith((".key", ".pem")):
                assert b"PRIVATE KEY" not in open(os.path.join(dirpath, f), "rb").read()
    # The ledger: two nodes and two appliances, each agreeing with openssl ca -status.
    rows = site.ledger()
    assert sorted(r[5].split("CN=")[1] for r in rows) == ["ct-01", "dcmtk-a", "dcmtk-b", "mr-02"]
    for r in rows:
        assert site.ca_status(r[3]) == "%s=Valid (V)" % r[3]
    # Second run: nothing changes (nothing is due); the ledger report lists the four within 400 days.
    res = site.play(
        "enrol_appliances.yml", dicom_tls_appliance_pkcs12_passphrase=PASSPHRASE, dicom_tls_expiry_warn_days=400
    )
    assert res.rc == 0, res.output[-4000:]
    assert res.stats("ca").get("changed", 0) == 0, res.stats("ca")
    assert site.ledger() == rows
    report = next(r for r in res.results("ca") if r["_task"].endswith("Print what expires within the warning window"))[
        "msg"
    ]
    assert len(report) == 5 and all(any("CN=" + n in line for line in report) for n in ("ct-01", "mr-02", "dcmtk-a"))


def start_appliances(site):
    """Each appliance runs as a dcmtk storescp with what was exported for it."""
    ct_key = os.path.join(site.console, "ct-01.key")
    mr_key = os.path.join(site.console, "mr-02.key")
    openssl(
        "pkcs12", "-in", os.path.join(site.pki, "appliances", "mr-02.p12"), "-nocerts", "-nodes",
        "-passin", "pass:" + PASSPHRASE, "-out", mr_key,
    )  # fmt: skip
    os.chmod(mr_key, 0o600)
    for a, key in zip(APPLIANCES, (ct_key, mr_key), strict=True):
        work = os.path.join(site.console, a["name"])
        os.makedirs(work, exist_ok=True)
        chain = os.path.join(site.export, a["name"] + ".chain.pem")
        ca = os.path.join(site.export, a["name"] + ".ca.pem")
        site.listeners.append(StoreSCP(["+tls", key, chain, "+cf", ca], work, aet=a["ae_title"], port=a["port"]))


def test_verify_shows_the_appliances(site):
    start_appliances(site)
    for node in NODES:
        for a in APPLIANCES:
            r = site.appliance_echo(a["name"], node)
            assert r.returncode == 0, "%s -> %s: %s" % (a["name"], node, r.stderr or r.stdout)
    res = site.play("verify.yml")
    assert res.rc == 0, res.output[-4000:]
    report = open(os.path.join(site.state, "verify-report.txt")).read()
    assert "8 of 8 pairs as expected" in report, report
    matrix, expiry = report.split("Certificate expiry")
    for a in APPLIANCES:
        assert a["name"] in matrix
        # The certificate the appliance serves, read from the TLS handshake.
        assert re.search(r"%s\s.*CN=%s" % (a["name"], a["name"]), expiry), expiry
    prom = check_metrics(site)
    for name in list(NODES) + [a["name"] for a in APPLIANCES]:
        series = r'^dicom_tls_certificate_not_after_timestamp_seconds\{.*name="%s"' % name
        assert len(re.findall(series, prom, re.M)) == 1
    assert len(re.findall(r"^dicom_tls_echo_as_expected\{.*\} 1$", prom, re.M)) == 8
    assert re.search(r"^dicom_tls_verify_last_success_timestamp_seconds \S+$", prom, re.M)


def check_metrics(site) -> str:
    path = os.path.join(site.state, "metrics", "dicom_tls_verify.prom")
    with open(path, "rb") as fh:
        data = fh.read()
    r = subprocess.run(["promtool", "check", "metrics"], input=data, capture_output=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return data.decode()


def test_revoke_an_appliance_by_name(site):
    ct_serial = openssl("x509", "-in", os.path.join(site.export, "ct-01.pem"), "-noout", "-serial").stdout
    ct_serial = ct_serial.strip().split("=")[1]
    revoked = json.dumps([{"appliance": "ct-01"}])
    res = site.play("revoke.yml", "-e", '{"dicom_tls_revoked": %s}' % revoked)
    assert res.rc == 0, res.output[-4000:]
    report = open(os.path.join(site.state, "verify-report.txt")).read()
    assert "8 of 8 pairs as expected" in report, report
    assert site.ca_status(ct_serial) == "%s=Revoked (R)" % ct_serial
    prom = check_metrics(site)
    for node in NODES:
        assert 'dicom_tls_echo_success{client="%s",expect="failure",server="ct-01"} 0' % node in prom
        assert 'dicom_tls_echo_as_expected{client="%s",server="ct-01"} 1' % node in prom
    for node in NODES:
        r = site.appliance_echo("ct-01", node)
        assert r.returncode != 0, "revoked ct-01 was accepted by %s" % node
        r = site.appliance_echo("mr-02", node)
        assert r.returncode == 0, "mr-02 -> %s: %s" % (node, r.stderr or r.stdout)


def test_crl_refresh_writes_crl_metrics(site):
    res = site.play("crl_refresh.yml")
    assert res.rc == 0, res.output[-4000:]
    with open(os.path.join(site.state, "metrics", "dicom_tls_crl.prom"), "rb") as fh:
        data = fh.read()
    r = subprocess.run(["promtool", "check", "metrics"], input=data, capture_output=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    crl = os.path.join(site.pki, "issuing.crl.pem")
    number = int(openssl("crl", "-in", crl, "-noout", "-crlnumber").stdout.strip().split("=")[1], 16)
    assert ('dicom_tls_crl_number{ca="site-ca"} %d' % number).encode() in data
    assert re.search(rb'^dicom_tls_crl_next_update_timestamp_seconds\{ca="site-ca"\} \S+$', data, re.M)
