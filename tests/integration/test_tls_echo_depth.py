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
from support.pki import TestPKI
from support.servers import StoreSCP

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
