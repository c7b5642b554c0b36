"""A play that manages 20 node certificates (root, issuing CA, key + CSR on the node, signing, install):
first run against an idempotent second run, medians of several rounds, ratio printed.

    python benchmarks/cert_rerun.py [--nodes 20] [--rounds 3] [--plain]

Every ansible-playbook run uses pipelining (ANSIBLE_PIPELINING=1, what docs/rollout.md recommends
keeping in production), as benchmarks/rollout.py does; --plain runs with Ansible's defaults.

Target (issue 2): the second run takes less than half the time of the first (no key generation,
no signing, no writes when nothing is due). Ansible's fixed cost per module call (fork, AnsiballZ,
Python start-up: a few hundred milliseconds) is paid on both runs, so the script also prints the
same work measured inside the library (plan + apply against plan alone), where the skipped key
generation, signing and writes show without that fixed cost, and the time of a loop of
ansible.builtin.ping calls of the same length as the yardstick of that fixed cost."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests")]

from support.ansible_run import run_tasks  # noqa: E402

sys.path[:0] = [os.path.join(ROOT, ".build", "collections")]
from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as backend  # noqa: E402


def tasks(d: str, nodes: int) -> list[dict]:
    m = "medimg.dicom_tls.dicom_cert"
    out = [
        {
            "name": "root",
            m: {
                "path": d + "/root.pem",
                "privatekey_path": d + "/root.key",
                "usage": "root_ca",
                "subject": {"CN": "Bench Root"},
            },
        },
        {
            "name": "issuing",
            m: {
                "path": d + "/inter.pem",
                "privatekey_path": d + "/inter.key",
                "usage": "intermediate_ca",
                "subject": {"CN": "Bench Issuing"},
                "issuer_cert_path": d + "/root.pem",
                "issuer_privatekey_path": d + "/root.key",
            },
        },
    ]
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


ENV: dict = {}


def timed(d: str, nodes: int) -> float:
    start = time.perf_counter()
    res = run_tasks(tasks(d, nodes), env=ENV)
    elapsed = time.perf_counter() - start
    if res.rc != 0:
        raise SystemExit(res.output[-3000:])
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--plain", action="store_true", help="Ansible's defaults (no pipelining)")
    args = ap.parse_args()
    if not args.plain:
        ENV["ANSIBLE_PIPELINING"] = "1"
    firsts, seconds = [], []
    for _round in range(args.rounds):
        d = tempfile.mkdtemp(prefix="bench-cert-")
        try:
            firsts.append(timed(d, args.nodes))
            seconds.append(timed(d, args.nodes))
        finally:
            shutil.rmtree(d)
    lib_first, lib_second, pings = [], [], []
    for _round in range(args.rounds):
        d = tempfile.mkdtemp(prefix="bench-cert-lib-")
        try:
            lib_first.append(library_run(d, args.nodes)[0])
            t, changed = library_run(d, args.nodes)
            assert changed == 0, "second library run changed %d certificates" % changed
            lib_second.append(t)
        finally:
            shutil.rmtree(d)
        pings.append(ping_loop(3 * args.nodes + 2))
    f, s = statistics.median(firsts), statistics.median(seconds)
    lf, ls = statistics.median(lib_first), statistics.median(lib_second)
    print(
        "dicom_cert, %d node certificates (RSA 3072), %d rounds, medians; %s"
        % (args.nodes, args.rounds, "Ansible's defaults" if args.plain else "pipelining")
    )
    print("  through ansible-playbook: first %.2f s, second %.2f s, ratio %.2f (target < 0.5)" % (f, s, s / f))
    print(
        "  yardstick: %d ansible.builtin.ping calls in one loop: %.2f s"
        % (3 * args.nodes + 2, statistics.median(pings))
    )
    print("  library only (plan+apply): first %.3f s, second %.3f s, ratio %.3f" % (lf, ls, ls / lf))


if __name__ == "__main__":
    main()
