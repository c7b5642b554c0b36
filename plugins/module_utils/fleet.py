# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet logic the roles and playbooks need, as plain functions over plain data (the filters in
plugins/filter/ are thin wrappers): which CSRs the CA signs, what each node is owed."""

from __future__ import annotations

import hashlib

# The layout of one CA's folder on the CA host (the pki role writes it, the node roles read it).
CA_FILES = {
    "root": "root.pem",
    "root_key": "private/root.key",
    "issuing": "issuing.pem",
    "issuing_chain": "issuing.chain.pem",
    "issuing_key": "private/issuing.key",
    "crl": "issuing.crl.pem",
    "issued_dir": "issued",
}


def ca_path(pki_dir: str, ca_name: str, what: str) -> str:
    """The path of one piece of CA ``ca_name``'s material (a key of CA_FILES) under ``pki_dir``."""
    if what not in CA_FILES:
        raise ValueError("unknown CA file %r (one of %s)" % (what, ", ".join(sorted(CA_FILES))))
    return "%s/%s/%s" % (pki_dir.rstrip("/"), ca_name, CA_FILES[what])


def sign_requests(csrs: dict, issued_dir: str) -> list[dict]:
    """The requests of dicom_csr_sign: one per node that has a CSR (name -> CSR PEM or None),
    in name order, each kept at ISSUED_DIR/NAME.pem and NAME.chain.pem on the CA host."""
    out = []
    for name in sorted(csrs):
        csr = csrs[name]
        if not csr:
            continue
        base = "%s/%s" % (issued_dir.rstrip("/"), name)
        out.append({"name": name, "path": base + ".pem", "chain_path": base + ".chain.pem", "csr_content": csr})
    return out


def revoked_nodes(revoked: list, appliances: bool = False) -> list[str]:
    """The node names of dicom_tls_revoked (entries given by serial or certificate_path name no node);
    with ``appliances``, the names of revoked appliances too."""
    keys = ("node", "appliance") if appliances else ("node",)
    return [r[k] for r in revoked or [] if isinstance(r, dict) for k in keys if r.get(k)]


def revoked_entries(revoked: list, issued_paths: list, issued_dir: str) -> list[dict]:
    """dicom_crl's ``revoked`` from dicom_tls_revoked: an entry by serial or certificate_path is
    taken as given; an entry by node (or appliance) names ISSUED_DIR/NAME.pem, and only when that certificate was
    issued by this CA (it is in ``issued_paths``). The reason defaults to key_compromise."""
    issued = set(issued_paths or [])
    out = []
    for r in revoked or []:
        reason = r.get("reason", "key_compromise")
        if r.get("serial") is not None:
            out.append({"serial": r["serial"], "reason": reason})
        elif r.get("certificate_path"):
            out.append({"certificate_path": r["certificate_path"], "reason": reason})
        elif r.get("node") or r.get("appliance"):
            path = "%s/%s.pem" % (issued_dir.rstrip("/"), r.get("node") or r["appliance"])
            if path in issued:
                out.append({"certificate_path": path, "reason": reason})
    return out


def refused(client: dict, server: dict, revoked: list) -> bool:
    """Whether the pair is expected to be refused: a node that checks CRLs refuses a revoked peer,
    as client (it checks the server's certificate) or as server (it checks the client's)."""
    return bool(
        (server.get("checks_crl") and client["name"] in revoked)
        or (client.get("checks_crl") and server["name"] in revoked)
    )


def mesh_targets(me: dict, servers: list, revoked: list) -> list[dict]:
    """dicom_tls_echo's targets for one node (``me``, its endpoint) calling every node of the fleet
    (``servers``, their endpoints) with its own certificate and trust store, each with its expected
    outcome. Pairs of a revoked node and an Orthanc node are left out: Orthanc checks no CRLs, so the
    outcome depends on whether the revoked node's CA is still in its bundle."""
    revoked = list(revoked or [])
    out = []
    for s in servers:
        if (s["kind"] == "orthanc" or me["kind"] == "orthanc") and (s["name"] in revoked or me["name"] in revoked):
            continue
        t = {
            "host": s["host"],
            "port": int(s["port"]),
            "called_ae_title": s["ae_title"],
            "calling_ae_title": me["ae_title"],
            "certificate_path": me["certificate_path"],
            "privatekey_path": me["privatekey_path"],
            "crl_check": me["crl_check"],
            "profile": me["profile"],
            "expect": "failure" if refused(me, s, revoked) else "success",
        }
        if me.get("ca_path"):
            t["ca_path"] = me["ca_path"]
        else:
            t["ca_file"] = me["ca_file"]
        out.append(t)
    return out


def orthanc_modalities(peers: dict) -> dict:
    """Orthanc's DicomModalities for the other nodes of the fleet: name -> {AET, Host, Port}, from
    each peer's fleet variables (dicom_tls_ae_title, dicom_tls_address, dicom_tls_port). A peer
    without them gets dcmtk_tls's defaults (STORESCP, 127.0.0.1, 11112)."""
    out = {}
    for name in sorted(peers):
        v = peers[name] or {}
        out[name] = {
            "AET": v.get("dicom_tls_ae_title", "STORESCP"),
            "Host": v.get("dicom_tls_address", "127.0.0.1"),
            "Port": int(v.get("dicom_tls_port", 11112)),
        }
    return out


