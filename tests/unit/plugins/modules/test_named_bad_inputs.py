"""Named bad inputs, one per line: each is refused with a message naming the option or file, and
changes nothing on disk (the checks of the property test, with the expected words)."""

from __future__ import annotations

import pytest
from support import module_run
from support.hostile import INF, NAN, PRIVATE_KEY_PEM
from test_hostile_inputs import hostile_run

CASES = [
    ("dicom_cert", "valid_days", 10000000, "valid_days"),
    ("dicom_cert", "valid_days", 0, "valid_days"),
    ("dicom_cert", "valid_days", -5, "valid_days"),
    ("dicom_cert", "valid_days", 2**63, "valid_days"),
    ("dicom_cert", "renew_before_days", -1, "renew_before_days"),
    ("dicom_cert", "renew_before_days", 10**12, "renew_before_days"),
    ("dicom_cert", "key_size", 10**6, "key_size"),
    ("dicom_cert", "key_size", 1024, "key_size"),
    ("dicom_cert", "key_size", 0, "key_size"),
    ("dicom_cert", "key_size", "big", "key_size"),
    ("dicom_cert", "path", "", "path"),
    ("dicom_cert", "path", "\x00", "path"),
    ("dicom_cert", "path", "a/" * 3000, "path"),
    ("dicom_cert", "path", "x" * 300, "path"),
    ("dicom_cert", "privatekey_path", "", "privatekey_path"),
    ("dicom_cert", "privatekey_passphrase", "p" * 2000, "privatekey_passphrase"),
    ("dicom_cert", "issuer_cert_path", "\x00", "issuer_cert_path"),
    ("dicom_cert", "subject_alt_names", [""], "subject_alt_names"),
    ("dicom_cert", "subject_alt_names", ["\x00"], "subject_alt_names"),
    ("dicom_cert", "subject", {"CN": NAN}, "subject"),
    ("dicom_cert", "usage", "ca", "usage"),
    ("dicom_cert", "format", "txt", "format"),
    ("dicom_cert", "certificate_content", "\x00", "certificate_content"),
    ("dicom_cert", "csr_content", "a" * (1024 * 1024 + 1), "csr_content"),
    ("dicom_crl", "next_update_days", 100000000, "next_update_days"),
    ("dicom_crl", "next_update_days", 0, "next_update_days"),
    ("dicom_crl", "renew_before_days", NAN, "renew_before_days"),
    ("dicom_crl", "renew_before_days", INF, "renew_before_days"),
    ("dicom_crl", "renew_before_days", -1.0, "renew_before_days"),
    ("dicom_crl", "revoked.serial", 2**200, "serial"),
    ("dicom_crl", "revoked.serial", "ff" * 21, "serial"),
    ("dicom_crl", "revoked.serial", 0, "serial"),
    ("dicom_crl", "revoked.serial", "xyz", "serial"),
    ("dicom_crl", "revoked.revocation_date", "yesterday", "revocation_date"),
    ("dicom_crl", "path", "", "path"),
    ("dicom_crl", "issuer_privatekey_path", "\x00", "issuer_privatekey_path"),
    ("dicom_crl", "mode", "rwxrwxrwx", "mode"),
    ("dicom_crl", "mode", "77777", "mode"),
    ("dicom_tls_echo", "timeout", 1e300, "timeout"),
    ("dicom_tls_echo", "timeout", NAN, "timeout"),
    ("dicom_tls_echo", "timeout", -INF, "timeout"),
    ("dicom_tls_echo", "timeout", 0.0, "timeout"),
    ("dicom_tls_echo", "retries", 10**9, "retries"),
    ("dicom_tls_echo", "retry_delay", NAN, "retry_delay"),
    ("dicom_tls_echo", "port", 70000, "port"),
    ("dicom_tls_echo", "port", 0, "port"),
    ("dicom_tls_echo", "host", "a..b", "host"),
    ("dicom_tls_echo", "host", "\x00", "host"),
    ("dicom_tls_echo", "server_name", "-x", "server_name"),
    ("dicom_tls_echo", "max_workers", 0, "max_workers"),
    ("dicom_tls_echo", "called_ae_title", "A" * 17, "called_ae_title"),
    ("dicom_tls_echo", "ca_file", "\x00", "ca_file"),
    ("dicom_daemon", "port", -1, "port"),
    ("dicom_daemon", "timeout", 10**9, "timeout"),
    ("dicom_daemon", "pidfile", "", "pidfile"),
    ("dicom_daemon", "environment", {"A": NAN}, "environment"),
    ("dicom_sign", "purpose", 99, "purpose"),
    ("dicom_sign", "purpose", 0, "purpose"),
    ("dicom_sign", "tags", ["NoSuchKeyword"], "tags"),
    ("dicom_sign", "privatekey_passphrase", "p" * 1024, "privatekey_passphrase"),
    ("dicom_sign", "dest", "\x00", "dest"),
    ("dicom_truststore", "owner", "no-such-user-x", "owner"),
    ("dicom_truststore", "group", "no-such-group-x", "group"),
    ("dicom_truststore", "mode", "u+x", "mode"),
    ("dicom_truststore", "certificates", ["\x00"], "certificates"),
    ("orthanc_config", "settings", {"DicomTlsPrivateKey": 7}, "DicomTlsPrivateKey"),
    ("orthanc_config", "settings", {"DicomPort": NAN}, "settings"),
    ("orthanc_config", "settings", {"DicomScuTimeout": INF}, "settings"),
    ("orthanc_config", "config_dir", "", "config_dir"),
    ("dicom_cert_info", "path", "\x00", "path"),
    ("dicom_cert_info", "content", PRIVATE_KEY_PEM + "\x00", "content"),
    # file options Ansible adds (add_file_common_args): refused before the key is written
    ("dicom_cert", "mode", {}, "mode"),
    ("dicom_cert", "mode", "rwxr--r--", "mode"),
    ("dicom_cert", "mode", "01777777", "mode"),
    ("dicom_cert", "owner", "no-such-user-x", "owner"),
    ("dicom_cert", "owner", "", "owner"),
    ("dicom_cert", "group", "no-such-group-x", "group"),
    ("dicom_cert", "attributes", "+Q", "attributes"),
    ("dicom_cert_export", "mode", "u+q", "mode"),
    ("dicom_cert_export", "owner", "no-such-user-x", "owner"),
    ("dicom_cert_export", "name", "../x", "name"),
    ("dicom_cert_export", "certificate_content", PRIVATE_KEY_PEM, "certificate_content"),
    ("dicom_csr_check", "min_key_size", 10**9, "min_key_size"),
    ("dicom_csr_check", "min_key_size", -1, "min_key_size"),
    ("dicom_csr_check", "path", "\x00", "path"),
    ("dicom_csr_sign", "valid_days", 100000000, "valid_days"),
    ("dicom_csr_sign", "valid_days", 0, "valid_days"),
    ("dicom_csr_sign", "renew_before_days", -1, "renew_before_days"),
    ("dicom_csr_sign", "requests.path", "", "path"),
    ("dicom_csr_sign", "requests.csr_content", "\x00", "csr_content"),
    ("dicom_csr_sign", "issuer_privatekey_passphrase", "p" * 2000, "issuer_privatekey_passphrase"),
    ("dicom_ledger_info", "expires_within", -1, "expires_within"),
    ("dicom_ledger_info", "expires_within", 10**9, "expires_within"),
    ("dicom_ledger_info", "serial", "xyz", "serial"),
    ("dicom_metrics", "mode", "0x10", "mode"),
    ("dicom_metrics", "mode", 10**9, "mode"),
    ("dicom_metrics", "crl_files.path", "", "path"),
    ("dicom_metrics", "certificates", [{"name": "a", "not_after": NAN}], "certificates"),
    ("dicom_pkcs12", "key_size", 10**6, "key_size"),
    ("dicom_pkcs12", "valid_days", 0, "valid_days"),
    ("dicom_pkcs12", "passphrase", "p" * 2000, "passphrase"),
    ("dicom_pkcs12", "path", "", "path"),
]


def test_at_least_sixty():
    assert len(CASES) >= 60


def test_every_named_option_is_an_option_of_its_module():
    """A case naming an option the module does not have is refused as unsupported and tests nothing."""
    known = {}
    for m in {c[0] for c in CASES}:
        known[m] = {name for name, _spec in module_run.options(module_run.argument_spec(m))}
    assert not [(m, o) for m, o, _v, _w in CASES if o not in known[m]]


@pytest.mark.parametrize(
    ("module", "option", "value", "words"), CASES, ids=["%s.%s-%d" % (c[0], c[1], i) for i, c in enumerate(CASES)]
)
def test_named_bad_input(workspace, module, option, value, words):
    result = hostile_run(workspace, module, option, value)
    assert result.get("failed") or "msg" in result, result
    assert words in result["msg"], result["msg"]
