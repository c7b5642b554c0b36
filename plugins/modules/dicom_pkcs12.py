#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dicom_pkcs12
short_description: Key and certificate made on the CA host, only inside an encrypted PKCS#12 (appliances without CSR)
version_added: 1.0.0
description:
  - For a vendor appliance that cannot generate a CSR and only imports a PKCS#12, generates its private key
    on the CA host, signs its certificate with the issuing CA, and writes both (with the CA chain) only
    inside an encrypted PKCS#12 at O(path), mode 0600. The key is never written anywhere else and never
    appears in a result.
  - B(This is the one exception to "keys are born where they are used"); every result says so in
    RV(notice). Hand the PKCS#12 to the appliance over a trusted channel and delete other copies.
  - Renewal (a new key and certificate) when the PKCS#12 is missing, cannot be opened with O(passphrase),
    is no longer signed by the issuer, differs in subject, subject alternative names, usage or key
    type, or has less than O(renew_before_days) days left. A change of O(pkcs12_encryption) alone rewrites the
    PKCS#12 with the same key and certificate.
  - With O(database), every certificate issued is recorded in the CA's ledger (OpenSSL's C(index.txt)),
    as M(medimg.dicom_tls.dicom_cert) does.
author:
  - medimg.dicom_tls maintainers (@medimg)
extends_documentation_fragment:
  - ansible.builtin.files
  - medimg.dicom_tls.ca
  - medimg.dicom_tls.ca.issuance
  - medimg.dicom_tls.ca.private_key
notes:
  - O(owner), O(group), the SELinux context and O(attributes) apply to O(path) and O(certificate_path) as
    M(ansible.builtin.file) sets them (a change of them alone is an C(attributes_changed) action); O(mode)
    applies to O(certificate_path) only (created 0644), since the PKCS#12 holds the private key and stays 0600,
    as M(medimg.dicom_tls.dicom_cert) keeps its key stores.
  - With O(certificate_path), the key store and the certificate are written as M(medimg.dicom_tls.dicom_cert)
    writes a new key with its certificate - symbolic links through one link beside the key store
    (C(.NAME.dicom_tls/current), switched with one rename) - so a run killed at any point leaves the old
    pair or the new pair. No links are made in a folder other users can write.
attributes:
  check_mode:
    support: full
    description: Returns the plan (what would be created, renewed or updated and why).
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - subject, issuer, serial and notAfter of the certificate it holds; a change of O(mode),
        O(owner), O(group), the SELinux context or O(attributes) alone shows them before and after.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
