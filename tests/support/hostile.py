"""Shared pieces of the hostile-input tests: a valid base task per module, the hostile values per
option type, and the checks every refusal must pass."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import shutil
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from support import dicom_files
from support import pki as pki_mod
from support.pki import TestPKI

PRIVATE_KEY_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
    "-----END PRIVATE KEY-----\n"
)
KEY_LINES = [line for line in PRIVATE_KEY_PEM.splitlines() if not line.startswith("-----")]
NAN = float("nan")
INF = float("inf")

HOSTILE = {
    # not inf (float or text): ansible-core's int conversion raises OverflowError in AnsibleModule() itself
    "int": [-1, 0, -(2**63), 2**63, 10**30, 10**400, 1e300, "nan", "1e300", "0x10", [], {}, "\x00"],
    "float": [NAN, INF, -INF, 1e300, -1e300, -1.0, 0.0, "nan", "inf", "-inf", "1e999", [], "\x00"],
    "str": ["", " ", "\x00", "a" * 70000, "\n", "../../etc/passwd", PRIVATE_KEY_PEM, "%s%n{0}", "\U0001f600", 7, NAN],
    "path": ["", "\x00", "/nonexistent/dir/x", "/proc/self/mem", "/", "/dev/null", "a/" * 3000, "~nosuchuser/x"],
    "bool": ["maybe", 2, NAN, [], "\x00"],
    "list": [[None], ["\x00"], [[]], [{}], ["a" * 70000], "\x00", [NAN]],
    "dict": [{"\x00": 1}, {"a": NAN}, {"a": INF}, [], "x", {"DicomTlsPrivateKey": 7}, {"a": {"b": [NAN]}}],
    "raw": [NAN, INF, -INF, {}, [], 10**100, -1, "", "\x00", {"a": NAN}, "a" * 70000, PRIVATE_KEY_PEM],
}
HOSTILE["jsonarg"] = HOSTILE["str"]

# Ansible's own argument-spec messages: they name the option, in Ansible's words.
ANSIBLE_SPEC = re.compile(
    r"^(Value .* in the sub parameter|dictionary requested|argument '|Unsupported parameters|missing required argument|"
    r"value of |parameters are mutually exclusive|"
    r"one of the following is required|missing parameter\(s\) required by|parameters are required together|"
    r"\w+ is \w+ but (all|any) of the following are missing|Elements value for option|"
    r"Invalid type|The value .* is not a valid|elements of|Unable to)",
)
LIBRARY_TEXT = re.compile(
    r"Traceback|\b[A-Z]\w*(Error|Exception)\b|\[Errno|date value out of range|embedded null|has no attribute|"
    r"maximum recursion|invalid literal|could not convert|unhashable|not subscriptable|NoneType|<class|"
    r"int too large|too large to convert|cannot convert float|out of range for",
)


class Workspace:
    """A PKI and one valid task per module, in a template directory copied for every run."""

    def __init__(self, root: str):
        self.template = os.path.join(root, "template")
        os.makedirs(self.template)
        pki = TestPKI(os.path.join(self.template, "pki"), key_type="ecdsa")
        node = pki.node("node one")
        self.files = {"inter": pki.inter, "root": pki.root, "node": node}
        dicom_files.write_ct(os.path.join(self.template, "ct.dcm"))
        self.csr = _csr_pem("/O=medimg/CN=appliance")
        with open(os.path.join(self.template, "appliance.csr"), "w") as fh:
            fh.write(self.csr)
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(pki.inter.certificate.subject)
            .last_update(pki_mod.NOW - datetime.timedelta(hours=1))
            .next_update(pki_mod.NOW + datetime.timedelta(days=7))
            .add_extension(x509.CRLNumber(3), critical=False)
            .sign(pki.inter.private_key, hashes.SHA256())
        )
        with open(os.path.join(self.template, "inter.crl"), "wb") as fh:
            fh.write(crl.public_bytes(serialization.Encoding.PEM))
        with open(os.path.join(self.template, "index.txt"), "w") as fh:
            fh.write("V\t301231235959Z\t\t%X\tunknown\t/O=medimg test/CN=node one\n" % node.certificate.serial_number)
        os.makedirs(os.path.join(self.template, "orthanc"))
        os.makedirs(os.path.join(self.template, "out", "export"))

    def copy(self) -> str:
        work = tempfile.mkdtemp(prefix="hostile.")
        shutil.copytree(self.template, work, dirs_exist_ok=True, symlinks=True)
        return work

    def base(self, module: str, work: str) -> dict:
        def rel(path):
            return os.path.join(work, os.path.relpath(path, self.template))

        inter, root, node = self.files["inter"], self.files["root"], self.files["node"]
        out = os.path.join(work, "out")
        return {
            "dicom_cert": {
                "path": os.path.join(out, "node.pem"),
                "privatekey_path": os.path.join(out, "node.key"),
                "subject": "/O=medimg/CN=node two",
                "key_type": "ecdsa",
                "issuer_cert_path": rel(inter.cert),
                "issuer_privatekey_path": rel(inter.key),
            },
            "dcmtk_option_files": {
                "directory": os.path.join(out, "dcmtk"),
                "tools": {"storescp": ["+tls %s %s" % (rel(node.key), rel(node.chain)), "+py", "-rc"]},
            },
            "dicom_cert_export": {
                "dest": os.path.join(out, "export"),
                "name": "node",
                "certificate_content": _read(node.chain),
                "ca_content": _read(inter.cert) + _read(root.cert),
            },
            "dicom_csr_check": {"path": os.path.join(work, "appliance.csr"), "subject": "/O=medimg/CN=appliance"},
            "dicom_csr_sign": {
                "requests": [
                    {"name": "appliance", "path": os.path.join(out, "appliance.pem"), "csr_content": self.csr}
                ],
                "issuer_cert_path": rel(inter.cert),
                "issuer_privatekey_path": rel(inter.key),
            },
            "dicom_ledger_info": {
                "path": os.path.join(work, "index.txt"),
                "serial": "%X" % node.certificate.serial_number,
            },
            "dicom_metrics": {
                "path": os.path.join(out, "dicom_tls.prom"),
                "certificates": [{"name": "node one", "not_after": "2030-01-01T00:00:00Z"}],
                "crl_files": [{"ca": "inter", "path": os.path.join(work, "inter.crl")}],
                "echo_pairs": [{"client": "a", "server": "b", "status": "success"}],
                "verify_success": True,
            },
            "dicom_pkcs12": {
                "path": os.path.join(out, "appliance.p12"),
                "passphrase": "appliance secret",
                "subject": "/O=medimg/CN=appliance p12",
                "key_type": "ecdsa",
                "issuer_cert_path": rel(inter.cert),
                "issuer_privatekey_path": rel(inter.key),
            },
            "dicom_cert_info": {"path": rel(node.cert), "issuer_cert_path": rel(inter.cert)},
            "dicom_crl": {
                "path": os.path.join(out, "ca.crl"),
                "issuer_cert_path": rel(inter.cert),
                "issuer_privatekey_path": rel(inter.key),
                "revoked": [{"serial": 5}],
            },
            "dicom_daemon": {
                "name": "hostile",
                "command": ["/bin/true"],
                "pidfile": os.path.join(out, "daemon.pid"),
                "state": "stopped",
            },
            "dicom_sign": {
                "path": [os.path.join(work, "ct.dcm")],
                "privatekey_path": rel(node.key),
                "certificate_path": rel(node.cert),
            },
            "dicom_tls_echo": {
                "host": "127.0.0.1",
                "port": 9,
                "expect": "failure",
                "timeout": 2.0,
                "ca_file": rel(root.cert),
            },
            "dicom_truststore": {"path": os.path.join(out, "trust"), "certificates": [rel(root.cert)]},
            "orthanc_config": {
                "config_dir": os.path.join(work, "orthanc"),
                "settings": {"DicomTlsEnabled": True, "DicomTlsCertificate": rel(node.chain)},
            },
        }[module]


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _csr_pem(subject: str) -> str:
    key = pki_mod.new_key("ecdsa")
    name = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "medimg")]
        + [x509.NameAttribute(NameOID.COMMON_NAME, subject.rsplit("CN=", 1)[1])]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def snapshot(directory: str) -> dict:
    """Every entry under ``directory``: type, mode, owner and content digest."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest = None
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            out[os.path.relpath(path, directory)] = (st.st_mode, st.st_uid, st.st_gid, digest)
    return out


def check_refusal(option: str, args: dict, result: dict) -> None:
    """A refusal names the option or a file, in the collection's words, with no library text."""
    msg = result["msg"]
    assert isinstance(msg, str) and msg.strip(), result
    assert "exception" not in result, result
    if ANSIBLE_SPEC.match(msg):
        return
    assert not LIBRARY_TEXT.search(msg), "library text in %r" % msg
    leaf = option.rsplit(".", 1)[-1]
    names = {leaf, option}
    for value in args.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith("/"):
                names.add(item)
    assert result.get("path") or any(n in msg for n in names) or "targets[" in msg, "names nothing: %r" % msg
