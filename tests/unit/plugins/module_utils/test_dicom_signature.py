"""dicom_stream / dicom_signature / dicom_trust / dicom_sign_files without Ansible: parsing stored
bytes, the MAC stream encoding, length bookkeeping of edits, sign -> verify round trips, removal
leaving other signatures byte-identical, idempotency, and clear errors on bad input."""

from __future__ import annotations

import hashlib
import os

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import dicom_stream as ds_mod
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_sign_files import Runner, opened
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_signature import (
    SignRequest,
    plan_sign,
    read_signatures,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_trust import Signer, SignerChainVerifier
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from support.dicom_files import ct_dataset, save, write_ct, write_jpeg_ct
from support.pki import TestPKI

ITEM = "ReferencedSeriesSequence[0].ReferencedImageSequence[1]"


@pytest.fixture(scope="module")
def keys(pki, tmp_path_factory):
    ec = TestPKI(tmp_path_factory.mktemp("ec"), key_type="ecdsa", prefix="UEC")
    return {"rsa": pki.node("unit-signer"), "ecdsa": ec.node("unit-ec"), "ec_pki": ec, "pki": pki}


def sign(path, who, **kw):
    params = dict(state="signed", path=[str(path)], privatekey_path=who.key, certificate_path=who.cert)
    params.update(kw)
    return Runner(params).run()


def verify(path, pki, **kw):
    params = dict(state="verified", path=[str(path)], ca_file=pki.root.cert, untrusted_certs=[pki.inter.cert])
    params.update(kw)
    return Runner(params).run()


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize(
    "text,tag",
    [("PatientName", 0x00100010), ("(0010,0020)", 0x00100020), ("7fe0,0010", 0x7FE00010), (0x00080018, 0x00080018)],
)
def test_parse_tag(text, tag):
    assert ds_mod.parse_tag(text) == tag


@pytest.mark.parametrize("text", ["NoSuchKeyword", "(0010,zz20)", "(10000,0010)"])
def test_parse_tag_rejects(text):
    with pytest.raises(DicomTlsError):
        ds_mod.parse_tag(text)


def test_stream_encoding_of_elements_and_sequences():
    body = (
        ds_mod.encode_element(0x00100010, "PN", b"Doe^J", False)  # odd: padded with a space
        + ds_mod.encode_element(0x00080018, "UI", b"1.2.3", False)  # odd: padded with NUL
        + ds_mod.encode_sequence(0x00081115, [ds_mod.encode_element(0x00100020, "LO", b"ID", False)], False)
        + ds_mod.encode_element(0x00091010, "UN", b"abcd", False)
    )
    p = ds_mod._Parser(body, "mem", False)
    elements = p.dataset(0, len(body), False, False)[0]
    assert [ds_mod.unsignable_reason(e) is None for e in elements] == [True, True, True, False]
    out = []
    ds_mod.stream_dataset(out.append, body, elements, {e.tag for e in elements[:3]})
    stream = b"".join(bytes(x) for x in out)
    assert stream == (
        b"\x08\x00\x18\x00UI\x06\x001.2.3\x00"
        b"\x08\x00\x15\x11SQ\x00\x00" + b"\xfe\xff\x00\xe0" + b"\x10\x00\x20\x00LO\x02\x00ID" + b"\xfe\xff\xdd\xe0"
        b"\x10\x00\x10\x00PN\x06\x00Doe^J "
    )


def test_round_trip_rsa_ecdsa_implicit_jpeg_item(keys, tmp_path):
    pki, ec_pki = keys["pki"], keys["ec_pki"]
    files = {
        "explicit": write_ct(str(tmp_path / "e.dcm")),
        "implicit": write_ct(str(tmp_path / "i.dcm"), implicit=True),
        "jpeg": write_jpeg_ct(str(tmp_path / "j.dcm")),
    }
    for path in files.values():
        assert sign(path, keys["rsa"], mac_algorithm="ripemd160")["totals"]["signed"] == 1
        assert sign(path, keys["rsa"], item=ITEM, purpose=13)["totals"]["signed"] == 1
        res = verify(path, pki)
        assert res["totals"]["verified"] == 1, res
        sigs = res["files"][0]["signatures"]
        assert [s["location"] for s in sigs] == ["", ITEM]
        assert sigs[1]["purpose"] == "13"
    ec_file = write_ct(str(tmp_path / "ec.dcm"))
    sign(ec_file, keys["ecdsa"], mac_algorithm="sha512")
    assert verify(ec_file, ec_pki)["totals"]["verified"] == 1


def test_second_sign_is_unchanged_and_other_signer_adds(keys, tmp_path):
    path = write_ct(str(tmp_path / "a.dcm"))
    sign(path, keys["rsa"])
    digest = sha(path)
    again = sign(path, keys["rsa"])
    assert again["changed"] is False and again["totals"]["unchanged"] == 1
    assert sha(path) == digest
    # a different algorithm, tag set or purpose is a different signature
    assert sign(path, keys["rsa"], mac_algorithm="sha384")["changed"] is True
    assert sign(path, keys["rsa"], tags=["PatientID"])["changed"] is True
    assert sign(path, keys["rsa"], tags=["PatientID"])["changed"] is False
    assert len(verify(path, keys["pki"])["files"][0]["signatures"]) == 3


def test_check_mode_plans_without_writing(keys, tmp_path):
    path = write_ct(str(tmp_path / "a.dcm"))
    digest = sha(path)
    res = Runner(
        dict(state="signed", path=[path], privatekey_path=keys["rsa"].key, certificate_path=keys["rsa"].cert),
        check_mode=True,
    ).run()
    assert res["changed"] is True and res["files"][0]["action"] == "signed"
    assert sha(path) == digest and os.listdir(tmp_path) == ["a.dcm"]


def test_tampering_names_signature_and_says_content_changed(keys, tmp_path):
    path = write_ct(str(tmp_path / "a.dcm"), seed=5)
    uid = sign(path, keys["rsa"])["files"][0]["signatures"][0]["uid"]
    data = open(path, "rb").read()
    open(path, "wb").write(data.replace(b"Test^Patient5", b"Test^Patient6"))
    res = verify(path, keys["pki"])
    assert res["totals"]["failed"] == 1
    reason = res["files"][0]["signatures"][0]["reason"]
    assert uid in reason and "content changed" in reason


def test_untrusted_and_crl(keys, tmp_path, tmp_path_factory):
    other = TestPKI(tmp_path_factory.mktemp("other"), prefix="UOther")
    path = write_ct(str(tmp_path / "a.dcm"))
    sign(path, other.node("outsider"))
    reason = verify(path, keys["pki"])["files"][0]["signatures"][0]["reason"]
    assert "not trusted" in reason and "untrusted" in reason
    # with CRLs given, a chain without a CRL from its issuer fails
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    now = datetime.datetime.now(datetime.UTC)
    signer = keys["pki"].node("revoked-signer")
    path2 = write_ct(str(tmp_path / "b.dcm"))
    sign(path2, signer)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(keys["pki"].inter.certificate.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(signer.certificate.serial_number)
            .revocation_date(now)
            .build()
        )
        .sign(keys["pki"].inter.private_key, hashes.SHA256())
    )
    crl_path = tmp_path / "inter.crl"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    res = verify(path2, keys["pki"], crl_files=[str(crl_path)])
    assert "revoked" in res["files"][0]["signatures"][0]["reason"]


