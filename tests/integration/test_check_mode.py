"""Check mode tells the truth on a fleet: ``rollout.yml --check --diff`` on a fresh fleet and after a
change of SAN, AE title, TLS profile, CA and revocation predicts exactly what the real run then
changes: the same tasks change on the same hosts, and nothing fails.

Each step runs the playbook twice over the same inventory and extra vars (check + diff, then for
real); the changes accumulate from step to step. On a fresh fleet the tasks that depend on files an
earlier task would create (the issuing CA on its root, the CRL on the issuing CA, the node's trust
directory on the CA material, a node certificate on a CA that does not exist yet) predict
"would create" instead of failing."""

from __future__ import annotations

import os

import pytest
from support.fleet import LocalFleet

pytestmark = pytest.mark.skipif(
    os.environ.get("DICOM_TLS_NETNS") != "1", reason="live listeners only inside scripts/netns.sh (make integration)"
)

NODES = {"check-a": 11432, "check-b": 11433}

SAN = (
    "{{ ['DNS:' ~ inventory_hostname, 'IP:127.0.0.1']"
    " + (['DNS:alias.example.org'] if inventory_hostname == 'check-a' else []) }}"
)
AE_TITLE = "{{ 'CHECK_B2' if inventory_hostname == 'check-b' else inventory_hostname | upper | replace('-', '_') }}"

# (step, extra vars added to the previous ones)
STEPS = [
    ("fresh fleet", {}),
    ("SAN of check-a and AE title of check-b", {"dcmtk_tls_subject_alt_names": SAN, "dcmtk_tls_ae_title": AE_TITLE}),
    ("TLS profile", {"dcmtk_tls_profile": "bcp195"}),
    ("CA", {"dicom_tls_ca_name": "other-ca", "dicom_tls_trusted_ca_names": ["site-ca", "other-ca"]}),
    ("revocation", {"dicom_tls_revoked": [{"node": "check-b"}]}),
    ("nothing", {}),
]


def changed_tasks(res) -> set[tuple[str, str]]:
    """(task name, host) of every task result that changed something (or would, in check mode)."""
    out = set()
    for play in res.data["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                assert not result.get("failed") or result.get("_ansible_ignore_errors"), (
                    task["task"]["name"],
                    host,
                    result.get("msg"),
                )
                if result.get("changed"):
                    out.add((task["task"]["name"], host))
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = LocalFleet(tmp_path_factory.mktemp("checkfleet"), NODES)
    f.extra = {}
    try:
        yield f
    finally:
        f.play("stop.yml")
        for out in f.outputs:
            assert "PRIVATE KEY" not in out


@pytest.mark.parametrize("step,more", STEPS, ids=[name for name, _vars in STEPS])
def test_check_diff_predicts_the_real_run(fleet, step, more):
    fleet.extra.update(more)
    check = fleet.play("rollout.yml", "--check", "--diff", **fleet.extra)
    assert check.rc == 0, check.output[-4000:]
    predicted = changed_tasks(check)
    if step == "fresh fleet":  # check mode wrote nothing
        assert not os.path.exists(os.path.join(fleet.state, "pki", "site-ca"))
        assert not os.path.exists(os.path.join(fleet.state, "nodes"))
    real = fleet.play("rollout.yml", **fleet.extra)
    assert real.rc == 0, real.output[-4000:]
    done = changed_tasks(real)
    assert sorted(predicted - done) == [] and sorted(done - predicted) == [], (
        "predicted but not done: %s\ndone but not predicted: %s" % (sorted(predicted - done), sorted(done - predicted))
    )
    if step == "fresh fleet":
        # the node certificates were predicted although no CA existed yet
        hosts = {h for t, h in predicted if t.endswith("Install the certificate and its chain next to the key")}
        assert hosts == set(NODES)
    if step == "nothing":
        assert done == set()
    else:
        assert done, "the step changed nothing: it tests nothing"
