"""What a fleet run leans on: one CA task signing every due CSR (the others untouched, one bad CSR
not stopping the rest), folders created by the module that writes into them, and the previous
material kept by the modules' own backup."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as backend
from ansible_collections.medimg.dicom_tls.plugins.module_utils import files, orthanc_config
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError


def run(**kw):
    p = backend.plan(backend.CertSpec(**kw))
    return p, backend.apply(p)


@pytest.fixture
def ca(tmp_path):
    d = str(tmp_path / "ca")
    os.mkdir(d)
    run(
        path=d + "/root.pem", privatekey_path=d + "/root.key", usage="root_ca", subject={"CN": "Root"}, key_type="ecdsa"
    )
    run(
        path=d + "/issuing.pem",
        privatekey_path=d + "/issuing.key",
        usage="intermediate_ca",
        subject={"CN": "Issuing"},
        key_type="ecdsa",
        issuer_cert_path=d + "/root.pem",
        issuer_privatekey_path=d + "/root.key",
    )
    return d


def csr_of(tmp_path, name):
    """A node's key and CSR, born in folders the module creates (private/ mode 0700)."""
    base = str(tmp_path / "nodes" / name)
    _p, out = run(
        state="csr",
        privatekey_path=base + "/private/node.key",
        csr_path=base + "/tls/node.csr",
        subject={"CN": name},
        subject_alt_names=["DNS:" + name],
        key_type="ecdsa",
    )
    return base, out["csr"]


def issuer(ca):
    return {"issuer_cert_path": ca + "/issuing.pem", "issuer_privatekey_path": ca + "/issuing.key", "valid_days": 30}


def requests(ca, csrs):
    from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, fleet

    return fleet.sign_requests({n: crypto.csr_pem(c).decode() for n, c in csrs.items()}, ca + "/issued")


def test_the_key_folder_is_created_0700_and_the_instance_folder_0755(tmp_path):
    base, _csr = csr_of(tmp_path, "a")
    assert stat.S_IMODE(os.stat(base + "/private").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(base).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(base + "/tls").st_mode) == 0o755


def test_one_task_signs_every_due_csr_and_a_rerun_signs_none(ca, tmp_path):
    csrs = {n: csr_of(tmp_path, n)[1] for n in ("a", "b", "c")}
    first = backend.sign_many(issuer(ca), requests(ca, csrs))
    assert sorted(first) == ["a", "b", "c"] and all(e["changed"] for e in first.values())
    assert os.path.isfile(ca + "/issued/b.chain.pem")  # the issued/ folder was created
    # the chain is the leaf then the issuing CA (never the root)
    assert first["a"]["chain"].count("BEGIN CERTIFICATE") == 2
    again = backend.sign_many(issuer(ca), requests(ca, csrs))
    assert not any(e["changed"] for e in again.values())
    assert {n: e["serial"] for n, e in again.items()} == {n: e["serial"] for n, e in first.items()}


def test_a_new_key_is_signed_again_and_only_that_one(ca, tmp_path):
    csrs = {n: csr_of(tmp_path, n)[1] for n in ("a", "b")}
    backend.sign_many(issuer(ca), requests(ca, csrs))
    os.unlink(str(tmp_path / "nodes" / "b" / "private" / "node.key"))
    csrs["b"] = csr_of(tmp_path, "b")[1]
    out = backend.sign_many(issuer(ca), requests(ca, csrs))
    assert not out["a"]["changed"] and out["b"]["changed"]


def test_check_mode_writes_nothing(ca, tmp_path):
    csrs = {"a": csr_of(tmp_path, "a")[1]}
    out = backend.sign_many(issuer(ca), requests(ca, csrs), check_mode=True)
    # the certificate the node would install is signed in memory (issue 10: check mode predicts the
    # node's install task from it), never written
    assert out["a"]["changed"] and out["a"]["predicted"] and "chain" in out["a"]
    assert not os.path.exists(ca + "/issued")


def test_one_bad_request_does_not_stop_the_others(ca, tmp_path):
    csrs = {"a": csr_of(tmp_path, "a")[1]}
    reqs = requests(ca, csrs) + [{"name": "z", "path": ca + "/issued/z.pem", "csr_content": "not a CSR"}]
    out = backend.sign_many(issuer(ca), reqs)
    assert out["z"]["failed"] and "certificate signing request" in out["z"]["msg"]
    assert out["a"]["changed"] and "chain" in out["a"]


def test_a_wrong_ca_key_is_the_task_s_error(ca):
    with pytest.raises(DicomTlsError, match="does not match"):
        backend.check_issuer({"issuer_cert_path": ca + "/issuing.pem", "issuer_privatekey_path": ca + "/root.key"})


