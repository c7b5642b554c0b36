# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for picking peers and results out of fleet data, and for reading them as tables.

Documentation of each filter: the YAML file of the same name beside this one.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

try:
    import jmespath
except ImportError:  # pragma: no cover - reported when the filter is used
    jmespath = None

from ansible_collections.medimg.dicom_tls.plugins.module_utils import fleet
from ansible_collections.medimg.dicom_tls.plugins.module_utils.reports import echo_matrix, expiry_table


def _plain(value):
    """Ansible hands templated data in its own container types; jmespath wants plain ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def json_query(data, expression):
    """The JMESPath ``expression`` applied to ``data``."""
    if jmespath is None:
        raise AnsibleFilterError("json_query needs the jmespath Python library on the control node")
    if not isinstance(expression, str):
        raise AnsibleFilterError("json_query: the expression must be a string, got %s" % type(expression).__name__)
    try:
        return jmespath.search(str(expression), _plain(data))
    except jmespath.exceptions.JMESPathError as exc:
        raise AnsibleFilterError("json_query: invalid JMESPath expression %r: %s" % (str(expression), exc)) from None


def _echo_matrix(results):
    try:
        return echo_matrix(_plain(results))
    except (TypeError, ValueError, KeyError) as exc:
        raise AnsibleFilterError("echo_matrix: %s" % exc) from None


def _expiry_table(certificates, warn_days=30):
    try:
        return expiry_table(_plain(certificates), int(warn_days))
    except (TypeError, ValueError, KeyError) as exc:
        raise AnsibleFilterError("expiry_table: %s" % exc) from None


def _sign_requests(hosts, hostvars, register_name, issued_dir):
    """dicom_csr_sign's requests for ``hosts``: each host's registered CSR (``register_name``.csr)."""
    try:
        csrs = {}
        for h in hosts:
            registered = hostvars[h].get(register_name) if h in hostvars else None
            csrs[str(h)] = (registered or {}).get("csr")
        return fleet.sign_requests(csrs, str(issued_dir))
    except (TypeError, AttributeError) as exc:
        raise AnsibleFilterError("sign_requests: %s" % exc) from None


def _revoked_nodes(revoked, appliances=False):
    if not isinstance(revoked, (list, tuple)):
        kind = type(revoked).__name__
        raise AnsibleFilterError("revoked_nodes: expected a list of {node: NAME} items, got %s" % kind)
    return fleet.revoked_nodes(_plain(revoked), bool(appliances))


def _appliance_endpoints(appliances, caller=None, nodes=None):
    try:
        return fleet.appliance_endpoints(
            _plain(list(appliances or [])),
            None if caller is None else str(caller),
            _plain(list(nodes or [])),
        )
    except (TypeError, KeyError, ValueError) as exc:
        raise AnsibleFilterError("appliance_endpoints: an appliance lacks or has a bad %s" % exc) from None


def _registered(hosts, hostvars, register_name):
    out = {}
    for h in hosts:
        hv = hostvars[h] if h in hostvars else {}
        out[str(h)] = _plain(hv.get(register_name))
    return out


def _echo_pairs(hosts, hostvars, register_name, servers):
    """The C-ECHO pairs of ``hosts`` from each one's registered dicom_tls_echo result."""
    try:
        return fleet.echo_pairs(_registered(hosts, hostvars, register_name), _plain(list(servers or [])))
    except (TypeError, KeyError, AttributeError) as exc:
        raise AnsibleFilterError("echo_pairs: %s" % exc) from None


def _expiry_entries(hosts, hostvars, cert_register, echo_register, appliances=()):
    """Expiry rows of ``hosts`` (their registered dicom_cert_info) and of the appliances (the
    certificate they served to the C-ECHOs registered as ``echo_register``)."""
    try:
        nodes, echoes = {}, []
        for h in hosts:
            hv = hostvars[h] if h in hostvars else {}
            e = hv.get("dcmtk_tls_endpoint") or hv.get("orthanc_tls_endpoint") or {}
            nodes[str(h)] = {"cert": _plain(hv.get(cert_register)), "kind": _plain(e).get("kind")}
            echoes += _plain((hv.get(echo_register) or {}).get("results") or [])
        return fleet.expiry_entries(nodes, _plain(list(appliances or [])), echoes)
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise AnsibleFilterError("expiry_entries: %s" % exc) from None


def _mesh_targets(me, servers, revoked=()):
    try:
        return fleet.mesh_targets(_plain(me), _plain(servers), _plain(list(revoked or [])))
    except (TypeError, KeyError, ValueError) as exc:
        raise AnsibleFilterError("mesh_targets: an endpoint lacks %s" % exc) from None


def _orthanc_modalities(peers, hostvars):
    keys = ("dicom_tls_ae_title", "dicom_tls_address", "dicom_tls_port")
    try:
        found = {}
        for h in peers:
            hv = hostvars[h]
            found[str(h)] = {k: hv.get(k) for k in keys if hv.get(k) is not None}
        return fleet.orthanc_modalities(_plain(found))
    except (TypeError, KeyError, ValueError) as exc:
        raise AnsibleFilterError("orthanc_modalities: %s" % exc) from None


def _revoked_entries(revoked, issued_paths, issued_dir):
    try:
        return fleet.revoked_entries(_plain(list(revoked or [])), _plain(list(issued_paths or [])), str(issued_dir))
    except (TypeError, AttributeError) as exc:
        raise AnsibleFilterError("revoked_entries: %s" % exc) from None


def _endpoints(hosts, hostvars):
    """The endpoint each host's node role described (dcmtk_tls_endpoint or orthanc_tls_endpoint)."""
    out = []
    for h in hosts:
        hv = hostvars[h]
        e = hv.get("dcmtk_tls_endpoint") or hv.get("orthanc_tls_endpoint")
        if not e:
            raise AnsibleFilterError("endpoints: %s has no endpoint (run describe.yml of its role first)" % h)
        out.append(_plain(e))
    return out


def _certificate_due(issued, installed, check_mode=False):
    """Whether the node has certificate work left after the CA's task (install, refusal, prediction)."""
    if not isinstance(issued or {}, dict) or not isinstance(installed or {}, dict):
        raise AnsibleFilterError("certificate_due: expected the CA's entry for the node and its key/CSR result (dicts)")
    return fleet.certificate_due(_plain(issued or {}), _plain(installed or {}), bool(check_mode))


def _uses_systemd(setting, facts):
    """A role's service_manager setting resolved against the host's facts (None: gather service_mgr first)."""
    if not isinstance(facts or {}, dict):
        raise AnsibleFilterError("uses_systemd: expected ansible_facts (a dict), got %s" % type(facts).__name__)
    service_mgr = (facts or {}).get("service_mgr")
    return fleet.uses_systemd(str(setting), None if service_mgr is None else str(service_mgr))


class FilterModule:
    def filters(self):
        return {
            "json_query": json_query,
            "echo_matrix": _echo_matrix,
            "expiry_table": _expiry_table,
            "sign_requests": _sign_requests,
            "revoked_nodes": _revoked_nodes,
            "revoked_entries": _revoked_entries,
            "mesh_targets": _mesh_targets,
            "endpoints": _endpoints,
            "orthanc_modalities": _orthanc_modalities,
            "appliance_endpoints": _appliance_endpoints,
            "echo_pairs": _echo_pairs,
            "expiry_entries": _expiry_entries,
            "certificate_due": _certificate_due,
            "uses_systemd": _uses_systemd,
        }
