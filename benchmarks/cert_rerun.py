"""20 node certificates managed by a play (root, issuing CA, key + CSR on each node, signing, install):
first run against an idempotent second run, medians of several rounds, ratio printed.

    python benchmarks/cert_rerun.py [--nodes 20] [--rounds 3] [--shape roles|loop|both] [--forks 5] [--plain]

The play has the shape the collection recommends and its roles run (docs/rollout.md,
roles/pki/tasks/node_certificate.yml, the EXAMPLES of dicom_csr_sign): each node is a host of the
inventory (local connection) and
1. creates its key and CSR with dicom_cert state=csr, which also reports the SHA-256 of the
   certificate and chain it holds (path_sha256, chain_path_sha256);
2. one dicom_csr_sign task on the CA host (run_once, delegate_to) signs every CSR of the play that
   is due, reading the CA once, and records what it issues in the CA's index.txt;
3. a node installs the chain the CA returned (dicom_cert certificate_content) only when it differs
   from what the node holds (the certificate_due filter, the roles' condition).
The root and issuing CA are two dicom_cert tasks on the CA host. A rerun is then 2 + 1 + one task
per node, each finding nothing due, instead of 2 + 3 per node.

--shape loop measures the play this benchmark ran before (one host, one dicom_cert call per node in
a loop for the CSR, another for the signing, another for the install), for comparison; --shape both
runs the two, one after the other.

Every ansible-playbook run uses pipelining (ANSIBLE_PIPELINING=1, what docs/rollout.md recommends
keeping in production), as benchmarks/rollout.py does; --plain runs with Ansible's defaults.

Target (issues 2 and 12): the second run takes at most half the time of the first (no key
generation, no signing, no writes when nothing is due). Ansible's fixed cost per module call (fork,
AnsiballZ, Python start-up: a few hundred milliseconds) is paid on both runs, so the script also
prints the same work measured inside the library (plan + apply against plan alone), where the
skipped key generation, signing and writes show without that fixed cost, and, as the yardstick of
that fixed cost, a ping play over the same inventory (roles shape) or a loop of ping calls of the
same length (loop shape)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests")]

from support.ansible_run import run_playbook, run_tasks  # noqa: E402

sys.path[:0] = [os.path.join(ROOT, ".build", "collections")]
from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as backend  # noqa: E402

ENV: dict = {}
M = "medimg.dicom_tls.dicom_cert"


def ca_tasks(d: str) -> list[dict]:
    return [
        {
            "name": "root",
            M: {
                "path": d + "/root.pem",
                "privatekey_path": d + "/root.key",
                "usage": "root_ca",
                "subject": {"CN": "Bench Root"},
            },
        },
        {
            "name": "issuing",
            M: {
                "path": d + "/inter.pem",
                "privatekey_path": d + "/inter.key",
                "usage": "intermediate_ca",
                "subject": {"CN": "Bench Issuing"},
                "issuer_cert_path": d + "/root.pem",
                "issuer_privatekey_path": d + "/root.key",
            },
        },
    ]


def loop_tasks(d: str, nodes: int) -> list[dict]:
    """The play this benchmark ran before: one host, a loop of dicom_cert calls per step."""
    m = M
    out = ca_tasks(d)
    loop = [{"n": i} for i in range(nodes)]
    out += [
        {
            "name": "node key and csr",
            "loop": loop,
            m: {
                "state": "csr",
                "privatekey_path": d + "/n{{ item.n }}.key",
                "csr_path": d + "/n{{ item.n }}.csr",
                "subject": {"CN": "node-{{ item.n }}"},
                "subject_alt_names": ["DNS:node-{{ item.n }}"],
            },
            "register": "csrs",
        },
        {
            "name": "sign",
            "loop": "{{ csrs.results }}",
            m: {
                "path": d + "/issued-{{ item.item.n }}.pem",
                "csr_content": "{{ item.csr }}",
                "issuer_cert_path": d + "/inter.pem",
                "issuer_privatekey_path": d + "/inter.key",
            },
            "register": "issued",
        },
        {
            "name": "install",
            "loop": "{{ issued.results }}",
            m: {
                "path": d + "/n{{ item.item.item.n }}.pem",
                "privatekey_path": d + "/n{{ item.item.item.n }}.key",
                "certificate_content": "{{ item.certificate }}",
                "chain_path": d + "/n{{ item.item.item.n }}-chain.pem",
            },
        },
    ]
    return out


def roles_play(d: str) -> list[dict]:
    """The shape of roles/pki/tasks/node_certificate.yml: key and CSR on each node, one signing task
    on the CA host for the whole play, an install only where the node's files differ."""
    node = d + "/{{ inventory_hostname }}"
    return [
        {"name": "CA", "hosts": "ca", "gather_facts": False, "tasks": ca_tasks(d)},
        {
            "name": "nodes",
            "hosts": "nodes",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "node key and csr",
                    M: {
                        "state": "csr",
                        "privatekey_path": node + ".key",
                        "csr_path": node + ".csr",
                        "path": node + ".pem",
                        "chain_path": node + "-chain.pem",
                        "subject": {"CN": "{{ inventory_hostname }}"},
                        "subject_alt_names": ["DNS:{{ inventory_hostname }}"],
                    },
                    "register": "node_csr",
                },
                {
                    "name": "sign every due CSR on the CA host",
                    "medimg.dicom_tls.dicom_csr_sign": {
                        "requests": "{{ ansible_play_batch | medimg.dicom_tls.sign_requests(hostvars, 'node_csr', "
                        "'%s/issued') }}" % d,
                        "issuer_cert_path": d + "/inter.pem",
                        "issuer_privatekey_path": d + "/inter.key",
                        "database": d + "/index.txt",
                    },
                    "delegate_to": "ca",
                    "run_once": True,
                    "register": "signed",
                },
                {
                    "name": "install",
                    M: {
                        "path": node + ".pem",
                        "privatekey_path": node + ".key",
                        "certificate_content": "{{ signed.issued[inventory_hostname].chain }}",
                        "chain_path": node + "-chain.pem",
                    },
                    # the condition under which the roles include their install (node_certificate.yml)
                    "when": "signed.issued[inventory_hostname] | default({})"
                    " | medimg.dicom_tls.certificate_due(node_csr, ansible_check_mode)",
                },
            ],
        },
    ]


