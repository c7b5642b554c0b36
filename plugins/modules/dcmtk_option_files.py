#!/usr/bin/python
# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dcmtk_option_files
short_description: Write the dcmtk option files (TOOL.args, read with @FILE) of one node in one task
version_added: 1.0.0
author:
  - medimg.dicom_tls contributors (@medimg)
description:
  - dcmtk's tools read options from a file named on the command line with C(@FILE)
    (C(storescp @/etc/dicom-tls/node/storescp.args 11112)). This module writes one such file per
    tool, C(DIRECTORY/TOOL.args), each option with its values on a line of its own.
  - All the files of a node are checked (and written when they differ) in one module run, which is
    what a fleet rerun that changes nothing pays for them. The folder is created when missing.
  - dcmtk reads no comments in option files and splits each line at white space; a path with spaces
    is not supported in them.
options:
  directory:
    description: The folder of the option files.
    type: path
    required: true
  tools:
    description:
      - Per dcmtk tool name (C(storescp), C(echoscu), C(storescu), ...), the lines of its option file
        (for example C(+tls KEY CERT), C(+cd DIR), C(+crv), C(+py), C(-rc), C(-aet TITLE)). Empty lines are left out.
    type: dict
    required: true
extends_documentation_fragment:
  - medimg.dicom_tls.backup
  - ansible.builtin.files
notes:
  - The option files are created mode 0644 unless O(mode) is octal (then with that mode, before any byte lands in
    them); O(owner), O(group), a symbolic O(mode), the SELinux context and O(attributes) are then set as
    M(ansible.builtin.file) sets them. A change of them alone is listed in RV(actions) as C(attributes_changed).
attributes:
  check_mode:
    support: full
    description: Reports the files that would be written; writes nothing.
  diff_mode:
    support: full
    description:
      - One diff per entry of RV(actions), headed by its path (Ansible's C(before)/C(after)), metadata only, never
        key bytes - the lines of the option file (paths and options, no secrets); a change of O(mode), O(owner),
        O(group), the SELinux context or O(attributes) alone shows them before and after.
  idempotent:
    support: full
    description: A second run with the same options reports no change.
seealso:
  - module: medimg.dicom_tls.dicom_truststore
  - module: medimg.dicom_tls.dicom_daemon
"""

EXAMPLES = r"""
- name: Option files of storescp and echoscu for one node
  medimg.dicom_tls.dcmtk_option_files:
    directory: /etc/dicom-tls/dcmtk-a
    tools:
      storescp: ["+tls /etc/dicom-tls/dcmtk-a/private/node.key /etc/dicom-tls/dcmtk-a/tls/node.chain.pem",
                 "+cd /etc/dicom-tls/dcmtk-a/tls/trust", "+crv", "+py", "-rc", "-aet DCMTK_A",
                 "-od /var/lib/dicom-tls/dcmtk-a"]
      echoscu: ["+tls /etc/dicom-tls/dcmtk-a/private/node.key /etc/dicom-tls/dcmtk-a/tls/node.chain.pem",
                "+cd /etc/dicom-tls/dcmtk-a/tls/trust", "+crv", "+py", "-rc", "-aet DCMTK_A"]
    backup: true
  register: dcmtk_options
"""

RETURN = r"""
actions:
  description:
    - The plan, carried out (in check mode, to be carried out), in the shape every module of the collection returns,
      one entry per file with C(path), C(action) and C(reason). Empty when nothing changed; RV(ignore:changed) is
      true exactly when it is not empty.
    - C(path) is the option file; C(action) is C(created), C(updated), or C(attributes_changed) when only the file's
      mode, owner, group, SELinux context or attributes differed.
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
    - path: /etc/dicom-tls/dcmtk-a/storescp.args
      action: updated
      reason: "options differ"
files:
  description: Every option file this task manages.
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

from ansible_collections.medimg.dicom_tls.plugins.module_utils import (  # noqa: E402
    dcmtk_options,
    file_args,
    reports,
    shared_options,  # noqa: E402
)
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import AnsibleModule, guard  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            directory=dict(type="path", required=True),
            tools=dict(type="dict", required=True),
            **shared_options.backup(),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )
    guard(module)
    p = module.params
    try:
        for tool, lines in p["tools"].items():
            if not isinstance(lines, list):
                raise DicomTlsError("tools.%s must be a list of option lines" % tool)
        actions = dcmtk_options.plan(p["directory"], p["tools"])
        backup_files = []
        if actions and not module.check_mode:
            backup_files = dcmtk_options.apply(
                actions, p["tools"], file_args.create_mode(p["mode"]), backup=p["backup"]
            )
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    paths = [os.path.join(p["directory"], t + ".args") for t in sorted(p["tools"])]
    actions += file_args.set_attributes(module, paths, [a.path for a in actions])
    module.exit_json(**reports.report(actions, module._diff, files=paths, backup_files=backup_files))


if __name__ == "__main__":
    main()
