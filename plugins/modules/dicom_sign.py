#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dicom_sign
short_description: Sign DICOM files, verify their signatures, or remove them, as dcmtk's dcmsign does
description:
  - Adds, verifies or removes DICOM digital signatures (PS3.15 Annex C, Digital Signatures Sequence
    and MAC Parameters Sequence) in DICOM Part 10 files, interoperable with dcmtk's C(dcmsign) in both
    directions.
  - The MAC byte stream is built from the stored value bytes (values are never decoded and
    re-encoded), always in explicit VR little endian, as C(dcmsign --dump) shows it.
  - Files are processed one at a time (memory stays flat however many files are given). Every
    file is checked first; when any file cannot be processed nothing is written at all.
  - Files are written atomically (temporary file in the same directory, fsync, rename) with the
    original bytes copied around the inserted or removed signature items, so every other signature
    and any certified timestamp in the file stays untouched.
  - Implicit VR little endian, explicit VR little endian and encapsulated (compressed) transfer
    syntaxes are supported; big endian and deflated files are refused.
version_added: 0.1.0
author:
  - medimg.dicom_tls contributors (@medimg)
extends_documentation_fragment:
  - medimg.dicom_tls.trust
  - medimg.dicom_tls.privatekey
  - ansible.builtin.files
options:
  path:
    description:
      - DICOM files or directories to process. In a directory, files without the C(DICM) prefix are
        skipped (counted in RV(totals.skipped)); a file named explicitly must be a DICOM file.
    type: list
    elements: path
    required: true
  recursive:
    description: Descend into subdirectories of directories given in O(path).
    type: bool
    default: false
  dest:
    description:
      - Where to write the result instead of changing files in place. With a single input file and
        O(dest) not an existing directory, O(dest) is the output file; otherwise a directory that
        receives each file under its name (relative path for directory inputs).
      - When the destination file already exists and is in the requested state, nothing is written.
      - Ignored with O(state=verified).
    type: path
  state:
    description:
      - V(signed) ensures a valid signature by O(certificate_path) with the same O(mac_algorithm),
        signed attributes, O(item) and O(purpose) exists; otherwise adds one.
      - V(verified) changes nothing and fails when any signature is invalid or O(require) is not met.
      - V(unsigned) removes the signature O(signature_uid), or every signature when it is not given.
    type: str
    choices: [signed, verified, unsigned]
    default: signed
  privatekey_path:
    description:
      - PEM (or DER) private key of the signer, RSA or ECDSA. Required with O(state=signed).
      - Only read, never changed. When other users may read it (a mode with group or other bits, such as
        0644 or 0640), the task warns, naming the file and its mode, and leaves the mode as it is.
    type: path
  certificate_path:
    description: The signer's X.509 certificate (PEM or DER), stored in the signature. Required with O(state=signed).
    type: path
  mac_algorithm:
    description:
      - MAC algorithm of a new signature. V(sha1) and V(md5) are accepted in files when verifying
        but never used to sign. dcmsign's own default is V(ripemd160).
    type: str
    choices: [sha256, sha384, sha512, ripemd160]
    default: sha256
  signature_profile:
    description:
      - Security profile the new signature must satisfy (PS3.15 C.2 to C.5). V(none) adds no
        requirement; the others need an RSA key and add the attributes they require (when present)
        to O(tags). V(creator) signs the main dataset only; V(sr) needs Value Type, Concept Name
        Code Sequence and Content Sequence in the dataset.
    type: str
    choices: [none, base, creator, authorization, sr]
    default: none
  tags:
    description:
      - Sign only these attributes (keywords such as V(PatientName) or V((0010,0010))); attributes
        absent from the dataset are ignored. Default is every signable attribute.
      - Naming an attribute that cannot be signed (VR UN, a sequence containing UN, group length,
        file meta information, signature sequences) is an error.
    type: list
    elements: str
  item:
    description:
      - Sign inside a sequence item instead of the main dataset, for example
        V(ReferencedSeriesSequence[0].ReferencedImageSequence[1]) (indices start at 0).
    type: str
  purpose:
    description: Digital Signature Purpose code (ASTM E1762, 1 to 18) to record with a new signature.
    type: int
  signature_uid:
    description: With O(state=unsigned), the Digital Signature UID to remove (default all signatures).
    type: str
  ca_file:
    description: Trusted CA certificates (PEM bundle), as C(dcmsign +cf).
    type: path
  ca_path:
    description: Directory of trusted CA certificates (and C(hash.rN) CRLs), as C(dcmsign +cd).
    type: path
  untrusted_certs:
    description: Intermediate CA certificate files used to build chains but not trusted, as C(dcmsign +uf).
    type: list
    elements: path
  crl_files:
    description:
      - CRL files; when given, every certificate of the chain must have a current CRL from its
        issuer and must not be revoked, as C(dcmsign +cr).
    type: list
    elements: path
  require:
    description:
      - With O(state=verified), what each file must have besides every present signature being
        valid. V(signature) at least one signature; V(creator), V(authorization), V(sr) at least one
        valid signature meeting that profile, as C(dcmsign --require-creator), C(--require-auth),
        C(--require-sr). Without it a file with no signature passes, as with dcmsign.
    type: list
    elements: str
    choices: [signature, creator, authorization, sr]
    default: []
  retry_old_format:
    description:
      - When a signature over encapsulated pixel data fails, retry with the pre-3.5.4 dcmtk
        stream format (C(dcmsign --format-old)); a signature that passes so is reported with
        C(format=old).
    type: bool
    default: true
