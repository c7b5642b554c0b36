"""Private key and directory modes: an existing key readable by others is tightened to 0600 (planned,
reported, predicted by check mode, then unchanged); runs under umask 000 create nothing that other
users can write, and a key's folder is 0700."""

from __future__ import annotations

import os
import stat

from support import module_run


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def test_loose_private_key_is_tightened(workspace, work):
    args = workspace.base("dicom_cert", work)
    failed, result = module_run.run("dicom_cert", args)
    assert not failed, result
    key, cert = _read(args["privatekey_path"]), _read(args["path"])
    os.chmod(args["privatekey_path"], 0o644)

    failed, result = module_run.run("dicom_cert", args, check_mode=True)
    assert not failed and result["changed"], result
    assert [(a["path"], a["action"]) for a in result["actions"]] == [(args["privatekey_path"], "attributes_changed")], (
        result["actions"]
    )
    assert "0644" in result["actions"][0]["reason"]
    assert stat.S_IMODE(os.stat(args["privatekey_path"]).st_mode) == 0o644  # check mode changed nothing

    failed, result = module_run.run("dicom_cert", args)
    assert not failed and result["changed"], result
    assert stat.S_IMODE(os.stat(args["privatekey_path"]).st_mode) == 0o600
    assert _read(args["privatekey_path"]) == key and _read(args["path"]) == cert  # same key, same certificate

    failed, result = module_run.run("dicom_cert", args)
    assert not failed and not result["changed"], result


def _created_entries(work: str, before: set) -> list[tuple[str, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(work):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if path not in before and not os.path.islink(path):
                out.append((path, stat.S_IMODE(os.lstat(path).st_mode)))
    return out


def test_umask_000_creates_nothing_others_can_write(workspace, work):
    deep = os.path.join(work, "new", "tree")
    runs = {
        "dicom_cert": dict(
            path=os.path.join(deep, "tls", "node.pem"),
            privatekey_path=os.path.join(deep, "private", "node.key"),
            chain_path=os.path.join(deep, "tls", "node.chain.pem"),
        ),
        "dicom_pkcs12": dict(path=os.path.join(deep, "p12", "appliance.p12")),
        "dicom_metrics": dict(path=os.path.join(deep, "metrics", "dicom_tls.prom")),
        "dicom_truststore": dict(path=os.path.join(deep, "trust")),
        "dicom_crl": dict(path=os.path.join(work, "out", "ca.crl")),  # its folder must exist
    }
    before = {os.path.join(d, n) for d, ds, fs in os.walk(work) for n in ds + fs}
    old = os.umask(0)
    try:
        for module, change in runs.items():
            failed, result = module_run.run(module, dict(workspace.base(module, work), **change))
            assert not failed, (module, result)
    finally:
        os.umask(old)
    created = _created_entries(work, before)
    assert len(created) >= 12, created
    writable = [(p, oct(m)) for p, m in created if m & 0o022]
    assert not writable, writable
    modes = dict(created)
    assert modes[os.path.join(deep, "private")] == 0o700
    # the key paths are links into their generation stores (files.write_generation): the files they name
    assert modes[os.path.realpath(os.path.join(deep, "private", "node.key"))] == 0o600
    assert modes[os.path.realpath(os.path.join(deep, "p12", "appliance.p12"))] == 0o600
