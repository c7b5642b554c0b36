#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: orthanc_config
short_description: Set Orthanc options so each is defined exactly once in its configuration folder
version_added: "0.1.0"
author:
  - medimg.dicom_tls contributors (@medimg)
description:
  - Orthanc reads every C(*.json) file of its configuration folder (comments allowed) and refuses
    to start when an option is defined in two files. Debian's stock C(/etc/orthanc/orthanc.json)
    already defines C(DicomTlsEnabled), C(DicomTlsRemoteCertificateRequired), C(DicomPort),
    C(DicomModalities) and many more.
  - Each option of O(settings) is set in the file that already defines it (its value replaced in
    place; the comments and layout of the rest of the file kept). Options no file defines go to the
    drop-in file O(dropin), which this module owns and rewrites as plain JSON.
  - An option that the drop-in holds but another file also defines is removed from the drop-in.
    An option defined in two other files is an error (naming both), since Orthanc would not start.
  - When O(settings) names C(DicomTlsPrivateKey) and that file is a passphrase-protected key, the
    module fails, since Orthanc cannot read such a key.
  - Orthanc reads its configuration at start; restart it (or C(POST /tools/reset)) when this
    module reports a change.
extends_documentation_fragment:
  - medimg.dicom_tls.backup
  - ansible.builtin.files
options:
  config_dir:
    description: Orthanc's configuration folder (Debian C(/etc/orthanc)).
    type: path
    required: true
  settings:
    description:
      - Top-level options and their values, for example C(DicomTlsEnabled), C(DicomTlsCertificate),
        C(DicomTlsPrivateKey), C(DicomTlsTrustedCertificates), C(DicomTlsRemoteCertificateRequired),
        C(DicomModalities). A value replaces the whole option (a dict is not merged).
    type: dict
    required: true
  dropin:
    description: File name (in O(config_dir)) for options that no other file defines.
    type: str
    default: dicom-tls.json
  seed_dir:
    description:
      - The stock configuration folder a new instance starts from (Debian C(/etc/orthanc)).
      - When O(config_dir) holds no C(orthanc.json), it is created (0755 when missing) as a copy of every file of
        this folder, each with its mode, and O(settings) are applied to the copy in the same run (listed in
        RV(actions) as created, copied from O(seed_dir)). A folder that has its C(orthanc.json) is left to
        O(settings) alone.
    type: path
notes:
  - Ansible's file options (O(mode), O(owner), O(group), SELinux context, O(attributes)) apply to the drop-in
    and to every file the run writes; a file is written with the mode it had (the drop-in 0644) and then set as
    M(ansible.builtin.file) sets it.
attributes:
  check_mode:
    support: full
    description: Reports exactly what would change; writes nothing.
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - C(OPTION = VALUE) lines of the options that change in it; a change of O(mode), O(owner),
        O(group), the SELinux context or O(attributes) alone shows them before and after.
  idempotent:
    support: full
    description: A second run with the same settings reports no change.
seealso:
  - module: medimg.dicom_tls.dicom_truststore
  - name: Orthanc DICOM TLS
    description: The Orthanc Book on DICOM TLS options.
    link: https://orthanc.uclouvain.be/book/faq/dicom-tls.html
"""

EXAMPLES = r"""
- name: DICOM TLS in Debian's stock configuration folder
  medimg.dicom_tls.orthanc_config:
    config_dir: /etc/orthanc
    settings:
      DicomTlsEnabled: true
      DicomTlsCertificate: /etc/orthanc/tls/orthanc.chain.pem
      DicomTlsPrivateKey: /etc/orthanc/tls/orthanc.key
      DicomTlsTrustedCertificates: /etc/orthanc/tls/trusted.pem
      DicomTlsRemoteCertificateRequired: true
  register: orthanc_cfg
"""

RETURN = r"""
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is a configuration file of O(config_dir); C(action) is C(created), C(updated), or
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
    - path: /etc/orthanc/dicom-tls.json
      action: created
      reason: "DicomTlsEnabled added"
changes:
  description: One entry per option changed (or to be changed in check mode); empty when nothing changes.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: The option.
      type: str
    file:
      description: File name (in O(config_dir)) that holds or will hold the option.
      type: str
    action:
      description: C(set) (value replaced where defined), C(added) (new in the drop-in), C(removed duplicate).
      type: str
  sample: [{"key": "DicomTlsEnabled", "file": "orthanc.json", "action": "set"}]
defined_in:
  description: For each option of O(settings), the file name that defines it after the run.
  returned: always
  type: dict
  sample: {"DicomTlsEnabled": "orthanc.json", "DicomTlsCertificate": "dicom-tls.json"}
files:
  description: File names written (or to be written in check mode).
  returned: always
  type: list
  elements: str
backup_files:
  description: The copies made with O(backup).
  returned: always
  type: list
  elements: str
"""

import os  # noqa: E402

from ansible_collections.medimg.dicom_tls.plugins.module_utils import file_args, reports, shared_options  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import locked_for  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import (  # noqa: E402
    AnsibleModule,
    guard,
    guard_distinct,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.orthanc_config import (  # noqa: E402
    apply,
    check_private_key_usable,
    config_roles,
    plan,
    plan_actions,
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.orthanc_config import written as written_names  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_dir=dict(type="path", required=True),
            settings=dict(type="dict", required=True),
            dropin=dict(type="str", default="dicom-tls.json"),
            **shared_options.backup(),
            seed_dir=dict(type="path"),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )
    guard(module)
    p = module.params
    guard_distinct(module, *config_roles(p["config_dir"], p["dropin"], p["settings"]))
    try:
        key_path = p["settings"].get("DicomTlsPrivateKey")
        if key_path is not None and not (isinstance(key_path, str) and key_path.strip()):
            raise DicomTlsError("settings.DicomTlsPrivateKey must be a file path (a string), got %r" % (key_path,))
        if key_path:
            check_private_key_usable(key_path if key_path.startswith("/") else "%s/%s" % (p["config_dir"], key_path))
        with locked_for(os.path.join(p["config_dir"], p["dropin"]), enabled=not module.check_mode):
            todo = plan(p["config_dir"], p["settings"], p["dropin"], p["seed_dir"])
            for warning in todo.warnings:
                module.warn(warning)
            actions = plan_actions(todo)
            backup_files = []
            if (todo.files or todo.seeded) and not module.check_mode:
                backup_files = apply(todo, backup=p["backup"])
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    names = written_names(todo)
    written = [os.path.join(p["config_dir"], name) for name in names]
    dropin = os.path.join(p["config_dir"], p["dropin"])
    actions += file_args.set_attributes(module, sorted(set(written + [dropin])), written)
    result = reports.report(
        actions,
        module._diff,
        changes=[{"key": c["key"], "file": c["file"], "action": c["action"]} for c in todo.changes],
        defined_in=todo.defined_in,
        files=names,
        backup_files=backup_files,
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