notes:
  - A file written gets the mode (and, run as root, the owner) of the file it is made from; Ansible's file options
    (O(mode), O(owner), O(group), SELinux context, O(attributes)) then apply to every file in the requested state
    (O(dest) when set, else the input file), written or not, as M(ansible.builtin.file) sets them, and count as
    a change. They are ignored with O(state=verified).
requirements:
  - python >= 3.10 (pydicom 3 needs it; on Python 3.9 the module fails saying so)
  - pydicom >= 3.0
  - cryptography >= 36.0
attributes:
  check_mode:
    support: full
    description: >-
      Every file is read and checked; the files that would be signed or changed are reported and
      nothing is written.
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - the signature UIDs before and after; a change of O(mode), O(owner), O(group), the SELinux
        context or O(attributes) alone shows them before and after.
  idempotent:
    support: full
    description: A file that already has a valid signature matching the request is left untouched.
seealso:
  - name: dcmsign manual
    description: dcmtk's command line tool this module interoperates with.
    link: https://support.dcmtk.org/docs/dcmsign.html
  - name: DICOM PS3.15 Annex C
    description: Digital signature profiles.
    link: https://dicom.nema.org/medical/dicom/current/output/chtml/part15/chapter_C.html
"""

EXAMPLES = r"""
- name: Sign every DICOM file of a study folder (creator profile, SHA-256)
  medimg.dicom_tls.dicom_sign:
    path: /srv/dicom/incoming
    recursive: true
    privatekey_path: /etc/dicom-tls/dcmtk-a/private/node.key
    certificate_path: /etc/dicom-tls/dcmtk-a/tls/node.pem
    signature_profile: creator

- name: Sign a report's referenced image item with a purpose code, into a copy
  medimg.dicom_tls.dicom_sign:
    path: /srv/dicom/report.dcm
    dest: /srv/dicom/report-signed.dcm
    privatekey_path: /etc/dicom-tls/dcmtk-a/private/node.key
    certificate_path: /etc/dicom-tls/dcmtk-a/tls/node.pem
    item: ReferencedSeriesSequence[0].ReferencedImageSequence[0]
    purpose: 5
    tags: [ReferencedSOPClassUID, ReferencedSOPInstanceUID]

- name: Verify signatures against the site CA and require a creator signature
  medimg.dicom_tls.dicom_sign:
    path: /srv/dicom/incoming
    recursive: true
    state: verified
    ca_file: /etc/dicom-tls/pki/site-ca/root.pem
    untrusted_certs: [/etc/dicom-tls/pki/site-ca/issuing.pem]
    require: [creator]
  register: check

- name: Remove every signature before de-identification
  medimg.dicom_tls.dicom_sign:
    path: /srv/dicom/export
    state: unsigned
"""

RETURN = r"""
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is the file written (O(dest) when given); C(action) is C(signed), C(removed), C(copied), or
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
    - path: /srv/dicom/ct/1.dcm
      action: signed
      reason: "no valid signature matching the request"
files:
  description: One entry per DICOM file processed, in order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The input file.
      type: str
      sample: /srv/dicom/incoming/1.dcm
    dest:
      description: The output file, when it differs from O(path).
      type: str
      returned: when O(dest) is set
    action:
      description: >-
        V(signed), V(removed), V(copied) (already in state, copied to O(dest)), V(unchanged),
        V(verified) or V(failed). In check mode, what would be done.
      type: str
    reason:
      description: Why verification failed (each problem, separated by semicolons).
      type: str
      returned: when RV(files[].action=failed)
    signatures:
      description: >-
        With O(state=verified), every signature of the file; with O(state=signed), the new
        signature (empty in check mode) or the existing one that already satisfies the request;
        with O(state=unsigned), the signatures removed (uid and location).
      type: list
      elements: dict
      contains:
        uid:
          description: Digital Signature UID.
          type: str
        mac_id:
          description: MAC ID Number linking the signature to its MAC parameters.
          type: int
        mac_algorithm:
          description: "MAC algorithm: sha256, sha384, sha512, ripemd160, sha1 or md5."
          type: str
        signer:
          description: Subject of the signer certificate, in this collection's one form (V(/O=Hospital/CN=node)).
          type: str
        signer_fingerprint_sha256:
          description: SHA-256 fingerprint of the signer certificate, lowercase hex pairs joined by colons.
          type: str
          returned: when the signer certificate can be read
        signer_not_after:
          description: notAfter of the signer certificate (V(YYYY-MM-DDTHH:MM:SSZ), UTC).
          type: str
          returned: when the signer certificate can be read
        datetime:
          description: Digital Signature DateTime as stored.
          type: str
        location:
          description: Item location of the signature; empty for the main dataset.
          type: str
        purpose:
          description: Signature purpose code, when one is recorded.
          type: str
        certified_timestamp:
          description: True when the signature carries a certified timestamp (kept untouched; not verified).
          type: bool
        format:
          description: V(old) when the signature only verified with dcmtk's pre-3.5.4 stream format.
          type: str
        valid:
          description: >-
            The signature is intact, was made while its certificate was valid, and (when
            verifying) its certificate chains to a trusted CA.
          type: bool
        reason:
          description: >-
            Why it is not valid, naming the signature (for example the content changed since
            signing, or the signer is untrusted).
          type: str
