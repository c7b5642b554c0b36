"""Trust store library: input checks with clear messages, directory planning, and the update order
that keeps every sequence gap-free for a reader at every step."""

from __future__ import annotations

import datetime
import os

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crl as crlib
from ansible_collections.medimg.dicom_tls.plugins.module_utils import truststore as ts
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st
from support.pki import NOW, TestPKI

# ---------------------------------------------------------------------------------------------
# The update order, simulated step by step as a reader probing .0, .1, ... would see it.


def _obj(i: int, h: str, kind: str = "cert") -> ts.TrustObject:
    der = b"\x30\x03\x02\x01" + bytes([i])
    return ts.TrustObject(kind, der, "x", "CN=%d" % i, h, ts.fingerprint_der(der))


def _visible(state: dict, h: str, r: str) -> list[bytes]:
    out, n = [], 0
    while "%s.%s%d" % (h, r, n) in state:
        out.append(state["%s.%s%d" % (h, r, n)])
        n += 1
    return out


POOL = {i: _obj(i, "0000000%d" % (i % 2)) for i in range(8)}


@settings(max_examples=300, deadline=None)
@given(
    old=st.lists(st.sampled_from(sorted(POOL)), unique=True, max_size=6),
    new=st.lists(st.sampled_from(sorted(POOL)), unique=True, max_size=6),
    holes=st.lists(st.integers(0, 5), max_size=2),
)
def test_every_step_keeps_sequences_gap_free_and_kept_objects_visible(old, new, holes):
    old_objs = [POOL[i] for i in old]
    state = {name: obj.pem() for name, obj in ts.desired_entries(old_objs).items()}
    for n in holes:  # a previous tool may have left gaps
        state.pop("00000000.%d" % n, None)
    current = ts.Current(True, {name: (data, True) for name, data in state.items()})
    plan = ts.plan_hashed_dir("/nonexistent", [POOL[i] for i in new], current)
    want = {name: obj.pem() for name, obj in plan.desired.items()}
    seqs = {("00000000", ""), ("00000001", "")}
    before = {s: set(_visible(state, *s)) for s in seqs}
    for action, name, data in plan.steps:
        if action == "write":
            state[name] = data
        else:
            del state[name]
        for s in seqs:
            kept = before[s] & set(want.values())
            assert kept <= set(_visible(state, *s)), (action, name)
    assert state == want
    after = ts.Current(True, {k: (v, True) for k, v in state.items()})
    again = ts.plan_hashed_dir("/nonexistent", [POOL[i] for i in new], after)
    assert not again.changed


def test_removing_from_the_middle_renumbers():
    a, b, c = (_obj(i, "0000000a") for i in range(3))
    current = ts.Current(True, {n: (o.pem(), True) for n, o in ts.desired_entries([a, b, c]).items()})
    plan = ts.plan_hashed_dir("/x", [a, c], current)
    assert plan.removed == ["0000000a.1"]  # where the removed object was
    assert plan.renumbered == ["0000000a.2 -> 0000000a.1"]
    assert plan.added == []


def test_symlink_and_wrong_mode_entries_are_rewritten(tmp_path, pki):
    d = tmp_path / "d"
    d.mkdir()
    loaded = ts.load_objects([pki.root.cert])
    entry = list(ts.desired_entries(loaded.objects))[0]
    os.symlink(pki.root.cert, d / entry)
    plan = ts.plan_hashed_dir(str(d), loaded.objects, ts.read_hashed_dir(str(d), ts.FileMeta()))
    assert plan.changed and plan.rewritten == [entry]
    ts.apply_hashed_dir(plan, ts.FileMeta())
    assert not os.path.islink(d / entry)
    os.chmod(d / entry, 0o600)
    plan = ts.plan_hashed_dir(str(d), loaded.objects, ts.read_hashed_dir(str(d), ts.FileMeta()))
    assert plan.changed and plan.rewritten == [] and plan.reattributed == [entry]
    assert [a.action for a in ts.plan_actions(plan)] == ["attributes_changed"]
    assert not ts.plan_hashed_dir(str(d), loaded.objects, ts.read_hashed_dir(str(d), ts.FileMeta(0o600))).changed


