"""kill -9 at every durable step of the multi-file writes (issue 14 item 2), judged by openssl.

Each operation is killed once after each of its durable steps (temporary written, file made,
rename, link, removal: files.py's DICOM_TLS_CRASH_AFTER_STEP hook), in both layouts it can meet:
files as this collection writes them (links through the key's generation store, files.write_generation)
and plain files (written by an earlier version or another tool, converted on the first key change).
Straight after each kill the files on disk are classified, following links as dcmtk and Orthanc do:
- old: byte for byte what was there before the run;
- new: every file the run writes is new, the others unchanged, and openssl says they belong
  together (key matches certificate, the chain starts with that certificate, the PKCS#12 holds
  that key and certificate);
- mixed: anything else. "pair" counts the states in which openssl says the private key matches
  the certificate (what dcmtk's +tls and Orthanc's DicomTlsPrivateKey/Certificate need to load).
Then the next ordinary run of the module (no force) happens and the files are classified again;
leftovers are our temporaries, journals and generations other than the current one.

The kill runs are forked from the test process (no interpreter start per kill): a few seconds each."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess

import pytest
from ansible_collections.medimg.dicom_tls.plugins.module_utils import files
from support import module_run
from support.servers import Orthanc, StoreSCP, dcmtk

NAMES = ("privatekey_path", "path", "chain_path", "pkcs12_path")
OURS = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$|\.dicom_tls-journal$")
PASS = "changeit"


def openssl(*args, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *map(str, args)], input=data, capture_output=True, timeout=60, check=False)


def killed_run(name: str, args: dict, step: int) -> bool:
    """Run the module in a forked child that files.py SIGKILLs after its ``step``-th durable step;
    True when it was killed, False when it finished first (``step`` is past its last step)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            os.environ["DICOM_TLS_CRASH_AFTER_STEP"] = str(step)
            files._steps[0] = 0
            failed, _result = module_run.run(name, args)
            code = 1 if failed else 0
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, "the run failed instead of finishing (step %d)" % step
    return False


def ordinary_run(name: str, args: dict) -> dict:
    failed, result = module_run.run(name, args)
    assert not failed, result
    return result


def digest(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except FileNotFoundError:
        return None


def snapshot(paths: dict) -> dict:
    return {n: digest(p) for n, p in paths.items()}


def pubkey(*args, data=None) -> bytes:
    return openssl(*args, data=data).stdout


_verdicts: dict = {}


def memo(judge):
    """openssl's verdict once per distinct content of the files judged (the same old and new sets
    recur from kill to kill; openssl calls are most of the test's time)."""

    def judged(*args):
        paths = args[0].values() if isinstance(args[0], dict) else args
        key = (judge.__name__, tuple((p, digest(p)) for p in paths))
        if key not in _verdicts:
            _verdicts[key] = judge(*args)
        return _verdicts[key]

    return judged


@memo
def pair_loads(key: str, cert: str) -> bool:
    """openssl: the private key matches the certificate (dcmtk and Orthanc load the pair)."""
    k = pubkey("pkey", "-in", key, "-pubout")
    return bool(k) and k == pubkey("x509", "-in", cert, "-noout", "-pubkey")


def p12_pubkeys(p12: str) -> tuple[bytes, bytes]:
    out = openssl("pkcs12", "-in", p12, "-passin", "pass:" + PASS, "-nodes").stdout
    return pubkey("pkey", "-pubout", data=out), pubkey("x509", "-noout", "-pubkey", data=out)


@memo
def cert_set_consistent(paths: dict) -> bool:
    """dicom_cert's set: key = certificate = chain's first = PKCS#12's key and certificate."""
    if not pair_loads(paths["privatekey_path"], paths["path"]):
        return False
    leaf = openssl("x509", "-in", paths["path"], "-outform", "DER").stdout
    if openssl("x509", "-in", paths["chain_path"], "-outform", "DER").stdout != leaf:
        return False
    key_pub = pubkey("pkey", "-in", paths["privatekey_path"], "-pubout")
    return p12_pubkeys(paths["pkcs12_path"]) == (key_pub, key_pub)


@memo
def p12_set_consistent(paths: dict) -> bool:
    """dicom_pkcs12's pair: the certificate beside the PKCS#12 is the one inside, with its key."""
    key_pub, cert_pub = p12_pubkeys(paths["path"])
    return bool(key_pub) and key_pub == cert_pub == pubkey(
        "x509", "-in", paths["certificate_path"], "-noout", "-pubkey"
    )


def classify(before: dict, now: dict, written: tuple, consistent: bool) -> str:
    if now == before:
        return "old"
    if (
        consistent
        and all(now[n] != before[n] for n in written)
        and all(now[n] == before[n] for n in now if n not in written)
    ):
        return "new"
    return "mixed"


def leftovers(paths) -> list[str]:
    """Our temporaries and journals beside the files, and generations besides the current one."""
    out = []
    for directory in sorted({os.path.dirname(p) for p in paths}):
        for name in os.listdir(directory):
            full = os.path.join(directory, name)
            if OURS.search(name):
                out.append(full)
            if name.endswith(files.STORE_SUFFIX) and os.path.isdir(full):
                if not os.path.islink(os.path.join(full, "current")):
                    out.append(full)  # a store with no generation in use
                    continue
                current = os.readlink(os.path.join(full, "current"))
                out += [os.path.join(full, n) for n in os.listdir(full) if n not in ("current", current)]
    return out


def make_plain(paths: dict, contents: dict | None = None) -> dict:
    """Turn the files into plain files (as an earlier version wrote them): ``contents`` (name ->
    (bytes, mode)) or the current ones; our stores and leftovers removed. Returns the contents."""
    if contents is None:
        contents = {}
        for n, p in paths.items():
            with open(p, "rb") as fh:
                contents[n] = (fh.read(), os.stat(p).st_mode & 0o777)
    for directory in {os.path.dirname(p) for p in paths.values()}:
        for name in os.listdir(directory):
            full = os.path.join(directory, name)
            if name.endswith(files.STORE_SUFFIX):
                shutil.rmtree(full)
            elif OURS.search(name):
                os.unlink(full)
    for n, p in paths.items():
        if os.path.lexists(p):
            os.unlink(p)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, contents[n][1])
        with os.fdopen(fd, "wb") as fh:
            fh.write(contents[n][0])
    return contents


