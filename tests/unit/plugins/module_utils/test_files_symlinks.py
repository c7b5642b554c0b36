# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""files.py's symlink policy (issue 14 item 4), with links planted as another user would plant
them: in a sticky world-writable folder like /tmp (link owned by "nobody"), or in a folder that
belongs to "nobody". Trusted links (our own folder, our own link) are written through atomically."""

from __future__ import annotations

import os
import pwd

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import files
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError

NOBODY = pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def shared(tmp_path):
    """A sticky folder everybody can write, like /tmp."""
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o1777)
    return d


@pytest.fixture
def target(tmp_path):
    t = tmp_path / "private" / "real.pem"
    t.parent.mkdir(mode=0o700)
    t.write_bytes(b"original")
    return t


def plant(link, to, uid):
    os.symlink(to, link)
    if os.geteuid() == 0:
        os.lchown(link, uid, -1)


needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="planting a link as another user needs root (CI runs as root)"
)


@needs_root
def test_link_planted_by_another_user_in_sticky_folder_is_refused(shared, target):
    link = shared / "node.pem"
    plant(link, target, NOBODY)
    with pytest.raises(DicomTlsError, match="symbolic link in .*other users can write"):
        files.atomic_write(str(link), b"new", 0o644)
    with pytest.raises(DicomTlsError, match="refusing to follow"):
        files.read_bytes(str(link))
    assert target.read_bytes() == b"original"
    assert os.path.islink(link)


@needs_root
def test_link_in_a_folder_of_another_user_is_refused(tmp_path, target):
    d = tmp_path / "theirs"
    d.mkdir()
    plant(d / "node.pem", target, 0)
    os.chown(d, NOBODY, -1)
    with pytest.raises(DicomTlsError, match="refusing to follow"):
        files.atomic_write(str(d / "node.pem"), b"new", 0o644)
    assert target.read_bytes() == b"original"


@needs_root
def test_planted_folder_link_on_the_way_is_refused(shared, target):
    plant(shared / "keys", target.parent, NOBODY)
    with pytest.raises(DicomTlsError, match="refusing to follow"):
        files.atomic_write(str(shared / "keys" / "node.key"), b"KEY", 0o600)
    assert not (target.parent / "node.key").exists()


def test_own_link_in_a_shared_folder_never_carries_a_private_key(shared, target):
    link = shared / "node.key"
    os.symlink(target, link)  # ours, but the folder is shared: not for private keys
    with pytest.raises(DicomTlsError, match="refusing to follow"):
        files.atomic_write(str(link), b"KEY", 0o600)
    assert target.read_bytes() == b"original"


def test_trusted_link_stays_a_link_and_its_target_is_written_atomically(tmp_path, target):
    link = tmp_path / "current.pem"
    os.symlink(target, link)
    files.atomic_write(str(link), b"renewed", 0o644)
    assert os.path.islink(link)
    assert target.read_bytes() == b"renewed"
    assert files.read_bytes(str(link)) == b"renewed"
    assert [n for n in os.listdir(target.parent) if n.endswith(".tmp")] == []


def test_lock_never_follows_a_planted_folder_link(shared, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plant(shared / "conf", elsewhere, NOBODY)
    if os.geteuid() != 0:
        pytest.skip("needs root to plant as another user")
    with pytest.raises(DicomTlsError, match="refusing to follow"), files.locked_for(str(shared / "conf" / "x.json")):
        pass


def test_write_group_recovers_and_cleans_our_temporaries_only(tmp_path):
    key, cert = str(tmp_path / "n.key"), str(tmp_path / "n.pem")
    files.write_group(key, [(key, b"K1", 0o600), (cert, b"C1", 0o644)])
    stray = tmp_path / ".n.pem.abcd1234.tmp"
    stray.write_bytes(b"half")
    foreign = tmp_path / ".n.pem.notours"
    foreign.write_bytes(b"keep")
    assert files.recover_group(key, [key, cert]) == []
    assert not stray.exists() and foreign.exists()
    assert (os.stat(key).st_mode & 0o777, open(key, "rb").read()) == (0o600, b"K1")


# ---------------------------------------------------------------- backups (issue 14b)


def _backups(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith("~") or n.endswith(".tmp"))


@needs_root
def test_backup_copy_never_reads_through_a_planted_link(shared, target):
    """A link someone else planted in a shared folder must not make the backup copy their target
    (a private file) into that folder."""
    link = shared / "bundle.pem"
    plant(link, target, NOBODY)
    with pytest.raises(DicomTlsError, match="refusing to follow"):
        files.backup_copy(str(link))
    assert _backups(shared) == [] and _backups(target.parent) == []


def test_backup_copy_of_a_key_never_through_a_link_in_a_shared_folder(shared, target):
    os.chmod(target, 0o600)
    link = shared / "node.key"
    os.symlink(target, link)  # ours, but in a shared folder: not for private keys
    with pytest.raises(DicomTlsError, match="refusing to follow"):
        files.backup_copy(str(link))
    assert _backups(shared) == []


def test_backup_copy_through_a_trusted_link_keeps_mode_and_bytes(tmp_path, target):
    os.chmod(target, 0o640)
    link = tmp_path / "current.pem"
    os.symlink(target, link)
    copy = files.backup_copy(str(link))
    assert os.path.dirname(copy) == str(tmp_path) and not os.path.islink(copy)
    assert open(copy, "rb").read() == b"original" and os.stat(copy).st_mode & 0o777 == 0o640


@needs_root
def test_backup_tree_refuses_a_planted_folder_link(shared, target):
    plant(shared / "trust", target.parent, NOBODY)
    with pytest.raises(DicomTlsError, match="refusing to follow"):
        files.backup_tree(str(shared / "trust"))
    assert _backups(shared) == [] and _backups(target.parent.parent) == []


@needs_root
def test_backup_tree_copies_a_planted_entry_as_a_link_never_its_target(shared, target):
    """In a store folder others can write, a link planted by another user inside it is copied as a
    link: the backup never holds the bytes of the file it points at."""
    store = shared / "trust"
    store.mkdir()
    os.chmod(store, 0o1777)
    (store / "ca.pem").write_bytes(b"CA")
    plant(store / "5a3f0e1b.0", target, NOBODY)
    copy = files.backup_tree(str(store))
    assert os.readlink(os.path.join(copy, "5a3f0e1b.0")) == str(target)
    assert open(os.path.join(copy, "ca.pem"), "rb").read() == b"CA"
    assert not any(b"original" in open(os.path.join(copy, n), "rb").read() for n in os.listdir(copy)
                   if not os.path.islink(os.path.join(copy, n)))  # fmt: skip


@needs_root
def test_truststore_bundle_backup_through_a_planted_link_is_refused(shared, target, pki):
    """dicom_truststore layout=bundle with backup: a link planted as the bundle is refused before the
    backup reads its target; nothing lands in the shared folder."""
    from support import module_run

    link = shared / "bundle.pem"
    plant(link, target, NOBODY)
    failed, result = module_run.run(
        "dicom_truststore", {"path": str(link), "layout": "bundle", "backup": True, "certificates": [pki.root.cert]}
    )
    assert failed and "refusing to follow" in result["msg"], result
    assert sorted(os.listdir(shared)) == ["bundle.pem"] and target.read_bytes() == b"original"


def test_locked_for_is_reentrant_and_creates_no_file(tmp_path):
    """A folder locked twice in one process (a CRL beside its ledger, a module and its helper) does not
    deadlock, and no lock file is left in the folder."""
    path = str(tmp_path / "ca.crl")
    with files.locked_for(path), files.locked_for(str(tmp_path / "index.txt")), files.locked_for(path):
        pass
    assert os.listdir(tmp_path) == []
