"""Rollout of DICOM TLS to a fleet of local instances (playbooks/rollout.yml): the first run
(CA, keys, CSRs, signing, trust stores, listeners started, live proofs) and the idempotent rerun,
each against the time of a one-task play (ansible.builtin.ping) over the same inventory - the
yardstick of Ansible's own cost per host. Medians of several rounds; ratios printed.

    scripts/netns.sh .venv/bin/python benchmarks/rollout.py [--dcmtk 18] [--orthanc 2] [--rounds 3]

Listeners bind every address: run it inside scripts/netns.sh (make benchmarks does).
Every round starts from an empty state directory and stops its listeners by PID at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests")]

from support.ansible_run import ansible_env  # noqa: E402


def inventory(state: str, dcmtk: int, orthanc: int) -> str:
    dn = {"dcmtk-%02d" % i: {"dicom_tls_port": 12000 + i, "dicom_tls_ae_title": "DCMTK_%02d" % i} for i in range(dcmtk)}
    on = {
        "orthanc-%02d" % i: {
            "dicom_tls_port": 12500 + i,
            "dicom_tls_http_port": 18500 + i,
            "dicom_tls_ae_title": "ORTHANC_%02d" % i,
        }
        for i in range(orthanc)
    }
    inv = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "dicom_tls_root": state + "/nodes",
                "dicom_tls_run_dir": state + "/run",
                "dicom_tls_log_dir": state + "/log",
                "dicom_tls_data_dir": state + "/data",
                "dicom_tls_pki_dir": state + "/pki",
                "dicom_tls_report_dir": state,
                "dicom_tls_address": "127.0.0.1",
                "dicom_tls_key_size": 2048,
            },
            "children": {
                "dicom_ca": {"hosts": {"ca": None}},
                "dicom_nodes": {"children": {"dcmtk_nodes": {"hosts": dn}, "orthanc_nodes": {"hosts": on}}},
            },
        }
    }
    path = os.path.join(state, "inventory.yml")
    with open(path, "w") as fh:
        yaml.safe_dump(inv, fh)
    return path


def play(inv: str, playbook: str, forks: int) -> tuple[float, str]:
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_FORKS=str(forks))
    start = time.perf_counter()
    proc = subprocess.run(
        ["ansible-playbook", "-i", inv, playbook], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (playbook, (proc.stdout + proc.stderr)[-4000:]))
    return elapsed, proc.stdout


def ping_playbook(state: str) -> str:
    path = os.path.join(state, "ping.yml")
    with open(path, "w") as fh:
        yaml.safe_dump(
            [{"name": "ping", "hosts": "all", "gather_facts": False, "tasks": [{"ansible.builtin.ping": {}}]}], fh
        )
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dcmtk", type=int, default=18)
    ap.add_argument("--orthanc", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--forks", type=int, default=10)
    args = ap.parse_args()
    if os.environ.get("DICOM_TLS_NETNS") != "1":
        print("run inside scripts/netns.sh: the listeners bind every address", file=sys.stderr)
        return 2
    first, rerun, ping = [], [], []
    for r in range(args.rounds):
        state = tempfile.mkdtemp(prefix="bench-rollout-")
        inv = inventory(state, args.dcmtk, args.orthanc)
        try:
            t1, _out = play(inv, os.path.join(ROOT, "playbooks", "rollout.yml"), args.forks)
            t2, out = play(inv, os.path.join(ROOT, "playbooks", "rollout.yml"), args.forks)
            changed = [line for line in out.splitlines() if " changed=" in line and " changed=0 " not in line]
            if changed:
                raise SystemExit("rerun was not idempotent:\n" + "\n".join(changed))
            t3, _out = play(inv, ping_playbook(state), args.forks)
            first.append(t1)
            rerun.append(t2)
            ping.append(t3)
            print("round %d: first %.1fs, rerun %.1fs, ping play %.1fs" % (r + 1, t1, t2, t3), flush=True)
        finally:
            play(inv, os.path.join(ROOT, "playbooks", "stop.yml"), args.forks)
            shutil.rmtree(state, ignore_errors=True)
    n = args.dcmtk + args.orthanc
    mf, mr, mp = statistics.median(first), statistics.median(rerun), statistics.median(ping)
    print(
        "fleet: %d instances (%d dcmtk, %d Orthanc), forks %d, %d rounds"
        % (n, args.dcmtk, args.orthanc, args.forks, args.rounds)
    )
    print("median first rollout   %7.1fs  (%.1fx the ping play)" % (mf, mf / mp))
    print("median idempotent rerun %6.1fs  (%.1fx the ping play, %.2f of the first run)" % (mr, mr / mp, mr / mf))
    print("median ping play        %6.1fs" % mp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
