"""Everything is validated in the plan, before the first write: one file given two roles, an output
naming an input, a state=absent that would fail half way, unbounded sizes in check mode. Each case
asserts the refusal names the options or the file and that nothing on disk changed."""

from __future__ import annotations

import os

import pytest
from support import module_run
from support.hostile import check_refusal, snapshot


def refused(workspace, work, module, change, words, check_mode=False):
    """Run ``module`` with its base task changed by ``change(args)``; assert a clean refusal."""
    args = workspace.base(module, work)
    change(args)
    before = snapshot(work)
    failed, result = module_run.run(module, args, check_mode=check_mode)
    assert failed, result
    check_refusal(words[0], args, result)
    for word in words:
        assert word in result["msg"], result["msg"]
    assert snapshot(work) == before, "%s changed files before refusing: %s" % (module, result["msg"])
    return result


def _set(**kw):
    return lambda args: args.update(kw)


def test_cert_key_path_is_certificate_path(workspace, work):
    refused(
        workspace,
        work,
        "dicom_cert",
        lambda a: a.update(privatekey_path=a["path"]),
        ["path", "privatekey_path", "same file"],
    )


def test_cert_chain_path_is_key_path(workspace, work):
    refused(
        workspace, work, "dicom_cert", lambda a: a.update(chain_path=a["privatekey_path"]), ["chain_path", "same file"]
    )


def test_cert_pkcs12_path_is_certificate_path(workspace, work):
    refused(workspace, work, "dicom_cert", lambda a: a.update(pkcs12_path=a["path"]), ["pkcs12_path", "same file"])


def test_cert_path_is_issuer_key(workspace, work):
    """The CA's key would be overwritten by the node certificate."""
    refused(
        workspace,
        work,
        "dicom_cert",
        lambda a: a.update(path=a["issuer_privatekey_path"]),
        ["issuer_privatekey_path", "destroy"],
    )


def test_cert_key_path_is_symlink_to_issuer_key(workspace, work):
    """Another name for the same file (a symbolic link) is the same file."""

    def change(args):
        link = os.path.join(work, "out", "node.key")
        os.symlink(args["issuer_privatekey_path"], link)
        args["privatekey_path"] = link

    args = workspace.base("dicom_cert", work)
    change(args)
    before = snapshot(work)
    failed, result = module_run.run("dicom_cert", args)
    assert failed and "issuer_privatekey_path" in result["msg"], result
    assert snapshot(work) == before


def test_cert_database_is_issuer_cert(workspace, work):
    refused(
        workspace, work, "dicom_cert", lambda a: a.update(database=a["issuer_cert_path"]), ["database", "same file"]
    )


def test_csr_sign_request_path_is_issuer_key(workspace, work):
    def change(args):
        args["requests"] = [dict(args["requests"][0], path=args["issuer_privatekey_path"])]

    refused(workspace, work, "dicom_csr_sign", change, ["requests[0].path", "issuer_privatekey_path"])


def test_csr_sign_two_requests_one_path(workspace, work):
    def change(args):
        first = args["requests"][0]
        args["requests"] = [first, dict(first, name="second")]

    refused(workspace, work, "dicom_csr_sign", change, ["requests[0].path", "requests[1].path", "same file"])


def test_pkcs12_certificate_path_is_pkcs12(workspace, work):
    refused(
        workspace, work, "dicom_pkcs12", lambda a: a.update(certificate_path=a["path"]), ["certificate_path", "same"]
    )


def test_crl_path_is_issuer_cert(workspace, work):
    refused(workspace, work, "dicom_crl", lambda a: a.update(path=a["issuer_cert_path"]), ["issuer_cert_path"])


def test_sign_dest_is_private_key(workspace, work):
    refused(workspace, work, "dicom_sign", lambda a: a.update(dest=a["privatekey_path"]), ["privatekey_path"])


def test_metrics_path_is_crl(workspace, work):
    refused(workspace, work, "dicom_metrics", lambda a: a.update(path=a["crl_files"][0]["path"]), ["crl_files[0].path"])


def test_owner_group_mode_refused_before_key_is_written(workspace, work):
    """The issue's case: the key and certificate were written, then Ansible refused the owner."""
    for change in ({"owner": "no-such-user-x"}, {"group": "no-such-group-x"}, {"mode": "u=rwz"}, {"mode": "99"}):
        refused(workspace, work, "dicom_cert", _set(**change), [next(iter(change))])
        assert not os.path.exists(os.path.join(work, "out", "node.key"))


def _present(workspace, work) -> dict:
    args = workspace.base("dicom_cert", work)
    args["chain_path"] = os.path.join(work, "out", "node.chain.pem")
    failed, result = module_run.run("dicom_cert", args)
    assert not failed, result
    return args


