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


class FilterModule:
    def filters(self):
        return {"json_query": json_query, "echo_matrix": _echo_matrix, "expiry_table": _expiry_table}