def inventory(d: str, nodes: int) -> str:
    hosts = {"node-%02d" % i: None for i in range(nodes)}
    inv = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "children": {"cas": {"hosts": {"ca": None}}, "nodes": {"hosts": hosts}},
        }
    }
    path = os.path.join(d, "inventory.json")
    with open(path, "w") as fh:
        json.dump(inv, fh)
    return path


def write_play(d: str, play: list[dict], name: str) -> str:
    path = os.path.join(d, name)
    with open(path, "w") as fh:
        json.dump(play, fh)
    return path


def timed(d: str, nodes: int, shape: str, rerun: bool = False) -> float:
    start = time.perf_counter()
    if shape == "loop":
        res = run_tasks(loop_tasks(d, nodes), env=ENV)
    else:
        res = run_playbook(write_play(d, roles_play(d), "play.json"), inventory=inventory(d, nodes), env=ENV)
    elapsed = time.perf_counter() - start
    if res.rc != 0:
        raise SystemExit(res.output[-3000:])
    changed = {host: st.get("changed") for host, st in ((res.data or {}).get("stats") or {}).items()}
    if rerun and any(changed.values()):
        raise SystemExit("the second run changed something: %s" % changed)
    return elapsed


def library_specs(d: str, nodes: int):
    issuer = {"issuer_cert_path": d + "/inter.pem", "issuer_privatekey_path": d + "/inter.key"}
    yield backend.CertSpec(path=d + "/root.pem", privatekey_path=d + "/root.key", usage="root_ca", subject={"CN": "R"})
    yield backend.CertSpec(
        path=d + "/inter.pem",
        privatekey_path=d + "/inter.key",
        usage="intermediate_ca",
        subject={"CN": "I"},
        issuer_cert_path=d + "/root.pem",
        issuer_privatekey_path=d + "/root.key",
    )
    for i in range(nodes):
        yield backend.CertSpec(
            path=d + "/n%d.pem" % i,
            privatekey_path=d + "/n%d.key" % i,
            chain_path=d + "/c%d.pem" % i,
            subject={"CN": "node-%d" % i},
            subject_alt_names=["DNS:node-%d" % i],
            **issuer,
        )


