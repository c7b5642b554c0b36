#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dicom_csr_sign
short_description: Sign the CSRs of many DICOM nodes with one CA in one task
version_added: 1.0.0
description:
  - The CA side of a fleet run in one module execution on the CA host - what
    M(medimg.dicom_tls.dicom_cert) does for one CSR (O(requests[].csr_content) without a private key),
    for every node of a play. The issuing CA is read once.
  - Each request is renewed for the reasons M(medimg.dicom_tls.dicom_cert) gives (missing, not issued by
    this CA, subject or subject alternative names differ from the CSR's, key of the CSR changed, fewer than
    O(renew_before_days) days left); otherwise nothing is written.
  - A request that cannot be signed (unreadable CSR, unwritable folder) is reported in its own entry of
    RV(issued) with C(failed) and C(msg); the other requests go on. A problem with the CA itself fails the task.
  - Folders of O(requests[].path) and O(requests[].chain_path) are created when missing.
author:
  - medimg.dicom_tls maintainers (@medimg)
extends_documentation_fragment:
  - medimg.dicom_tls.backup
  - ansible.builtin.files
  - medimg.dicom_tls.ca
  - medimg.dicom_tls.ca.issuance
attributes:
  check_mode:
    support: full
    description: Returns the plan of each request; nothing is written.
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - serial and notAfter of the certificate issued (in check mode, of the one signed in memory); a
        change of O(mode), O(owner), O(group), the SELinux context or O(attributes) alone shows them before and
        after.
  idempotent:
    support: full
    description: A second run with the same CSRs reports no change.
