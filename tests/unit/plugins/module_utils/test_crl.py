"""CRL library: when a new CRL is issued and why, CRL Number across runs, checks, openssl agreeing."""

from __future__ import annotations

import datetime
import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crl as crlib
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from cryptography import x509
from support.pki import TestPKI


def _issue(path, issuer, revoked, now=None, days=7, refresh=None, fmt="pem", digest="sha256"):
    desired = crlib.desired_revocations(revoked, issuer)
    existing = crlib.read_existing(path, issuer)
    plan = crlib.plan_crl(desired, existing, issuer, fmt, digest, days, refresh, now=now)
    if plan.changed:
        crlib.write_crl(path, crlib.build_crl(plan, issuer, digest), fmt)
    return plan


@pytest.fixture
def issuer(pki):
    return crlib.read_issuer(pki.inter.cert, pki.inter.key, None)


def test_lifecycle(pki, issuer, tmp_path):
    path = str(tmp_path / "inter.crl")
    node = pki.node("crl-node")
    revoked = [{"certificate_path": node.cert, "reason": "key_compromise"}]
    first = _issue(path, issuer, revoked)
    assert first.reason == "no CRL yet" and first.number == 1
    again = _issue(path, issuer, revoked)
    assert not again.changed and again.number == 1
    more = _issue(path, issuer, revoked + [{"serial": "0A:0B", "reason": "superseded"}])
    assert more.number == 2 and "revoked set changed: revoked 0A0B" in more.reason
    # the first entry keeps its revocation date across reissues
    crl = x509.load_pem_x509_crl(open(path, "rb").read())
    assert (
        crl.get_revoked_certificate_by_serial_number(node.certificate.serial_number).revocation_date_utc
        == (first.revocations[0][2])
    )
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    ski = pki.inter.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki == ski
    less = _issue(path, issuer, [{"serial": "0A0B", "reason": "superseded"}])
    assert less.number == 3 and "no longer revoked" in less.reason
    # openssl agrees with the signature and the chain
    proc = subprocess.run(
        ["openssl", "crl", "-in", path, "-noout", "-CAfile", pki.inter.cert],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "verify OK" in proc.stdout + proc.stderr


def test_refresh_window_and_expiry(issuer, tmp_path):
    path = str(tmp_path / "r.crl")
    now = crlib.utcnow()
    _issue(path, issuer, [], now=now, days=4)
    assert not _issue(path, issuer, [], now=now + datetime.timedelta(hours=47), days=4).changed
    refreshed = _issue(path, issuer, [], now=now + datetime.timedelta(hours=49), days=4)
    assert refreshed.reason.startswith("refresh window reached") and refreshed.number == 2
    later = now + datetime.timedelta(hours=49)
    assert not _issue(path, issuer, [], now=later + datetime.timedelta(hours=1), days=4, refresh=2).changed
    assert _issue(path, issuer, [], now=later + datetime.timedelta(days=5), days=4).reason == "existing CRL expired"


def test_issuer_changed(issuer, tmp_path):
    path = str(tmp_path / "i.crl")
    _issue(path, issuer, [])
    twin = TestPKI(tmp_path / "twin")  # same name, other key
    other = crlib.read_issuer(twin.inter.cert, twin.inter.key, None)
    plan = _issue(path, other, [])
    assert plan.reason.startswith("issuer changed") and plan.number == 2


def test_format_change_reissues(issuer, tmp_path):
    path = str(tmp_path / "f.crl")
    _issue(path, issuer, [])
    assert _issue(path, issuer, [], fmt="der").reason == "format changed to der"
    assert not _issue(path, issuer, [], fmt="der").changed


def test_bad_inputs(pki, issuer, tmp_path):
    with pytest.raises(DicomTlsError, match="does not match") as err:
        crlib.read_issuer(pki.inter.cert, pki.root.key, None)
    assert err.value.path == pki.root.key
    leaf = pki.node("not-a-ca")
    with pytest.raises(DicomTlsError, match="not a CA"):
        crlib.read_issuer(leaf.cert, leaf.key, None)
    with pytest.raises(DicomTlsError, match="not by the CRL issuer"):
        crlib.desired_revocations([{"certificate_path": pki.inter.cert}], issuer)  # issued by the root
    with pytest.raises(DicomTlsError, match="not hex"):
        crlib.desired_revocations([{"serial": "xyz"}], issuer)
    with pytest.raises(DicomTlsError, match="listed twice"):
        crlib.desired_revocations([{"serial": 10}, {"serial": "0A"}], issuer)
    with pytest.raises(DicomTlsError, match="ISO 8601"):
        crlib.desired_revocations([{"serial": 1, "revocation_date": "yesterday"}], issuer)
    not_crl = tmp_path / "x.crl"
    not_crl.write_text("precious")
    with pytest.raises(DicomTlsError, match="refusing to overwrite"):
        crlib.read_existing(str(not_crl), issuer)


def test_serial_forms():
    assert crlib.parse_serial(10, "s") == 10
    assert crlib.parse_serial("0x0a", "s") == 10
    assert crlib.parse_serial("0A:FF", "s") == 0x0AFF
    assert crlib.serial_hex(0xAFF) == "0AFF"