def test_other_files_are_left_alone(tmp_path, pki):
    d = tmp_path / "d"
    d.mkdir()
    (d / "README").write_text("mine")
    (d / "ABCDEF01.0").write_text("uppercase: not an OpenSSL name")
    (d / "0123abcd.5").write_text("stale entry")
    loaded = ts.load_objects([pki.root.cert])
    plan = ts.plan_hashed_dir(str(d), loaded.objects, ts.read_hashed_dir(str(d), ts.FileMeta()))
    ts.apply_hashed_dir(plan, ts.FileMeta())
    names = sorted(os.listdir(d))
    assert "README" in names and "ABCDEF01.0" in names and "0123abcd.5" not in names
    assert plan.removed == ["0123abcd.5"]


# ---------------------------------------------------------------------------------------------
# Input checks


def _crl(pki_ca, tmp_path, name="ca.crl", days=7, now=None, fmt="pem"):
    issuer = crlib.Issuer(pki_ca.certificate, pki_ca.private_key, pki_ca.cert)
    plan = crlib.plan_crl([], None, issuer, fmt, "sha256", days, None, now=now)
    path = str(tmp_path / name)
    crlib.write_crl(path, crlib.build_crl(plan, issuer, "sha256"), fmt)
    return path


def test_intermediate_refused_unless_allowed(pki):
    with pytest.raises(DicomTlsError) as err:
        ts.load_objects([pki.inter.cert])
    assert err.value.path == pki.inter.cert
    assert "not self-signed" in err.value.reason and "allow_non_root" in err.value.reason
    assert len(ts.load_objects([pki.inter.cert], allow_non_root=True).objects) == 1


def test_pinned_self_signed_leaf_is_a_root(pki):
    leaf = pki._issue("pinned-peer", None, ca=False, file_stem="pinned-peer")
    assert ts.load_objects([leaf.cert]).objects[0].self_signed


def test_expired_certificate(pki):
    old = pki.self_signed(
        "Expired Root",
        not_before=NOW - datetime.timedelta(days=10),
        not_after=NOW - datetime.timedelta(days=1),
    )
    with pytest.raises(DicomTlsError, match="expired on .*on_expired"):
        ts.load_objects([old.cert])
    warned = ts.load_objects([old.cert, pki.root.cert], on_expired="warn")
    assert len(warned.objects) == 2 and "kept" in warned.warnings[0]
    dropped = ts.load_objects([old.cert, pki.root.cert], on_expired="drop")
    assert len(dropped.objects) == 1 and "dropped" in dropped.warnings[0]


def test_duplicates_and_several_per_file(pki, tmp_path):
    both = tmp_path / "both.pem"
    both.write_bytes(open(pki.root.cert, "rb").read() + b"\nsome text between\n" + open(pki.root.cert, "rb").read())
    loaded = ts.load_objects([str(both), pki.root.cert, open(pki.root.cert).read()])
    assert len(loaded.objects) == 1


def test_garbage_and_format_declarations(pki, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"hello, not a certificate\n")
    with pytest.raises(DicomTlsError, match="neither PEM nor DER") as err:
        ts.load_objects([str(garbage)])
    assert err.value.path == str(garbage)
    der = tmp_path / "root.der"
    der.write_bytes(pki.root.certificate.public_bytes(Encoding.DER))
    from_der = ts.load_objects([str(der)]).objects[0]
    assert from_der.fingerprint_sha256 == ts.load_objects([pki.root.cert]).objects[0].fingerprint_sha256
    with pytest.raises(DicomTlsError, match="where PEM was declared"):
        ts.load_objects([str(der)], input_format="pem")
    with pytest.raises(DicomTlsError, match="PEM data where DER was declared"):
        ts.load_objects([pki.root.cert], input_format="der")
    with pytest.raises(DicomTlsError, match="private key"):
        ts.load_objects([pki.root.key])
    with pytest.raises(DicomTlsError, match="does not exist"):
        ts.load_objects([str(tmp_path / "missing.pem")])
    bad_der = tmp_path / "bad.der"
    bad_der.write_bytes(b"\x30\x03\x02\x01\x01")
    with pytest.raises(DicomTlsError, match="not a readable X.509 certificate"):
        ts.load_objects([str(bad_der)])


