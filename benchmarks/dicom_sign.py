"""Benchmark: dicom_sign (one module call through Ansible per operation) against a shell loop of
dcmtk's dcmsign processes over the same files.

    .venv/bin/python benchmarks/dicom_sign.py            # 1000 CT-like files, 512x512 16 bit
    .venv/bin/python benchmarks/dicom_sign.py -n 100 -r 1   # quick run

For each repeat: fresh unsigned copies for each side, then sign (SHA-256, RSA 2048) and verify
(trusted root, untrusted intermediate) timed on both sides. Prints the medians, the ratios
module/dcmsign (target <= 0.33 each) and the module's peak memory (maximum resident set size of
the ansible-playbook process tree, and of the module run directly on all files and on a tenth of
them, to show it does not grow with the number of files). Files live under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, ".build", "collections"), os.path.join(ROOT, "tests")]

from support.ansible_run import ansible_env, run_tasks  # noqa: E402
from support.dicom_files import write_ct  # noqa: E402
from support.pki import TestPKI  # noqa: E402

DCMSIGN = "/usr/bin/dcmsign"  # absolute: never a shadowing tool from the venv
MODULE = os.path.join(ROOT, "plugins", "modules", "dicom_sign.py")


def timed_children(fn):
    """(seconds, peak RSS in MiB of any child waited for during fn)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, (after if after > before else None)


def module_call(args: dict, check_failed=True):
    res = run_tasks([{"name": "bench", "medimg.dicom_tls.dicom_sign": args}])
    out = res.results()
    if check_failed and (res.rc != 0 or not out or out[-1].get("failed")):
        raise SystemExit("module call failed:\n" + res.output[-3000:])
    return out[-1]


def shell_loop(directory: str, command: str):
    script = 'for f in "$1"/*.dcm; do %s || exit 1; done' % command
    proc = subprocess.run(["bash", "-c", script, "loop", directory], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit("dcmsign loop failed:\n" + proc.stderr[-3000:])


def direct_module_rss(args: dict, workdir: str) -> float:
    """Peak RSS (MiB) of the module run directly by python, as Ansible would run it."""
    argfile = os.path.join(workdir, "args.json")
    with open(argfile, "w") as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, fh)
    code = (
        "import resource, runpy, sys; sys.argv=[sys.argv[1], sys.argv[2]];"
        "\ntry:\n runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit:\n pass\n"
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
    )
    env = ansible_env()
    env["PYTHONPATH"] = os.path.join(ROOT, ".build", "collections")
    proc = subprocess.run(
        [sys.executable, "-c", code, MODULE, argfile], capture_output=True, text=True, env=env, check=False
    )
    for line in proc.stderr.splitlines():
        if line.startswith("MAXRSS"):
            return int(line.split()[1]) / 1024
    raise SystemExit("direct module run failed:\n" + proc.stdout[-2000:] + proc.stderr[-2000:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("-n", "--files", type=int, default=1000)
    ap.add_argument("-r", "--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=512, help="rows = columns (default 512)")
    a = ap.parse_args()

    base = os.path.join(ROOT, "benchmarks", "results", "dicom_sign")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    pki = TestPKI(os.path.join(base, "pki"), prefix="Bench")
    signer = pki.node("bench-signer")
    originals = os.path.join(base, "originals")
    os.makedirs(originals)
    for i in range(a.files):
        write_ct(os.path.join(originals, "ct%05d.dcm" % i), a.size, a.size, seed=i + 1)
    mod_dir, dcm_dir = os.path.join(base, "module"), os.path.join(base, "dcmsign")
    sign_args = {"path": [mod_dir], "privatekey_path": signer.key, "certificate_path": signer.cert}
    verify_args = {
        "path": [mod_dir],
        "state": "verified",
        "ca_file": pki.root.cert,
        "untrusted_certs": [pki.inter.cert],
    }
    sign_cmd = '%s +s %s %s +m2 "$f" "$f" >/dev/null 2>&1' % (DCMSIGN, signer.key, signer.cert)
    verify_cmd = '%s --verify +cf %s +uf %s "$f" >/dev/null 2>&1' % (DCMSIGN, pki.root.cert, pki.inter.cert)

    times = {"module sign": [], "dcmsign sign": [], "module verify": [], "dcmsign verify": []}
    peak = 0.0
    for r in range(a.repeats):
        for d in (mod_dir, dcm_dir):
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(originals, d)
        t, rss = timed_children(lambda: module_call(sign_args))
        times["module sign"].append(t)
        peak = max(peak, (rss or 0) / 1024)
        times["dcmsign sign"].append(timed_children(lambda: shell_loop(dcm_dir, sign_cmd))[0])
        t, rss = timed_children(lambda: module_call(verify_args))
        times["module verify"].append(t)
        peak = max(peak, (rss or 0) / 1024)
        times["dcmsign verify"].append(timed_children(lambda: shell_loop(dcm_dir, verify_cmd))[0])
        print(
            "repeat %d: %s" % (r + 1, ", ".join("%s %.2fs" % (k, v[-1]) for k, v in times.items())),
            flush=True,
        )
    res = module_call(verify_args)
    assert res["totals"]["verified"] == a.files, res["totals"]

    rss_all = direct_module_rss(verify_args, base)
    tenth = os.path.join(base, "tenth")
    os.makedirs(tenth)
    for name in sorted(os.listdir(mod_dir))[: max(1, a.files // 10)]:
        shutil.copy(os.path.join(mod_dir, name), tenth)
    rss_tenth = direct_module_rss(dict(verify_args, path=[tenth]), base)

    med = {k: statistics.median(v) for k, v in times.items()}
    print()
    print(
        "dicom_sign benchmark: %d files of %dx%d 16-bit CT, %d repeat(s), medians"
        % (a.files, a.size, a.size, a.repeats)
    )
    for k, v in med.items():
        print("  %-15s %8.2f s  (%.2f ms/file)" % (k, v, 1000 * v / a.files))
    sign_ratio = med["module sign"] / med["dcmsign sign"]
    verify_ratio = med["module verify"] / med["dcmsign verify"]
    print(
        "  ratio sign   module/dcmsign = %.3f (target <= 0.33) %s"
        % (sign_ratio, "OK" if sign_ratio <= 0.33 else "MISSED")
    )
    print(
        "  ratio verify module/dcmsign = %.3f (target <= 0.33) %s"
        % (verify_ratio, "OK" if verify_ratio <= 0.33 else "MISSED")
    )
    print("  peak RSS, ansible-playbook process tree: %.1f MiB" % peak)
    print(
        "  peak RSS, module alone: %.1f MiB on %d files, %.1f MiB on %d files"
        % (rss_all, a.files, rss_tenth, max(1, a.files // 10))
    )


if __name__ == "__main__":
    main()
