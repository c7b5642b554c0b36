"""Every EXAMPLES block of every module and filter, run as written in one playbook.

The examples build what a node of the demo fleet has (the site CA under /etc/dicom-tls/pki/site-ca,
node dcmtk-a's key, certificate, chain and hashed trust directory under /etc/dicom-tls/dcmtk-a, its
storescp listener on port 11112, Orthanc's DicomTls settings) and then check, report and sign with
it. The only change made to them is the root of their absolute paths (/etc/dicom-tls, /etc/orthanc,
/srv/dicom, /run/dicom-tls, /var/log/dicom-tls, /var/lib/dicom-tls), moved into a temporary folder.
The test gives them what the roles would have made before them: the CA and node folders, the
option file of storescp, a copy of Debian's /etc/orthanc, and DICOM files to sign.
"""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess

import pytest
import yaml
from support.ansible_run import ROOT, run_playbook
from support.dicom_files import write_ct
from support.servers import stop_pid

_live = pytest.mark.skipif(
    os.environ.get("DICOM_TLS_NETNS") != "1", reason="live listeners only inside scripts/netns.sh (make integration)"
)

# The order of a rollout: CA and node certificate, CRL, trust stores, Orthanc's settings, the
# listener, live checks and their reports, then DICOM signatures with the node's key.
MODULES = [
    "dicom_cert",
    "dicom_csr_check",
    "dicom_cert_export",
    "dicom_pkcs12",
    "dicom_crl",
    "dicom_metrics",
    "dicom_ledger_info",
    "dicom_truststore",
    "dcmtk_option_files",
    "dicom_cert_info",
    "orthanc_config",
    "dicom_daemon",
    "dicom_tls_echo",
]
FILTERS = ["json_query", "echo_matrix", "expiry_table", "uses_systemd", "certificate_due"]
LAST = ["dicom_sign"]
# Examples of a fleet: run on the demo fleet (playbooks/inventory/demo.yml) after its rollout, the nodes'
# examples in one play over dicom_nodes, then the CA host's.
FLEET = {
    "dicom_nodes": [
        "endpoints",
        "orthanc_modalities",
        "revoked_nodes",
        "mesh_targets",
        "appliance_endpoints",
        "echo_pairs",
        "expiry_entries",
        "dicom_csr_sign",
        "sign_requests",
    ],
    "dicom_ca": ["revoked_entries"],
}
FLEET_MODULES = {"dicom_csr_sign"}
ROOTS = [
    "/etc/dicom-tls",
    "/etc/orthanc",
    "/srv/dicom",
    "/run/dicom-tls",
    "/var/log/dicom-tls",
    "/var/lib/dicom-tls",
    "/var/lib/prometheus",
]
# Variables the examples take from a vault.
VAULT = {"vault_mr02_pkcs12_passphrase": "example only"}


