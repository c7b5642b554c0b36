"""TLS reasons at the failing depth: dcmtk storescp serves leaf + a faulty intermediate.

For each chain the oracle is `openssl verify -CAfile root -untrusted intermediate leaf`: the error
code, the depth and the subject of the certificate it failed on. dicom_tls_echo's reason must name
that certificate (not the valid leaf), its depth, and its date or issuer."""

from __future__ import annotations

import datetime
import re
import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto
from ansible_collections.medimg.dicom_tls.plugins.module_utils import tls_echo as te
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from support.pki import TestPKI
from support.servers import StoreSCP

te.silence_pynetdicom()
NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def _oracle(root: str, inter: str, leaf: str) -> tuple[int, int, str]:
    """(error code, depth, subject in the collection's form) from `openssl verify`."""
    out = subprocess.run(
        ["openssl", "verify", "-nameopt", "compat", "-CAfile", root, "-untrusted", inter, leaf],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    subject, code, depth = re.search(r"^(.*)\nerror (\d+) at (\d+) depth lookup", text, re.M).groups()
    return int(code), int(depth), "/" + "/".join(subject.split(", "))


def _chain(pki: TestPKI, case: str):
    """An intermediate with the fault of ``case`` and a valid leaf under it."""
    if case == "expired":
        inter = pki._issue("Expired Issuing CA", pki.root, ca=True, path_length=0,
                           not_before=NOW - 60 * DAY, not_after=NOW - 2 * DAY)  # fmt: skip
    elif case == "not-yet-valid":
        inter = pki._issue("Future Issuing CA", pki.root, ca=True, path_length=0,
                           not_before=NOW + 3 * DAY, not_after=NOW + 90 * DAY)  # fmt: skip
    else:  # an intermediate of another CA, under the same name as ours
        other = TestPKI(pki.dir + "-other", prefix="Other")
        inter = other._issue("Test Issuing CA", other.root, ca=True, path_length=0, file_stem="foreign-issuing-ca")
    leaf = pki._issue("depth-server-" + case, inter)
    return inter, leaf


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("expired", "has expired (notAfter %s)"),
        ("not-yet-valid", "is not yet valid (notBefore %s)"),
        ("wrong-ca", "is issued by /O=medimg test/CN=Other Root CA"),
    ],
)
def test_reason_names_the_certificate_at_the_failing_depth(tmp_path, case, words):
    pki = TestPKI(tmp_path / "pki")
    inter, leaf = _chain(pki, case)
    code, depth, subject = _oracle(pki.root.cert, inter.cert, leaf.cert)
    assert depth == 1 and subject == crypto.subject_text(inter.certificate)  # the oracle blames the intermediate
    with StoreSCP(["+tls", leaf.key, leaf.chain, "-ic"], str(tmp_path)) as scp:
        res = te.check(te.normalize_target({"host": "127.0.0.1", "port": scp.port, "ca_file": pki.root.cert,
                                            "timeout": 5, "called_ae_title": scp.aet}))  # fmt: skip
    assert res["status"] == "server_certificate_rejected", res
    reason = res["reason"]
    date = crypto.isoformat(
        crypto.not_valid_after(inter.certificate) if case == "expired" else crypto.not_valid_before(inter.certificate)
    )
    assert "intermediate CA sent by the server %s (depth %d)" % (subject, depth) in reason, reason
    assert (words % date if "%s" in words else words) in reason, reason
    assert crypto.subject_text(leaf.certificate) not in reason, reason  # the valid leaf is not blamed
    # the peer certificate reported is still the leaf, described as every module describes it
    assert res["peer_certificate"]["subject"] == crypto.subject_text(leaf.certificate)
    assert res["peer_certificate"]["fingerprint_sha256"] == crypto.fingerprint(leaf.certificate)
    assert {"expired": 10, "not-yet-valid": 9, "wrong-ca": 20}[case] == code


def test_check_hostname_reads_the_subject_alt_name_only(tmp_path):
    """As documented: with check_hostname the name must be in the subjectAltName; a certificate that
    carries it only as its CN (no subjectAltName) is refused, one with a DNS subjectAltName accepted.
    dcmtk does not check names at all (echoscu connects to both)."""
    pki = TestPKI(tmp_path / "pki")
    cn_only = pki._issue("localhost", pki.inter, sans=[], file_stem="cn-only")
    with_san = pki._issue("node", pki.inter, sans=["DNS:localhost"], file_stem="with-san")
    outcomes = {}
    for name, leaf in (("cn_only", cn_only), ("with_san", with_san)):
        with StoreSCP(["+tls", leaf.key, leaf.chain, "-ic"], str(tmp_path / name)) as scp:
            target = {"host": "127.0.0.1", "port": scp.port, "ca_file": pki.root.cert, "timeout": 5,
                      "called_ae_title": scp.aet, "server_name": "localhost", "check_hostname": True}  # fmt: skip
            outcomes[name] = te.check(te.normalize_target(target))
    assert outcomes["with_san"]["status"] == "success", outcomes["with_san"]["reason"]
    assert outcomes["cn_only"]["status"] == "server_certificate_rejected", outcomes["cn_only"]
    assert "does not match 'localhost' (check_hostname)" in outcomes["cn_only"]["reason"]


