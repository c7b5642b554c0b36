#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dicom_cert_info
short_description: Read a certificate (or a chain file) and report its facts, for expiry reports
version_added: 0.1.0
description:
  - Reads a PEM or DER certificate file, or a chain file with several certificates, and returns subject,
    issuer, serial, validity, days remaining, fingerprint and OpenSSL subject hash of each.
  - Optionally checks that a private key matches the certificate and that a CA issued it. Changes nothing.
author:
  - medimg.dicom_tls maintainers (@medimg)
extends_documentation_fragment:
  - medimg.dicom_tls.privatekey
attributes:
  check_mode:
    support: full
    description: Reads only; check mode runs it for real.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Never changes anything.
options:
  path:
    description: The certificate or chain file on the managed host. One of O(path) and O(content) is required.
    type: path
  content:
    description: PEM text of a certificate or chain.
    type: str
  privatekey_path:
    description: A private key to check against the first certificate (the key itself is never returned).
    type: path
  issuer_cert_path:
    description: A CA certificate; RV(issued_by_issuer) says whether it signed the first certificate.
    type: path
requirements:
  - python >= 3.9
  - cryptography >= 36.0 (RHEL 9's python3-cryptography 36.0.1 and Debian 12's 38.0.4 qualify)
seealso:
  - module: medimg.dicom_tls.dicom_cert
"""

EXAMPLES = r"""
- name: Expiry facts of a node certificate
  medimg.dicom_tls.dicom_cert_info:
    path: /etc/dicom-tls/dcmtk-a/tls/node.pem
    privatekey_path: /etc/dicom-tls/dcmtk-a/private/node.key
    issuer_cert_path: /etc/dicom-tls/pki/site-ca/issuing.pem
  register: node_cert

- name: Warn when fewer than 30 days are left
  ansible.builtin.debug:
    msg: "{{ node_cert.subject }} expires in {{ node_cert.days_remaining }} days"
  when: node_cert.days_remaining < 30
"""

RETURN = r"""
subject:
  description: Subject of the first certificate, OpenSSL one-line form.
  returned: success
  type: str
issuer:
  description: Issuer of the first certificate.
  returned: success
  type: str
serial:
  description: Serial number, uppercase hex as C(openssl x509 -serial) prints it.
  returned: success
  type: str
not_before:
  description: Start of validity, ISO 8601 UTC.
  returned: success
  type: str
not_after:
  description: End of validity, ISO 8601 UTC.
  returned: success
  type: str
days_remaining:
  description: Whole days until the first certificate expires (negative once expired).
  returned: success
  type: int
expired:
  description: Whether the first certificate's notAfter has passed.
  returned: success
  type: bool
fingerprint_sha256:
  description: SHA-256 fingerprint, lowercase hex pairs joined by colons.
  returned: success
  type: str
subject_hash:
  description: OpenSSL subject name hash (C(openssl x509 -hash)).
  returned: success
  type: str
subject_alt_names:
  description: Subject alternative names.
  returned: success
  type: list
  elements: str
is_ca:
  description: Whether basicConstraints says CA.
  returned: success
  type: bool
self_signed:
  description: Whether the certificate is self-signed (a root).
  returned: success
  type: bool
key_type:
  description: V(rsa) or V(ecdsa).
  returned: success
  type: str
key_size:
  description: Key size in bits.
  returned: success
  type: int
curve:
  description: Name of the elliptic curve (C(secp256r1), C(secp384r1), ...) of an ECDSA key, null for other keys.
  returned: success
  type: str
  sample: secp384r1
chain:
  description: Facts of every certificate in the file, in file order (the same keys as above).
  returned: success
  type: list
  elements: dict
privatekey_matches:
  description: Whether O(privatekey_path) is the key of the first certificate.
  returned: when O(privatekey_path) is given
  type: bool
issued_by_issuer:
  description: Whether O(issuer_cert_path) signed the first certificate.
  returned: when O(issuer_cert_path) is given
  type: bool
"""

from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, shared_options
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import read_bytes
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            content=dict(type="str"),
            **shared_options.privatekey(),
            issuer_cert_path=dict(type="path"),
        ),
        required_one_of=[("path", "content")],
        mutually_exclusive=[("path", "content")],
        supports_check_mode=True,
    )
    guard(module)
    require(module, "cryptography")
    p = module.params
    try:
        if p["path"]:
            certs = crypto.load_certificates(read_bytes(p["path"], "certificate"), p["path"])
        else:
            certs = crypto.load_certificates(p["content"].encode("utf-8"), "content")
        chain = [crypto.describe_certificate(c) for c in certs]
        result = dict(chain[0], expired=crypto.not_valid_after(certs[0]) < crypto.utcnow())
        result["chain"] = chain
        if p["privatekey_path"]:
            key = crypto.load_private_key(
                read_bytes(p["privatekey_path"], "private key"), p["privatekey_path"], p["privatekey_passphrase"]
            )
            result["privatekey_matches"] = crypto.public_key_der(key) == crypto.public_key_der(certs[0])
        if p["issuer_cert_path"]:
            issuer = crypto.load_certificate(
                read_bytes(p["issuer_cert_path"], "issuer certificate"), p["issuer_cert_path"]
            )
            result["issued_by_issuer"] = crypto.issued_by(certs[0], issuer)
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
