#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dicom_metrics
short_description: Write DICOM TLS facts as Prometheus metrics for node_exporter's textfile collector
version_added: 1.0.0
description:
  - Writes a C(.prom) file in the text exposition format that node_exporter's textfile collector reads
    (C(--collector.textfile.directory)), atomically (temporary file, fsync, rename), so the collector never
    reads half a file. Only written when its content differs.
  - "Series (all gauges): C(dicom_tls_certificate_not_after_timestamp_seconds{name,kind}) per node and
    appliance, C(dicom_tls_crl_next_update_timestamp_seconds{ca}) and C(dicom_tls_crl_number{ca}) per CRL,
    C(dicom_tls_echo_success{client,server,expect}) and C(dicom_tls_echo_as_expected{client,server}) per
    C-ECHO pair, C(dicom_tls_verify_last_run_timestamp_seconds) and
    C(dicom_tls_verify_last_success_timestamp_seconds)."
  - Times are Unix timestamps in seconds; alert on C(dicom_tls_certificate_not_after_timestamp_seconds - time()).
  - C(promtool check metrics) accepts the file. See docs/monitoring.md for an alert rule example.
author:
  - medimg.dicom_tls maintainers (@medimg)
attributes:
  check_mode:
    support: full
    description: Reports whether the file would change.
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - the lines of the file (the metrics are public data); a change of O(mode), O(owner), O(group),
        the SELinux context or O(attributes) alone shows them before and after.
  idempotent:
    support: partial
    description: The file changes only when the facts change; with O(verify_success) the run time is one of them.
notes:
  - The file is created mode 0644 unless O(mode) is octal (then with that mode, before any byte lands in it);
    O(owner), O(group), a symbolic O(mode), the SELinux context and O(attributes) are then set as
    M(ansible.builtin.file) sets them; a change of them alone is listed in RV(actions) as C(attributes_changed).
extends_documentation_fragment:
  - ansible.builtin.files
options:
  path:
    description: The C(.prom) file (its directory must exist), e.g. C(/var/lib/prometheus/node-exporter/dicom_tls.prom).
    type: path
    required: true
  certificates:
    description:
      - Certificates of nodes and appliances, as verify.yml collects them - C(name) (or C(node)) the node or
        appliance, C(kind) (C(dcmtk), C(orthanc), C(appliance)), C(not_after) ISO 8601 (no series when
        missing or C(?)). Other keys are ignored.
    type: list
    elements: dict
    default: []
  crl_files:
    description: CRL files to read (PEM or DER), each with the CA it belongs to.
    type: list
    elements: dict
    default: []
    suboptions:
      ca:
        description: The CA's name (label C(ca)).
        type: str
      path:
        description: The CRL file.
        type: path
        required: true
  echo_pairs:
    description:
      - C-ECHO pairs as verify.yml collects them - C(client), C(server), C(status) (C(success) or the failure)
        and C(expect) (C(success) or C(failure)). Other keys are ignored.
    type: list
    elements: dict
    default: []
  verify_success:
    description:
      - Whether this verify run saw every pair go as expected. Sets the last-run time to now, and the last-success
        time to now when true (when false it keeps the one already in the file).
      - Leave it out for files that carry no verify times (the CRL refresh).
    type: bool
seealso:
  - name: node_exporter textfile collector
    description: How node_exporter reads C(.prom) files.
    link: https://github.com/prometheus/node_exporter#textfile-collector
"""

EXAMPLES = r"""
- name: CRL metrics on the CA host
  medimg.dicom_tls.dicom_metrics:
    path: /var/lib/prometheus/node-exporter/dicom_tls_crl.prom
    crl_files:
      - {ca: site-ca, path: /etc/dicom-tls/pki/site-ca/issuing.crl.pem}
"""

RETURN = r"""
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is the C(.prom) file; C(action) is C(created), C(updated), or C(attributes_changed) when only the
      file's mode, owner, group, SELinux context or attributes differed.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    action:
      description: What is done to it.
      type: str
    reason:
      description: Why, in words.
      type: str
  sample:
    - path: /var/lib/prometheus/node-exporter/dicom_tls_crl.prom
      action: updated
      reason: "the metrics differ"
series:
  description: Number of series in the file.
  returned: success
  type: int
"""

from ansible_collections.medimg.dicom_tls.plugins.module_utils import file_args, metrics, reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import check_writable_dir
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            certificates=dict(type="list", elements="dict", default=[]),
            crl_files=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(ca=dict(type="str"), path=dict(type="path", required=True)),
            ),
            echo_pairs=dict(type="list", elements="dict", default=[]),
            verify_success=dict(type="bool"),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )
    guard(module, outputs=("path",), inputs=("crl_files.path",))
    require(module, "cryptography")
    p = module.params
    try:
        fam = metrics.build(p["certificates"], p["crl_files"], p["echo_pairs"], p["verify_success"], path=p["path"])
        data = metrics.render(fam)
        check_writable_dir(p["path"])
        actions = metrics.plan(p["path"], data)
        if not module.check_mode:
            metrics.apply(actions, data, file_args.create_mode(p["mode"]))
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    actions += file_args.set_attributes(module, [p["path"]], [a.path for a in actions])
    module.exit_json(**reports.report(actions, module._diff, series=sum(len(v) for v in fam.values())))


if __name__ == "__main__":
    main()
