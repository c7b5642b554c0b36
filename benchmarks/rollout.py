"""Rollout of DICOM TLS to a fleet of local instances (playbooks/rollout.yml): the first run
(CA, keys, CSRs, signing, trust stores, listeners started, live proofs) and the idempotent rerun,
each against the time of a one-task play (ansible.builtin.ping) over the same inventory - the
yardstick of Ansible's own cost per host. Several fleet sizes in one run show how the cost grows:
per size, the per-host cost of each play, the ratios to the ping play, and the tasks each node ran
(from the play recap: ok + changed + failed, skipped apart).

    scripts/netns.sh .venv/bin/python benchmarks/rollout.py [--sizes 20 60] [--orthanc-share 0.1] [--rounds 1]

Listeners bind every address: run it inside scripts/netns.sh (make benchmarks does).
Every round starts from an empty state directory and stops its listeners by PID at the end.
"""

from __future__ import annotations

import argparse
import os
import re
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

RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)")


def inventory(state: str, dcmtk: int, orthanc: int) -> str:
    dn = {"dcmtk-%03d" % i: {"dicom_tls_port": 12000 + i, "dicom_tls_ae_title": "DCMTK_%03d" % i} for i in range(dcmtk)}
    on = {
        "orthanc-%03d" % i: {
            "dicom_tls_port": 13000 + i,
            "dicom_tls_http_port": 18000 + i,
            "dicom_tls_ae_title": "ORTHANC_%03d" % i,
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


def settings(state: str, tuned: bool) -> dict:
    """Ansible settings for every play of a round (ping play included): with ``tuned``, the ones
    docs/rollout.md recommends keeping in production (pipelining, a fact cache)."""
    if not tuned:
        return {}
    return {
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": os.path.join(state, "facts"),
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "86400",
    }


def play(inv: str, playbook: str, forks: int, extra: dict | None = None) -> tuple[float, str]:
    env = ansible_env(ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_FORKS=str(forks), **(extra or {}))
    start = time.perf_counter()
    proc = subprocess.run(
        ["ansible-playbook", "-i", inv, playbook], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (playbook, (proc.stdout + proc.stderr)[-4000:]))
    return elapsed, proc.stdout


def recap(out: str) -> dict[str, dict[str, int]]:
    """Per host of the PLAY RECAP: tasks run (ok + failed; ok counts the changed ones), changed, skipped."""
    stats = {}
    for line in out.splitlines():
        m = RECAP.match(line.strip())
        if m:
            host, ok, changed, _unreach, failed, skipped = m.groups()
            stats[host] = {"run": int(ok) + int(failed), "changed": int(changed), "skipped": int(skipped)}
    return stats


def tasks_per_kind(stats: dict[str, dict[str, int]]) -> str:
    """Tasks run per host of each kind, and (each costs a worker fork too) the skipped ones."""

    def span(values):
        lo, hi = min(values), max(values)
        return str(lo) if lo == hi else "%d-%d" % (lo, hi)

    parts = []
    for kind in ("ca", "dcmtk", "orthanc"):
        hosts = [s for h, s in stats.items() if h.startswith(kind)]
        if hosts:
            parts.append(
                "%s %s (+%s skipped)" % (kind, span([s["run"] for s in hosts]), span([s["skipped"] for s in hosts]))
            )
    return ", ".join(parts)


def ping_playbook(state: str) -> str:
    path = os.path.join(state, "ping.yml")
    with open(path, "w") as fh:
        yaml.safe_dump(
            [{"name": "ping", "hosts": "all", "gather_facts": False, "tasks": [{"ansible.builtin.ping": {}}]}], fh
        )
    return path


def measure(size: int, orthanc_share: float, rounds: int, forks: int, tuned: bool) -> dict:
    orthanc = max(1, round(size * orthanc_share)) if orthanc_share > 0 else 0
    dcmtk = size - orthanc
    first, rerun, ping = [], [], []
    tasks = {}
    load = ["%.2f" % os.getloadavg()[0]]
    for r in range(rounds):
        state = tempfile.mkdtemp(prefix="bench-rollout-")
        inv = inventory(state, dcmtk, orthanc)
        extra = settings(state, tuned)
        try:
            t1, out1 = play(inv, os.path.join(ROOT, "playbooks", "rollout.yml"), forks, extra)
            t2, out2 = play(inv, os.path.join(ROOT, "playbooks", "rollout.yml"), forks, extra)
            changed = [h for h, s in recap(out2).items() if s["changed"]]
            if changed:
                raise SystemExit("rerun was not idempotent on: " + ", ".join(changed))
            t3, _out = play(inv, ping_playbook(state), forks, extra)
            first.append(t1)
            rerun.append(t2)
            ping.append(t3)
            tasks = {"first": tasks_per_kind(recap(out1)), "rerun": tasks_per_kind(recap(out2))}
            print(
                "%d instances, round %d: first %.1fs, rerun %.1fs, ping play %.1fs" % (size, r + 1, t1, t2, t3),
                flush=True,
            )
        finally:
            play(inv, os.path.join(ROOT, "playbooks", "stop.yml"), forks)
            shutil.rmtree(state, ignore_errors=True)
    load.append("%.2f" % os.getloadavg()[0])
    return {
        "load": load,
        "size": size,
        "dcmtk": dcmtk,
        "orthanc": orthanc,
        "first": statistics.median(first),
        "rerun": statistics.median(rerun),
        "ping": statistics.median(ping),
        "tasks": tasks,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes",
        nargs="+",
        default=["20", "60"],
        help="fleet sizes (instances, the CA host apart): --sizes 20 60 or --sizes 20,60",
    )
    ap.add_argument("--orthanc-share", type=float, default=0.1, help="share of Orthanc instances in each fleet")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--forks", type=int, default=10)
    ap.add_argument(
        "--plain", action="store_true", help="Ansible's defaults (no pipelining, no fact cache) for every play"
    )
    args = ap.parse_args()
    if os.environ.get("DICOM_TLS_NETNS") != "1":
        print("run inside scripts/netns.sh: the listeners bind every address", file=sys.stderr)
        return 2
    tuned = not args.plain
    sizes = [int(n) for item in args.sizes for n in item.split(",") if n.strip()]
    results = [measure(n, args.orthanc_share, args.rounds, args.forks, tuned) for n in sizes]
    print(
        "forks %d, %d round(s) per size, medians; %s"
        % (args.forks, args.rounds, "pipelining and a fact cache" if tuned else "Ansible's defaults")
    )
    for m in results:
        n = m["size"]
        print(
            "fleet: %d instances (%d dcmtk, %d Orthanc); 1-minute load average %s at the start, %s at the end"
            % (n, m["dcmtk"], m["orthanc"], m["load"][0], m["load"][1])
        )
        print(
            "  first rollout   %7.1fs  %5.2fs/host  %5.1fx the ping play"
            % (m["first"], m["first"] / n, m["first"] / m["ping"])
        )
        print(
            "  idempotent rerun %6.1fs  %5.2fs/host  %5.1fx the ping play  %.2f of the first run"
            % (m["rerun"], m["rerun"] / n, m["rerun"] / m["ping"], m["rerun"] / m["first"])
        )
        print("  ping play        %6.1fs  %5.2fs/host" % (m["ping"], m["ping"] / n))
        print("  tasks per node: first run %s; rerun %s" % (m["tasks"].get("first"), m["tasks"].get("rerun")))
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(
            "per-host rerun cost at %d vs %d instances: %.2fs vs %.2fs (%.2fx)"
            % (
                b["size"],
                a["size"],
                b["rerun"] / b["size"],
                a["rerun"] / a["size"],
                (b["rerun"] / b["size"]) / (a["rerun"] / a["size"]),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
