"""dicom_tls_echo's client identity options before issue 11 (client_cert, client_key,
client_key_passphrase) still work as aliases of certificate_path, privatekey_path and
privatekey_passphrase, at the top level and in each target: the certificate is sent."""

from __future__ import annotations

from support import module_run


def test_old_names_still_send_the_client_certificate(workspace, work):
    sign = workspace.base("dicom_sign", work)
    base = workspace.base("dicom_tls_echo", work)
    old = dict(client_cert=sign["certificate_path"], client_key=sign["privatekey_path"])
    target = {k: base.pop(k) for k in ("host", "port")}
    new_first = dict(target, certificate_path=sign["certificate_path"], privatekey_path=sign["privatekey_path"])
    # Top level: the old names, and a target that inherits them.
    _failed, top = module_run.run("dicom_tls_echo", dict(base, targets=[target], **old))
    # Per target: the old names next to a target with the new ones.
    _failed, per = module_run.run("dicom_tls_echo", dict(base, targets=[dict(target, **old), new_first]))
    for result in (top, per):
        assert "results" in result, result  # not "Unsupported parameters"
        assert [r["client_certificate_sent"] for r in result["results"]] == [True] * len(result["results"]), result
        assert result["summary"] == {"connection_refused": len(result["results"])}, result
