# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus metrics in node_exporter's textfile-collector format (text exposition format 0.0.4).

``build`` turns what verify.yml and the CRL refresh know into metric families (a pure function);
``render`` writes them as text; ``write`` puts the file in place atomically (files.py), so the
collector never reads half a file. Times are Unix timestamps in seconds (``*_timestamp_seconds``):
a file that only changes when the facts change, and alerts written as ``x - time() < ...``.
"""

from __future__ import annotations

import math
import re

from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.crl import parse_date
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import (
    atomic_write,
    make_parent_dirs,
    read_bytes,
    read_optional,
)

try:
    from cryptography import x509
except ImportError:  # reported by the module (deps.require)
    pass

PREFIX = "dicom_tls_"
LAST_SUCCESS = PREFIX + "verify_last_success_timestamp_seconds"

HELP = {
    "certificate_not_after_timestamp_seconds": (
        "notAfter of the certificate a node or appliance uses, Unix time in seconds."
    ),
    "crl_next_update_timestamp_seconds": "nextUpdate of the CRL a CA issued, Unix time in seconds.",
    "crl_number": "CRL Number of the CRL a CA issued.",
    "echo_success": "1 when the TLS C-ECHO from client to server succeeded, else 0.",
    "echo_as_expected": "1 when the C-ECHO from client to server went as expected (refused when revoked), else 0.",
    "verify_last_run_timestamp_seconds": "When verify.yml last ran, Unix time in seconds.",
    "verify_last_success_timestamp_seconds": (
        "When verify.yml last saw every C-ECHO pair go as expected, Unix time in seconds."
    ),
}


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def render(families: dict) -> bytes:
    """``{name: [(labels dict, value), ...]}`` as the exposition format, one HELP and TYPE per family."""
    lines = []
    for short in sorted(families):
        samples = families[short]
        if not samples:
            continue
        name = PREFIX + short
        lines.append("# HELP %s %s" % (name, HELP[short]))
        lines.append("# TYPE %s gauge" % name)
        for labels, value in sorted(samples, key=lambda s: sorted(s[0].items())):
            text = ",".join('%s="%s"' % (k, _escape(v)) for k, v in sorted(labels.items()))
            lines.append("%s%s %s" % (name, "{%s}" % text if text else "", _number(value)))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def previous_last_success(path: str) -> float | None:
    """The last-success time kept in the file from an earlier run (None when there is none)."""
    data = read_optional(path) or b""
    m = re.search(r"^%s (\S+)$" % re.escape(LAST_SUCCESS), data.decode("utf-8", "replace"), re.M)
    try:
        return float(m.group(1)) if m else None
    except ValueError:
        return None


def build(
    certificates: list | None = None,
    crl_files: list | None = None,
    echo_pairs: list | None = None,
    verify_success: bool | None = None,
    now: float | None = None,
    path: str | None = None,
) -> dict:
    fam: dict[str, list] = {k: [] for k in HELP}
    for i, c in enumerate(certificates or []):
        where = "certificates[%d]" % i
        name = c.get("name") or c.get("node")
        if not name:
            raise DicomTlsError("each certificate needs a name", where)
        if c.get("not_after") in (None, "", "?"):
            continue  # not read (node down, no certificate served): no series rather than a false one
        labels = {"name": name, "kind": c.get("kind") or "node"}
        fam["certificate_not_after_timestamp_seconds"].append((labels, parse_date(c["not_after"], where).timestamp()))
    for item in crl_files or []:
        crl = crypto.load_crl(read_bytes(item["path"], "CRL"), item["path"])
        labels = {"ca": item.get("ca") or item["path"]}
        if crypto.next_update(crl) is not None:
            fam["crl_next_update_timestamp_seconds"].append((labels, crypto.next_update(crl).timestamp()))
        try:
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            fam["crl_number"].append((labels, number))
        except x509.ExtensionNotFound:
            pass
    for i, p in enumerate(echo_pairs or []):
        if not (p.get("client") and p.get("server") and p.get("status")):
            raise DicomTlsError("each pair needs client, server and status", "echo_pairs[%d]" % i)
        labels = {"client": p["client"], "server": p["server"]}
        ok = p.get("status") == "success"
        fam["echo_success"].append((dict(labels, expect=p.get("expect") or "success"), ok))
        fam["echo_as_expected"].append((labels, reports.as_expected(p["status"], p.get("expect") or "success")))
    if verify_success is not None:
        now = now if now is not None else crypto.utcnow().timestamp()
        fam["verify_last_run_timestamp_seconds"].append(({}, now))
        last = now if verify_success else (previous_last_success(path) if path else None)
        if last is not None:
            fam["verify_last_success_timestamp_seconds"].append(({}, last))
    return fam


def write(path: str, data: bytes, mode: int = 0o644) -> bool:
    """Write the file atomically when its content differs; True when it was written."""
    if read_optional(path) == data:
        return False
    make_parent_dirs(path)
    atomic_write(path, data, mode)
    return True


def plan(path: str, data: bytes) -> list[reports.Action]:
    """The plan in the collection's one shape (reports.Action): the .prom file created or updated when
    its content differs from ``data`` (the metrics are public: the diff shows the lines), else nothing."""
    current = read_optional(path)
    if current == data:
        return []
    action = "created" if current is None else "updated"
    reason = "no file yet" if current is None else "the metrics differ"
    before = {"state": "absent"} if current is None else current.decode("utf-8", "replace") or "(no series)"
    return [reports.Action(path, action, reason, before=before, after=data.decode("utf-8") or "(no series)")]


def apply(actions: list[reports.Action], data: bytes, mode: int = 0o644) -> None:
    """Carry out the plan: write the file (atomically) when one is planned."""
    for action in actions:
        write(action.path, data, mode)