options:
  requests:
    description: One entry per node.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The key of this request in RV(issued) (the node's inventory name).
        type: str
        required: true
      path:
        description: Where the CA keeps the issued certificate.
        type: path
        required: true
      chain_path:
        description: Where the CA keeps the certificate followed by its intermediates.
        type: path
      csr_content:
        description: The PEM text of the node's CSR (RV(medimg.dicom_tls.dicom_cert#module:csr)).
        type: str
        required: true
      subject:
        description: The subject to issue; the CSR's by default.
        type: raw
      subject_alt_names:
        description: The subject alternative names to issue; the CSR's by default.
        type: list
        elements: str
  issuer_cert_path:
    required: true
  issuer_privatekey_path:
    required: true
  backup:
    description: Keep a timestamped copy of each certificate file before it is overwritten.
    type: bool
    default: false
notes:
  - Ansible's file options (O(mode), O(owner), O(group), SELinux context, O(attributes)) apply to every
    certificate and chain file of O(requests) (public data, written 0644), as M(ansible.builtin.file) sets them.
requirements:
  - cryptography >= 42
seealso:
  - module: medimg.dicom_tls.dicom_cert
"""

EXAMPLES = r"""
# The layout of the roles: each node's material in /etc/dicom-tls/<inventory name>, the CA's in
# /etc/dicom-tls/pki/site-ca on the CA host (here the control node).
- name: Key and CSR on each node
  medimg.dicom_tls.dicom_cert:
    state: csr
    privatekey_path: /etc/dicom-tls/{{ inventory_hostname }}/private/node.key
    csr_path: /etc/dicom-tls/{{ inventory_hostname }}/tls/node.csr
    subject: "/O=Example Hospital/CN={{ inventory_hostname }}"
    subject_alt_names: ["DNS:{{ inventory_hostname }}"]
  register: node_csr

- name: Every due CSR of the play signed on the CA host, in one task
  medimg.dicom_tls.dicom_csr_sign:
    issuer_cert_path: /etc/dicom-tls/pki/site-ca/issuing.pem
    issuer_privatekey_path: /etc/dicom-tls/pki/site-ca/private/issuing.key
    database: /etc/dicom-tls/pki/site-ca/index.txt
    valid_days: 397
    requests: >-
      {{ ansible_play_batch | medimg.dicom_tls.sign_requests(hostvars, 'node_csr',
         '/etc/dicom-tls/pki/site-ca/issued') }}
  delegate_to: localhost
  run_once: true
  register: signed

- name: Installed next to the key
  medimg.dicom_tls.dicom_cert:
    path: /etc/dicom-tls/{{ inventory_hostname }}/tls/node.pem
    chain_path: /etc/dicom-tls/{{ inventory_hostname }}/tls/node.chain.pem
    privatekey_path: /etc/dicom-tls/{{ inventory_hostname }}/private/node.key
    certificate_content: "{{ signed.issued[inventory_hostname].chain }}"
"""

RETURN = r"""
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is a certificate or chain file of O(requests), or O(database); C(action) is C(created), C(renewed),
      C(updated), or C(attributes_changed) when only the file's mode, owner, group, SELinux context or attributes
      differed.
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
    - path: /etc/dicom-tls/pki/site-ca/issued/dcmtk-a.pem
      action: created
      reason: "no certificate yet"
issued:
  description:
    - Per request name, C(changed), C(actions) (each with its reason), C(backup_files) (the copies O(backup)
      made of that request's files) and, when a certificate exists after
      the run, C(serial), C(not_after), C(certificate) and C(chain) (PEM, public data).
    - A request that could not be signed has C(failed=true), C(msg) and C(path) instead.
    - In check mode a certificate that would be issued is signed in memory (never written, not recorded in
      O(database)) and returned with C(predicted=true), so that the node's install task can predict its change;
      while the issuing CA itself does not exist yet (an earlier task of the run would create it) there is no
      C(certificate) and no C(chain), only C(predicted=true) and the actions.
  returned: always
  type: dict
  sample:
    dcmtk-a: {changed: true, serial: 5A1F..., not_after: "2027-01-01T00:00:00Z", certificate: "-----BEGIN...",
              chain: "-----BEGIN...", actions: [{path: /etc/dicom-tls/pki/site-ca/issued/dcmtk-a.pem, action: created,
              reason: no certificate yet}], backup_files: []}
backup_files:
  description: Backups made with O(backup), of every request's files.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.medimg.dicom_tls.plugins.module_utils import ca_options, file_args, reports, shared_options  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as backend  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            requests=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    path=dict(type="path", required=True),
                    chain_path=dict(type="path"),
                    csr_content=dict(type="str", required=True),
                    subject=dict(type="raw"),
                    subject_alt_names=dict(type="list", elements="str"),
                ),
            ),
            **shared_options.backup(),
            **ca_options.issuer(),
            **ca_options.issuance(),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )
    guard(
        module,
        ca_options.ranges(),
        outputs=("requests.path", "requests.chain_path", "database"),
        inputs=ca_options.ISSUER_INPUTS,
    )
    require(module, "cryptography")
    ca_options.warn_loose_issuer_key(module)
    p = module.params
    names = [r["name"] for r in p["requests"]]
    if len(set(names)) != len(names):
        module.fail_json(msg="requests: each name must appear once (%s)" % ", ".join(sorted(names)))
    issuer = {
        k: p[k]
        for k in (
            "usage",
            "issuer_cert_path",
            "issuer_privatekey_path",
            "issuer_privatekey_passphrase",
            "issuer_chain_path",
            "valid_days",
            "renew_before_days",
            "backup",
            "database",
        )
    }
    try:
        # the CA itself (certificate, key, passphrase) is checked once, before any request
        backend.check_issuer(issuer, module.check_mode)
        issued = backend.sign_many(issuer, p["requests"], module.check_mode)
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    actions = []
    for name in sorted(issued):
        entry = issued[name]
        after = {k: entry[k] for k in ("serial", "not_after") if k in entry} or None
        actions += [reports.Action(a["path"], a["action"], a["reason"], after=after) for a in entry.get("actions", [])]
    for r in p["requests"]:
        files = [r["path"], r["chain_path"]]
        actions += file_args.set_attributes(module, files, [a.path for a in actions])
    backup_files = [f for name in sorted(issued) for f in issued[name].get("backup_files", [])]
    module.exit_json(**reports.report(actions, module._diff, issued=issued, backup_files=backup_files))


if __name__ == "__main__":
    main()
