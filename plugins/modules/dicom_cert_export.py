#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dicom_cert_export
short_description: Export a certificate and its CA chain in the forms appliance consoles import (PEM, DER, PKCS#7)
version_added: 1.0.0
description:
  - Writes, in O(dest), the files a vendor appliance's service UI imports, all public data -
    C(NAME.pem) the certificate, C(NAME.der) the same in DER, C(NAME.chain.pem) the certificate
    followed by its issuing CA and root, C(NAME.p7b) that chain as a DER PKCS#7 bundle
    (C(openssl pkcs7 -inform DER -print_certs) lists it), and C(NAME.ca.pem) the CAs alone (what the
    appliance trusts to accept the fleet's nodes).
  - The certificate must be issued by one of the CAs of O(ca_content). Only files whose content differs
    are written, each atomically.
author:
  - medimg.dicom_tls maintainers (@medimg)
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Returns the files that would be written.
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - subject, serial and notAfter of the exported certificate; a change of O(mode), O(owner),
        O(group), the SELinux context or O(attributes) alone shows them before and after.
  idempotent:
    support: full
    description: A second run with the same inputs writes nothing.
options:
  dest:
    description: The directory to write to (it must exist).
    type: path
    required: true
  name:
    description: The base name of the files (the appliance's name).
    type: str
    required: true
  certificate_content:
    description: The certificate, PEM.
    type: str
    required: true
  ca_content:
    description: The issuing CA and the root (and any intermediates), PEM.
    type: str
    required: true
seealso:
  - module: medimg.dicom_tls.dicom_csr_check
  - module: medimg.dicom_tls.dicom_pkcs12
"""

EXAMPLES = r"""
- name: Files for an appliance's certificate import page (PEM, DER, .p7b)
  medimg.dicom_tls.dicom_cert_export:
    dest: /etc/dicom-tls/pki/site-ca/appliances
    name: dcmtk-a
    certificate_content: "{{ issued.certificate }}"
    ca_content: |-
      {{ lookup('file', '/etc/dicom-tls/pki/site-ca/issuing.pem') }}
      {{ lookup('file', '/etc/dicom-tls/pki/site-ca/root.pem') }}
  delegate_to: localhost
"""

RETURN = r"""
files:
  description: The path of each form (pem, der, chain_pem, p7b, ca_pem).
  returned: success
  type: dict
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is one of the exported files; C(action) is C(created), C(updated), or C(attributes_changed) when only
      the file's mode, owner, group, SELinux context or attributes differed.
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
    - path: /etc/dicom-tls/pki/site-ca/appliances/dcmtk-a.p7b
      action: created
      reason: "no p7b file yet"
serial:
  description: Serial of the certificate, uppercase hex.
  returned: success
  type: str
not_after:
  description: End of validity, ISO 8601 UTC.
  returned: success
  type: str
"""

from ansible_collections.medimg.dicom_tls.plugins.module_utils import appliance, crypto, file_args, reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dest=dict(type="path", required=True),
            name=dict(type="str", required=True),
            certificate_content=dict(type="str", required=True),
            ca_content=dict(type="str", required=True),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )
    guard(module)
    require(module, "cryptography")
    p = module.params
    try:
        if "/" in p["name"] or p["name"] in ("", ".", ".."):
            raise DicomTlsError("name %r is not a plain file name" % p["name"])
        actions, files, contents = appliance.plan_export(
            p["dest"], p["name"], p["certificate_content"], p["ca_content"]
        )
        if not module.check_mode:
            appliance.apply_export(actions, contents, file_args.create_mode(p["mode"]))
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.filename or "", exc.strerror))
    actions += file_args.set_attributes(module, list(files.values()), [a.path for a in actions])
    info = crypto.describe_certificate(contents["_leaf"])
    after = {path: {k: info[k] for k in ("subject", "serial", "not_after")} for path in files.values()}
    module.exit_json(
        **reports.report(
            actions, module._diff, after=after, files=files, serial=info["serial"], not_after=info["not_after"]
        )
    )


if __name__ == "__main__":
    main()
