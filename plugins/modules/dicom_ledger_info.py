#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dicom_ledger_info
short_description: Read the CA ledger (OpenSSL's index.txt) - status of a serial, what expires within N days
version_added: 1.0.0
description:
  - Reads the CA's ledger, the C(index.txt) database that C(openssl ca) keeps and that
    M(medimg.dicom_tls.dicom_cert) and M(medimg.dicom_tls.dicom_crl) write with their C(database) option.
  - Returns every entry (status, serial, subject, expiry, revocation date and reason), the valid
    certificates that expire within O(expires_within) days (leaving out those a newer certificate with
    the same subject supersedes), and, with O(serial), that serial's status as C(openssl ca -status) gives it.
  - A C(V) entry past its expiry is reported C(E), as C(openssl ca -updatedb) would mark it; the file is
    never written.
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
    description: The ledger (C(index.txt)). A missing ledger has no entries.
    type: path
    required: true
  expires_within:
    description: List the valid, not superseded certificates that expire within this many days.
    type: int
    default: 30
  serial:
    description: A serial to look up, hex as C(openssl x509 -serial) prints it (colons allowed).
    type: str
seealso:
  - module: medimg.dicom_tls.dicom_cert
  - module: medimg.dicom_tls.dicom_crl
  - name: openssl ca
    description: The C(database) format, C(-status) and C(-updatedb).
    link: https://docs.openssl.org/3.0/man1/openssl-ca/
"""

EXAMPLES = r"""
- name: What expires in the next 60 days
  medimg.dicom_tls.dicom_ledger_info:
    path: /etc/dicom-tls/pki/site-ca/index.txt
    expires_within: 60
  register: ledger

- name: Print it
  ansible.builtin.debug:
    msg: "{{ ledger.expiring | map(attribute='subject') | list }}"

- name: Status of one serial, as openssl ca -status prints it
  medimg.dicom_tls.dicom_ledger_info:
    path: /etc/dicom-tls/pki/site-ca/index.txt
    serial: 4F2A190C
  register: one
"""

RETURN = r"""
entries:
  description:
    - Every line of the ledger, in file order.
    - C(status) is V, R or E (V past its expiry is E); C(superseded) is true for a valid certificate whose
      subject has a newer valid one.
  returned: always
  type: list
  elements: dict
  sample:
    - {status: V, serial: 4F2A190C, subject: /O=Example/CN=ct-01, not_after: "2027-11-30T12:00:00Z",
       days_remaining: 364, revocation_date: null, revocation_reason: null, superseded: false}
expiring:
  description: The valid, not superseded entries expiring within O(expires_within) days, soonest first.
  returned: always
  type: list
  elements: dict
counts:
  description: Number of entries per status.
  returned: always
  type: dict
  sample: {V: 12, R: 1, E: 3}
status:
  description: The status of O(serial) (V, R or E), or null when it is not in the ledger.
  returned: when O(serial) is given
  type: str
"""

from ansible_collections.medimg.dicom_tls.plugins.module_utils import crl, ledger
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, days_max, guard


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            expires_within=dict(type="int", default=30),
            serial=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    guard(module, {"expires_within": (0, days_max(), " days")})
    require(module, "cryptography")
    p = module.params
    try:
        if p["expires_within"] < 0:
            raise DicomTlsError("expires_within must be 0 or more days")
        entries = ledger.read(p["path"])
        result = ledger.report(entries, p["expires_within"])
        if p["serial"] is not None:
            serial = crl.parse_serial(p["serial"], "serial")
            row = next((r for r in result["entries"] if r["serial"] == crl.serial_hex(serial)), None)
            result["status"] = row["status"] if row else None
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
