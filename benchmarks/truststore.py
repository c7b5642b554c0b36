#!/usr/bin/env python
"""Benchmark: hashed trust directories, this collection against ``openssl rehash``.

Corpus: 1000 self-signed EC CA certificates (every 10th pair shares a subject name, so there are
collision sequences) and 100 CRLs, one PEM object per file, generated once and cached under
benchmarks/results/truststore-corpus/.

Measured in one run (medians of --runs repetitions, ratios against the anchor tool):
1. library: read + parse + name hash + check + directory plan (module_utils.truststore) against
   ``openssl rehash`` on a fresh copy of the same folder; also plan + write the directory;
2. the module through Ansible (``ansible localhost -m medimg.dicom_tls.dicom_truststore``, first run
   into an empty directory) against ``ansible localhost -m command -a 'openssl rehash DIR'``;
3. the module's no-change run against its first run.

    .venv/bin/python benchmarks/truststore.py [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
sys.path.insert(0, COLLECTIONS)

from ansible_collections.medimg.dicom_tls.plugins.module_utils import truststore as ts  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

CORPUS = os.path.join(ROOT, "benchmarks", "results", "truststore-corpus")
N_CERTS, N_CRLS = 1000, 100


def make_corpus() -> None:
    stamp = os.path.join(CORPUS, ".complete")
    if os.path.exists(stamp):
        with open(stamp) as fh:
            if fh.read().strip() >= datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H"):
                return  # CRLs inside are still fresh (valid 30 days; regenerated after 20)
    shutil.rmtree(CORPUS, ignore_errors=True)
    os.makedirs(CORPUS)
    now = datetime.datetime.now(datetime.UTC)
    keys = []
    for i in range(N_CERTS):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bench"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Bench Root %d" % (i // 2 if i % 10 == 0 else i + N_CERTS)),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(i + 1)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        keys.append((key, cert))
        with open(os.path.join(CORPUS, "ca-%04d.pem" % i), "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
    for i in range(N_CRLS):
        key, cert = keys[i * (N_CERTS // N_CRLS)]
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(cert.subject)
            .last_update(now - datetime.timedelta(hours=1))
            .next_update(now + datetime.timedelta(days=30))
            .add_extension(x509.CRLNumber(1), critical=False)
            .sign(key, hashes.SHA256())
        )
        with open(os.path.join(CORPUS, "crl-%03d.pem" % i), "wb") as fh:
            fh.write(crl.public_bytes(serialization.Encoding.PEM))
    with open(stamp, "w") as fh:
        fh.write((now + datetime.timedelta(days=20)).strftime("%Y-%m-%dT%H"))


def inputs() -> tuple[list[str], list[str]]:
    names = sorted(n for n in os.listdir(CORPUS) if n.endswith(".pem"))
    return (
        [os.path.join(CORPUS, n) for n in names if n.startswith("ca-")],
        [os.path.join(CORPUS, n) for n in names if n.startswith("crl-")],
    )


def _cpu() -> float:
    """CPU seconds of this process and its finished children (robust on a shared machine)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def interleaved(cases: dict, runs: int) -> dict:
    """Median wall and CPU seconds per case; the cases take turns in every round so that load
    from other processes falls on all of them alike. ``cases``: name -> (fn, setup or None)."""
    wall: dict = {name: [] for name in cases}
    cpu: dict = {name: [] for name in cases}
    for _round in range(runs):
        for name, (fn, setup) in cases.items():
            if setup:
                setup()
            c0, t0 = _cpu(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(_cpu() - c0)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in cases}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    make_corpus()
    certs, crls = inputs()
    work = tempfile.mkdtemp(prefix="bench-truststore-")
    copy = os.path.join(work, "rehash")
    target = os.path.join(work, "trust")

    def fresh_copy():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(CORPUS, copy)

    def fresh_target():
        shutil.rmtree(target, ignore_errors=True)

    def rehash():
        subprocess.run(["openssl", "rehash", copy], check=True, capture_output=True)

    def plan():
        loaded = ts.load_objects(certs, crls)
        return ts.plan_hashed_dir(target, loaded.objects, ts.read_hashed_dir(target, ts.FileMeta()))

    def plan_and_write():
        p = plan()
        ts.apply_hashed_dir(p, ts.FileMeta())

    lib = interleaved(
        {
            "rehash": (rehash, fresh_copy),
            "plan": (plan, fresh_target),
            "write": (plan_and_write, fresh_target),
        },
        args.runs,
    )
    entries = len(plan().desired)

    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
    )
    varfile = os.path.join(work, "vars.json")
    with open(varfile, "w") as fh:
        json.dump({"bench_certs": certs, "bench_crls": crls, "bench_target": target}, fh)
    base = ["ansible", "localhost", "-i", "localhost,", "-c", "local", "-e", "@" + varfile]

    def module():
        subprocess.run(
            base
            + [
                "-m",
                "medimg.dicom_tls.dicom_truststore",
                "-a",
                '{"path": "{{ bench_target }}", "certificates": "{{ bench_certs }}", "crls": "{{ bench_crls }}"}',
            ],
            check=True,
            capture_output=True,
            env=env,
        )

    def ansible_rehash():
        subprocess.run(
            base + ["-m", "command", "-a", "openssl rehash " + copy], check=True, capture_output=True, env=env
        )

    def module_again():
        module()

    ans = interleaved(
        {
            "ansible_rehash": (ansible_rehash, fresh_copy),
            "first": (module, fresh_target),
            "again": (module_again, None),  # runs right after "first": the directory is complete
        },
        args.runs,
    )
    shutil.rmtree(work, ignore_errors=True)

    print(
        "corpus: %d CA certificates + %d CRLs -> %d entries; medians of %d interleaved runs"
        % (len(certs), len(crls), entries, args.runs)
    )
    rows = [
        ("library plan (read, parse, hash, check, plan)", lib["plan"]),
        ("library plan + write directory (fsync'd)", lib["write"]),
        ("openssl rehash DIR (symlinks, no fsync)", lib["rehash"]),
        ("ansible -m dicom_truststore, first run", ans["first"]),
        ("ansible -m dicom_truststore, no-change run", ans["again"]),
        ("ansible -m command -a 'openssl rehash DIR'", ans["ansible_rehash"]),
    ]
    print("%-48s %9s %9s" % ("", "wall s", "cpu s"))
    for label, (w, c) in rows:
        print("%-48s %9.3f %9.3f" % (label, w, c))

    def ratio(label, a, b, note=""):
        print("ratio %-44s wall %.2f  cpu %.2f  %s" % (label, a[0] / b[0], a[1] / b[1], note))

    ratio("library plan / openssl rehash", lib["plan"], lib["rehash"], "(<= 1: no slower)")
    ratio("library plan+write / openssl rehash", lib["write"], lib["rehash"], "(<= 1: no slower)")
    ratio("module first run / ansible openssl rehash", ans["first"], ans["ansible_rehash"], "(<= 1: no slower)")
    ratio("module no-change / module first run", ans["again"], ans["first"], "(< 1: faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