def test_backup_keeps_the_previous_certificate_and_chain(ca, tmp_path):
    base, csr = csr_of(tmp_path, "a")
    spec = dict(
        path=base + "/tls/node.pem",
        chain_path=base + "/tls/node.chain.pem",
        privatekey_path=base + "/private/node.key",
        backup=True,
    )
    first = backend.sign_many(issuer(ca), requests(ca, {"a": csr}))
    run(certificate_content=first["a"]["chain"], **spec)
    before = open(base + "/tls/node.chain.pem").read()
    renewed = backend.sign_many(dict(issuer(ca), renew_before_days=365), requests(ca, {"a": csr}))
    _p, out = run(certificate_content=renewed["a"]["chain"], **spec)
    assert len(out["backup_files"]) == 2
    chain_backup = [b for b in out["backup_files"] if ".chain.pem." in b][0]
    assert open(chain_backup).read() == before != open(base + "/tls/node.chain.pem").read()


def test_backup_tree_copies_a_folder_with_its_links(tmp_path):
    d = tmp_path / "trust"
    d.mkdir()
    (d / "ca.pem").write_text("x")
    os.symlink("ca.pem", str(d / "12345678.0"))
    (d / ".lock").write_text("")
    copy = files.backup_tree(str(d), ignore=(".lock",))
    assert copy.startswith(str(d) + ".") and copy.endswith("~")
    assert os.readlink(copy + "/12345678.0") == "ca.pem"
    assert not os.path.exists(copy + "/.lock")


def test_orthanc_config_backup_keeps_each_rewritten_file(tmp_path):
    d = tmp_path / "orthanc"
    d.mkdir()
    (d / "orthanc.json").write_text('{\n  "Name" : "old",\n  "DicomPort" : 4242\n}\n')
    p = orthanc_config.plan(str(d), {"Name": "new"})
    backups = orthanc_config.apply(p, backup=True)
    assert len(backups) == 1 and '"old"' in open(backups[0]).read()
    assert '"new"' in (d / "orthanc.json").read_text()


def test_the_daemon_creates_its_pid_log_and_working_folders(tmp_path):
    from ansible_collections.medimg.dicom_tls.plugins.module_utils import daemon

    base = str(tmp_path / "x")
    pid = daemon.start(
        "sleeper",
        ["/bin/sleep", "30"],
        base + "/run/a/sleep.pid",
        log_path=base + "/log/a/sleep.log",
        chdir=base + "/data/a",
    )
    try:
        assert os.path.isdir(base + "/data/a") and os.path.isfile(base + "/log/a/sleep.log")
        assert open(base + "/run/a/sleep.pid").read().strip() == str(pid)
    finally:
        daemon.stop(base + "/run/a/sleep.pid", pid)


def test_the_batch_records_what_it_signs_in_the_ca_ledger(ca, tmp_path):
    from ansible_collections.medimg.dicom_tls.plugins.module_utils import ledger

    csrs = {n: csr_of(tmp_path, n)[1] for n in ("a", "b")}
    out = backend.sign_many(dict(issuer(ca), database=ca + "/index.txt"), requests(ca, csrs))
    serials = {e.serial for e in ledger.read(ca + "/index.txt")}
    assert {int(out[n]["serial"], 16) for n in ("a", "b")} <= {int(s, 16) if isinstance(s, str) else s for s in serials}


def test_dcmtk_option_files_in_one_pass(tmp_path):
    """Every option file of a node planned and written in one pass: folder created, one option per
    line, a rerun plans nothing, a changed option rewrites only its file and keeps a backup."""
    from ansible_collections.medimg.dicom_tls.plugins.module_utils import dcmtk_options

    d = str(tmp_path / "node")
    tools = {"storescp": ["+tls k c", "+cd t", "", "+py", "-rc", "-aet A"], "echoscu": ["+tls k c", "-aet A"]}
    first = dcmtk_options.plan(d, tools)
    assert [(os.path.basename(a.path), a.action) for a in first] == [
        ("echoscu.args", "created"),
        ("storescp.args", "created"),
    ]
    assert dcmtk_options.apply(first, tools, backup=True) == []
    with open(d + "/storescp.args") as fh:
        assert fh.read() == "+tls k c\n+cd t\n+py\n-rc\n-aet A\n"
    assert stat.S_IMODE(os.stat(d + "/echoscu.args").st_mode) == 0o644
    assert dcmtk_options.plan(d, tools) == []

    tools["storescp"][-1] = "-aet B"
    second = dcmtk_options.plan(d, tools)
    assert [(os.path.basename(a.path), a.action, a.reason) for a in second] == [
        ("storescp.args", "updated", "options differ")
    ]
    (backup,) = dcmtk_options.apply(second, tools, backup=True)
    with open(backup) as fh:
        assert fh.read().endswith("-aet A\n")
    assert dcmtk_options.plan(d, tools) == []
    os.chmod(d + "/echoscu.args", 0o600)  # a mode alone is Ansible's file options' business, not the plan's
    assert dcmtk_options.plan(d, tools) == []


@pytest.mark.parametrize(
    "tools, reason",
    [({"../x": []}, "not a dcmtk tool name"), ({"storescp": ["+tls a\n-ic"]}, "line break")],
)
def test_dcmtk_option_files_refused(tmp_path, tools, reason):
    from ansible_collections.medimg.dicom_tls.plugins.module_utils import dcmtk_options

    with pytest.raises(DicomTlsError, match=reason):
        dcmtk_options.plan(str(tmp_path), tools)
    assert os.listdir(tmp_path) == []
