"""files.write_group's two ways (issue 14 item 2): a generation store switched with one rename when the
key changes with other files, the journal otherwise; what each leaves on disk."""

from __future__ import annotations

import os

from ansible_collections.medimg.dicom_tls.plugins.module_utils import files


def read(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def store_entries(store) -> list[str]:
    return sorted(os.listdir(store))


def test_new_key_with_certificate_moves_through_one_link(tmp_path):
    private, tls = tmp_path / "private", tmp_path / "tls"
    private.mkdir(mode=0o700)
    tls.mkdir()
    key, cert, chain = str(private / "node.key"), str(tls / "node.pem"), str(tls / "node.chain.pem")
    (private / "node.key").write_bytes(b"K0")
    os.chmod(key, 0o600)
    (tls / "node.pem").write_bytes(b"C0")
    files.write_group(key, [(key, b"K1", 0o600), (cert, b"C1", 0o644), (chain, b"CH1", 0o644)])
    store = files.store_path(key)
    assert os.readlink(key) == ".node.key.dicom_tls/current/node.key"
    assert os.readlink(cert) == "../private/.node.key.dicom_tls/current/node.pem"
    assert (read(key), read(cert), read(chain)) == (b"K1", b"C1", b"CH1")
    entries = store_entries(store)
    assert len(entries) == 2 and entries[0] == "current"  # one generation: the old one is gone
    assert os.stat(key).st_mode & 0o777 == 0o600 and files.file_mode(key) == 0o600
    assert os.stat(store).st_mode & 0o777 == 0o700  # the key folder's mode, without write for others
    # the same key, a new certificate: a new generation again (the files already live there), key kept
    inode = os.stat(key).st_ino
    files.write_group(key, [(cert, b"C2", 0o644), (chain, b"CH2", 0o644)])
    assert (read(key), read(cert), read(chain)) == (b"K1", b"C2", b"CH2")
    assert os.stat(key).st_ino == inode  # hard-linked into the new generation, not copied
    assert len(store_entries(store)) == 2
    # one file alone through atomic_write: also a new generation, the link stays
    files.atomic_write(cert, b"C3")
    assert os.path.islink(cert) and read(cert) == b"C3" and len(store_entries(store)) == 2
    assert files.real_path(cert).startswith(store + "/g.")
    # chmod through the link reaches the file
    files.set_mode(key, 0o640)
    assert files.file_mode(key) == 0o640
    assert files.remove_store(key) and not os.path.exists(store)


def test_same_key_on_plain_files_uses_the_journal_and_stays_plain(tmp_path):
    key, cert = str(tmp_path / "n.key"), str(tmp_path / "n.pem")
    files.atomic_write(key, b"K1", 0o600)
    files.write_group(key, [(cert, b"C1", 0o644), (str(tmp_path / "n.chain"), b"CH1", 0o644)])
    assert not os.path.islink(cert) and read(cert) == b"C1"
    assert not os.path.exists(files.store_path(key))


def test_shared_folder_and_user_links_keep_plain_files(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    key, cert = str(shared / "n.key"), str(shared / "n.pem")
    files.write_group(key, [(key, b"K1", 0o600), (cert, b"C1", 0o644)])
    assert not os.path.islink(key) and not os.path.exists(files.store_path(key))
    # a link of the user's own stays theirs: its target is written (journal), no store
    own = tmp_path / "own"
    own.mkdir()
    elsewhere = tmp_path / "elsewhere.pem"
    elsewhere.write_bytes(b"C0")
    os.symlink(str(elsewhere), own / "n.pem")
    key = str(own / "n.key")
    files.write_group(key, [(key, b"K1", 0o600), (str(own / "n.pem"), b"C1", 0o644)])
    assert os.readlink(own / "n.pem") == str(elsewhere) and elsewhere.read_bytes() == b"C1"
    assert not os.path.islink(key)


def test_recover_group_removes_what_a_kill_left_in_the_store(tmp_path):
    key, cert = str(tmp_path / "n.key"), str(tmp_path / "n.pem")
    files.write_group(key, [(key, b"K1", 0o600), (cert, b"C1", 0o644)])
    store = files.store_path(key)
    os.mkdir(os.path.join(store, "g.abcd1234"))  # a half-made generation
    os.symlink("g.abcd1234", os.path.join(store, ".current.abcd1234.tmp"))  # a link not yet renamed
    os.symlink("x", str(tmp_path / ".n.pem.abcd1234.tmp"))  # a member link not yet renamed
    assert files.recover_group(key, [key, cert]) == []
    assert len(store_entries(store)) == 2
    assert not os.path.lexists(tmp_path / ".n.pem.abcd1234.tmp")
    assert (read(key), read(cert)) == (b"K1", b"C1")


def test_reading_pending_shows_the_journal_without_writing(tmp_path):
    key, cert = str(tmp_path / "n.key"), str(tmp_path / "n.pem")
    files.atomic_write(cert, b"C0")
    tmp = files.write_temp(cert, b"C1")
    files.atomic_write(files.journal_path(key), ('[["%s", "%s"]]' % (tmp, cert)).encode(), 0o600)
    with files.reading_pending(key) as pending:
        assert pending == [cert]
        assert files.read_bytes(cert) == b"C1"
    assert files.read_bytes(cert) == b"C0" and os.path.exists(tmp)
    assert files.recover_group(key, [key, cert]) == [cert]
    assert read(cert) == b"C1" and not os.path.exists(files.journal_path(key))