def test_remove_one_leaves_the_others_byte_identical(keys, tmp_path):
    path = write_ct(str(tmp_path / "a.dcm"))
    first = sign(path, keys["rsa"])["files"][0]["signatures"][0]["uid"]
    sign(path, keys["rsa"], mac_algorithm="sha512")
    sign(path, keys["rsa"], item=ITEM)
    with opened(path) as f:
        before = [bytes(f.buf[i.hdr : i.end]) for i in _sig_items(f)]
    res = Runner(dict(state="unsigned", path=[path], signature_uid=first)).run()
    assert res["totals"]["removed"] == 1
    with opened(path) as f:
        after = [bytes(f.buf[i.hdr : i.end]) for i in _sig_items(f)]
        assert all(r.valid for r in read_signatures(f))
    assert after == before[1:]
    assert verify(path, keys["pki"])["totals"]["verified"] == 1


def _sig_items(f):
    from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_signature import iter_datasets

    out = []
    for elements, _path in iter_datasets(f.dataset):
        for e in elements:
            if e.tag == ds_mod.DIGITAL_SIGNATURES_SEQ:
                out += e.items
    return out


def test_defined_length_items_get_new_lengths(keys, tmp_path):
    """Build a file whose sequences and items have defined lengths; an item signature must
    update both (the parser re-reads it and every signature still verifies)."""
    ds = ct_dataset(with_sequences=False)
    path = save(ds, str(tmp_path / "d.dcm"))
    inner = ds_mod.encode_element(0x00081150, "UI", b"1.2.840.10008.5.1.4.1.1.2", False)
    seq = ds_mod.encode_sequence(0x00081140, [inner, inner], False)
    outer = ds_mod.encode_sequence(0x00081115, [seq], False)
    with opened(path) as f:
        pos = ds_mod.insertion_point(f.dataset, 0x00081115, f.size)
        data = bytes(f.buf)
    open(path, "wb").write(data[:pos] + outer + data[pos:])
    sign(path, keys["rsa"])
    sign(path, keys["rsa"], item=ITEM)
    with opened(path) as f:
        sigs = read_signatures(f)
        assert [s.valid for s in sigs] == [True, True]
        refs = [e for e in f.dataset if e.tag == 0x00081115][0]
        assert refs.length is not None and refs.items[0].length is not None


