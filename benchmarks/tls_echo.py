#!/usr/bin/env python
"""Benchmark: 50 DICOM TLS endpoints checked by one dicom_tls_echo call against a shell loop of
50 ``echoscu +tls`` calls.

Setup: a test PKI (RSA 2048, root -> issuing CA -> nodes) and 50 dcmtk ``storescp +tls`` listeners
(default profile +py, client certificate required) on 127.0.0.1, each on its own port.

Measured in one run (medians of --runs repetitions):
1. anchor: ``bash -c 'for port in ...; do /usr/bin/echoscu +tls KEY CERT +cf CA -aec STORESCP
   127.0.0.1 $port; done'``;
2. the module through Ansible: ``ansible-playbook`` with one ``medimg.dicom_tls.dicom_tls_echo``
   task whose ``targets`` lists the 50 endpoints (max_workers 16);
3. for information, the library alone (``tls_echo.check_many``) in this process, and the fixed cost
   of Ansible itself (``ansible-playbook`` with one ``ansible.builtin.ping`` task).
Every run must find all 50 endpoints answering, or the benchmark stops.

storescp listens on every address, so this runs in a network namespace with only loopback
(scripts/netns.sh; re-executes itself there when needed):

    .venv/bin/python benchmarks/tls_echo.py [--endpoints 50] [--runs 5] [--plain]

The ansible-playbook runs (module and floor alike) use pipelining (ANSIBLE_PIPELINING=1, what
docs/rollout.md recommends keeping in production), as benchmarks/rollout.py does; --plain runs
them with Ansible's defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, ".build", "collections"), os.path.join(ROOT, "tests")]

from ansible_collections.medimg.dicom_tls.plugins.module_utils import tls_echo as te  # noqa: E402
from support.ansible_run import ansible_env  # noqa: E402
from support.pki import TestPKI  # noqa: E402
from support.servers import StoreSCP, dcmtk  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-workers", type=int, default=16)
    parser.add_argument("--plain", action="store_true", help="Ansible's defaults (no pipelining)")
    args = parser.parse_args()
    # ansible-playbook from the same venv as this python
    os.environ["PATH"] = os.path.dirname(os.path.abspath(sys.executable)) + os.pathsep + os.environ.get("PATH", "")
    if os.environ.get("DICOM_TLS_NETNS") != "1":
        os.execvp(os.path.join(ROOT, "scripts", "netns.sh"), ["netns.sh", sys.executable, *sys.argv])

    work = tempfile.mkdtemp(prefix="bench-tls-echo-")
    pki = TestPKI(os.path.join(work, "pki"))
    server, client = pki.node("bench-server"), pki.node("bench-client")
    listeners = []
    try:
        for i in range(args.endpoints):
            workdir = os.path.join(work, "scp%02d" % i)
            os.makedirs(workdir)
            listeners.append(StoreSCP(["+tls", server.key, server.chain, "+cf", pki.root.cert], workdir))
        ports = [listener.port for listener in listeners]

        loop = "set -e; for port in %s; do %s +tls %s %s +cf %s -aec STORESCP 127.0.0.1 $port; done" % (
            " ".join(map(str, ports)),
            dcmtk("echoscu"),
            client.key,
            client.chain,
            pki.root.cert,
        )

        def anchor():
            subprocess.run(["bash", "-c", loop], check=True, capture_output=True)

        play = [
            {
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [
                    {
                        "medimg.dicom_tls.dicom_tls_echo": {
                            "called_ae_title": "STORESCP",
                            "certificate_path": client.chain,
                            "privatekey_path": client.key,
                            "ca_file": pki.root.cert,
                            "max_workers": args.max_workers,
                            "targets": [{"host": "127.0.0.1", "port": port} for port in ports],
                        }
                    }
                ],
            }
        ]
        playbook = os.path.join(work, "echo.yml")
        with open(playbook, "w") as fh:
            json.dump(play, fh)
        env = ansible_env() if args.plain else ansible_env(ANSIBLE_PIPELINING="1")

        def module():
            proc = subprocess.run(
                ["ansible-playbook", "-i", "localhost,", "-c", "local", playbook],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
            if proc.returncode != 0 or result.get("summary") != {"success": len(ports)}:
                raise SystemExit("module run failed: %s" % (result.get("msg") or result.get("summary")))

        ping_playbook = os.path.join(work, "ping.yml")
        with open(ping_playbook, "w") as fh:
            json.dump([{"hosts": "localhost", "gather_facts": False, "tasks": [{"ansible.builtin.ping": {}}]}], fh)

        def ansible_floor():
            subprocess.run(
                ["ansible-playbook", "-i", "localhost,", "-c", "local", ping_playbook],
                capture_output=True,
                env=env,
                check=True,
            )

        targets = [
            te.normalize_target(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "called_ae_title": "STORESCP",
                    "certificate_path": client.chain,
                    "privatekey_path": client.key,
                    "ca_file": pki.root.cert,
                }
            )
            for port in ports
        ]
        te.silence_pynetdicom()

        def library():
            results = te.check_many(targets, args.max_workers)
            if any(r["status"] != "success" for r in results):
                raise SystemExit("library run failed: %s" % [r["reason"] for r in results if r["status"] != "success"])

        module()  # warm-up: page cache, Python bytecode
        anchor()
        times = {"anchor": [], "module": [], "library": [], "ansible_ping": []}
        for _run in range(args.runs):
            times["anchor"].append(timed(anchor))
            times["module"].append(timed(module))
            times["library"].append(timed(library))
            times["ansible_ping"].append(timed(ansible_floor))
    finally:
        for listener in listeners:
            listener.stop()

    med = {name: statistics.median(values) for name, values in times.items()}
    n = args.endpoints
    print(
        "dicom_tls_echo benchmark: %d TLS endpoints (storescp +tls, +py), medians of %d runs; %s"
        % (n, args.runs, "Ansible's defaults" if args.plain else "pipelining")
    )
    print("  anchor  shell loop of %d echoscu +tls        %7.2f s" % (n, med["anchor"]))
    print("  module  one dicom_tls_echo task (Ansible)    %7.2f s" % med["module"])
    print("  library tls_echo.check_many in-process       %7.2f s" % med["library"])
    print("  floor   ansible-playbook with one ping task  %7.2f s (Ansible's fixed cost)" % med["ansible_ping"])
    print("  ratio module/anchor  %.3f  (target <= 0.2)" % (med["module"] / med["anchor"]))
    print("  ratio library/anchor %.3f" % (med["library"] / med["anchor"]))
    print("  raw: %s" % json.dumps({k: [round(v, 3) for v in vs] for k, vs in times.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
