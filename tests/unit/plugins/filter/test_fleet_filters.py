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