def kill_every_step(name, args, paths, written, consistent, layout, plain=None, check=None):
    """Kill ``name`` after each durable step k = 1, 2, ... until a run finishes. ``layout`` 'plain'
    starts every kill from the same plain files; 'linked' goes on from what the kill left.
    Returns the counts."""
    counts = {"kills": 0, "pair_straight": 0, "straight": {"old": 0, "new": 0, "mixed": 0}}
    counts["after"] = {"old": 0, "new": 0, "mixed": 0}
    counts["leftovers_straight"] = counts["leftovers_after"] = 0
    step = 1
    while True:
        if layout == "plain":
            make_plain(paths, plain)
        before = snapshot(paths)
        if not killed_run(name, args, step):
            break
        counts["kills"] += 1
        if "privatekey_path" in paths:
            counts["pair_straight"] += pair_loads(paths["privatekey_path"], paths["path"])
        state = classify(before, snapshot(paths), written, consistent(paths))
        counts["straight"][state] += 1
        counts["leftovers_straight"] += bool(leftovers(paths.values()))
        if check is not None:
            check(step, state)
        plain_args = {k: v for k, v in args.items() if k not in ("force", "regenerate_key")}
        result = ordinary_run(name, plain_args)
        after = classify(before, snapshot(paths), written, consistent(paths))
        counts["after"][after] += 1
        if after == "old":  # the next run found the old files: nothing to do
            assert result["changed"] is False, (step, result["actions"])
        left = leftovers(paths.values())
        counts["leftovers_after"] += len(left)
        assert left == [], "kill after step %d: the next run left %s" % (step, left)
        step += 1
    return counts


def report(what: str, c: dict) -> str:
    line = (
        "%s: %d kills; straight after the kill: old %d, new %d, mixed %d, key matches certificate %s;"
        " after the next run: old %d, new %d, mixed %d; leftovers straight after in %d states, after the next run %d"
        % (
            what,
            c["kills"],
            c["straight"]["old"],
            c["straight"]["new"],
            c["straight"]["mixed"],
            "%d/%d" % (c["pair_straight"], c["kills"]) if c["pair_straight"] or "pair" in c else "n/a",
            c["after"]["old"],
            c["after"]["new"],
            c["after"]["mixed"],
            c["leftovers_straight"],
            c["leftovers_after"],
        )
    )
    print(line)
    return line


# ---------------------------------------------------------------- dicom_cert


@pytest.fixture
def node(pki, tmp_path):
    """A node's key, certificate, chain and PKCS#12 as dicom_cert writes them; key in private/."""
    private, tls = tmp_path / "private", tmp_path / "tls"
    args = {
        "path": str(tls / "node.pem"),
        "privatekey_path": str(private / "node.key"),
        "chain_path": str(tls / "node.chain.pem"),
        "pkcs12_path": str(private / "node.p12"),
        "pkcs12_passphrase": PASS,
        "subject": {"O": "medimg test", "CN": "node-crash"},
        "key_type": "ecdsa",
        "issuer_cert_path": pki.inter.cert,
        "issuer_privatekey_path": pki.inter.key,
    }
    ordinary_run("dicom_cert", args)
    return args, {n: args[n] for n in NAMES}