def appliance_endpoints(appliances: list, caller: str | None = None, nodes: list | None = None) -> list[dict]:
    """The endpoints (as the node roles describe theirs) of the appliances of dicom_tls_appliances
    (name, address, port, ae_title) that node ``caller`` checks: those whose ``verify_from`` names it,
    or every appliance without ``verify_from`` when ``caller`` is one of ``nodes``. Without ``caller``,
    every appliance. Appliances check no CRLs that the fleet can rely on (checks_crl false)."""
    return [
        {"name": a["name"], "kind": "appliance", "host": a["address"], "port": int(a["port"])}
        | {"ae_title": a["ae_title"], "checks_crl": False}
        for a in appliances or []
        if caller is None or caller in a.get("verify_from", nodes or [])
    ]


def _address(host, port) -> str:
    try:
        port = int(port)
    except (TypeError, ValueError):
        pass
    return "%s:%s" % (host, port)


def echo_pairs(results: dict, servers: list) -> list[dict]:
    """The C-ECHO pairs of a fleet check, for echo_matrix and dicom_metrics: per client (``results``,
    client name -> its registered dicom_tls_echo result, in the order given), one pair per target
    {client, server, status, reason, expect, as_expected}; the server named after the endpoint of
    ``servers`` at that address (its host:port when none). A client without results (its task did
    not run or failed before echoing) gives one pair with server "(all)" and status not_run."""
    names = {_address(e["host"], e["port"]): e["name"] for e in servers or []}
    keys = ("client", "server", "status", "reason", "expect", "as_expected")
    out = []
    for client, reg in results.items():
        reg = reg or {}
        if "results" not in reg:
            out.append(dict(zip(keys, (client, "(all)", "not_run", reg.get("msg", "no result"), "success", False))))
            continue
        for r in reg["results"]:
            address = _address(r.get("host"), r.get("port"))
            pair = dict(r, client=client, server=names.get(address, address))
            out.append({k: pair.get(k) for k in keys})
    return out


def expiry_entries(nodes: dict, appliances: list, echo_results: list) -> list[dict]:
    """The rows of expiry_table: per node (``nodes``, name -> {cert: its dicom_cert_info result,
    kind}), its subject, not_after and days_remaining ("?" and -1 when unknown); per appliance, the
    certificate it served to the first C-ECHO that reached it (``echo_results``, every
    dicom_tls_echo result of the fleet), or "? (no certificate served)"."""

    def row(node, c, kind, unknown="?"):
        return {
            "node": node,
            "subject": c.get("subject", unknown),
            "not_after": c.get("not_after", "?"),
            "days_remaining": c.get("days_remaining", -1),
            "kind": kind,
        }

    out = [row(name, (n or {}).get("cert") or {}, (n or {}).get("kind") or "node") for name, n in nodes.items()]
    for a in appliances or []:
        address = _address(a["address"], a["port"])
        served = [
            r["peer_certificate"]
            for r in echo_results or []
            if _address(r.get("host"), r.get("port")) == address and r.get("peer_certificate")
        ]
        out.append(row(a["name"], served[0] if served else {}, "appliance", "? (no certificate served)"))
    return out


def certificate_due(issued: dict, installed: dict, check_mode: bool = False) -> bool:
    """Whether a node has certificate work left after the CA's task: the CA refused its CSR (the
    node says why), the CA returned a certificate or chain that is not byte for byte the node's file
    (``installed``: the node's key/CSR step, with the SHA-256 of its files as ``path_sha256`` and
    ``chain_path_sha256``), or, in check mode, an issue is predicted while the CA does not exist yet.
    ``issued`` is the node's entry of dicom_csr_sign's ``issued`` (empty when it has none)."""
    issued = issued or {}
    installed = installed or {}
    if issued.get("failed"):
        return True
    if "chain" in issued:
        cert = hashlib.sha256((issued.get("certificate") or "").encode("utf-8")).hexdigest()
        chain = hashlib.sha256((issued["chain"] or "").encode("utf-8")).hexdigest()
        if installed.get("path_sha256") != cert or installed.get("chain_path_sha256") != chain:
            return True
    return bool(check_mode and issued.get("predicted"))


def uses_systemd(setting: str, service_mgr: str | None) -> bool | None:
    """A role's ``service_manager`` setting resolved: True for systemd (``systemd``, or ``auto`` on a
    host whose service manager is systemd), False for the role's other manager (a pid-file daemon,
    cron), None for ``auto`` while the host's service manager is not known yet (gather it first)."""
    if setting == "systemd":
        return True
    if setting != "auto":
        return False
    if service_mgr is None:
        return None
    return service_mgr == "systemd"
