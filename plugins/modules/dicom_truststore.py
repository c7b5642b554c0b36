#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dicom_truststore
short_description: Trust stores for dcmtk (OpenSSL hashed directory) and Orthanc (PEM bundle)
version_added: 0.1.0
description:
  - Builds the trust store each DICOM program reads from a list of certificates and CRLs.
  - "O(layout=hashed_dir): an OpenSSL hashed directory as read by dcmtk C(+cd DIR) (with C(+crv)/C(+cra)
    for CRL checking), C(openssl verify -CApath) and Python C(ssl) C(capath). Certificates are stored as
    C(HHHHHHHH.N), CRLs as C(HHHHHHHH.rN), where C(HHHHHHHH) is OpenSSL's subject name hash
    (the CRL issuer's for a CRL), as regular files (one PEM object each, self-contained on the host)."
  - Every C(HHHHHHHH.N) / C(HHHHHHHH.rN) entry in the directory belongs to this module (as C(c_rehash)
    treats them). Entries not wanted any more are removed, sequences are renumbered so that they have no
    gaps (OpenSSL stops at the first missing number). Other files in the directory are left alone.
  - Objects with the same SHA-256 fingerprint are stored once. Inside a collision sequence (several
    certificates with the same subject hash) the order is the order of the inputs, so reruns change
    nothing; for files given in sorted order this is the order C(openssl rehash) uses.
  - The directory is updated atomically for readers, under an exclusive lock
    (C(.dicom_truststore.lock) in the directory) so two runs cannot interleave. New entries are
    written next to the old ones and swapped in by renames, so a reader never sees a half-written file
    or a gap in a sequence.
  - "O(layout=bundle): one PEM file of concatenated certificates, as Orthanc's
    C(DicomTlsTrustedCertificates) reads it, written atomically. Orthanc does not check CRLs, so a
    bundle holds certificates only: to revoke a peer for Orthanc, remove what trusts it."
  - "Checks, each failing with the file and the reason, before anything is changed: a trust anchor
    that is not self-signed (dcmtk accepts only roots as anchors; a pinned self-signed peer certificate
    is a root), an expired certificate, an expired CRL or one whose issuer is not in the store (with CRL
    checking on, dcmtk would refuse every peer), unparsable input, PEM where DER was declared and vice versa."
author:
  - medimg.dicom_tls contributors (@medimg)
extends_documentation_fragment:
  - medimg.dicom_tls.backup
  - ansible.builtin.files
options:
  path:
    description:
      - The hashed directory (O(layout=hashed_dir), created if missing, parent must exist) or the bundle
        file (O(layout=bundle)).
    type: path
    required: true
  layout:
    description:
      - C(hashed_dir) for dcmtk C(+cd), C(bundle) for Orthanc C(DicomTlsTrustedCertificates).
    type: str
    choices: [hashed_dir, bundle]
    default: hashed_dir
  certificates:
    description:
      - Trust anchors. Each item is a path to a file on the managed host or inline PEM text (anything
        containing C(-----BEGIN )). A PEM file may hold several certificates; a DER file holds one.
      - The order matters only inside a collision sequence and in a bundle.
    type: list
    elements: str
    default: []
  crls:
    description:
      - CRLs for O(layout=hashed_dir), as paths (PEM or DER) or inline PEM text. Each must be current
        and issued by a certificate in O(certificates).
      - Not allowed with O(layout=bundle) (Orthanc ignores CRLs).
    type: list
    elements: str
    default: []
  crl_issuers:
    description:
      - CA certificates that issue CRLs in O(crls) but are not trust anchors, typically intermediate
        CAs (they travel in the peers' certificate chains). They are used to check the CRLs' signatures
        and are not written to the store. Each must be issued by a certificate in O(certificates) or by
        another of them.
    type: list
    elements: str
    default: []
  input_format:
    description:
      - What the input files are declared to be. C(auto) accepts PEM or DER; C(pem) or C(der) refuse the
        other with a clear error.
    type: str
    choices: [auto, pem, der]
    default: auto
  allow_non_root:
    description:
      - Accept certificates that are not self-signed as anchors. dcmtk does not accept an intermediate
        CA as a trust anchor, so this is only useful for other OpenSSL readers.
    type: bool
    default: false
  on_expired:
    description:
      - What to do with an expired certificate. C(fail) stops with an error, C(warn) keeps it with a
        warning, C(drop) leaves it out with a warning.
    type: str
    choices: [fail, warn, drop]
    default: fail
  backup:
    description:
      - Before a change, keep a timestamped copy of the bundle file or of the whole hashed directory beside
        it (C(PATH.YYYYmmddTHHMMSS.ffffff~)), as RV(backup_files) names it.
    type: bool
    default: false
requirements:
  - python >= 3.9
  - cryptography >= 36.0 (RHEL 9's python3-cryptography 36.0.1 and Debian 12's 38.0.4 qualify)
attributes:
  check_mode:
    support: full
    description: Reports exactly the entries that would be added, removed and renumbered.
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - each entry's SHA-256 fingerprint and subject (a bundle's fingerprints); a change of O(mode),
        O(owner), O(group), the SELinux context or O(attributes) alone shows them before and after.
  idempotent:
    support: full
    description: A second run with the same inputs reports C(changed=false).
notes:
  - Each entry (or the bundle file) is written mode 0644, or with O(mode), which here must be octal (like
    C('0640')), and with O(owner) and O(group), atomically; an entry whose mode or owner differs is rewritten.
    The SELinux context and O(attributes) are then set as M(ansible.builtin.file) sets them.
  - A long-running C(storescp) without C(--fork) caches what it read from the directory; restart it
    after the store changed.
  - Keep CRLs fresh with M(medimg.dicom_tls.dicom_crl) and rerun this module; RV(crl_next_update) tells
    when the earliest CRL in the store expires.
  - A certificate stored here that OpenSSL 3 refuses at security level 2 (Debian's and Ubuntu's default, and
    M(medimg.dicom_tls.dicom_tls_echo)'s default profile) is stored and warned about, once per certificate,
    naming its file and subject and what is weak; a signature with SHA-1 or MD5 (openssl verify error 68;
    not judged on a self-signed root, whose own signature OpenSSL does not check), an RSA or DSA key under
    2048 bits or an EC key under 224 bits (error 67 for a CA, 66 otherwise). dcmtk runs OpenSSL at level 0
    and accepts them; OpenSSL 3 clients at level 2 refuse every peer that chains to them.
seealso:
  - module: medimg.dicom_tls.dicom_crl
  - name: openssl rehash
    description: The OpenSSL tool this module replaces on managed hosts.
    link: https://docs.openssl.org/3.0/man1/openssl-rehash/
"""

EXAMPLES = r"""
- name: Trust directory for dcmtk (+cd) with the root CA and the issuing CA's CRL
  medimg.dicom_tls.dicom_truststore:
    path: /etc/dicom-tls/dcmtk-a/tls/trust
    layout: hashed_dir
    certificates:
      - /etc/dicom-tls/pki/site-ca/root.pem
    crls:
      - /etc/dicom-tls/pki/site-ca/issuing.crl.pem
    crl_issuers:
      - /etc/dicom-tls/pki/site-ca/issuing.pem
  register: trust

- name: Trust bundle for Orthanc (DicomTlsTrustedCertificates)
  medimg.dicom_tls.dicom_truststore:
    path: /etc/orthanc/tls/trusted.pem
    layout: bundle
    certificates:
      - /etc/dicom-tls/pki/site-ca/root.pem
    mode: '0644'
"""

RETURN = r"""
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is the bundle, the hashed directory or one of its entries; C(action) is C(created), C(renumbered),
      C(updated), C(removed), or C(attributes_changed) when only the file's mode, owner, group, SELinux context or
      attributes differed.
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
    - path: /etc/dicom-tls/dcmtk-a/tls/trust/9d66eef0.0
      action: created
      reason: "new in the store"
entries:
  description:
    - The objects in the store after the run (in check mode, after the run that would happen), in
      directory order. For a bundle, C(name) is C(<file name>#<position>).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Entry file name, like C(1a2b3c4d.0) or C(1a2b3c4d.r0).
      type: str
    kind:
      description: C(cert) or C(crl).
      type: str
    subject:
      description: Subject of a certificate, issuer of a CRL, in this collection's one form (V(/O=Hospital/CN=Root)).
      type: str
    subject_hash:
      description: OpenSSL name hash the entry is filed under.
      type: str
    fingerprint_sha256:
      description: SHA-256 fingerprint of the DER object, colon-separated hex.
      type: str
    not_after:
      description: End of validity of a certificate (ISO 8601, UTC).
      type: str
    next_update:
      description: nextUpdate of a CRL (ISO 8601, UTC).
      type: str
  sample:
    - name: 9d66eef0.0
      kind: cert
      subject: CN=Test Root CA,O=medimg test
      subject_hash: 9d66eef0
      fingerprint_sha256: "3A:...:7F"
      not_after: "2027-01-01T00:00:00Z"
added:
  description:
    - Entry names (hashed_dir) or SHA-256 fingerprints (bundle) of objects that were not in the store before.
  returned: success
  type: list
  elements: str
removed:
  description:
    - Entry names (hashed_dir, names before the run) or SHA-256 fingerprints (bundle) of objects no longer
      in the store, and of unreadable or duplicate entries removed.
  returned: success
  type: list
  elements: str
renumbered:
  description: Objects kept but moved inside a collision sequence, as C(old -> new). Only for hashed_dir.
  returned: success
  type: list
  elements: str
backup_files:
  description: The copies made with O(backup) (none when nothing changed or nothing existed before).
  returned: success
  type: list
  elements: str
crl_next_update:
  description: The earliest nextUpdate of the CRLs in the store (ISO 8601, UTC), null when there is none.
  returned: success
  type: str
"""


import os  # noqa: E402

from ansible_collections.medimg.dicom_tls.plugins.module_utils import file_args, reports, shared_options  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils import truststore as ts  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import (  # noqa: E402
    backup_copy,
    backup_tree,
    check_writable_dir,
    locked_for,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard  # noqa: E402


def run(module: AnsibleModule) -> tuple[dict, list]:
    """The module's own result keys and its plan (reports.Action), carried out unless in check mode."""
    p = module.params
    path = p["path"]
    meta = ts.file_meta(p["mode"], p["owner"], p["group"])
    if p["layout"] == "bundle" and p["crls"]:
        raise DicomTlsError(
            "layout bundle holds certificates only: Orthanc does not check CRLs (revoke a peer for "
            "Orthanc by removing its certificate or its CA from the bundle); drop crls",
            path,
        )
    loaded = ts.load_objects(
        p["certificates"],
        p["crls"],
        allow_non_root=p["allow_non_root"],
        on_expired=p["on_expired"],
        input_format=p["input_format"],
        crl_issuers=p["crl_issuers"],
    )
    for w in loaded.warnings:
        module.warn(w)
    result = {"crl_next_update": ts.earliest_next_update(loaded.objects), "backup_files": []}
    if p["layout"] == "bundle":
        plan = ts.plan_bundle(path, loaded.objects, meta)
        result.update(entries=plan.entries, added=plan.added, removed=plan.removed, renumbered=[])
        if plan.changed:
            if module.check_mode:
                ts.check_parent(path)
            else:
                check_writable_dir(path)
                with locked_for(path):
                    if p["backup"] and os.path.exists(path):
                        result["backup_files"].append(backup_copy(path))
                    ts.apply_bundle(plan, meta)
        return result, ts.plan_actions(plan)

    def plan_now():
        current = ts.read_hashed_dir(path, meta)
        return ts.plan_hashed_dir(path, loaded.objects, current)

    created = False
    if module.check_mode:
        ts.check_dir_writable(path, probe=False)
        plan = plan_now()
    else:
        ts.check_dir_writable(path)
        created = ts.ensure_dir(path)
        with ts.lock(path):
            ts.remove_stale_temps(path)
            plan = plan_now()
            if plan.changed:
                if p["backup"] and not created:
                    result["backup_files"].append(backup_tree(path, ignore=(ts.LOCK_NAME, ts.TMP_PREFIX + "*")))
                ts.apply_hashed_dir(plan, meta)
    actions = ts.plan_actions(plan)
    if created:
        actions.insert(0, reports.Action(path, "created", "no directory yet"))
    result.update(
        entries=ts.result_entries(plan),
        added=plan.added,
        removed=plan.removed,
        renumbered=plan.renumbered,
    )
    return result, actions


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            layout=dict(type="str", choices=["hashed_dir", "bundle"], default="hashed_dir"),
            certificates=dict(type="list", elements="str", default=[]),
            crls=dict(type="list", elements="str", default=[]),
            crl_issuers=dict(type="list", elements="str", default=[]),
            input_format=dict(type="str", choices=["auto", "pem", "der"], default="auto"),
            allow_non_root=dict(type="bool", default=False),
            on_expired=dict(type="str", choices=["fail", "warn", "drop"], default="fail"),
            **shared_options.backup(),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )
    guard(module)
    require(module, "cryptography")
    try:
        own, actions = run(module)
        path = module.params["path"]
        written = (
            [path] if module.params["layout"] == "bundle" else [os.path.join(path, e["name"]) for e in own["entries"]]
        )
        actions += file_args.set_attributes(module, written, [a.path for a in actions])
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    module.exit_json(**reports.report(actions, module._diff, **own))


if __name__ == "__main__":
    main()