@pytest.mark.parametrize("layout", ["linked", "plain"])
def test_renewal_with_regenerate_key_is_old_or_new_straight_after_every_kill(node, layout):
    args, paths = node
    plain = make_plain(paths) if layout == "plain" else None

    def check(step, state):
        assert state in ("old", "new"), "kill after step %d left a %s set straight after the kill" % (step, state)

    c = kill_every_step(
        "dicom_cert",
        dict(args, force=True, regenerate_key=True),
        paths,
        NAMES,
        cert_set_consistent,
        layout,
        plain,
        check,
    )
    report("dicom_cert renewal with regenerate_key, %s files" % layout, c)
    assert c["kills"] >= (20 if layout == "plain" else 10)
    assert c["straight"]["mixed"] == 0 and c["pair_straight"] + c["straight"]["old"] >= c["kills"]
    assert c["straight"]["old"] and c["straight"]["new"]
    assert all(os.path.islink(p) for p in paths.values())  # the run that finished left the linked layout


@pytest.mark.parametrize("layout", ["linked", "plain"])
def test_renewal_with_the_same_key_keeps_a_loadable_pair_at_every_kill(node, layout):
    args, paths = node
    plain = make_plain(paths) if layout == "plain" else None
    written = ("path", "chain_path", "pkcs12_path")

    def check(step, state):
        # the key does not change: the certificate on disk always matches it
        assert pair_loads(paths["privatekey_path"], paths["path"]), "kill after step %d" % step
        if layout == "linked":  # one rename switches the whole set
            assert state in ("old", "new"), "kill after step %d left a %s set" % (step, state)

    c = kill_every_step("dicom_cert", dict(args, force=True), paths, written, cert_set_consistent, layout, plain, check)
    report("dicom_cert renewal with the same key, %s files" % layout, c)
    assert c["kills"] >= 10 and c["pair_straight"] == c["kills"]
    assert c["after"]["mixed"] == 0 and c["after"]["old"] and c["after"]["new"]
    if layout == "plain":  # the same key: files stay plain (the journal suffices)
        assert not any(os.path.islink(p) for p in paths.values())


def test_first_creation_is_nothing_or_the_whole_set_at_every_kill(pki, tmp_path):
    args = {
        "path": str(tmp_path / "tls" / "node.pem"),
        "privatekey_path": str(tmp_path / "private" / "node.key"),
        "chain_path": str(tmp_path / "tls" / "node.chain.pem"),
        "subject": {"CN": "node-first"},
        "key_type": "ecdsa",
        "issuer_cert_path": pki.inter.cert,
        "issuer_privatekey_path": pki.inter.key,
    }
    kills = 0
    for step in range(1, 100):
        shutil.rmtree(tmp_path / "tls", ignore_errors=True)
        shutil.rmtree(tmp_path / "private", ignore_errors=True)
        if not killed_run("dicom_cert", args, step):
            break
        kills += 1
        present = [os.path.exists(args[n]) for n in ("privatekey_path", "path", "chain_path")]
        assert not any(present) or all(present), "kill after step %d: %s" % (step, present)
        if all(present):
            assert pair_loads(args["privatekey_path"], args["path"])
        ordinary_run("dicom_cert", args)  # the next run ends with a whole set and nothing else
        assert pair_loads(args["privatekey_path"], args["path"])
        paths = [args[n] for n in ("privatekey_path", "path", "chain_path")]
        assert leftovers(paths) == [], "kill after step %d: the next run left %s" % (step, leftovers(paths))
    print("dicom_cert first creation: %d kills, each left nothing or the whole set; the next run a whole set" % kills)
    assert kills >= 10


# ---------------------------------------------------------------- dicom_pkcs12


@pytest.mark.parametrize("layout", ["linked", "plain"])
def test_dicom_pkcs12_renewal_is_old_or_new_straight_after_every_kill(pki, tmp_path, layout):
    args = {
        "path": str(tmp_path / "private" / "mr-02.p12"),
        "certificate_path": str(tmp_path / "mr-02.pem"),
        "passphrase": PASS,
        "subject": {"CN": "mr-02"},
        "key_type": "ecdsa",
        "issuer_cert_path": pki.inter.cert,
        "issuer_privatekey_path": pki.inter.key,
    }
    ordinary_run("dicom_pkcs12", args)
    paths = {"path": args["path"], "certificate_path": args["certificate_path"]}
    plain = make_plain(paths) if layout == "plain" else None

    def check(step, state):
        assert state in ("old", "new"), "kill after step %d left a %s pair" % (step, state)

    c = kill_every_step(
        "dicom_pkcs12", dict(args, force=True), paths, tuple(paths), p12_set_consistent, layout, plain, check
    )
    report("dicom_pkcs12 renewal (new key), %s files" % layout, c)
    assert c["kills"] >= (15 if layout == "plain" else 6)
    assert c["straight"]["mixed"] == 0 and c["after"]["mixed"] == 0


