"""Roots whose encoding OpenSSL 3 reads but a strict DER parser may refuse (support.strict_der):
dicom_truststore takes every root OpenSSL and dcmtk trust (each root alone, and the refusals with
OpenSSL's reason: tests/unit/plugins/modules/test_strict_encodings.py).

The verdict of each case comes from the readers at test time: `openssl x509 -noout` and
`openssl verify -CApath` (an `openssl rehash` directory), and storescp +cd over the same directory
accepting or refusing a client each root signed. The collection's hashed directory and bundle are
then read by the same readers."""

from __future__ import annotations

import base64
import os
import re
import subprocess

import pytest
from support.ansible_run import run_tasks
from support.servers import StoreSCP, dcmtk
from support.strict_der import make_cases, openssl_rehash_dir, openssl_verdict


def echo(port: int, case, *trust) -> bool:
    proc = subprocess.run(
        [dcmtk("echoscu"), "+tls", case.key, case.leaf, *trust, "-aec", "STORESCP", "127.0.0.1", str(port)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return proc.returncode == 0


def der_of(path: str) -> bytes:
    text = open(path, "rb").read()
    body = re.search(rb"-----BEGIN CERTIFICATE-----(.*?)-----END", text, re.S).group(1)
    return base64.b64decode(b"".join(body.split()))


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """Every root with OpenSSL's verdict, and the collection's hashed directory and bundle of the
    roots OpenSSL takes (one Ansible run; each root alone is judged in the unit test)."""
    base = tmp_path_factory.mktemp("strict")
    cases = make_cases(base)
    verdicts = {c.name: openssl_verdict(c, base)[0] for c in cases}
    accepted = [c for c in cases if verdicts[c.name]]
    assert 10 <= len(accepted) < len(cases), verdicts  # both kinds, or the test proves nothing
    ours, bundle = str(base / "ours"), str(base / "trusted.pem")
    tasks = [
        {
            "medimg.dicom_tls.dicom_truststore": {
                "path": path,
                "certificates": [c.ca for c in accepted],
                "layout": layout,
            }
        }
        for layout, path in (("hashed_dir", ours), ("bundle", bundle))
    ]
    play = run_tasks(tasks)
    assert play.rc == 0, play.output[-3000:]
    return base, cases, verdicts, ours, bundle


def test_our_hashed_dir_is_openssl_rehash_and_verifies(judged):
    base, cases, verdicts, ours, bundle = judged
    accepted = [c for c in cases if verdicts[c.name]]
    theirs = openssl_rehash_dir(accepted, base / "rehash")
    names = {n for n in os.listdir(theirs) if re.fullmatch(r"[0-9a-f]{8}\.\d+", n)}
    assert {n for n in os.listdir(ours) if not n.startswith(".")} == names
    # the bytes are kept as given (no re-encoding: the signature is over them)
    assert sorted(der_of(os.path.join(ours, n)) for n in names) == sorted(der_of(c.ca) for c in accepted)
    for c in accepted:
        for flags in (["-CApath", ours], ["-CAfile", bundle]):
            proc = subprocess.run(["openssl", "verify", *flags, c.leaf], capture_output=True, text=True, check=False)
            assert proc.returncode == 0, (c.name, proc.stdout + proc.stderr)


def test_storescp_trusts_what_openssl_trusts(judged, tmp_path):
    """storescp +cd over openssl's directory of every root: dcmtk accepts exactly the clients whose
    root OpenSSL accepts; over our directory it accepts all of those."""
    base, cases, verdicts, ours, _bundle = judged
    server = next(c for c in cases if verdicts[c.name])
    every = openssl_rehash_dir(cases, base / "rehash-all")
    with StoreSCP(["+tls", server.key, server.leaf, "+cd", every], str(tmp_path)) as scp:
        dcmtk_says = {c.name: echo(scp.port, c, "+cd", every) for c in cases}
    assert dcmtk_says == verdicts
    with StoreSCP(["+tls", server.key, server.leaf, "+cd", ours], str(tmp_path / "ours")) as scp:
        for c in cases:
            if verdicts[c.name]:
                assert echo(scp.port, c, "+cd", ours), c.name