def test_bad_inputs(keys, tmp_path):
    rsa = keys["rsa"]
    text = tmp_path / "t.dcm"
    text.write_text("hello\n" * 40)
    with pytest.raises(DicomTlsError, match="not a DICOM file"):
        sign(text, rsa)
    good = write_ct(str(tmp_path / "g.dcm"))
    untouched = sha(good)
    with pytest.raises(DicomTlsError, match="does not exist"):
        sign(good, rsa, item="ReferencedSeriesSequence[3]")
    with pytest.raises(DicomTlsError, match="does not exist"):
        sign(good, rsa, item="ContentSequence[0]")
    with pytest.raises(DicomTlsError, match="group length"):
        sign(good, rsa, tags=["(0010,0000)"])
    with pytest.raises(DicomTlsError, match="does not match"):
        sign(good, rsa, privatekey_path=keys["ecdsa"].key)
    with pytest.raises(DicomTlsError, match="RSA"):
        sign(good, keys["ecdsa"], signature_profile="creator")
    with pytest.raises(DicomTlsError, match="main dataset"):
        sign(good, rsa, signature_profile="creator", item=ITEM)
    with pytest.raises(DicomTlsError, match="ValueType|(0040,A040)"):
        sign(good, rsa, signature_profile="sr")
    ds = ct_dataset()
    ds.private_block(0x0009, "unit", create=True).add_new(0x10, "UN", b"ab")
    un = save(ds, str(tmp_path / "un.dcm"))
    with pytest.raises(DicomTlsError, match="UN"):
        sign(un, rsa, tags=["(0009,1010)"])
    assert sha(good) == untouched
    # signing everything silently leaves the UN element out
    sign(un, rsa)
    with opened(un) as f:
        (rec,) = read_signatures(f)
        assert 0x00091010 not in rec.tags and 0x00100010 in rec.tags


def test_every_truncation_is_a_clear_error_or_a_valid_prefix(tmp_path):
    path = write_ct(str(tmp_path / "a.dcm"), rows=4, columns=4)
    data = open(path, "rb").read()
    for cut in range(0, len(data), 7):
        try:
            ds_mod.parse(data[:cut], "cut")
        except DicomTlsError as exc:
            assert "cut" in str(exc)


def test_profile_creator_signature_meets_profile_and_subset_does_not(keys, tmp_path):
    from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_signature import meets_profile

    a = write_ct(str(tmp_path / "a.dcm"))
    sign(a, keys["rsa"], signature_profile="creator", tags=["PatientName"])
    b = write_ct(str(tmp_path / "b.dcm"))
    sign(b, keys["rsa"], tags=["PatientName", "SOPInstanceUID"])
    trust = SignerChainVerifier(keys["pki"].root.cert, None, [keys["pki"].inter.cert])
    with opened(a) as f:
        (rec,) = read_signatures(f, trust)
        assert rec.valid and meets_profile(rec, "creator") and 0x7FE00010 in rec.tags
    with opened(b) as f:
        (rec,) = read_signatures(f, trust)
        assert rec.valid and not meets_profile(rec, "creator")
    res = verify(b, keys["pki"], require=["creator"])
    assert res["totals"]["failed"] == 1


def test_plan_sign_uses_smallest_free_mac_id(keys, tmp_path):
    path = write_ct(str(tmp_path / "a.dcm"))
    sign(path, keys["rsa"])
    sign(path, keys["rsa"], mac_algorithm="sha512")
    signer = Signer(keys["rsa"].key, None, keys["rsa"].cert)
    with opened(path) as f:
        existing, edits, new = plan_sign(f, SignRequest(signer, "sha384"))
        assert existing is None and new["mac_id"] == 2 and edits
