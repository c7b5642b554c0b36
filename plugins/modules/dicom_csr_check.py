#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dicom_csr_check
short_description: Check a CSR an appliance produced against the key policy and the expected subject and SANs
version_added: 1.0.0
description:
  - Reads a certificate signing request (PEM or DER) that a vendor appliance (CT or MR console, PACS,
    router) generated in its service UI, and checks it before the CA signs it - its signature (it was
    signed by the key it carries), the key type and size (O(key_types), O(min_key_size), O(curves)), and
    the subject and subject alternative names against what the inventory expects.
  - Fails with every failed check in one sentence, naming the file. On success returns the CSR as PEM
    (RV(csr)), ready for M(medimg.dicom_tls.dicom_cert)'s C(csr_content).
  - Reads only; never writes.
author:
  - medimg.dicom_tls maintainers (@medimg)
attributes:
  check_mode:
    support: full
    description: Reads only; the same result in check mode.
  diff_mode:
    support: none
    description: No diff is returned.
  idempotent:
    support: full
    description: Never changes anything.
options:
  path:
    description: The CSR file, PEM or DER.
    type: path
    required: true
  subject:
    description:
      - The subject the CSR must carry, a dict (C(CN), C(O), ...) or an OpenSSL-style string
        C(/O=Hospital/CN=ct-01). Not checked when omitted.
    type: raw
  subject_alt_names:
    description:
      - The subject alternative names the CSR must carry (C(DNS:), C(IP:), ...), in any order.
      - Not checked when omitted.
    type: list
    elements: str
  key_types:
    description: Key types allowed.
    type: list
    elements: str
    choices: [rsa, ecdsa]
    default: [rsa, ecdsa]
  min_key_size:
    description: Smallest RSA key allowed, in bits (dcmtk 3.6.8 refuses keys under 2048 bits).
    type: int
    default: 2048
  curves:
    description: ECDSA curves allowed.
    type: list
    elements: str
    choices: [secp256r1, secp384r1, secp521r1]
    default: [secp256r1, secp384r1, secp521r1]
seealso:
  - module: medimg.dicom_tls.dicom_cert
  - module: medimg.dicom_tls.dicom_cert_export
"""

EXAMPLES = r"""
- name: Check a CSR before signing it (here the one dcmtk-a produced; an appliance's CSR the same way)
  medimg.dicom_tls.dicom_csr_check:
    path: /etc/dicom-tls/dcmtk-a/tls/node.csr
    subject: /O=Example Hospital/CN=dcmtk-a.example.org
    subject_alt_names: [DNS:dcmtk-a.example.org, IP:127.0.0.1]
    min_key_size: 2048
  delegate_to: localhost
  register: node_csr_check
"""

RETURN = r"""
csr:
  description: The CSR, PEM (public data).
  returned: success
  type: str
subject:
  description: Its subject, OpenSSL one-line form.
  returned: success
  type: str
subject_alt_names:
  description: Its subject alternative names.
  returned: success
  type: list
  elements: str
encoding:
  description: How the file was encoded (pem or der).
  returned: success
  type: str
key_type:
  description: Type of the CSR's key (rsa, ecdsa, ...).
  returned: success
  type: str
"""

from ansible_collections.medimg.dicom_tls.plugins.module_utils import appliance, cert
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import read_bytes
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard

CURVES = list(cert.CURVES)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            subject=dict(type="raw"),
            subject_alt_names=dict(type="list", elements="str"),
            key_types=dict(type="list", elements="str", choices=["rsa", "ecdsa"], default=["rsa", "ecdsa"]),
            min_key_size=dict(type="int", default=2048),
            curves=dict(type="list", elements="str", choices=CURVES, default=CURVES),
        ),
        supports_check_mode=True,
    )
    guard(module, {"min_key_size": (0, 16384, " bits (OpenSSL's RSA limit)")})
    require(module, "cryptography")
    p = module.params
    try:
        result = appliance.check_csr(
            read_bytes(p["path"], "CSR"),
            p["path"],
            subject=p["subject"],
            subject_alt_names=p["subject_alt_names"],
            key_types=p["key_types"],
            min_key_size=p["min_key_size"],
            curves=p["curves"],
        )
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
