"""dicom_tls_echo against live dcmtk storescp, Orthanc and openssl s_server on loopback.

Most cases call the library directly (fast); a representative set runs the module through
Ansible. Listeners are started by the tests and stopped by PID.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import threading

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import tls_echo as te
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from support.ansible_run import ROOT, ansible_env, run_module
from support.pki import TestPKI
from support.servers import Orthanc, StoreSCP, free_port, stop_pid, wait_port

te.silence_pynetdicom()
LOOPBACK = "127.0.0.1"


def echo(**kw):
    """One check through the library, with a short timeout."""
    kw.setdefault("host", LOOPBACK)
    kw.setdefault("timeout", 5)
    return te.check(te.normalize_target(kw))


def openssl_fingerprint(path: str) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().split("=", 1)[1].lower()


# --------------------------------------------------------------------------------------------
# Fixtures: certificates and listeners


@pytest.fixture(scope="module")
def certs(pki, tmp_path_factory):
    """Server and client certificates of the test PKI, plus a stranger PKI and a revoked client."""
    base = tmp_path_factory.mktemp("echo-certs")
    other = TestPKI(base / "other", prefix="Other")
    c = {
        "pki": pki,
        "server": pki.node("echo-server"),
        "server_ec": pki.node("echo-server-ec", key_type="ecdsa"),
        "client": pki.node("echo-client"),
        "revoked": pki.node("echo-revoked"),
        "outsider": other.node("outsider"),
        "other": other,
    }
    # A CRL of the issuing CA that revokes "echo-revoked".
    now = datetime.datetime.now(datetime.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.inter.certificate.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(c["revoked"].certificate.serial_number)
            .revocation_date(now - datetime.timedelta(minutes=5))
            .build()
        )
        .sign(pki.inter.private_key, hashes.SHA256())
    )
    c["crl"] = str(base / "issuing.crl.pem")
    with open(c["crl"], "wb") as fh:
        fh.write(crl.public_bytes(serialization.Encoding.PEM))
    # A hashed directory (dcmtk +cd, ca_path) built by openssl rehash: root, issuing CA and CRL.
    hashed = base / "hashed"
    hashed.mkdir()
    for name, src in (("root.pem", pki.root.cert), ("issuing.pem", pki.inter.cert), ("issuing.crl.pem", c["crl"])):
        with open(src, "rb") as fh, open(hashed / name, "wb") as out:
            out.write(fh.read())
    subprocess.run(["openssl", "rehash", str(hashed)], check=True, capture_output=True)
    c["hashed"] = str(hashed)
    # Root + issuing CA in one file, for servers that send only their leaf.
    c["bundle"] = str(base / "bundle.pem")
    with open(c["bundle"], "wb") as out:
        for src in (pki.root.cert, pki.inter.cert):
            with open(src, "rb") as fh:
                out.write(fh.read())
    return c


def client_args(certs, name="client"):
    return {"certificate_path": certs[name].chain, "privatekey_path": certs[name].key}


@pytest.fixture(scope="module")
def scp(certs, tmp_path_factory):
    """storescp +tls with +cf root (3.6.7 default profile +py), client certificate required."""
    s = certs["server"]
    with StoreSCP(
        ["+tls", s.key, s.chain, "+cf", certs["pki"].root.cert], str(tmp_path_factory.mktemp("scp"))
    ) as listener:
        yield listener


@pytest.fixture(scope="module")
def scp_crl(certs, tmp_path_factory):
    """storescp +tls with +cd on a hashed directory and +crv (leaf CRL check)."""
    s = certs["server"]
    with StoreSCP(
        ["+tls", s.key, s.chain, "+cd", certs["hashed"], "+crv"], str(tmp_path_factory.mktemp("scp-crl"))
    ) as listener:
        yield listener


# --------------------------------------------------------------------------------------------
# storescp: certificates


def test_success_with_client_certificate_cf(scp, certs):
    res = echo(port=scp.port, called_ae_title="STORESCP", ca_file=certs["pki"].root.cert, **client_args(certs))
    assert res["status"] == "success", res["reason"]
    assert res["echo_status"] == 0
    assert res["tls_version"] == "TLSv1.3"
    assert res["cipher"]
    assert res["sni_sent"] is None
    peer = res["peer_certificate"]
    assert peer["subject"] == "/O=medimg test/CN=echo-server"
    assert peer["issuer"] == "/O=medimg test/CN=Test Issuing CA"
    assert peer["fingerprint_sha256"] == openssl_fingerprint(certs["server"].cert)
    serial = subprocess.run(
        ["openssl", "x509", "-in", certs["server"].cert, "-noout", "-serial"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert peer["serial"] == serial.strip().split("=")[1]
    assert "IP:127.0.0.1" in peer["subject_alt_names"]
    assert 28 <= peer["days_remaining"] <= 30
    assert res["as_expected"] is True


def test_success_with_client_certificate_cd_hashed_dir(scp_crl, certs):
    res = echo(port=scp_crl.port, ca_path=certs["hashed"], **client_args(certs))
    assert res["status"] == "success", res["reason"]


def test_revoked_client_refused_by_storescp_crv(scp_crl, certs):
    res = echo(port=scp_crl.port, ca_path=certs["hashed"], **client_args(certs, "revoked"))
    assert res["status"] == "client_certificate_rejected", res["reason"]
    assert "revoked" in res["reason"]
    assert certs["revoked"].chain in res["reason"]


def test_anonymous_tls_refused_when_server_requires_a_certificate(scp, certs):
    for profile in ("rfc8996", "bcp195-ex"):  # TLS 1.3: refusal after the handshake; TLS 1.2: during it
        res = echo(port=scp.port, ca_file=certs["pki"].root.cert, profile=profile)
        assert res["status"] == "client_certificate_rejected", (profile, res["reason"])
        assert "none was sent" in res["reason"]


@pytest.mark.parametrize("mode", ["-vc", "-ic"])
def test_anonymous_tls_accepted_when_server_does_not_require_one(certs, tmp_path, mode):
    s = certs["server"]
    with StoreSCP(["+tls", s.key, s.chain, "+cf", certs["pki"].root.cert, mode], str(tmp_path)) as listener:
        res = echo(port=listener.port, ca_file=certs["pki"].root.cert)
    assert res["status"] == "success", res["reason"]
    assert "anonymous TLS" in res["reason"]


def test_server_certificate_from_untrusted_ca(scp, certs):
    res = echo(port=scp.port, ca_file=certs["other"].root.cert, **client_args(certs))
    assert res["status"] == "server_certificate_rejected", res["reason"]
    assert certs["other"].root.cert in res["reason"]
    assert "unable to get local issuer certificate" in res["reason"]
    # named at the depth OpenSSL failed (openssl verify: error 20 at 1 depth lookup)
    assert "CN=Test Issuing CA (depth 1) is issued by /O=medimg test/CN=Test Root CA" in res["reason"]
    # we still say which certificate we refused
    assert res["peer_certificate"]["subject"] == "/O=medimg test/CN=echo-server"
    assert res["tls_version"] is None


def test_client_certificate_from_untrusted_ca(scp, certs):
    for profile in ("rfc8996", "bcp195-ex"):
        res = echo(port=scp.port, ca_file=certs["pki"].root.cert, profile=profile, **client_args(certs, "outsider"))
        assert res["status"] == "client_certificate_rejected", (profile, res["reason"])
        assert "does not trust the CA" in res["reason"]
        assert certs["outsider"].chain in res["reason"]


def test_hostname_check(scp, certs):
    common = dict(port=scp.port, ca_file=certs["pki"].root.cert, check_hostname=True, **client_args(certs))
    ok = echo(**common)  # 127.0.0.1 is an IP: SAN of the server certificate
    assert ok["status"] == "success", ok["reason"]
    bad = echo(server_name="other.example.org", **common)
    assert bad["status"] == "server_certificate_rejected", bad["reason"]
    assert "other.example.org" in bad["reason"]
    assert "(server certificate /O=medimg test/CN=echo-server, issued by" in bad["reason"]
    assert bad["sni_sent"] == "other.example.org"


def test_our_crl_check_refuses_a_revoked_server(certs, tmp_path):
    r = certs["revoked"]
    with StoreSCP(["+tls", r.key, r.chain, "+cf", certs["pki"].root.cert], str(tmp_path)) as listener:
        plain = echo(port=listener.port, ca_file=certs["pki"].root.cert, **client_args(certs))
        assert plain["status"] == "success", plain["reason"]
        by_file = echo(
            port=listener.port,
            ca_file=certs["pki"].root.cert,
            crl_check="leaf",
            crl_files=[certs["crl"]],
            **client_args(certs),
        )
        by_dir = echo(port=listener.port, ca_path=certs["hashed"], crl_check="chain", **client_args(certs))
    for res in (by_file, by_dir):
        assert res["status"] == "server_certificate_rejected", res["reason"]
        assert "revoked" in res["reason"]


def test_encrypted_client_key_with_passphrase(scp, certs, tmp_path):
    key = serialization.load_pem_private_key(open(certs["client"].key, "rb").read(), None)
    path = tmp_path / "client.enc.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    res = echo(
        port=scp.port,
        ca_file=certs["pki"].root.cert,
        certificate_path=certs["client"].chain,
        privatekey_path=str(path),
        privatekey_passphrase="s3cret",
    )
    assert res["status"] == "success", res["reason"]


# --------------------------------------------------------------------------------------------
# storescp: profiles


@pytest.mark.parametrize(
    "option, server, profile, version, cipher",
    [
        ("+py", "server", "bcp195-nd", "TLSv1.3", None),
        ("+px", "server", "bcp195", "TLSv1.3", None),
        ("+pz", "server_ec", "bcp195-ex", "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("+pa", "server", "aes", "TLSv1.2", "AES128-SHA"),
    ],
)
def test_each_dcmtk_profile_reached_with_matching_client_profile(
    certs, tmp_path, option, server, profile, version, cipher
):
    s = certs[server]
    with StoreSCP(["+tls", s.key, s.chain, "+cf", certs["pki"].root.cert, option], str(tmp_path)) as listener:
        res = echo(port=listener.port, ca_file=certs["pki"].root.cert, profile=profile, **client_args(certs))
        if option == "+pz":  # ECDSA certificate, TLS 1.2 only: a profile without ECDHE-ECDSA cannot reach it
            mismatch = echo(
                port=listener.port, ca_file=certs["pki"].root.cert, profile="bcp195-nd", **client_args(certs)
            )
            assert mismatch["status"] == "tls_handshake_failed", mismatch["reason"]
    assert res["status"] == "success", res["reason"]
    assert res["tls_version"] == version
    if cipher:
        assert res["cipher"] == cipher


def test_profile_aes_against_py_listener_fails_the_handshake(scp, certs):
    res = echo(port=scp.port, ca_file=certs["pki"].root.cert, profile="aes", **client_args(certs))
    assert res["status"] == "tls_handshake_failed", res["reason"]
    assert "profile aes" in res["reason"]
    assert res["tls_version"] is None


# --------------------------------------------------------------------------------------------
# Network


def test_closed_port_is_connection_refused_with_retries(certs):
    port = free_port()
    res = echo(port=port, ca_file=certs["pki"].root.cert, retries=2, retry_delay=0.05, timeout=2)
    assert res["status"] == "connection_refused", res["reason"]
    assert res["attempts"] == 3
    assert str(port) in res["reason"]


def test_no_thread_left_behind(scp, certs):
    before = {t.ident for t in threading.enumerate()}
    targets = [
        te.normalize_target(dict(host=LOOPBACK, port=scp.port, ca_file=certs["pki"].root.cert, **client_args(certs))),
        te.normalize_target(dict(host=LOOPBACK, port=scp.port, ca_file=certs["pki"].root.cert)),
        te.normalize_target(dict(host=LOOPBACK, port=scp.port, ca_file=certs["other"].root.cert)),
        te.normalize_target(dict(host=LOOPBACK, port=free_port(), ca_file=certs["pki"].root.cert)),
    ]
    results = te.check_many(targets, max_workers=4)
    assert [r["status"] for r in results] == [
        "success",
        "client_certificate_rejected",
        "server_certificate_rejected",
        "connection_refused",
    ]
    assert {t.ident for t in threading.enumerate()} - before == set()


# --------------------------------------------------------------------------------------------
# openssl s_server: SNI, and a TLS peer that never answers the association request


class SServer:
    """openssl s_server on 127.0.0.1 with SNI checking; its stdin stays open so it keeps serving."""

    def __init__(self, certs, workdir, servername="dicom.example.org"):
        s = certs["server"]
        self.port = free_port()
        self.log = os.path.join(workdir, "s_server.log")
        argv = [
            "openssl",
            "s_server",
            "-accept",
            "%s:%d" % (LOOPBACK, self.port),
            "-cert",
            s.chain,
            "-key",
            s.key,
            "-cert2",
            s.chain,
            "-key2",
            s.key,
            "-servername",
            servername,
            "-servername_fatal",
        ]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, self.proc, log=self.log)
        except Exception:
            self.stop()
            raise

    def output(self) -> str:
        with open(self.log, errors="replace") as fh:
            return fh.read()

    def stop(self):
        if self.proc.poll() is None:
            stop_pid(self.proc.pid)
        self.proc.wait()
        self.proc.stdin.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def test_sni_is_sent_and_seen_by_the_server(certs, tmp_path):
    with SServer(certs, str(tmp_path)) as server:
        ok = echo(port=server.port, ca_file=certs["bundle"], server_name="dicom.example.org", timeout=2)
        wrong = echo(port=server.port, ca_file=certs["bundle"], server_name="wrong.example.org", timeout=2)
        seen = server.output()
    assert ok["sni_sent"] == "dicom.example.org"
    assert ok["tls_version"] is not None  # the handshake passed the SNI check
    assert ok["status"] == "timeout", ok["reason"]  # s_server is no DICOM listener
    assert 'Hostname in TLS extension: "dicom.example.org"' in seen
    assert wrong["status"] == "tls_handshake_failed", wrong["reason"]
    assert "wrong.example.org" in wrong["reason"]


# --------------------------------------------------------------------------------------------
# Orthanc


@pytest.fixture(scope="module")
def orthanc_trusted(certs, tmp_path_factory):
    path = tmp_path_factory.mktemp("orthanc-trust") / "trusted.pem"
    path.write_bytes(open(certs["pki"].root.cert, "rb").read())
    return str(path)


def orthanc_tls(certs, trusted, **extra):
    settings = {
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": certs["server"].chain,
        "DicomTlsPrivateKey": certs["server"].key,
        "DicomTlsTrustedCertificates": trusted,
    }
    settings.update(extra)
    return settings


def test_orthanc_certificate_required(certs, orthanc_trusted, tmp_path):
    with Orthanc(str(tmp_path), orthanc_tls(certs, orthanc_trusted)) as orthanc:
        common = dict(port=orthanc.port, ca_file=certs["pki"].root.cert)
        ok = echo(called_ae_title=orthanc.aet, **common, **client_args(certs))
        wrong_ae = echo(called_ae_title="NOT-ORTHANC", **common, **client_args(certs))
        anonymous = echo(called_ae_title=orthanc.aet, **common)
        outsider = echo(called_ae_title=orthanc.aet, **common, **client_args(certs, "outsider"))
    assert ok["status"] == "success", ok["reason"]
    assert wrong_ae["status"] == "association_rejected", wrong_ae["reason"]
    assert "called AE title 'NOT-ORTHANC' not recognised" in wrong_ae["reason"]
    assert anonymous["status"] == "client_certificate_rejected", anonymous["reason"]
    assert outsider["status"] == "client_certificate_rejected", outsider["reason"]


def test_orthanc_certificate_not_required_accepts_anonymous_tls(certs, orthanc_trusted, tmp_path):
    settings = orthanc_tls(certs, orthanc_trusted, DicomTlsRemoteCertificateRequired=False)
    with Orthanc(str(tmp_path), settings) as orthanc:
        res = echo(port=orthanc.port, called_ae_title=orthanc.aet, ca_file=certs["pki"].root.cert)
    assert res["status"] == "success", res["reason"]


def test_orthanc_unknown_calling_ae_title(certs, orthanc_trusted, tmp_path):
    settings = orthanc_tls(
        certs, orthanc_trusted, DicomAlwaysAllowEcho=False, DicomModalities={"known": ["KNOWN", LOOPBACK, 104]}
    )
    with Orthanc(str(tmp_path), settings) as orthanc:
        common = dict(port=orthanc.port, called_ae_title=orthanc.aet, ca_file=certs["pki"].root.cert)
        unknown = echo(calling_ae_title="STRANGER", **common, **client_args(certs))
        known = echo(calling_ae_title="KNOWN", **common, **client_args(certs))
    assert unknown["status"] == "association_aborted", unknown["reason"]
    assert "calling AE title 'STRANGER'" in unknown["reason"]
    assert known["status"] == "success", known["reason"]


# --------------------------------------------------------------------------------------------
# Through Ansible


def test_module_single_target_exposes_keys_at_top_level(scp, certs):
    res = run_module(
        "dicom_tls_echo",
        dict(host=LOOPBACK, port=scp.port, called_ae_title="STORESCP", ca_file=certs["pki"].root.cert)
        | client_args(certs),
    )
    assert res["_rc"] == 0, res["_output"][-3000:]
    assert res["changed"] is False
    assert res["status"] == "success"
    assert res["tls_version"] == "TLSv1.3"
    assert res["peer_certificate"]["fingerprint_sha256"] == openssl_fingerprint(certs["server"].cert)
    assert res["results"][0]["status"] == "success"
    assert res["summary"] == {"success": 1}


def test_module_expect_failure(scp, certs):
    common = dict(host=LOOPBACK, port=scp.port, ca_file=certs["pki"].root.cert, expect="failure")
    refused = run_module("dicom_tls_echo", dict(common, **client_args(certs, "outsider")))
    assert refused["_rc"] == 0, refused["_output"][-3000:]
    assert refused.get("failed") is not True
    assert refused["status"] == "client_certificate_rejected"
    accepted = run_module("dicom_tls_echo", dict(common, **client_args(certs)))
    assert accepted["failed"] is True
    assert accepted["status"] == "success"
    assert "failure was expected" in accepted["msg"]


def test_module_targets_mixed_outcomes_in_check_mode(scp, scp_crl, certs):
    passphrase = "never-shown-9f2c"
    res = run_module(
        "dicom_tls_echo",
        dict(
            ca_file=certs["pki"].root.cert,
            targets=[
                dict(host=LOOPBACK, port=scp.port, **client_args(certs)),
                dict(host=LOOPBACK, port=scp_crl.port, ca_path=certs["hashed"], **client_args(certs, "revoked")),
                dict(host=LOOPBACK, port=scp.port, profile="aes", expect="failure", **client_args(certs)),
                dict(host=LOOPBACK, port=free_port(), expect="failure", privatekey_passphrase=passphrase),
            ],
        ),
        check=True,
    )
    statuses = [r["status"] for r in res["results"]]
    assert statuses == ["success", "client_certificate_rejected", "tls_handshake_failed", "connection_refused"]
    # an expected refusal is met only by a listener that refuses: no listener at all is not a refusal
    assert [r["as_expected"] for r in res["results"]] == [True, False, True, False]
    assert res["failed"] is True  # target 2 expected success; target 4 found no listener
    assert "2 of 4 targets" in res["msg"]
    assert "status" not in res  # several targets: results only
    assert passphrase not in res["_output"]


def test_module_bad_input_names_the_file(certs, tmp_path):
    missing = str(tmp_path / "nope.pem")
    res = run_module("dicom_tls_echo", dict(host=LOOPBACK, port=free_port(), ca_file=missing))
    assert res["failed"] is True
    assert missing in res["msg"]
    assert "does not exist" in res["msg"]


def test_module_process_exits_against_a_silent_tls_peer(certs, tmp_path):
    """A TLS peer that never answers the A-ASSOCIATE-RQ: the task ends with a timeout and the
    ansible-playbook process exits (pynetdicom's threads are not daemons)."""
    with SServer(certs, str(tmp_path)) as server:
        play = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [
                    {
                        "medimg.dicom_tls.dicom_tls_echo": {
                            "host": LOOPBACK,
                            "port": server.port,
                            "ca_file": certs["bundle"],
                            "timeout": 2,
                        },
                        "ignore_errors": True,
                    }
                ],
            }
        ]
        path = tmp_path / "silent.yml"
        path.write_text(json.dumps(play))
        proc = subprocess.run(
            ["ansible-playbook", "-i", "localhost,", "-c", "local", str(path)],
            capture_output=True,
            text=True,
            env=ansible_env(),
            cwd=ROOT,
            timeout=60,  # a hung module would hit this and fail the test
            check=False,
        )
    data = json.loads(proc.stdout)
    result = data["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["status"] == "timeout", result.get("reason")
    assert "did not answer the association request" in result["reason"]