def _tampered(pki: TestPKI, issued, stem: str) -> str:
    """A copy of ``issued``'s certificate with one bit of its signature flipped (same names and keys)."""
    der = bytearray(issued.certificate.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    return pki._write(stem + ".pem", _pem(bytes(der)))


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def _crl(issuer, revoked=()) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(NOW - DAY)
        .next_update(NOW + 7 * DAY)
    )
    for cert in revoked:
        entry = (
            x509.RevokedCertificateBuilder().serial_number(cert.certificate.serial_number).revocation_date(NOW - DAY)
        )
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(issuer.private_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def cat(*paths: str) -> bytes:
    return b"".join(open(p, "rb").read() for p in paths)


def _served(pki: TestPKI, case: str):
    """(served chain PEM path, key, untrusted PEMs for openssl verify, leaf path, crl files,
    crl_check, openssl flags) for a chain that fails with verify error 7, 18, 19 or 23."""
    inter, write = pki.inter, pki._write
    leaf = pki._issue("depth-" + case, inter)
    crls, check, flags = [], "none", []
    if case == "leaf-signature":  # 7 at depth 0
        served = write(case + ".served.pem", cat(_tampered(pki, leaf, case + "-leaf"), inter.cert))
    elif case == "intermediate-signature":  # 7 at depth 1: the leaf is fine, its issuer's copy is damaged
        served = write(case + ".served.pem", cat(leaf.cert, _tampered(pki, inter, case + "-inter")))
    elif case == "self-signed-server":  # 18 at depth 0
        leaf = pki._issue("depth-self-signed", None, sans=["DNS:localhost"])
        served = leaf.cert
    elif case in ("foreign-root-sent", "foreign-root-sent-directly"):  # 19 at depth 2 / 1
        other = TestPKI(pki.dir + "-" + case, prefix="Other")
        issuer = other.inter if case == "foreign-root-sent" else other.root
        leaf = other._issue("depth-" + case, issuer)
        chain = [leaf.cert] + ([other.inter.cert] if issuer is other.inter else []) + [other.root.cert]
        served = write(case + ".served.pem", cat(*chain))
    else:  # 23: the leaf (crl_check leaf) or the intermediate (crl_check chain) is revoked
        revoked = leaf if case == "revoked-leaf" else inter
        crls = [
            write(case + ".inter.crl", _crl(inter, [leaf] if revoked is leaf else [])),
            write(case + ".root.crl", _crl(pki.root, [inter] if revoked is inter else [])),
        ]
        check, flags = ("leaf", ["-crl_check"]) if revoked is leaf else ("chain", ["-crl_check_all"])
        flags += [arg for crl in crls for arg in ("-CRLfile", crl)]
        served = write(case + ".served.pem", cat(leaf.cert, inter.cert))
    return served, leaf.key, served, crls, check, flags


@pytest.mark.parametrize(
    ("case", "code", "depth", "words"),
    [
        ("leaf-signature", 7, 0, "has a signature that does not verify with the key of its issuer %s"),
        ("intermediate-signature", 7, 1, "has a signature that does not verify with the key of its issuer %s"),
        ("self-signed-server", 18, 0, "is self-signed and not among the trusted certificates"),
        ("foreign-root-sent", 19, 2, "is self-signed and not among the trusted certificates"),
        ("foreign-root-sent-directly", 19, 1, "is self-signed and not among the trusted certificates"),
        ("revoked-leaf", 23, 0, "is revoked (serial %s, on %s) by the CRL of %s"),
        ("revoked-intermediate", 23, 1, "is revoked (serial %s, on %s) by the CRL of %s"),
    ],
)
def test_signature_self_signed_and_revoked_at_their_depth(tmp_path, case, code, depth, words):
    """Verify errors 7, 18, 19 and 23: `openssl verify` (with the served chain as -untrusted, the CRLs
    and -crl_check / -crl_check_all as the echo's crl_check) gives the code, the depth and the
    certificate; the reason names that certificate and what is wrong with it."""
    pki = TestPKI(tmp_path / "pki")
    served, key, untrusted, crls, crl_check, flags = _served(pki, case)
    leaf_only = pki._write(case + ".leaf-only.pem", open(served, "rb").read().split(b"-----END CERTIFICATE-----")[0]
                           + b"-----END CERTIFICATE-----\n")  # fmt: skip
    argv = ["openssl", "verify", "-nameopt", "compat", "-CAfile", pki.root.cert, *flags, "-untrusted", untrusted]
    out = subprocess.run([*argv, leaf_only], capture_output=True, text=True, check=False)
    text = out.stdout + out.stderr
    subject, got_code, got_depth = re.search(r"^(.*)\nerror (\d+) at (\d+) depth lookup", text, re.M).groups()
    assert (int(got_code), int(got_depth)) == (code, depth), text
    subject = "/" + "/".join(subject.split(", "))
    chain = crypto.load_certificates(open(served, "rb").read(), served) + [pki.root.certificate]
    at = next(c for c in chain if crypto.subject_text(c) == subject)
    with StoreSCP(["+tls", key, served, "-ic"], str(tmp_path)) as scp:
        target = {"host": "127.0.0.1", "port": scp.port, "ca_file": pki.root.cert, "timeout": 5,
                  "called_ae_title": scp.aet, "crl_check": crl_check, "crl_files": crls}  # fmt: skip
        res = te.check(te.normalize_target(target))
    assert res["status"] == "server_certificate_rejected", res
    reason = res["reason"]
    assert "%s (depth %d)" % (subject, depth) in reason, reason
    if code == 7:
        words %= crypto.subject_text(next(c for c in chain if crypto.subject_text(c) == crypto.issuer_text(at)))
    elif code == 23:
        words %= (crypto.serial_hex(at.serial_number), crypto.isoformat(NOW - DAY), crypto.issuer_text(at))
    assert words in reason, reason