def library_run(d: str, nodes: int) -> tuple[float, int]:
    start, changed = time.perf_counter(), 0
    for spec in library_specs(d, nodes):
        plan = backend.plan(spec)
        changed += bool(plan.actions)
        backend.apply(plan)
    return time.perf_counter() - start, changed


def ping_loop(n: int) -> float:
    start = time.perf_counter()
    run_tasks([{"name": "ping", "ansible.builtin.ping": {}, "loop": list(range(n))}], env=ENV)
    return time.perf_counter() - start


def ping_play(d: str, nodes: int) -> float:
    """A one-task ping play over the roles shape's inventory (CA host and nodes)."""
    play = [{"hosts": "all", "gather_facts": False, "tasks": [{"ansible.builtin.ping": {}}]}]
    start = time.perf_counter()
    run_playbook(write_play(d, play, "ping.json"), inventory=inventory(d, nodes), env=ENV)
    return time.perf_counter() - start


def measure(shape: str, nodes: int, rounds: int) -> tuple[float, float, float]:
    """Medians of the first run, the second run and the yardstick."""
    firsts, seconds, pings = [], [], []
    for _round in range(rounds):
        d = tempfile.mkdtemp(prefix="bench-cert-")
        try:
            firsts.append(timed(d, nodes, shape))
            seconds.append(timed(d, nodes, shape, rerun=True))
            pings.append(ping_loop(3 * nodes + 2) if shape == "loop" else ping_play(d, nodes))
        finally:
            shutil.rmtree(d)
    return statistics.median(firsts), statistics.median(seconds), statistics.median(pings)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shape", choices=["roles", "loop", "both"], default="roles")
    ap.add_argument("--forks", type=int, default=5, help="ANSIBLE_FORKS (roles shape; 5 is Ansible's default)")
    ap.add_argument("--plain", action="store_true", help="Ansible's defaults (no pipelining)")
    args = ap.parse_args()
    if not args.plain:
        ENV["ANSIBLE_PIPELINING"] = "1"
    ENV["ANSIBLE_FORKS"] = str(args.forks)
    shapes = ["roles", "loop"] if args.shape == "both" else [args.shape]
    figures = {shape: measure(shape, args.nodes, args.rounds) for shape in shapes}
    lib_first, lib_second = [], []
    for _round in range(args.rounds):
        d = tempfile.mkdtemp(prefix="bench-cert-lib-")
        try:
            lib_first.append(library_run(d, args.nodes)[0])
            t, changed = library_run(d, args.nodes)
            assert changed == 0, "second library run changed %d certificates" % changed
            lib_second.append(t)
        finally:
            shutil.rmtree(d)
    lf, ls = statistics.median(lib_first), statistics.median(lib_second)
    print(
        "dicom_cert, %d node certificates (RSA 3072), %d rounds, medians; %s"
        % (args.nodes, args.rounds, "Ansible's defaults" if args.plain else "pipelining")
    )
    for shape in shapes:
        f, s, ping = figures[shape]
        if shape == "roles":
            print(
                "  roles shape (%d hosts, forks %d: CSR per node, one dicom_csr_sign on the CA host, install when due):"
                % (args.nodes, args.forks)
            )
        else:
            print("  loop shape (one host, a loop of dicom_cert calls per step: CSR, sign, install):")
        print("    through ansible-playbook: first %.2f s, second %.2f s, ratio %.2f (target <= 0.5)" % (f, s, s / f))
        if shape == "roles":
            print("    yardstick: one-task ping play over the same %d hosts: %.2f s" % (args.nodes + 1, ping))
        else:
            print("    yardstick: %d ansible.builtin.ping calls in one loop: %.2f s" % (3 * args.nodes + 2, ping))
    print("  library only (plan+apply): first %.3f s, second %.3f s, ratio %.3f" % (lf, ls, ls / lf))


if __name__ == "__main__":
    main()