def test_absent_checks_every_path_first(workspace, work):
    """state=absent with a key path that cannot be removed (a directory) refuses before removing the
    certificate and the chain."""
    args = _present(workspace, work)
    os.unlink(args["privatekey_path"])
    os.mkdir(args["privatekey_path"])
    before = snapshot(work)
    failed, result = module_run.run("dicom_cert", dict(args, state="absent"))
    assert failed and result["path"] == args["privatekey_path"], result
    assert "directory" in result["msg"], result
    assert snapshot(work) == before
    assert os.path.exists(args["path"]) and os.path.exists(args["chain_path"])


def test_absent_removes_all_when_all_can_go(workspace, work):
    args = _present(workspace, work)
    csr = os.path.join(work, "out", "node.csr")  # not there: nothing to remove, no refusal either
    failed, result = module_run.run("dicom_cert", dict(args, state="absent", csr_path=csr))
    assert not failed and result["changed"], result
    for key in ("path", "privatekey_path", "chain_path"):
        assert not os.path.lexists(args[key])
    failed, result = module_run.run("dicom_cert", dict(args, state="absent"))
    assert not failed and not result["changed"], result


@pytest.mark.parametrize("module", ["dicom_cert", "dicom_pkcs12"])
def test_unbounded_key_size_refused_in_check_mode(workspace, work, module):
    """Check mode does not promise 'created' for a key that would take hours to generate."""
    result = refused(workspace, work, module, _set(key_type="rsa", key_size=10**6), ["key_size"], check_mode=True)
    assert "16384" in result["msg"]


# ---------------------------------------------------------------- one file in two roles (issue 14b)


def test_truststore_bundle_over_its_own_certificate(workspace, work):
    """The bundle written over the root it is built from would leave no copy of that root."""
    refused(
        workspace,
        work,
        "dicom_truststore",
        lambda a: a.update(layout="bundle", path=a["certificates"][0]),
        ["path", "certificates[0]", "destroy"],
    )


def test_truststore_bundle_is_a_link_to_a_crl_issuer(workspace, work):
    def change(args):
        link = os.path.join(work, "out", "bundle.pem")
        os.symlink(args["certificates"][0], link)
        args.update(layout="bundle", path=link, crl_issuers=[args["certificates"][0]], certificates=[])

    refused(workspace, work, "dicom_truststore", change, ["path", "crl_issuers[0]"])


def test_orthanc_dropin_over_the_tls_key(workspace, work):
    """settings.DicomTlsPrivateKey relative to config_dir names the drop-in the module would rewrite."""
    refused(
        workspace,
        work,
        "orthanc_config",
        lambda a: a["settings"].update(DicomTlsPrivateKey="dicom-tls.json"),
        ["dropin", "settings.DicomTlsPrivateKey", "destroy"],
    )


def test_orthanc_dropin_is_a_link_to_the_certificate(workspace, work):
    def change(args):
        os.symlink(args["settings"]["DicomTlsCertificate"], os.path.join(args["config_dir"], "tls.json"))
        args["dropin"] = "tls.json"

    refused(workspace, work, "orthanc_config", change, ["dropin", "settings.DicomTlsCertificate"])


def test_daemon_pidfile_is_log_path(workspace, work):
    refused(
        workspace,
        work,
        "dicom_daemon",
        lambda a: a.update(state="started", log_path=a["pidfile"]),
        ["pidfile", "log_path", "same file"],
    )


def test_daemon_pidfile_over_its_executable(workspace, work):
    def change(args):
        exe = os.path.join(work, "out", "listener")
        with open(exe, "w") as fh:
            fh.write("#!/bin/sh\n")
        os.chmod(exe, 0o755)
        args.update(state="started", command=[exe], pidfile=exe)

    refused(workspace, work, "dicom_daemon", change, ["pidfile", "command[0]", "destroy"])


def test_option_files_two_tools_one_file(workspace, work):
    """echoscu.args is a link to storescp.args: writing both would leave one tool's options in both."""

    def change(args):
        os.makedirs(args["directory"])
        open(os.path.join(args["directory"], "storescp.args"), "w").close()
        os.symlink("storescp.args", os.path.join(args["directory"], "echoscu.args"))
        args["tools"]["echoscu"] = ["+tls", "-ic"]

    refused(workspace, work, "dcmtk_option_files", change, ["tools.echoscu", "tools.storescp", "same file"])


def test_cert_export_two_formats_one_file(workspace, work):
    """NAME.der is a link to NAME.pem: DER bytes would end up in the PEM export too."""

    def change(args):
        pem = os.path.join(args["dest"], args["name"] + ".pem")
        open(pem, "w").close()
        os.link(pem, os.path.join(args["dest"], args["name"] + ".der"))

    refused(workspace, work, "dicom_cert_export", change, ["pem", "der", "same file"])
