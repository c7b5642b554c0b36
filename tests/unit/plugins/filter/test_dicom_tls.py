"""The collection's filters: JMESPath selection, the C-ECHO matrix and the expiry table."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.medimg.dicom_tls.plugins.filter.dicom_tls import FilterModule

F = FilterModule().filters()

RESULTS = [
    {"client": "a", "server": "b", "status": "success"},
    {"client": "b", "server": "a", "status": "client_certificate_rejected", "reason": "b's CA is not trusted by a"},
    {"client": "x", "server": "a", "status": "client_certificate_rejected", "expect": "failure"},
]


def test_json_query_selects_failed_pairs():
    assert F["json_query"](RESULTS, "[?status != 'success'].client") == ["b", "x"]


def test_json_query_returns_none_when_nothing_selected():
    assert F["json_query"]({"a": 1}, "b") is None


def test_json_query_bad_expression_is_a_clear_error():
    with pytest.raises(AnsibleFilterError, match="invalid JMESPath expression"):
        F["json_query"](RESULTS, "[?status ==")


def test_json_query_plain_types_from_ansible_containers():
    class Wrapped(str):
        pass

    assert F["json_query"]({"k": [Wrapped("v")]}, "k[0]") == "v"


def test_echo_matrix_marks_unexpected_outcomes_only():
    text = F["echo_matrix"](RESULTS)
    lines = text.splitlines()
    assert lines[0].split() == ["SCU", "\\", "SCP", "b", "a"]
    row_a = next(line for line in lines if line.startswith("a "))
    assert row_a.split()[1] == "ok"
    row_b = next(line for line in lines if line.startswith("b "))
    assert "FAIL client_certificate_rejected" in row_b
    row_x = next(line for line in lines if line.startswith("x "))
    assert "refused" in row_x and "FAIL" not in row_x
    assert "2 of 3 pairs as expected" in text
    assert "b -> a: b's CA is not trusted by a (expected success)" in text


def test_echo_matrix_accepted_when_refusal_expected_is_a_failure():
    text = F["echo_matrix"]([{"client": "r", "server": "s", "status": "success", "expect": "failure"}])
    assert "FAIL ok" in text and "0 of 1 pairs as expected" in text


def test_echo_matrix_rejects_non_list():
    with pytest.raises(AnsibleFilterError, match="expected a list"):
        F["echo_matrix"]({"client": "a"})


def test_expiry_table_orders_and_states():
    text = F["expiry_table"](
        [
            {"node": "late", "subject": "CN=late", "not_after": "2027-01-01", "days_remaining": 400},
            {"node": "gone", "subject": "CN=gone", "not_after": "2026-01-01", "days_remaining": -3},
            {"node": "soon", "subject": "CN=soon", "not_after": "2026-12-01", "days_remaining": 10},
        ],
        30,
    )
    body = text.splitlines()[2:]
    assert [line.split()[0] for line in body] == ["gone", "soon", "late"]
    assert body[0].endswith("EXPIRED") and body[1].endswith("renew soon") and body[2].endswith("ok")


def test_echo_matrix_takes_dicom_tls_echo_results_as_documented():
    echo = {
        "changed": False,
        "results": [
            {"host": "127.0.0.1", "port": 11112, "calling_ae_title": "DCMTK_A", "status": "success"},
            {
                "host": "127.0.0.1",
                "port": 11113,
                "calling_ae_title": "DCMTK_A",
                "status": "client_certificate_rejected",
                "reason": "the server does not trust the CA",
            },
        ],
    }
    for given in (echo, echo["results"]):
        lines = F["echo_matrix"](given).splitlines()
        assert lines[0].split() == ["SCU", "\\", "SCP", "127.0.0.1:11112", "127.0.0.1:11113"]
        assert lines[2].split() == ["DCMTK_A", "ok", "FAIL", "client_certificate_rejected"]
        assert "DCMTK_A -> 127.0.0.1:11113: the server does not trust the CA (expected success)" in lines


def test_echo_matrix_names_a_result_without_a_pair():
    with pytest.raises(AnsibleFilterError, match=r"result 2 has no client \(or calling_ae_title\)"):
        F["echo_matrix"]([{"client": "a", "server": "b", "status": "success"}, {"server": "b", "status": "success"}])
