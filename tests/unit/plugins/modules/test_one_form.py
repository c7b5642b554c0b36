"""One subject form, one fingerprint form, one date form in every result.

The same certificate goes through dicom_cert, dicom_cert_info, dicom_truststore, dicom_sign (run
in-process) and dicom_tls_echo's peer description (the function its result uses); each must give the
subject, SHA-256 fingerprint and notAfter that `openssl x509 -nameopt compat -subject -fingerprint
-sha256 -enddate` prints for it, in the collection's forms (/O=../CN=.., lowercase colon hex,
YYYY-MM-DDTHH:MM:SSZ)."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess

from ansible_collections.medimg.dicom_tls.plugins.module_utils import tls_echo
from support import module_run
from support.hostile import Workspace


def _openssl(cert: str) -> tuple[str, str, str]:
    out = subprocess.run(
        ["openssl", "x509", "-in", cert, "-noout", "-nameopt", "compat", "-subject", "-fingerprint", "-sha256",
         "-enddate"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    subject = re.search(r"^subject=\s*(.*)$", out, re.M).group(1)
    fingerprint = re.search(r"Fingerprint=(.*)$", out, re.M).group(1).lower()
    end = datetime.datetime.strptime(re.search(r"notAfter=(.*)$", out, re.M).group(1), "%b %d %H:%M:%S %Y GMT")
    return subject, fingerprint, end.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_same_certificate_same_subject_fingerprint_and_date_everywhere(tmp_path):
    ws = Workspace(str(tmp_path / "ws"))
    work = ws.copy()
    try:
        args = ws.base("dicom_cert", work)
        args["subject"] = "/C=BE/O=medimg test/OU=Radiology, Level 2/CN=node two"
        failed, made = module_run.run("dicom_cert", args)
        assert not failed, made
        cert = args["path"]
        want = _openssl(cert)
        assert want[0] == args["subject"]  # openssl's compat form is ours

        seen = {"dicom_cert": (made["subject"], made["fingerprint_sha256"], made["not_after"])}
        failed, info = module_run.run("dicom_cert_info", {"path": cert})
        assert not failed, info
        seen["dicom_cert_info"] = (info["subject"], info["fingerprint_sha256"], info["not_after"])
        trust = os.path.join(work, "out", "trust")
        failed, store = module_run.run(
            "dicom_truststore", {"path": trust, "certificates": [cert], "allow_non_root": True}
        )
        assert not failed, store
        (entry,) = [e for e in store["entries"] if e.get("kind", "cert") == "cert"]
        seen["dicom_truststore"] = (entry["subject"], entry["fingerprint_sha256"], entry["not_after"])
        sign = ws.base("dicom_sign", work)
        sign.update(privatekey_path=args["privatekey_path"], certificate_path=cert)
        failed, signed = module_run.run("dicom_sign", sign)
        assert not failed, signed
        sig = signed["files"][0]["signatures"][0]
        seen["dicom_sign"] = (sig["signer"], sig["signer_fingerprint_sha256"], sig["signer_not_after"])
        with open(cert, "rb") as fh:
            der = subprocess.run(
                ["openssl", "x509", "-outform", "DER"], input=fh.read(), check=True, capture_output=True
            ).stdout
        peer = tls_echo.describe_certificate(der)
        seen["dicom_tls_echo"] = (peer["subject"], peer["fingerprint_sha256"], peer["not_after"])
        assert seen == dict.fromkeys(seen, want)
    finally:
        shutil.rmtree(work, ignore_errors=True)
