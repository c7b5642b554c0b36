#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dicom_crl
short_description: Issue a CRL with CRL Number and Authority Key Identifier, only when needed
version_added: 0.1.0
description:
  - Writes a certificate revocation list signed by a CA, for dcmtk's C(+crv)/C(+cra) checking and
    C(openssl verify -crl_check).
  - Every CRL carries a CRL Number (one more than the CRL it replaces, read from the existing file, so
    it keeps increasing across runs) and an Authority Key Identifier (the issuer's subject key
    identifier), which some peers require.
  - "A new CRL is issued only when there is a reason, returned as RV(reason): no CRL yet, the revoked
    set (or a reason or date) changed, the existing CRL is not signed by the issuer (issuer changed), it
    expired or its remaining validity is at most O(renew_before_days), or the format, digest, CRL Number or
    Authority Key Identifier need changing. Otherwise the module reports C(changed=false)."
  - Fails with the file and the reason when the issuer key does not match the issuer certificate, the
    issuer is not a CA, a certificate to revoke was issued by another CA, or the path holds something
    that is not a CRL (it is never overwritten).
  - A long-running C(storescp) without C(--fork) caches the CRLs it read; restart it after a new CRL
    lands in its directory.
author:
  - medimg.dicom_tls contributors (@medimg)
