"""The fleet filters: which CSRs the CA signs in one task, and the node names of the revoked list."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.medimg.dicom_tls.plugins.filter.dicom_tls import FilterModule
from ansible_collections.medimg.dicom_tls.plugins.module_utils import fleet

F = FilterModule().filters()


def test_sign_requests_one_per_host_with_a_csr_in_name_order():
    hostvars = {"b": {"pki_node_csr": {"csr": "CSR-B"}}, "a": {"pki_node_csr": {"csr": "CSR-A"}}, "c": {}}
    out = F["sign_requests"](["b", "a", "c", "gone"], hostvars, "pki_node_csr", "/pki/site-ca/issued/")
    assert out == [
        {
            "name": "a",
            "path": "/pki/site-ca/issued/a.pem",
            "chain_path": "/pki/site-ca/issued/a.chain.pem",
            "csr_content": "CSR-A",
        },
        {
            "name": "b",
            "path": "/pki/site-ca/issued/b.pem",
            "chain_path": "/pki/site-ca/issued/b.chain.pem",
            "csr_content": "CSR-B",
        },
    ]


def test_sign_requests_skips_a_host_whose_csr_step_was_skipped():
    hostvars = {"a": {"pki_node_csr": {"skipped": True}}}
    assert F["sign_requests"](["a"], hostvars, "pki_node_csr", "/i") == []


def test_revoked_nodes_keeps_only_node_entries():
    revoked = [
        {"node": "dcmtk-b"},
        {"serial": "0A"},
        {"certificate_path": "/x.pem"},
        {"node": "orthanc-a", "reason": "superseded"},
    ]
    assert F["revoked_nodes"](revoked) == ["dcmtk-b", "orthanc-a"]
    assert F["revoked_nodes"]([]) == []


def test_revoked_nodes_refuses_a_non_list():
    with pytest.raises(AnsibleFilterError, match="expected a list"):
        F["revoked_nodes"]("dcmtk-b")


def test_ca_layout_is_named_in_one_place():
    assert fleet.ca_path("/pki/", "site-ca", "crl") == "/pki/site-ca/issuing.crl.pem"
    with pytest.raises(ValueError, match="unknown CA file"):
        fleet.ca_path("/pki", "site-ca", "nope")


DCMTK = {
    "kind": "dcmtk",
    "host": "127.0.0.1",
    "ae_title": "A",
    "certificate_path": "/a/chain.pem",
    "privatekey_path": "/a/key",
    "crl_check": "leaf",
    "profile": "bcp195-nd",
    "checks_crl": True,
    "ca_path": "/a/trust",
}


def endpoint(name, kind="dcmtk", port=1, **kw):
    e = dict(DCMTK, name=name, kind=kind, port=port, ae_title=name.upper())
    if kind == "orthanc":
        e.update(checks_crl=False, crl_check="none", ca_file="/o/trusted.pem")
        del e["ca_path"]
    e.update(kw)
    return e


def test_mesh_targets_expect_a_revoked_node_refused_by_crl_checkers_and_skip_orthanc_pairs():
    a, b, o = endpoint("a", port=1), endpoint("b", port=2), endpoint("o", "orthanc", port=3)
    servers = [a, b, o]
    by_port = {t["port"]: t for t in F["mesh_targets"](a, servers, ["b"])}
    assert by_port[1]["expect"] == "success" and by_port[2]["expect"] == "failure"
    assert by_port[1]["ca_path"] == "/a/trust" and by_port[1]["calling_ae_title"] == "A"
    # the revoked node calls: dcmtk servers refuse it, the Orthanc pair is not checked
    from_b = F["mesh_targets"](b, servers, ["b"])
    assert [(t["port"], t["expect"]) for t in from_b] == [(1, "failure"), (2, "failure")]
    # an Orthanc client reads its bundle and checks no CRLs
    from_o = F["mesh_targets"](o, [a, o], [])
    assert all(t["ca_file"] == "/o/trusted.pem" and t["expect"] == "success" for t in from_o)


def test_mesh_targets_names_a_missing_endpoint_field():
    with pytest.raises(AnsibleFilterError, match="lacks"):
        F["mesh_targets"]({"name": "x", "kind": "dcmtk"}, [endpoint("a")], [])


def test_orthanc_modalities_from_each_peers_fleet_variables():
    hostvars = {"b": {"dicom_tls_ae_title": "B", "dicom_tls_port": "104", "dicom_tls_address": "10.0.0.2"}, "a": {}}
    assert F["orthanc_modalities"](["b", "a"], hostvars) == {
        "a": {"AET": "STORESCP", "Host": "127.0.0.1", "Port": 11112},
        "b": {"AET": "B", "Host": "10.0.0.2", "Port": 104},
    }


def test_revoked_entries_only_for_certificates_this_ca_issued():
    revoked = [
        {"node": "a"},
        {"node": "elsewhere"},
        {"appliance": "ct-1", "reason": "superseded"},
        {"serial": "0A"},
        {"certificate_path": "/x.pem", "reason": "cessation_of_operation"},
    ]
    issued = ["/pki/ca/issued/a.pem", "/pki/ca/issued/ct-1.pem"]
    assert F["revoked_entries"](revoked, issued, "/pki/ca/issued") == [
        {"certificate_path": "/pki/ca/issued/a.pem", "reason": "key_compromise"},
        {"certificate_path": "/pki/ca/issued/ct-1.pem", "reason": "superseded"},
        {"serial": "0A", "reason": "key_compromise"},
        {"certificate_path": "/x.pem", "reason": "cessation_of_operation"},
    ]


def test_endpoints_of_each_host_whatever_its_role():
    hostvars = {"a": {"dcmtk_tls_endpoint": {"name": "a"}}, "o": {"orthanc_tls_endpoint": {"name": "o"}}, "x": {}}
    assert F["endpoints"](["o", "a"], hostvars) == [{"name": "o"}, {"name": "a"}]
    with pytest.raises(AnsibleFilterError, match="x has no endpoint"):
        F["endpoints"](["x"], hostvars)


APPLIANCES = [
    {"name": "ct-1", "address": "10.1.2.3", "port": "104", "ae_title": "CT_01"},
    {"name": "mr-2", "address": "10.1.2.4", "port": 11112, "ae_title": "MR_02", "verify_from": ["a"]},
]


def test_revoked_nodes_with_appliances():
    revoked = [{"node": "a"}, {"appliance": "ct-1"}, {"serial": "0A"}]
    assert F["revoked_nodes"](revoked) == ["a"]
    assert F["revoked_nodes"](revoked, appliances=True) == ["a", "ct-1"]


def test_appliance_endpoints_for_the_nodes_that_check_them():
    nodes = ["a", "b"]
    from_a = F["appliance_endpoints"](APPLIANCES, "a", nodes)
    assert [(e["name"], e["port"], e["kind"], e["checks_crl"]) for e in from_a] == [
        ("ct-1", 104, "appliance", False),
        ("mr-2", 11112, "appliance", False),
    ]
    assert [e["name"] for e in F["appliance_endpoints"](APPLIANCES, "b", nodes)] == ["ct-1"]
    assert [e["name"] for e in F["appliance_endpoints"](APPLIANCES, "ca", nodes)] == []
    assert [e["name"] for e in F["appliance_endpoints"](APPLIANCES)] == ["ct-1", "mr-2"]
    with pytest.raises(AnsibleFilterError, match="appliance_endpoints: .*address"):
        F["appliance_endpoints"]([{"name": "x", "port": 1, "ae_title": "X"}])


def test_mesh_targets_of_verify_yml_nodes_and_appliances():
    """verify.yml's targets: every node and the appliances this node checks, a revoked appliance
    refused by a CRL-checking node."""
    a, o = endpoint("a", port=1), endpoint("o", "orthanc", port=3)
    servers = [a, o] + F["appliance_endpoints"](APPLIANCES, "a", ["a", "o"])
    revoked = F["revoked_nodes"]([{"appliance": "mr-2"}], appliances=True)
    targets = F["mesh_targets"](a, servers, revoked)
    assert [(t["host"], t["port"], t["expect"]) for t in targets] == [
        ("127.0.0.1", 1, "success"),
        ("127.0.0.1", 3, "success"),
        ("10.1.2.3", 104, "success"),
        ("10.1.2.4", 11112, "failure"),
    ]


def test_echo_pairs_name_servers_and_report_a_client_that_did_not_echo():
    servers = [endpoint("a", port=1), endpoint("b", port=2)] + F["appliance_endpoints"](APPLIANCES)
    ok = {"status": "success", "reason": "", "expect": "success", "as_expected": True}
    hostvars = {
        "a": {
            "verify_echo": {
                "results": [
                    dict(ok, host="127.0.0.1", port=2),
                    dict(ok, host="10.1.2.3", port=104),
                    dict(ok, host="192.0.2.9", port=7),
                ]
            }
        },
        "b": {"verify_echo": {"failed": True, "msg": "b: the client key does not exist"}},
        "c": {},
    }
    pairs = F["echo_pairs"](["a", "b", "c"], hostvars, "verify_echo", servers)
    assert [(p["client"], p["server"], p["status"]) for p in pairs] == [
        ("a", "b", "success"),
        ("a", "ct-1", "success"),
        ("a", "192.0.2.9:7", "success"),
        ("b", "(all)", "not_run"),
        ("c", "(all)", "not_run"),
    ]
    assert pairs[3]["reason"] == "b: the client key does not exist" and pairs[4]["reason"] == "no result"
    assert not pairs[3]["as_expected"]


def test_expiry_entries_of_nodes_and_of_what_appliances_served():
    cert = {"subject": "CN=a", "not_after": "2027-01-01T00:00:00Z", "days_remaining": 396}
    served = {"subject": "CN=ct-1", "not_after": "2026-12-20T00:00:00Z", "days_remaining": 19}
    hostvars = {
        "a": {
            "verify_cert": cert,
            "dcmtk_tls_endpoint": {"kind": "dcmtk"},
            "verify_echo": {"results": [{"host": "10.1.2.3", "port": 104, "peer_certificate": served}]},
        },
        "o": {"orthanc_tls_endpoint": {"kind": "orthanc"}, "verify_cert": {"failed": True}},
    }
    rows = F["expiry_entries"](["a", "o"], hostvars, "verify_cert", "verify_echo", APPLIANCES)
    assert rows == [
        dict(cert, node="a", kind="dcmtk"),
        {"node": "o", "subject": "?", "not_after": "?", "days_remaining": -1, "kind": "orthanc"},
        dict(served, node="ct-1", kind="appliance"),
        {
            "node": "mr-2",
            "subject": "? (no certificate served)",
            "not_after": "?",
            "days_remaining": -1,
            "kind": "appliance",
        },
    ]


CERT = "-----BEGIN CERTIFICATE-----\nA\n"
CHAIN = "-----BEGIN CERTIFICATE-----\nA\nB\n"


def _sha(text):
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_certificate_due_only_when_the_node_does_not_hold_what_the_ca_returned():
    issued = {"certificate": CERT, "chain": CHAIN, "changed": False}
    held = {"path_sha256": _sha(CERT), "chain_path_sha256": _sha(CHAIN)}
    assert F["certificate_due"](issued, held) is False
    assert F["certificate_due"](issued, dict(held, chain_path_sha256=_sha(""))) is True
    assert F["certificate_due"](issued, dict(held, path_sha256=None)) is True
    assert F["certificate_due"](issued, {}) is True


def test_certificate_due_for_a_refusal_and_for_a_prediction_in_check_mode():
    assert F["certificate_due"]({"failed": True, "msg": "expired CA"}, {}) is True
    assert F["certificate_due"]({"predicted": True}, {}, True) is True
    assert F["certificate_due"]({"predicted": True}, {}, False) is False
    assert F["certificate_due"]({}, {}) is False
    assert F["certificate_due"](None, None) is False


def test_certificate_due_refuses_what_is_not_a_result():
    with pytest.raises(AnsibleFilterError, match="certificate_due"):
        F["certificate_due"]("issued", {})
