"""The playbooks over SSH, as real users run them: three dcmtk nodes, each behind its own sshd on
its own loopback address (127.0.0.21-23), reached as the unprivileged user ``dicomops`` with
``become: true`` (sudo); the CA stays on the control node.

rollout, rerun (changed=0 everywhere), verify (every pair by live TLS C-ECHO), CRL refresh, CA
rotation, revoke and stop run over it; a -vvv run shows no private key material. The timings of the first rollout,
the rerun and a one-task ping play over the same inventory are written to timings.json in the
fleet's folder and printed (``pytest -s``)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml
from support.ansible_run import ROOT, ansible_env
from support.servers import dcmtk
from support.ssh_fleet import SSHFleet, missing

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

NODES = {"ssh-a": ("127.0.0.21", 11422), "ssh-b": ("127.0.0.22", 11423), "ssh-c": ("127.0.0.23", 11424)}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = SSHFleet(tmp_path_factory.mktemp("sshfleet"), NODES)
    f.timings = {}
    f.start()
    try:
        start = time.monotonic()
        res = f.play("rollout.yml")
        f.timings["rollout_first_s"] = round(time.monotonic() - start, 1)
        assert res.rc == 0, res.output[-4000:]
        yield f
    finally:
        try:
            f.play("stop.yml")
        finally:
            f.stop_sshd()
        with open(os.path.join(f.state, "timings.json"), "w") as fh:
            json.dump(f.timings, fh)
        print("SSH fleet timings (3 nodes + CA):", json.dumps(f.timings))
        for out in f.outputs:
            assert "PRIVATE KEY" not in out


def _echo(fleet, client, server):
    args = os.path.join(fleet.state, "nodes", client, "echoscu.args")
    address, port = NODES[server]
    return subprocess.run(
        [dcmtk("echoscu"), "@" + args, "-aec", server.upper().replace("-", "_"), address, str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_rollout_ran_over_ssh_with_become(fleet):
    """The node material was written by root through sudo (become), reached as dicomops over SSH."""
    for node in NODES:
        key = os.path.join(fleet.state, "nodes", node, "private", "node.key")
        st = os.stat(key)
        assert st.st_uid == 0 and oct(st.st_mode & 0o777) == "0o600", (key, st)
    for client in NODES:
        for server in NODES:
            r = _echo(fleet, client, server)
            assert r.returncode == 0, "%s -> %s: %s" % (client, server, r.stderr or r.stdout)


def test_rerun_changes_nothing_and_ping_costs(fleet, tmp_path):
    start = time.monotonic()
    res = fleet.play("rollout.yml")
    fleet.timings["rollout_rerun_s"] = round(time.monotonic() - start, 1)
    assert res.rc == 0, res.output[-4000:]
    for host in ["ca", *NODES]:
        assert res.stats(host)["changed"] == 0, (host, res.stats(host))
    ping = tmp_path / "ping.yml"
    ping.write_text("- hosts: dcmtk_nodes\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n")
    start = time.monotonic()
    res = fleet.play(str(ping))
    fleet.timings["ping_s"] = round(time.monotonic() - start, 1)
    assert res.rc == 0, res.output[-4000:]
    assert all(res.stats(h)["ok"] == 1 for h in NODES)


def test_verify_every_pair(fleet):
    res = fleet.play("verify.yml")
    assert res.rc == 0, res.output[-4000:]
    report = open(os.path.join(fleet.state, "verify-report.txt")).read()
    assert "9 of 9 pairs as expected" in report, report


def test_crl_refresh_not_due_changes_nothing(fleet):
    res = fleet.play("crl_refresh.yml")
    assert res.rc == 0, res.output[-4000:]
    for host in ["ca", *NODES]:
        assert res.stats(host).get("changed", 0) == 0, (host, res.stats(host))


def test_rotate_ca_over_ssh(fleet):
    """rotate_ca.yml over SSH (three phases, the C-ECHO matrix after each); then the inventory names the
    new CA, as the playbook tells the user to do: every node certificate chains to the new root only,
    the old root is gone from the trust stores and every pair still answers."""
    res = fleet.play("rotate_ca.yml", rotate_ca_from="site-ca", rotate_ca_to="site-ca-2")
    assert res.rc == 0, res.output[-4000:]
    inv = yaml.safe_load(open(fleet.inventory))
    inv["all"]["vars"]["dicom_tls_ca_name"] = "site-ca-2"
    with open(fleet.inventory, "w") as fh:
        yaml.safe_dump(inv, fh)
    pki = os.path.join(fleet.state, "pki")
    for node in NODES:
        tls = os.path.join(fleet.state, "nodes", node, "tls")
        for ca, verdict in (("site-ca-2", 0), ("site-ca", 2)):
            root = os.path.join(pki, ca, "root.pem")
            r = subprocess.run(
                ["openssl", "verify", "-CAfile", root, "-untrusted", os.path.join(tls, "node.chain.pem"),
                 os.path.join(tls, "node.pem")],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert (r.returncode == 0) == (verdict == 0), (node, ca, r.stdout + r.stderr)
    for client in NODES:
        for server in NODES:
            r = _echo(fleet, client, server)
            assert r.returncode == 0, "%s -> %s: %s" % (client, server, r.stderr or r.stdout)


def test_revoke_over_ssh_and_no_key_in_verbose_output(fleet):
    """revoke.yml at -vvv (the connection's own logging, module arguments and results): the
    revoked node is refused, the others answer, and no private key material is in the output."""
    cmd = [
        "ansible-playbook",
        os.path.join(ROOT, "playbooks", "revoke.yml"),
        "-i",
        fleet.inventory,
        "-vvv",
        "-e",
        json.dumps({"dicom_tls_revoked": [{"node": "ssh-b"}]}),
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ansible_env(ANSIBLE_STDOUT_CALLBACK="default"),
        check=False,
    )
    out = proc.stdout + proc.stderr
    fleet.outputs.append(out)
    assert proc.returncode == 0, out[-4000:]
    assert "ESTABLISH SSH CONNECTION FOR USER: dicomops" in out
    assert "BECOME" in out or "sudo" in out
    assert "PRIVATE KEY" not in out
    # nor any line of a node key's base64 body (a key passed around without its PEM armour)
    for node in NODES:
        body = open(os.path.join(fleet.state, "nodes", node, "private", "node.key")).read().splitlines()[1:-1]
        assert not [line for line in body if line in out], node
    for server in NODES:
        assert _echo(fleet, "ssh-b", server).returncode != 0, server
    assert _echo(fleet, "ssh-a", "ssh-c").returncode == 0