options:
  path:
    description: The PKCS#12 file (written mode 0600).
    type: path
    required: true
  passphrase:
    description: Its passphrase (from a vaulted variable).
    type: str
    required: true
  pkcs12_encryption:
    description:
      - V(modern) AES-256-CBC with PBKDF2 and a SHA-256 MAC (OpenSSL 3's default).
      - V(legacy) 3DES with a SHA-1 MAC, for consoles and Java 8 key stores that cannot read the modern form
        (C(openssl pkcs12 -info) reads it with C(-legacy) only when RC2 is involved; 3DES is read as is).
    type: str
    choices: [modern, legacy]
    default: modern
  certificate_path:
    description: A copy of the certificate alone (PEM, public), on the CA host - what revocation by name reads.
    type: path
  subject:
    description: Subject, a dict or an OpenSSL-style string C(/O=Hospital/CN=ct-02).
    type: raw
    required: true
  subject_alt_names:
    description: Subject alternative names (C(DNS:), C(IP:), ...).
    type: list
    elements: str
  issuer_cert_path:
    required: true
  issuer_privatekey_path:
    description:
      - The CA's private key (PEM or DER). It never leaves the CA host.
      - Only read, never changed. When other users may read it (a mode with group or other bits, such as
        0644 or 0640), the task warns, naming the file and its mode, and leaves the mode as it is.
    required: true
  issuer_chain_path:
    description: The issuer's own intermediates, added to the PKCS#12 (roots are left out).
  force:
    description: Renew even when nothing requires it.
    type: bool
    default: false
seealso:
  - module: medimg.dicom_tls.dicom_cert
  - module: medimg.dicom_tls.dicom_cert_export
  - module: medimg.dicom_tls.dicom_ledger_info
"""

EXAMPLES = r"""
- name: PKCS#12 for an MR console that only imports key stores
  medimg.dicom_tls.dicom_pkcs12:
    path: /etc/dicom-tls/pki/site-ca/appliances/mr-02.p12
    passphrase: "{{ vault_mr02_pkcs12_passphrase }}"
    pkcs12_encryption: legacy
    certificate_path: /etc/dicom-tls/pki/site-ca/issued/mr-02.pem
    subject: /O=Example Hospital/CN=mr-02
    subject_alt_names: [IP:10.1.2.4]
    issuer_cert_path: /etc/dicom-tls/pki/site-ca/issuing.pem
    issuer_privatekey_path: /etc/dicom-tls/pki/site-ca/private/issuing.key
    database: /etc/dicom-tls/pki/site-ca/index.txt
  register: mr02
"""

RETURN = r"""
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is the PKCS#12, its O(certificate_path) copy or O(database); C(action) is C(created), C(renewed),
      C(updated), C(recovered) (an update a killed run left half done), or C(attributes_changed) when only the
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
    - path: /etc/dicom-tls/pki/site-ca/appliances/mr-02.p12
      action: renewed
      reason: "it expires in 20 days (renew_before_days is 30)"
notice:
  description: Where the private key was made and where it exists (the exception to "keys born where used").
  returned: always
  type: str
serial:
  description: Serial of the certificate in the PKCS#12, uppercase hex.
  returned: when a PKCS#12 exists after the run
  type: str
subject:
  description: Its subject, OpenSSL one-line form.
  returned: when a PKCS#12 exists after the run
  type: str
not_after:
  description: End of validity, ISO 8601 UTC.
  returned: when a PKCS#12 exists after the run
  type: str
days_remaining:
  description: Whole days until it expires.
  returned: when a PKCS#12 exists after the run
  type: int
certificate:
  description: The certificate, PEM (public data).
  returned: when a PKCS#12 exists after the run
  type: str
"""

from ansible_collections.medimg.dicom_tls.plugins.module_utils import (
    appliance,
    ca_options,
    crypto,
    file_args,
    files,
    reports,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard


def _side(cert, missing: str) -> dict:
    """What the diff shows of the certificate in the PKCS#12 (never the key)."""
    if cert is None:
        return {"certificate": missing}
    info = crypto.describe_certificate(cert)
    return {k: info[k] for k in ("subject", "issuer", "serial", "not_after")}


def main():
    argument_spec = dict(
        path=dict(type="path", required=True),
        passphrase=dict(type="str", required=True, no_log=True),
        pkcs12_encryption=dict(type="str", default="modern", choices=list(appliance.ENCRYPTIONS)),
        certificate_path=dict(type="path"),
        subject=dict(type="raw", required=True),
        subject_alt_names=dict(type="list", elements="str"),
        force=dict(type="bool", default=False),
        **ca_options.issuer(),
        **ca_options.issuance(),
        **ca_options.private_key(),
    )
    names = list(argument_spec)  # AnsibleModule adds the file options to argument_spec
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, add_file_common_args=True)
    guard(
        module,
        ca_options.ranges(),
        outputs=("path", "certificate_path", "database"),
        inputs=ca_options.ISSUER_INPUTS,
    )
    require(module, "cryptography")
    p = {k: module.params[k] for k in names}
    p["encryption"] = p.pop("pkcs12_encryption")
    spec = appliance.Pkcs12Spec(**p)
    warning = files.loose_key_warning(spec.issuer_privatekey_path, "issuer_privatekey_path")
    if warning:
        module.warn(warning)
    try:
        with appliance.locked(spec, enabled=not module.check_mode) as recovered:
            plan = appliance.plan_pkcs12(spec)
            appliance.add_recovered(plan, recovered)
            cert = before = plan.cert
            if not module.check_mode:
                cert = appliance.apply_pkcs12(plan)
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.filename or "", exc.strerror))
    actions = plan.actions + file_args.set_attributes(
        module, [spec.path, spec.certificate_path], [a.path for a in plan.actions], keep_mode=[spec.path]
    )
    after = None if module.check_mode and plan.has("pkcs12") else cert
    sides = {"before": {}, "after": {}}
    for path in (spec.path, spec.certificate_path):
        sides["before"][path], sides["after"][path] = _side(before, "(none)"), _side(after, "(new)")
    result = reports.report(
        actions, module._diff, sides["before"], sides["after"], notice=appliance.notice(spec.path, spec.encryption)
    )
    if cert is not None and not (module.check_mode and plan.has("pkcs12")):
        info = crypto.describe_certificate(cert)
        result.update({k: info[k] for k in ("serial", "subject", "not_after", "days_remaining")})
        result["certificate"] = crypto.cert_pem(cert).decode("ascii")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