options:
  path:
    description: The CRL file to write (its directory must exist).
    type: path
    required: true
  issuer_cert_path:
    description: The CA certificate (PEM or DER) that issues the CRL.
    required: true
  issuer_privatekey_path:
    required: true
  revoked:
    description:
      - The certificates this CA revokes. The CRL lists exactly these.
    type: list
    elements: dict
    default: []
    suboptions:
      serial:
        description:
          - Serial number. An integer is decimal; a string is hex as C(openssl x509 -serial) prints it
            (colons and a C(0x) prefix allowed). Give this or O(revoked[].certificate_path).
        type: raw
      certificate_path:
        description: A certificate to revoke (PEM or DER); it must have been issued by the CRL issuer.
        type: path
      reason:
        description: Revocation reason (no reasonCode extension when omitted or C(unspecified)).
        type: str
        choices: [unspecified, key_compromise, ca_compromise, affiliation_changed, superseded,
                  cessation_of_operation, certificate_hold, privilege_withdrawn, aa_compromise]
      revocation_date:
        description:
          - When it was revoked, ISO 8601 (C(2026-01-31T12:00:00Z)). Default is the date already in
            the CRL for this serial, or now for a new entry.
        type: str
  database:
    description:
      - The CA's ledger, OpenSSL's C(ca) database (C(index.txt)) that M(medimg.dicom_tls.dicom_cert)
        records issued certificates in (its O(medimg.dicom_tls.dicom_cert#module:database) option).
      - Every certificate of O(revoked) listed there is marked C(R) with its revocation date and reason
        (as C(openssl ca -revoke) does), and the CRL lists every C(R) entry of the ledger as well as
        O(revoked). The ledger is written under its lock, atomically, before the CRL; if writing the CRL
        fails, the ledger is put back.
      - A revocation stays in the ledger when it is dropped from O(revoked), as with C(openssl ca).
      - The reasons C(privilege_withdrawn) and C(aa_compromise) have no name in C(index.txt) and are refused.
    type: path
  next_update_days:
    description: Validity of a new CRL in days (nextUpdate = lastUpdate + this).
    type: int
    default: 7
  renew_before_days:
    description:
      - Issue a new CRL when the existing one has at most this many days of validity left (fractions allowed,
        V(0.5) is 12 hours). Default is half of O(next_update_days).
    type: float
  format:
    description: Encoding of the CRL file.
    type: str
    choices: [pem, der]
    default: pem
  digest:
    description: Signature digest (ignored for Ed25519/Ed448 issuers).
    type: str
    choices: [sha256, sha384, sha512]
    default: sha256
notes:
  - The file is created mode 0644 unless O(mode) is octal (then with that mode, before any byte lands in it);
    O(owner), O(group), a symbolic O(mode), the SELinux context and O(attributes) are then set as
    M(ansible.builtin.file) sets them; a change of them alone is listed in RV(actions) as C(attributes_changed).
requirements:
  - python >= 3.9
  - cryptography >= 36.0 (RHEL 9's python3-cryptography 36.0.1 and Debian 12's 38.0.4 qualify)
extends_documentation_fragment:
  - ansible.builtin.files
  - medimg.dicom_tls.ca
attributes:
  check_mode:
    support: full
    description: Reports whether and why a new CRL would be issued, with its number and revoked serials.
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - CRL number, dates and revoked serials; a change of O(mode), O(owner), O(group), the SELinux
        context or O(attributes) alone shows them before and after.
  idempotent:
    support: full
    description:
      - Reruns report C(changed=false) until the revoked set or issuer changes or the refresh window is reached.
seealso:
  - module: medimg.dicom_tls.dicom_truststore
  - name: openssl ca -gencrl
    description: The OpenSSL way of issuing CRLs.
    link: https://docs.openssl.org/3.0/man1/openssl-ca/
"""

EXAMPLES = r"""
- name: CRL of the issuing CA, revoking two serials
  medimg.dicom_tls.dicom_crl:
    path: /etc/dicom-tls/pki/site-ca/issuing.crl.pem
    issuer_cert_path: /etc/dicom-tls/pki/site-ca/issuing.pem
    issuer_privatekey_path: /etc/dicom-tls/pki/site-ca/private/issuing.key
    revoked:
      - serial: "4F:2A:19:0C"
        reason: key_compromise
      - serial: "5B:03"
        reason: superseded
        revocation_date: "2026-01-31T12:00:00Z"
    next_update_days: 7
    renew_before_days: 3
  register: crl

- name: Show why it was reissued
  ansible.builtin.debug:
    msg: "CRL {{ crl.crl_number }} valid until {{ crl.next_update }} ({{ crl.reason | default('unchanged', true) }})"
"""

RETURN = r"""
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is the CRL file, or O(database) for revocations it records; C(action) is C(created), C(updated), or
      C(attributes_changed) when only the file's mode, owner, group, SELinux context or attributes differed.
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
    - path: /etc/dicom-tls/pki/site-ca/issuing.crl.pem
      action: updated
      reason: "refresh window reached"
crl_number:
  description: CRL Number of the CRL on disk after the run (in check mode, of the CRL that would be written).
  returned: success
  type: int
  sample: 12
last_update:
  description: thisUpdate of that CRL, ISO 8601 UTC.
  returned: success
  type: str
  sample: "2026-11-22T04:00:00Z"
next_update:
  description: nextUpdate of that CRL, ISO 8601 UTC.
  returned: success
  type: str
  sample: "2026-11-29T04:00:00Z"
revoked_serials:
  description: Serials listed in that CRL, uppercase hex as C(openssl) prints them.
  returned: success
  type: list
  elements: str
  sample: ["4F2A190C"]
issuer_hash:
  description: OpenSSL name hash of the issuer; the CRL's name in a hashed directory is C(<issuer_hash>.rN).
  returned: success
  type: str
  sample: 9d66eef0
reason:
  description: Why a new CRL was (or in check mode would be) issued; null when nothing changed.
  returned: success
  type: str
  sample: "refresh window reached"
database_revoked:
  description: Serials marked C(R) in O(database) by this run (or, in check mode, that would be).
  returned: when O(database) is given
  type: list
  elements: str
  sample: ["4F2A190C"]
"""

import os  # noqa: E402

from ansible_collections.medimg.dicom_tls.plugins.module_utils import (
    ca_options,  # noqa: E402
    file_args,  # noqa: E402
    ledger,  # noqa: E402
    reports,  # noqa: E402
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crl as crlib  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import (  # noqa: E402
    check_writable_dir,
    locked_for,
    remove_stale_temps,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, days_max, guard  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.truststore import check_parent  # noqa: E402


def run(module: AnsibleModule) -> tuple[dict, list]:
    """The module's own result keys and its plan (reports.Action), carried out unless in check mode."""
    p = module.params
    if p["next_update_days"] < 1:
        raise DicomTlsError("next_update_days must be at least 1")
    if p["renew_before_days"] is not None and not 0 <= p["renew_before_days"] < p["next_update_days"]:
        raise DicomTlsError("renew_before_days must be at least 0 and less than next_update_days")
    mode = file_args.create_mode(p["mode"])
    if module.check_mode and not os.path.lexists(p["issuer_cert_path"]):
        # an earlier task of the same run (the CA's) would create the issuer: predict, do not fail
        reason = (
            "the issuer certificate %s does not exist yet (check mode: an earlier task would create it)"
            % (p["issuer_cert_path"])
        )
        action = "updated" if os.path.lexists(p["path"]) else "created"
        return dict(path=p["path"], msg="would issue the CRL: " + reason), [reports.Action(p["path"], action, reason)]
    issuer = crlib.read_issuer(p["issuer_cert_path"], p["issuer_privatekey_path"], p["issuer_privatekey_passphrase"])
    desired = crlib.desired_revocations(p["revoked"], issuer)
    entries = None
    if p["database"]:
        entries = ledger.check(p["database"])
        desired = ledger.crl_revocations(desired, entries)
        for r in desired:
            ledger.openssl_reason(r.reason, "revoked")
    existing = crlib.read_existing(p["path"], issuer)
    plan = crlib.plan_crl(
        desired, existing, issuer, p["format"], p["digest"], p["next_update_days"], p["renew_before_days"]
    )
    result = crlib.summary(plan, issuer)
    actions = crlib.plan_actions(plan, p["path"], existing)
    for action in actions:
        action.after = {k: result[k] for k in ("crl_number", "last_update", "next_update", "revoked_serials")}
    if entries is not None:
        result["database_revoked"] = ledger.revocations_to_record(entries, plan.revocations)
        if result["database_revoked"]:
            reason = "revocations to record: %s" % ", ".join(result["database_revoked"])
            actions.append(reports.Action(p["database"], "updated", reason))
        if result["database_revoked"] and not module.check_mode:
            with ledger.update(p["database"]) as book:
                ledger.record_revocations(book, plan.revocations)
                if plan.changed:
                    check_writable_dir(p["path"])
                    new = crlib.build_crl(plan, issuer, p["digest"])
                    book.then(lambda: crlib.write_crl(p["path"], new, p["format"], mode))
            return result, actions
    if plan.changed:
        if module.check_mode:
            check_parent(p["path"])
        else:
            check_writable_dir(p["path"])
            new = crlib.build_crl(plan, issuer, p["digest"])
            crlib.write_crl(p["path"], new, p["format"], mode)
    return result, actions


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            **ca_options.issuer(),
            revoked=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    serial=dict(type="raw"),
                    certificate_path=dict(type="path"),
                    reason=dict(type="str", choices=list(crlib.REASONS)),
                    revocation_date=dict(type="str"),
                ),
                mutually_exclusive=[("serial", "certificate_path")],
                required_one_of=[("serial", "certificate_path")],
            ),
            next_update_days=dict(type="int", default=7),
            renew_before_days=dict(type="float"),
            format=dict(type="str", choices=["pem", "der"], default="pem"),
            digest=dict(type="str", choices=list(crlib.DIGESTS), default="sha256"),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )
    guard(
        module,
        {
            "next_update_days": (1, days_max(), " days (X.509 dates end at 9999-12-31)"),
            "renew_before_days": (0, days_max(), " days", "float"),
        },
        outputs=("path", "database"),
        inputs=("issuer_cert_path", "issuer_privatekey_path", "revoked.certificate_path"),
    )
    require(module, "cryptography")
    try:
        with locked_for(module.params["path"], enabled=not module.check_mode):
            if not module.check_mode:
                remove_stale_temps([module.params["path"]])
            own, actions = run(module)
            path = module.params["path"]
            actions += file_args.set_attributes(module, [path], [a.path for a in actions])
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    module.exit_json(**reports.report(actions, module._diff, **own))


if __name__ == "__main__":
    main()