# ---------------------------------------------------------------- check mode


def _tree(directory) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if os.path.islink(p):
                out[p] = (st.st_mode, st.st_mtime_ns, os.readlink(p))
            else:
                # a folder's mtime moves with check mode's write probe (a file made and removed): not compared
                out[p] = (st.st_mode, None, None) if os.path.isdir(p) else (st.st_mode, st.st_mtime_ns, digest(p))
    return out


@pytest.mark.parametrize("kind", ["journal", "leftovers"])
def test_check_mode_predicts_the_recovery_and_changes_nothing(node, tmp_path, kind):
    """A renewal with the same key on plain files killed after its journal and its first rename
    (a pending journal), or a regeneration killed before its commit (a half-made generation and a
    temporary link): check mode reports what the real run then reports, and changes nothing."""
    args, paths = node
    make_plain(paths)
    if kind == "journal":
        # steps: 3 temporaries x 3, the journal (3 + rename) = 13; the first rename is step 14
        assert killed_run("dicom_cert", dict(args, force=True), 14)
        assert os.path.exists(files.journal_path(paths["privatekey_path"]))
    else:
        assert killed_run("dicom_cert", dict(args, force=True, regenerate_key=True), 16)
        assert leftovers(paths.values())
    before = _tree(tmp_path)
    failed, predicted = module_run.run("dicom_cert", args, check_mode=True)
    assert not failed, predicted
    assert _tree(tmp_path) == before, "check mode changed files"
    real = ordinary_run("dicom_cert", args)
    assert (predicted["changed"], predicted["actions"]) == (real["changed"], real["actions"])
    if kind == "journal":
        assert real["changed"] and {a["action"] for a in real["actions"]} == {"recovered"}
        assert cert_set_consistent(paths)
    else:
        assert real["changed"] is False
    assert leftovers(paths.values()) == []
    assert ordinary_run("dicom_cert", args)["changed"] is False


# ---------------------------------------------------------------- readers of the linked layout


def _echoscu(port, key, cert, ca, aec):
    return subprocess.run(
        [dcmtk("echoscu"), "+tls", key, cert, "+cf", ca, "-aec", aec, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_dcmtk_and_orthanc_load_the_linked_pair_after_a_key_regeneration(pki, node, tmp_path):
    """storescp (+tls key chain), echoscu (+tls key cert) and Orthanc (DicomTlsPrivateKey,
    DicomTlsCertificate) are given the link paths after a renewal with regenerate_key; a second run
    changes nothing; owner/group/mode options reach the files behind the links."""
    args, paths = node
    result = ordinary_run("dicom_cert", dict(args, force=True, regenerate_key=True, mode="0640"))
    assert result["changed"] and all(os.path.islink(p) for p in paths.values())
    assert os.stat(paths["path"]).st_mode & 0o777 == 0o640  # the file behind the link
    assert os.stat(paths["privatekey_path"]).st_mode & 0o777 == 0o600  # keys keep 0600
    again = ordinary_run("dicom_cert", dict(args, mode="0640"))
    assert again["changed"] is False, again["actions"]
    client = pki.node("linked-client")
    key, chain, cert = paths["privatekey_path"], paths["chain_path"], paths["path"]
    trusted = ["+cf", pki.root.cert, "+cf", pki.inter.cert]  # the leaf alone (path) verifies too
    with StoreSCP(["+tls", key, chain, *trusted], str(tmp_path / "scp")) as scp:
        served = _echoscu(scp.port, client.key, client.chain, pki.root.cert, scp.aet)
        dialled = _echoscu(scp.port, key, cert, pki.root.cert, scp.aet)  # our pair as the client's
    assert served.returncode == 0, served.stderr
    assert dialled.returncode == 0, dialled.stderr
    settings = {
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": chain,
        "DicomTlsPrivateKey": key,
        "DicomTlsTrustedCertificates": pki.root.cert,
    }
    with Orthanc(str(tmp_path / "orthanc"), settings) as orthanc:
        res = _echoscu(orthanc.port, client.key, client.chain, pki.root.cert, orthanc.aet)
    assert res.returncode == 0, res.stderr