def test_crl_checks(pki, tmp_path):
    good = _crl(pki.root, tmp_path)
    loaded = ts.load_objects([pki.root.cert], [good])
    assert [o.kind for o in loaded.objects] == ["cert", "crl"]
    assert ts.earliest_next_update(loaded.objects)
    with pytest.raises(DicomTlsError, match="not in the store") as err:
        ts.load_objects([pki.self_signed("Some Other Root").cert], [good])
    assert err.value.path == good
    expired = _crl(pki.root, tmp_path, "old.crl", days=1, now=NOW - datetime.timedelta(days=3))
    with pytest.raises(DicomTlsError, match="expired on"):
        ts.load_objects([pki.root.cert], [expired])
    der = _crl(pki.root, tmp_path, "ca.crl.der", fmt="der")
    assert len(ts.load_objects([pki.root.cert], [der]).objects) == 2
    with pytest.raises(DicomTlsError, match="where PEM was declared"):
        ts.load_objects([pki.root.cert], [der], input_format="pem")
    with pytest.raises(DicomTlsError, match="is not a CRL"):
        ts.load_objects([pki.root.cert], [pki.root.cert])


def test_crl_from_same_name_other_key_is_refused(pki, tmp_path):

    twin = TestPKI(tmp_path / "twin")  # same subject names, other keys
    crl = _crl(twin.root, tmp_path, "twin.crl")
    with pytest.raises(DicomTlsError, match="signature does not verify"):
        ts.load_objects([pki.root.cert], [crl])


def test_bundle_plan(pki, tmp_path):
    path = str(tmp_path / "bundle.pem")
    loaded = ts.load_objects([pki.root.cert])
    plan = ts.plan_bundle(path, loaded.objects, ts.FileMeta())
    assert plan.changed and plan.added == [loaded.objects[0].fingerprint_sha256]
    ts.apply_bundle(plan, ts.FileMeta())
    assert not ts.plan_bundle(path, loaded.objects, ts.FileMeta()).changed
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_crl_of_an_intermediate_needs_crl_issuers(pki, tmp_path):
    crl = _crl(pki.inter, tmp_path, "inter.crl")
    with pytest.raises(DicomTlsError, match="crl_issuers"):
        ts.load_objects([pki.root.cert], [crl])
    loaded = ts.load_objects([pki.root.cert], [crl], crl_issuers=[pki.inter.cert])
    assert [o.kind for o in loaded.objects] == ["cert", "crl"]  # the intermediate is not stored
    stranger = TestPKI(tmp_path / "stranger", prefix="Stranger")
    with pytest.raises(DicomTlsError, match="not issued by a certificate of the store"):
        ts.load_objects([pki.root.cert], [crl], crl_issuers=[stranger.inter.cert])


def _locked_update(directory, certificates, done_path):
    with ts.lock(directory):
        loaded = ts.load_objects(certificates)
        plan = ts.plan_hashed_dir(directory, loaded.objects, ts.read_hashed_dir(directory, ts.FileMeta()))
        ts.apply_hashed_dir(plan, ts.FileMeta())
    with open(done_path, "w") as fh:
        fh.write("done")


def test_a_second_run_waits_for_the_lock(pki, tmp_path):
    import multiprocessing

    d = tmp_path / "d"
    d.mkdir()
    done = tmp_path / "done"
    with ts.lock(str(d)):
        child = multiprocessing.get_context("fork").Process(
            target=_locked_update, args=(str(d), [pki.root.cert], str(done))
        )
        child.start()
        child.join(0.5)
        assert child.is_alive() and not done.exists()  # blocked while we hold the lock
        assert not [n for n in os.listdir(d) if ts.ENTRY_RE.match(n)]
    child.join(30)
    assert child.exitcode == 0 and done.exists()
    assert [n for n in os.listdir(d) if ts.ENTRY_RE.match(n)]


def test_mode_owner_group(pki, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    meta = ts.file_meta("0640", "root", "0")
    assert (meta.mode, meta.uid, meta.gid) == (0o640, 0, 0)
    loaded = ts.load_objects([pki.root.cert])
    ts.apply_hashed_dir(ts.plan_hashed_dir(str(d), loaded.objects, ts.read_hashed_dir(str(d), meta)), meta)
    (entry,) = [n for n in os.listdir(d) if ts.ENTRY_RE.match(n)]
    st = os.stat(d / entry)
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, 0)
    assert not ts.plan_hashed_dir(str(d), loaded.objects, ts.read_hashed_dir(str(d), meta)).changed
    with pytest.raises(DicomTlsError, match="no such user"):
        ts.file_meta("0644", "no-such-user-here", None)
    with pytest.raises(DicomTlsError, match="octal"):
        ts.file_meta("rw-r--r--", None, None)