totals:
  description: Counts over all files.
  returned: always
  type: dict
  contains:
    signed:
      description: Files signed (or that would be, in check mode).
      type: int
    verified:
      description: Files whose signatures all verified and met O(require).
      type: int
    failed:
      description: Files that failed verification.
      type: int
    unchanged:
      description: Files already in the requested state.
      type: int
    removed:
      description: Files signatures were removed from.
      type: int
    skipped:
      description: Files without the DICM prefix skipped in directories.
      type: int
  sample: {signed: 10, verified: 0, failed: 0, unchanged: 2, removed: 0, skipped: 1}
"""

import traceback  # noqa: E402

from ansible.module_utils.basic import missing_required_lib  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils import file_args, files, reports, shared_options  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.deps import require  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard  # noqa: E402

try:
    from ansible_collections.medimg.dicom_tls.plugins.module_utils.dicom_sign_files import Runner
    from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError

    IMPORT_ERROR = None
except ImportError:
    IMPORT_ERROR = traceback.format_exc()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="list", elements="path", required=True),
            recursive=dict(type="bool", default=False),
            dest=dict(type="path"),
            state=dict(type="str", default="signed", choices=["signed", "verified", "unsigned"]),
            **shared_options.privatekey(),
            certificate_path=dict(type="path"),
            mac_algorithm=dict(type="str", default="sha256", choices=["sha256", "sha384", "sha512", "ripemd160"]),
            signature_profile=dict(
                type="str", default="none", choices=["none", "base", "creator", "authorization", "sr"]
            ),
            tags=dict(type="list", elements="str"),
            item=dict(type="str"),
            purpose=dict(type="int"),
            signature_uid=dict(type="str"),
            **shared_options.trust(),
            untrusted_certs=dict(type="list", elements="path"),
            require=dict(
                type="list", elements="str", default=[], choices=["signature", "creator", "authorization", "sr"]
            ),
            retry_old_format=dict(type="bool", default=True),
        ),
        required_if=[
            ("state", "signed", ("privatekey_path", "certificate_path")),
            ("state", "verified", ("ca_file", "ca_path"), True),
        ],
        supports_check_mode=True,
        add_file_common_args=True,
    )
    require(module, "cryptography", "pydicom")
    if IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("pydicom and cryptography"), exception=IMPORT_ERROR)
    guard(
        module,
        {"purpose": (1, 18, " (a DICOM digital signature purpose code)")},
        outputs=("dest",),
        inputs=("privatekey_path", "certificate_path", "ca_file", "untrusted_certs", "crl_files"),
    )
    params = module.params
    if params["purpose"] is not None and not 1 <= params["purpose"] <= 18:
        module.fail_json(msg="purpose must be a code from 1 to 18, got %d" % params["purpose"])
    if params["state"] == "signed":
        warning = files.loose_key_warning(params["privatekey_path"], "privatekey_path")
        if warning:
            module.warn(warning)
    try:
        runner = Runner(params, check_mode=module.check_mode)
        for note in runner.trust.notes if runner.trust else ():
            module.warn(note)
        result = runner.run()
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    actions = result["actions"]
    if params["state"] != "verified":
        outputs = [f.get("dest", f["path"]) for f in result["files"]]
        actions += file_args.set_attributes(module, outputs, [a.path for a in actions])
    # changed and actions: the plan's, with the attribute changes
    own = {k: v for k, v in result.items() if k not in ("changed", "actions")}
    result = reports.report(actions, module._diff, **own)
    if params["state"] == "verified" and result["totals"]["failed"]:
        failed = [f for f in result["files"] if f["action"] == "failed"]
        module.fail_json(
            msg="%d of %d file(s) failed verification; first: %s: %s"
            % (len(failed), len(result["files"]), failed[0]["path"], failed[0]["reason"]),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
