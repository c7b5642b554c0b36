"""dicom_sign against dcmtk's dcmsign 3.6.7, both ways: what the module signs passes
``dcmsign --verify``, what ``dcmsign +s`` signs verifies with the module, the MAC byte streams
are identical to ``dcmsign --dump``, tampering and untrusted signers fail in both, and bad input
is refused with the files left untouched."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pydicom
import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_sign_files import opened
from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_signature import (
    read_signatures,
    signature_stream,
)
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from support.ansible_run import run_module, run_tasks
from support.dicom_files import ct_dataset, save, write_ct, write_jpeg_ct
from support.pki import TestPKI
from support.servers import dcmtk

DCMSIGN = dcmtk("dcmsign")
ITEM = "ReferencedSeriesSequence[0].ReferencedImageSequence[1]"


@pytest.fixture(scope="session")
def signers(pki, tmp_path_factory):
    d = tmp_path_factory.mktemp("signers")
    ec_pki = TestPKI(d / "ec", key_type="ecdsa", prefix="EC")
    stranger = TestPKI(d / "stranger", prefix="Stranger")
    return {
        "rsa": pki.node("dicom-signer"),
        "rsa2": pki.node("dicom-signer-2"),
        "ecdsa": ec_pki.node("dicom-ec-signer"),
        "ec_pki": ec_pki,
        "stranger": stranger.node("stranger-signer"),
        "pki": pki,
    }


def dcmsign(*args):
    return subprocess.run([DCMSIGN, *map(str, args)], capture_output=True, text=True, timeout=60, check=False)


def dcmsign_verify(path, pki, *extra):
    return dcmsign("--verify", "+cf", pki.root.cert, "+uf", pki.inter.cert, *extra, path)


def digest(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def sign_args(signer, path, **kw):
    args = {"path": [str(path)], "privatekey_path": signer.key, "certificate_path": signer.cert}
    args.update(kw)
    return args


def test_module_signatures_pass_dcmsign_and_second_run_changes_nothing(signers, tmp_path):
    rsa, rsa2, ecdsa = signers["rsa"], signers["rsa2"], signers["ecdsa"]
    files = {}
    for name in ("sha256", "sha512", "ripemd160", "ecdsa", "subset", "item", "purpose", "creator"):
        files[name] = write_ct(str(tmp_path / (name + ".dcm")), seed=len(files) + 1)
    files["implicit"] = write_ct(str(tmp_path / "implicit.dcm"), seed=20, implicit=True)
    files["jpeg"] = write_jpeg_ct(str(tmp_path / "jpeg.dcm"), seed=21)
    files["second"] = write_ct(str(tmp_path / "second.dcm"), seed=22)
    by_dcmsign = dcmsign("+s", rsa.key, rsa.cert, files["second"], files["second"])
    assert by_dcmsign.returncode == 0, by_dcmsign.stderr
    mod = "medimg.dicom_tls.dicom_sign"
    tasks = [
        {"name": "sha256", mod: sign_args(rsa, files["sha256"])},
        {"name": "sha512", mod: sign_args(rsa, files["sha512"], mac_algorithm="sha512")},
        {"name": "ripemd160", mod: sign_args(rsa, files["ripemd160"], mac_algorithm="ripemd160")},
        {"name": "ecdsa", mod: sign_args(ecdsa, files["ecdsa"])},
        {"name": "subset", mod: sign_args(rsa, files["subset"], tags=["PatientName", "(0010,0020)", "PixelData"])},
        {"name": "item", mod: sign_args(rsa, files["item"], item=ITEM)},
        {"name": "purpose", mod: sign_args(rsa, files["purpose"], purpose=1)},
        {"name": "creator", mod: sign_args(rsa, files["creator"], signature_profile="creator")},
        {"name": "implicit", mod: sign_args(rsa, files["implicit"])},
        {"name": "jpeg", mod: sign_args(rsa, files["jpeg"], mac_algorithm="sha384")},
        {"name": "second", mod: sign_args(rsa2, files["second"])},
    ]
    first = run_tasks(tasks)
    results = {r["_task"]: r for r in first.results()}
    assert first.rc == 0, first.output[-3000:]
    for name, res in results.items():
        assert res["changed"] is True, name
        assert res["totals"]["signed"] == 1, name
        assert res["files"][0]["signatures"][0]["valid"] is True
    assert results["item"]["files"][0]["signatures"][0]["location"] == ITEM

    ec_pki = signers["ec_pki"]
    for name, path in files.items():
        proc = dcmsign_verify(path, ec_pki if name == "ecdsa" else signers["pki"])
        assert proc.returncode == 0, (name, proc.stdout, proc.stderr)
        expected = 2 if name == "second" else 1
        assert (proc.stdout + proc.stderr).count("Verification : OK") == expected, (name, proc.stderr)
    creator = dcmsign_verify(files["creator"], signers["pki"], "--require-creator")
    assert creator.returncode == 0, creator.stderr
    # the plain sha256 signature signs every attribute too; a tag subset does not meet the profile
    subset = dcmsign_verify(files["subset"], signers["pki"], "--require-creator")
    assert subset.returncode == 102, subset.stderr
    code = pydicom.dcmread(files["purpose"]).DigitalSignaturesSequence[0].DigitalSignaturePurposeCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("1", "ASTM-sigpurpose")

    before = {name: digest(path) for name, path in files.items()}
    second = run_tasks(tasks)
    assert second.rc == 0, second.output[-3000:]
    for res in second.results():
        assert res["changed"] is False, res["_task"]
        assert res["totals"]["unchanged"] == 1
    assert before == {name: digest(path) for name, path in files.items()}


def test_dcmsign_signed_files_verify_with_module(signers, tmp_path):
    rsa, ecdsa, pki = signers["rsa"], signers["ecdsa"], signers["pki"]
    made = []
    for name, args in (
        ("default.dcm", ["+s", rsa.key, rsa.cert]),
        ("sha256.dcm", ["+s", rsa.key, rsa.cert, "+m2"]),
        ("item.dcm", ["+si", rsa.key, rsa.cert, ITEM]),
        ("purpose.dcm", ["+s", rsa.key, rsa.cert, "+sp", "5", "-t", "PatientName", "-t", "0020,000d"]),
        ("ecdsa.dcm", ["+s", ecdsa.key, ecdsa.cert, "+m5"]),
    ):
        path = write_ct(str(tmp_path / name), seed=len(made) + 1)
        proc = dcmsign(*args, path, path)
        assert proc.returncode == 0, proc.stderr
        made.append(path)
    jpeg = write_jpeg_ct(str(tmp_path / "old-format.dcm"))
    proc = dcmsign("+s", rsa.key, rsa.cert, "--format-old", jpeg, jpeg)
    assert proc.returncode == 0, proc.stderr
    made.append(jpeg)
    ca = tmp_path / "trusted.pem"
    ca.write_bytes(open(pki.root.cert, "rb").read() + open(signers["ec_pki"].root.cert, "rb").read())
    untrusted = [pki.inter.cert, signers["ec_pki"].inter.cert]
    res = run_module(
        "dicom_sign", {"path": made, "state": "verified", "ca_file": str(ca), "untrusted_certs": untrusted}
    )
    assert res["_rc"] == 0 and not res.get("failed"), res.get("msg")
    assert res["changed"] is False
    assert res["totals"]["verified"] == len(made)
    sigs = {os.path.basename(f["path"]): f["signatures"][0] for f in res["files"]}
    assert sigs["default.dcm"]["mac_algorithm"] == "ripemd160"
    assert sigs["sha256.dcm"]["mac_algorithm"] == "sha256"
    assert sigs["item.dcm"]["location"] == ITEM
    assert sigs["purpose.dcm"]["purpose"] == "5"
    assert sigs["ecdsa.dcm"]["mac_algorithm"] == "sha512"
    assert sigs["old-format.dcm"]["format"] == "old"
    assert all(s["valid"] and "/CN=dicom" in s["signer"] for s in sigs.values())

    # without the old-format retry the --format-old signature fails (and says why)
    res = run_module("dicom_sign", {"path": [jpeg], "state": "verified", "ca_file": str(ca), "retry_old_format": False})
    assert res.get("failed") and "content changed" in res["files"][0]["reason"]


@pytest.mark.parametrize(
    "name,args",
    [
        ("explicit", []),
        ("implicit", []),
        ("jpeg", []),
        ("jpeg", ["--format-old"]),
        ("explicit", ["+sp", "5", "-t", "PatientName", "-t", "0010,0020", "+m3"]),
    ],
)
def test_byte_stream_matches_dcmsign_dump(signers, tmp_path, name, args):
    rsa = signers["rsa"]
    src = str(tmp_path / "in.dcm")
    if name == "jpeg":
        write_jpeg_ct(src)
    else:
        write_ct(src, implicit=name == "implicit")
    out, dump = str(tmp_path / "out.dcm"), str(tmp_path / "dump.bin")
    proc = dcmsign("+s", rsa.key, rsa.cert, *args, "--dump", dump, src, out)
    assert proc.returncode == 0, proc.stderr
    with opened(out) as f:
        (rec,) = read_signatures(f)
        mine = signature_stream(f, rec.uid, old_format="--format-old" in args)
    with open(dump, "rb") as fh:
        assert mine == fh.read()


def test_item_signature_stream_matches_dcmsign_dump(signers, tmp_path):
    rsa = signers["rsa"]
    src, out, dump = (str(tmp_path / n) for n in ("in.dcm", "out.dcm", "dump.bin"))
    write_ct(src)
    proc = dcmsign("+si", rsa.key, rsa.cert, ITEM, "--dump", dump, src, out)
    assert proc.returncode == 0, proc.stderr
    with opened(out) as f:
        (rec,) = read_signatures(f)
        assert rec.location == ITEM
        assert signature_stream(f, rec.uid) == open(dump, "rb").read()


def _tamper(path, old: bytes, new: bytes):
    data = open(path, "rb").read()
    assert data.count(old) == 1 and len(old) == len(new)
    open(path, "wb").write(data.replace(old, new))


def test_changed_attribute_and_untrusted_signer_fail_in_both(signers, tmp_path):
    pki = signers["pki"]
    changed = write_ct(str(tmp_path / "changed.dcm"), seed=3)
    stranger = write_ct(str(tmp_path / "stranger.dcm"), seed=4)
    mod = "medimg.dicom_tls.dicom_sign"
    res = run_tasks(
        [
            {"name": "ours", mod: sign_args(signers["rsa"], changed)},
            {"name": "theirs", mod: sign_args(signers["stranger"], stranger)},
        ]
    )
    assert res.rc == 0, res.output[-2000:]
    uid = res.results()[0]["files"][0]["signatures"][0]["uid"]
    _tamper(changed, b"Test^Patient3", b"Best^Patient3")
    assert dcmsign_verify(changed, pki).returncode == 101
    assert dcmsign_verify(stranger, pki).returncode == 101

    out = run_module(
        "dicom_sign",
        {
            "path": [changed, stranger],
            "state": "verified",
            "ca_file": pki.root.cert,
            "untrusted_certs": [pki.inter.cert],
        },
    )
    assert out.get("failed") and out["totals"]["failed"] == 2
    reasons = {os.path.basename(f["path"]): f["signatures"][0]["reason"] for f in out["files"]}
    assert uid in reasons["changed.dcm"] and "content changed" in reasons["changed.dcm"]
    assert "not trusted" in reasons["stranger.dcm"]
    assert "changed.dcm" in out["msg"]


def test_check_mode_writes_nothing_and_dest_leaves_source(signers, tmp_path):
    src = write_ct(str(tmp_path / "a.dcm"))
    before = digest(src)
    res = run_module("dicom_sign", sign_args(signers["rsa"], src), check=True, diff=True)
    assert res["changed"] is True and res["files"][0]["action"] == "signed"
    assert [(e["after_header"], e["after"]) for e in res["diff"]] == [(src, "signatures: signed (new)\n")]
    assert digest(src) == before
    assert os.listdir(tmp_path) == ["a.dcm"]

    dest = str(tmp_path / "signed.dcm")
    res = run_module("dicom_sign", sign_args(signers["rsa"], src, dest=dest))
    assert res["changed"] is True and res["files"][0]["dest"] == dest
    assert digest(src) == before
    assert dcmsign_verify(dest, signers["pki"]).returncode == 0
    again = run_module("dicom_sign", sign_args(signers["rsa"], src, dest=dest))
    assert again["changed"] is False


def test_unsigned_removes_one_then_all(signers, tmp_path):
    rsa = signers["rsa"]
    path = write_ct(str(tmp_path / "two.dcm"))
    assert dcmsign("+s", rsa.key, rsa.cert, path, path).returncode == 0
    assert dcmsign("+si", rsa.key, rsa.cert, ITEM, path, path).returncode == 0
    with opened(path) as f:
        uids = [r.uid for r in read_signatures(f)]
    main_uid = uids[0]
    res = run_module("dicom_sign", {"path": [path], "state": "unsigned", "signature_uid": main_uid})
    assert res["changed"] is True and res["files"][0]["signatures"][0]["uid"] == main_uid
    proc = dcmsign_verify(path, signers["pki"])
    assert proc.returncode == 0 and (proc.stdout + proc.stderr).count("Verification : OK") == 1
    res = run_module("dicom_sign", {"path": [path], "state": "unsigned"})
    assert res["changed"] is True
    proc = dcmsign_verify(path, signers["pki"], "+rg")
    assert proc.returncode == 100  # no signature left
    assert run_module("dicom_sign", {"path": [path], "state": "unsigned"})["changed"] is False


def _un_file(path):
    ds = ct_dataset()
    ds.private_block(0x0009, "medimg test", create=True).add_new(0x10, "UN", b"abcd")
    return save(ds, path, ExplicitVRLittleEndian)


@pytest.mark.parametrize(
    "case,expect",
    [
        ("not_dicom", "not a DICOM file"),
        ("truncated", "truncated"),
        ("key_mismatch", "does not match"),
        ("un_tag", "UN"),
        ("group_length", "group length"),
        ("missing_item", "does not exist"),
    ],
)
def test_bad_input_is_refused_and_nothing_changes(signers, tmp_path, case, expect):
    rsa = signers["rsa"]
    good = write_ct(str(tmp_path / "good.dcm"))
    target = str(tmp_path / "target.dcm")
    args = {}
    if case == "not_dicom":
        open(target, "w").write("just text\n" * 30)
    elif case == "truncated":
        write_ct(target)
        data = open(target, "rb").read()
        open(target, "wb").write(data[: len(data) - 100])
    elif case == "key_mismatch":
        write_ct(target)
        args = {"privatekey_path": signers["rsa2"].key}
    elif case == "un_tag":
        _un_file(target)
        args = {"tags": ["PatientName", "(0009,1010)"]}
    elif case == "group_length":
        write_ct(target)
        args = {"tags": ["(0010,0000)"]}
    else:
        write_ct(target)
        args = {"item": "ReferencedSeriesSequence[0].ReferencedImageSequence[5]"}
    before = {p: digest(p) for p in (good, target)}
    res = run_module("dicom_sign", sign_args(rsa, good, **args) | {"path": [good, target]})
    assert res.get("failed"), res
    assert expect in res["msg"]
    if case not in ("key_mismatch", "group_length"):
        assert "target.dcm" in res["msg"]
    assert before == {p: digest(p) for p in (good, target)}
    assert sorted(os.listdir(tmp_path)) == ["good.dcm", "target.dcm"]


def test_signing_a_directory_skips_other_files_and_verifies_with_require(signers, tmp_path):
    pki = signers["pki"]
    (tmp_path / "series" / "deep").mkdir(parents=True)
    for i in range(3):
        write_ct(str(tmp_path / "series" / ("%d.dcm" % i)), seed=i + 1)
    write_ct(str(tmp_path / "series" / "deep" / "x.dcm"), seed=9)
    (tmp_path / "series" / "README.txt").write_text("not dicom")
    res = run_module(
        "dicom_sign", sign_args(signers["rsa"], tmp_path / "series", recursive=True, signature_profile="creator")
    )
    assert res["totals"]["signed"] == 4 and res["totals"]["skipped"] == 1
    ok = run_module(
        "dicom_sign",
        {
            "path": [str(tmp_path / "series")],
            "recursive": True,
            "state": "verified",
            "ca_file": pki.root.cert,
            "untrusted_certs": [pki.inter.cert],
            "require": ["signature", "creator"],
        },
    )
    assert ok["_rc"] == 0 and ok["totals"]["verified"] == 4, ok.get("msg")
    shutil.copy(str(tmp_path / "series" / "0.dcm"), str(tmp_path / "plain.dcm"))
    unsigned = write_ct(str(tmp_path / "unsigned.dcm"))
    res = run_module(
        "dicom_sign",
        {"path": [unsigned], "state": "verified", "ca_file": pki.root.cert, "require": ["signature"]},
    )
    assert res.get("failed") and "no signature" in res["files"][0]["reason"]


def test_item_and_main_signatures_coexist_with_defined_and_undefined_lengths(signers, tmp_path):
    """An item signature changes the enclosing sequence and item lengths; a main signature made
    before it stays valid (signature sequences are never part of a MAC)."""
    rsa = signers["rsa"]
    ds = ct_dataset()
    ds.ContentSequence = [Dataset()]
    ds.ContentSequence[0].TextValue = "x"
    path = save(ds, str(tmp_path / "u.dcm"))
    res = run_tasks(
        [
            {"name": "main", "medimg.dicom_tls.dicom_sign": sign_args(rsa, path)},
            {"name": "item", "medimg.dicom_tls.dicom_sign": sign_args(rsa, path, item=ITEM, mac_algorithm="sha512")},
            {"name": "item0", "medimg.dicom_tls.dicom_sign": sign_args(rsa, path, item="ContentSequence[0]")},
        ]
    )
    assert res.rc == 0, res.output[-2000:]
    proc = dcmsign_verify(path, signers["pki"])
    assert proc.returncode == 0 and (proc.stdout + proc.stderr).count("Verification : OK") == 3, proc.stderr


def test_implicit_vr_private_creator_signed_alike_both_ways(signers, tmp_path):
    """In implicit VR, private creators are LO for dcmtk and for the module; other private
    elements are UN and left out. A file signed either way verifies with the other."""
    rsa, pki = signers["rsa"], signers["pki"]
    ds = ct_dataset()
    ds.private_block(0x0009, "medimg test", create=True).add_new(0x10, "LO", "hello")
    ours = save(ds, str(tmp_path / "ours.dcm"), ImplicitVRLittleEndian)
    theirs = save(ds, str(tmp_path / "theirs.dcm"), ImplicitVRLittleEndian)
    assert dcmsign("+s", rsa.key, rsa.cert, theirs, theirs).returncode == 0
    res = run_module("dicom_sign", sign_args(rsa, ours))
    assert res["changed"] is True
    assert dcmsign_verify(ours, pki).returncode == 0
    with opened(ours) as f:
        assert {0x00090010} == {t for t in read_signatures(f)[0].tags if t >> 16 == 9}
    out = run_module(
        "dicom_sign",
        {"path": [theirs], "state": "verified", "ca_file": pki.root.cert, "untrusted_certs": [pki.inter.cert]},
    )
    assert out["totals"]["verified"] == 1, out.get("msg")


def test_ecdsa_signatures_of_odd_length_are_padded_and_still_verify(signers, tmp_path):
    """About half of ECDSA P-256 DER signatures have an odd length and get a 0x00 pad byte;
    six signatures make one near certain (checked below), and dcmsign accepts them all."""
    ecdsa, ec_pki = signers["ecdsa"], signers["ec_pki"]
    path = write_ct(str(tmp_path / "ec.dcm"))
    mod = "medimg.dicom_tls.dicom_sign"
    res = run_tasks([{"name": "p%d" % p, mod: sign_args(ecdsa, path, purpose=p)} for p in range(1, 7)])
    assert res.rc == 0, res.output[-2000:]
    proc = dcmsign_verify(path, ec_pki)
    assert proc.returncode == 0 and (proc.stdout + proc.stderr).count("Verification : OK") == 6, proc.stderr
    ds = pydicom.dcmread(path)
    raw_lengths = [2 + s.Signature[1] for s in ds.DigitalSignaturesSequence]  # DER SEQUENCE, short length
    if any(n % 2 for n in raw_lengths):
        assert all(len(s.Signature) % 2 == 0 for s in ds.DigitalSignaturesSequence)
