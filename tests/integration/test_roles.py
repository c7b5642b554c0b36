"""The roles and playbooks on a live fleet of three dcmtk storescp listeners on loopback:
revocation, CRL refresh, rollback after a failed proof, and no private key in any output.

Each node is checked with dcmtk's own echoscu reading the option files the role wrote
(``echoscu @DIR/echoscu.args``), so the tests exercise what an operator would run by hand.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml
from support.age_crl import age
from support.ansible_run import ROOT
from support.fleet import LocalFleet
from support.servers import dcmtk

pytestmark = pytest.mark.skipif(
    os.environ.get("DICOM_TLS_NETNS") != "1", reason="live listeners only inside scripts/netns.sh (make integration)"
)

NODES = {"dcmtk-a": 11412, "dcmtk-b": 11413, "dcmtk-c": 11414}
INSTALL = "Install the certificate and its chain next to the key"


class Fleet(LocalFleet):
    def __init__(self, state):
        super().__init__(state, NODES, dicom_tls_crl_next_update_days=1, dicom_tls_crl_renew_before_days=0.5)

    def node_dir(self, node):
        return os.path.join(self.state, "nodes", node)

    def echo(self, client, server):
        """echoscu of ``client`` (its key, chain, trust directory, CRL check, profile, from its option
        file) to the listener of ``server``."""
        args = os.path.join(self.node_dir(client), "echoscu.args")
        aec = server.upper().replace("-", "_")
        return subprocess.run(
            [dcmtk("echoscu"), "@" + args, "-aec", aec, "127.0.0.1", str(NODES[server])],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def crl_number(self, path):
        out = subprocess.run(
            ["openssl", "crl", "-in", path, "-noout", "-crlnumber"], capture_output=True, text=True, check=False
        )
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip().split("=")[1], 16)

    def trust_crls(self, node):
        trust = os.path.join(self.node_dir(node), "tls", "trust")
        return sorted(os.path.join(trust, f) for f in os.listdir(trust) if re.fullmatch(r"[0-9a-f]{8}\.r\d+", f))

    def stop(self):
        self.play("stop.yml")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    res = f.play("rollout.yml")
    try:
        assert res.rc == 0, res.output[-4000:]
        yield f
    finally:
        f.stop()
        # Private keys never show up in any output of any playbook run.
        for out in f.outputs:
            assert "PRIVATE KEY" not in out


def _stats(res, host):
    return res.stats(host)


def test_rollout_every_pair_answers(fleet):
    for client in NODES:
        for server in NODES:
            r = fleet.echo(client, server)
            assert r.returncode == 0, "%s -> %s: %s" % (client, server, r.stderr or r.stdout)


def test_rerun_changes_nothing_signs_once_and_copies_nothing(fleet):
    """The rerun: changed=0 on every host, the CA works once for the play (one signing task, one
    read of its material), no backup is made, and every listener is still proved by a live C-ECHO."""
    res = fleet.play("rollout.yml")
    assert res.rc == 0, res.output[-4000:]
    for host in ["ca", *NODES]:
        assert res.stats(host)["changed"] == 0, (host, res.stats(host))
    tasks = [t for play in res.data["plays"] for t in play["tasks"]]
    signing = [
        t for t in tasks if t["task"]["name"].endswith("Sign every due CSR of the play on the CA host, in one task")
    ]
    assert len(signing) == 1 and len(signing[0]["hosts"]) == 1
    assert not any(e["changed"] for e in next(iter(signing[0]["hosts"].values()))["issued"].values())
    proofs = [t for t in tasks if t["task"]["name"].endswith("Prove the listener with live TLS C-ECHOs")]
    assert sorted(proofs[0]["hosts"]) == sorted(NODES)
    assert all(not r.get("failed") for r in proofs[0]["hosts"].values())
    for node in NODES:
        for root, dirs, files in os.walk(fleet.node_dir(node)):
            assert not [f for f in files + dirs if f.endswith("~")], root
    # the node already holds what the CA returned, byte for byte: no install module runs at all
    installs = [t for t in tasks if t["task"]["name"].endswith(INSTALL)]
    assert installs == [], installs


def test_rerun_reinstalls_a_chain_the_node_lost(fleet):
    """The install is skipped only when the node's files are the CA's certificate and chain: a
    chain file that was emptied by hand is written again on the next rollout (and the listener
    restarted on it), while the other nodes stay unchanged."""
    node = "dcmtk-a"
    chain = os.path.join(fleet.node_dir(node), "tls", "node.chain.pem")
    good = open(chain).read()
    pid_file = os.path.join(fleet.state, "run", node, "storescp.pid")
    pid = open(pid_file).read()
    with open(chain, "w") as fh:
        fh.write("")
    res = fleet.play("rollout.yml")
    assert res.rc == 0, res.output[-4000:]
    assert open(chain).read() == good
    assert res.stats(node)["changed"] > 0
    tasks = [t for play in res.data["plays"] for t in play["tasks"]]
    installs = [t for t in tasks if t["task"]["name"].endswith(INSTALL)]
    assert {h for t in installs for h in t["hosts"]} == {node}
    assert [t["hosts"][node]["changed"] for t in installs if not t["hosts"][node].get("skipped")] == [True]
    for host in ["ca", "dcmtk-b", "dcmtk-c"]:
        assert res.stats(host)["changed"] == 0, (host, res.stats(host))
    assert open(pid_file).read() != pid
    assert fleet.echo("dcmtk-b", node).returncode == 0


def test_crl_refresh_nothing_when_not_due(fleet):
    crl = os.path.join(fleet.state, "pki", "site-ca", "issuing.crl.pem")
    before = fleet.crl_number(crl)
    res = fleet.play("crl_refresh.yml")
    assert res.rc == 0, res.output[-4000:]
    assert fleet.crl_number(crl) == before
    for host in ["ca", *NODES]:
        assert _stats(res, host).get("changed", 0) == 0, (host, _stats(res, host))


def test_crl_refresh_when_due_issues_and_deploys(fleet):
    crl = os.path.join(fleet.state, "pki", "site-ca", "issuing.crl.pem")
    before = fleet.crl_number(crl)
    pids = {n: open(os.path.join(fleet.state, "run", n, "storescp.pid")).read() for n in NODES}
    # Time moves on: the CRL (1 day validity) has 6 hours left, inside the 12-hour refresh window.
    ca = os.path.join(fleet.state, "pki", "site-ca")
    age(crl, os.path.join(ca, "issuing.pem"), os.path.join(ca, "private", "issuing.key"), hours_left=6)
    assert fleet.crl_number(crl) == before
    res = fleet.play("crl_refresh.yml")
    assert res.rc == 0, res.output[-4000:]
    assert fleet.crl_number(crl) == before + 1
    for node in NODES:
        (entry,) = fleet.trust_crls(node)
        assert fleet.crl_number(entry) == before + 1
        # storescp caches CRLs: the listener was restarted on the new one.
        assert open(os.path.join(fleet.state, "run", node, "storescp.pid")).read() != pids[node]
    assert fleet.echo("dcmtk-a", "dcmtk-c").returncode == 0


def test_revoke_one_node_refused_by_every_dcmtk_listener(fleet):
    revoked = json.dumps([{"node": "dcmtk-b"}])
    res = fleet.play("revoke.yml", "-e", '{"dicom_tls_revoked": %s}' % revoked)
    assert res.rc == 0, res.output[-4000:]
    for server in NODES:
        r = fleet.echo("dcmtk-b", server)
        assert r.returncode != 0, "revoked dcmtk-b was accepted by %s" % server
    for client in ("dcmtk-a", "dcmtk-c"):
        for server in ("dcmtk-a", "dcmtk-c"):
            r = fleet.echo(client, server)
            assert r.returncode == 0, "%s -> %s: %s" % (client, server, r.stderr or r.stdout)
    report = open(os.path.join(fleet.state, "verify-report.txt")).read()
    assert "9 of 9 pairs as expected" in report


def test_rollback_when_the_proof_fails(fleet):
    """A certificate from a CA the peers do not trust: the node is left on its previous material,
    still answering, and the play fails with the reason."""
    node = "dcmtk-c"
    cert = os.path.join(fleet.node_dir(node), "tls", "node.pem")
    chain = os.path.join(fleet.node_dir(node), "tls", "node.chain.pem")
    before = open(cert).read()
    chain_before = open(chain).read()
    backups_before = sorted(n for n in os.listdir(os.path.dirname(cert)) if n.endswith("~"))
    # The foreign CA exists on the CA host, but no node trusts it.
    res = fleet.play("rollout.yml", "--limit", "ca", dicom_tls_trusted_ca_names=["foreign"])
    assert res.rc == 0, res.output[-4000:]
    res = fleet.play(
        "rollout.yml",
        "--limit",
        "ca,%s" % node,
        dicom_tls_ca_name="foreign",
        dicom_tls_trusted_ca_names=["site-ca"],
    )
    assert res.rc != 0
    assert "were put back" in res.output, res.output[-4000:]
    assert "server_certificate_rejected" in res.output or "certificate" in res.output
    assert open(cert).read() == before
    # the modules' own backups were put back: certificate and chain as before, no backup left over
    assert open(chain).read() == chain_before
    assert sorted(n for n in os.listdir(os.path.dirname(cert)) if n.endswith("~")) == backups_before
    for client in ("dcmtk-a", node):
        r = fleet.echo(client, node)
        assert r.returncode == 0, "%s -> %s after rollback: %s" % (client, node, r.stderr or r.stdout)


def test_no_task_moves_a_private_key():
    """No fetch, copy or slurp of a private key anywhere in the roles and playbooks."""
    offenders = []
    for base in ("roles", "playbooks"):
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, base)):
            for name in files:
                if not name.endswith(".yml"):
                    continue
                path = os.path.join(dirpath, name)
                docs = yaml.safe_load(open(path)) or []
                for task in _tasks(docs):
                    for mod in ("ansible.builtin.fetch", "ansible.builtin.copy", "ansible.builtin.slurp"):
                        if mod in task and re.search(r"private|\.key\b", json.dumps(task[mod])):
                            offenders.append("%s: %s" % (path, task.get("name")))
    assert offenders == []


def _tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always", "tasks", "handlers", "pre_tasks", "post_tasks"):
            if key in node:
                yield from _tasks(node[key])