def module_examples(name: str) -> str:
    tree = ast.parse(open(os.path.join(ROOT, "plugins", "modules", name + ".py"), encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXAMPLES":
            return node.value.value
    raise AssertionError("%s has no EXAMPLES" % name)


def filter_examples(name: str) -> str:
    with open(os.path.join(ROOT, "plugins", "filter", name + ".yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["EXAMPLES"]


def test_every_module_and_filter_is_run():
    modules = {f[:-3] for f in os.listdir(os.path.join(ROOT, "plugins", "modules")) if f.endswith(".py")}
    filters = {f[:-4] for f in os.listdir(os.path.join(ROOT, "plugins", "filter")) if f.endswith(".yml")}
    fleet = {n for names in FLEET.values() for n in names}
    assert modules == set(MODULES + LAST) | FLEET_MODULES
    assert filters == set(FILTERS) | (fleet - FLEET_MODULES)


@_live
def test_every_example_runs_as_written(tmp_path):
    base = str(tmp_path)
    moved = {r: base + r.replace("/", "_").replace("_", "/", 1) for r in ROOTS}

    def move(text: str) -> str:
        for old, new in moved.items():
            text = text.replace(old + "/", new + "/").replace(old + '"', new + '"').replace(old + "\n", new + "\n")
        return text

    blocks = {n: module_examples(n) for n in MODULES + LAST}
    blocks.update({n: filter_examples(n) for n in FILTERS})
    tasks = []
    for name in MODULES + FILTERS + LAST:
        examples = yaml.safe_load(move(blocks[name]))
        assert examples, "%s: no examples" % name
        for task in examples:
            task["name"] = "%s | %s" % (name, task["name"])
        tasks += examples

    # What the roles write before these modules run.
    etc, data = moved["/etc/dicom-tls"], moved["/var/lib/dicom-tls"]
    os.makedirs(os.path.join(moved["/var/lib/prometheus"], "node-exporter"))
    for d in ("pki/site-ca/private", "pki/site-ca/issued", "pki/site-ca/appliances", "dcmtk-a/tls", "dcmtk-a/private"):
        os.makedirs(os.path.join(etc, d))
    os.makedirs(os.path.join(data, "dcmtk-a"))
    for d in ("/run/dicom-tls", "/var/log/dicom-tls"):
        os.makedirs(os.path.join(moved[d], "dcmtk-a"))
    with open(os.path.join(etc, "dcmtk-a", "storescp.args"), "w") as fh:
        fh.write(
            "+tls {e}/private/node.key {e}/tls/node.chain.pem\n+cd {e}/tls/trust\n+crv\n+py\n-rc\n"
            "-aet DCMTK_A\n-od {d}\n".format(e=os.path.join(etc, "dcmtk-a"), d=os.path.join(data, "dcmtk-a"))
        )
    shutil.copytree("/etc/orthanc", moved["/etc/orthanc"])
    os.makedirs(os.path.join(moved["/etc/orthanc"], "tls"), exist_ok=True)
    srv = moved["/srv/dicom"]
    for d in ("incoming/study", "export"):
        os.makedirs(os.path.join(srv, d))
    for i in (1, 2):
        write_ct(os.path.join(srv, "incoming", "study", "ct%d.dcm" % i), seed=i)
    write_ct(os.path.join(srv, "export", "ct.dcm"), seed=3)
    write_ct(os.path.join(srv, "report.dcm"), seed=4)

    playbook = tmp_path / "examples.yml"
    playbook.write_text(
        yaml.safe_dump(
            [{"name": "Examples", "hosts": "localhost", "gather_facts": False, "vars": VAULT, "tasks": tasks}]
        )
    )
    pidfile = os.path.join(moved["/run/dicom-tls"], "dcmtk-a", "storescp.pid")
    try:
        res = run_playbook(str(playbook))
    finally:
        if os.path.exists(pidfile):
            stop_pid(int(open(pidfile).read().strip()))
    results = {r["_task"]: r for r in res.results()}
    failed = {name: r.get("msg") for name, r in results.items() if r.get("failed")}
    assert res.rc == 0 and not failed, failed or res.output[-4000:]
    assert len(results) == len(tasks)

    # What the examples say they return.
    not_answering = results[
        "json_query | Targets that did not answer, with the reason (one [host, port, reason] list per target)"
    ]
    assert [row[:2] for row in not_answering["msg"]] == [["127.0.0.1", 11119]]
    assert "11119" in not_answering["msg"][0][2]
    assert results["json_query | Ports of the Orthanc nodes of a fleet (here [11114])"]["msg"] == [11114]
    matrix = results["echo_matrix | Print the matrix (row DCMTK_A, column 127.0.0.1:11112)"]["msg"]
    assert matrix[0].split()[-1] == "127.0.0.1:11112" and matrix[2].split() == ["DCMTK_A", "ok"]
    named = results["echo_matrix | Print a matrix of named pairs, a refusal that was expected among them"]["msg"]
    assert "2 of 2 pairs as expected" in named
    expiry = results[
        'expiry_table | Print the expiry report (soonest first; 30 days or fewer left reads "renew soon")'
    ]["msg"]
    assert expiry[2].split()[0] == "dcmtk-a" and expiry[2].split()[-1] == "ok"
    assert os.path.exists(os.path.join(srv, "report-signed.dcm"))
    systemd = results[
        "uses_systemd | Resolve a service_manager setting against a host's facts (here [true, false, false])"
    ]
    assert systemd["msg"] == [True, False, False], systemd["msg"]
    due = results["certificate_due | Whether a node has certificate work left (here [false, true, true])"]
    assert due["msg"] == [False, True, True], due["msg"]


# The demo fleet's ports, moved so that this test and the one above may run side by side.
FLEET_PORTS = {"dcmtk-a": 11712, "dcmtk-b": 11713, "orthanc-a": 11714}
# What the fleet examples find in dicom_tls_revoked: a node that is not in the fleet (the CA never
# issued it a certificate) and a serial, so the CRL example has an entry and every pair still answers.
FLEET_REVOKED = [{"node": "us-03"}, {"serial": 4242, "reason": "superseded"}]


@_live
def test_fleet_examples_run_as_written_on_the_demo_fleet(tmp_path):
    """The examples of the fleet filters and of dicom_csr_sign, run on the demo fleet after its rollout.
    Their node paths (/etc/dicom-tls/NODE) and CA paths (/etc/dicom-tls/pki) are moved to where the
    demo inventory keeps them; nothing else is changed."""
    state = str(tmp_path / "demo")
    with open(os.path.join(ROOT, "playbooks", "inventory", "demo.yml"), encoding="utf-8") as fh:
        inventory = yaml.safe_load(fh)
    nodes = inventory["all"]["children"]["dicom_nodes"]["children"]
    for group in nodes.values():
        for host, hostvars in group["hosts"].items():
            hostvars["dicom_tls_port"] = FLEET_PORTS[host]
    nodes["orthanc_nodes"]["hosts"]["orthanc-a"]["dicom_tls_http_port"] = 18742
    inventory["all"]["vars"]["crl_refresh_schedule"] = False
    inv = tmp_path / "demo.yml"
    inv.write_text(yaml.safe_dump(inventory))
    env = {"DICOM_TLS_DEMO_DIR": state}

    def move(text: str) -> str:
        return text.replace("/etc/dicom-tls/pki/", state + "/pki/").replace("/etc/dicom-tls/", state + "/nodes/")

    plays = []
    for hosts, names in FLEET.items():
        tasks = []
        for name in names:
            text = module_examples(name) if name in FLEET_MODULES else filter_examples(name)
            examples = yaml.safe_load(move(text))
            assert examples, "%s: no examples" % name
            for task in examples:
                task["name"] = "%s | %s" % (name, task["name"])
            tasks += examples
        plays.append(
            {
                "name": "Examples",
                "hosts": hosts,
                "gather_facts": False,
                "vars": {"dicom_tls_revoked": FLEET_REVOKED},
                "tasks": tasks,
            }
        )
    playbook = tmp_path / "fleet-examples.yml"
    playbook.write_text(yaml.safe_dump(plays))

    try:
        rollout = run_playbook(os.path.join(ROOT, "playbooks", "rollout.yml"), inventory=str(inv), env=env)
        assert rollout.rc == 0, rollout.output[-4000:]
        res = run_playbook(str(playbook), inventory=str(inv), env=env)
    finally:
        run_playbook(os.path.join(ROOT, "playbooks", "stop.yml"), inventory=str(inv), env=env)
        for node in FLEET_PORTS:
            for pidfile in glob.glob(os.path.join(state, "run", node, "*.pid")):
                stop_pid(int(open(pidfile).read().strip()))
    assert res.rc == 0, res.output[-4000:]
    for host in ["ca", *FLEET_PORTS]:
        failed = {r["_task"]: r.get("msg") for r in res.results(host) if r.get("failed")}
        assert not failed, (host, failed)

    by_task = {host: {r["_task"]: r for r in res.results(host)} for host in FLEET_PORTS}
    # endpoints: every node, in inventory order; mesh_targets: each node called every node, as expected.
    for host in FLEET_PORTS:
        echo = by_task[host]["mesh_targets | TLS C-ECHO to every node of the fleet"]
        assert sorted(r["port"] for r in echo["results"]) == sorted(FLEET_PORTS.values())
        assert all(r["status"] == "success" and r["as_expected"] for r in echo["results"]), echo["results"]
    servers = res.results("dcmtk-a")
    # orthanc_modalities: the two peers of orthanc-a, with their ports.
    facts = next(r for r in res.results("orthanc-a") if r["_task"].startswith("orthanc_modalities |"))
    modalities = facts["ansible_facts"]["modalities"]
    assert {n: m["Port"] for n, m in modalities.items()} == {"dcmtk-a": 11712, "dcmtk-b": 11713}
    assert servers
    # dicom_csr_sign: the subject of the example reissued each node's certificate; sign_requests then
    # finds nothing due. openssl verifies each installed certificate against the demo CA.
    signed = by_task["dcmtk-a"]["dicom_csr_sign | Every due CSR of the play signed on the CA host, in one task"]
    assert sorted(signed["issued"]) == sorted(FLEET_PORTS) and all(e["changed"] for e in signed["issued"].values())
    again = by_task["dcmtk-a"]["sign_requests | Sign every due CSR of the play on the CA host"]
    assert not any(e["changed"] for e in again["issued"].values())
    ca = os.path.join(state, "pki", "site-ca")
    for host in FLEET_PORTS:
        node = os.path.join(state, "nodes", host, "tls")
        out = subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                os.path.join(ca, "root.pem"),
                "-untrusted",
                os.path.join(ca, "issuing.pem"),
                os.path.join(node, "node.pem"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        subject = subprocess.run(
            ["openssl", "x509", "-in", os.path.join(node, "node.pem"), "-noout", "-subject"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "Example Hospital" in subject and host in subject
    # revoked_entries: the serial is in the CRL; the node the CA never issued is not.
    crl = subprocess.run(
        ["openssl", "crl", "-in", os.path.join(ca, "issuing.crl.pem"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Serial Number: 1092" in crl and crl.count("Serial Number:") == 1
