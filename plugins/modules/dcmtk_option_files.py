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
  mode:
    description: File mode of every option file (they hold paths and settings, no secrets).
    type: str
    default: "0644"
  backup:
    description: Keep a timestamped copy (C(FILE.YYYYmmddTHHMMSS.ffffff~)) of each file before it is rewritten.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports the files that would be written; writes nothing.
  diff_mode:
    support: full
    description: Shows the lines of each changed file before and after.
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
  description: One entry per file written (or to be written in check mode); empty when nothing changes.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The option file.
      type: str
    action:
      description: C(created), C(updated) (other lines) or C(mode) (same lines, other file mode).
      type: str
    reason:
      description: Why.
      type: str
  sample: [{"path": "/etc/dicom-tls/dcmtk-a/storescp.args", "action": "updated", "reason": "options differ"}]
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

from ansible_collections.medimg.dicom_tls.plugins.module_utils import dcmtk_options, files  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError  # noqa: E402
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import (  # noqa: E402
    AnsibleModule,
    guard,
    guard_distinct,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            directory=dict(type="path", required=True),
            tools=dict(type="dict", required=True),
            mode=dict(type="str", default="0644"),
            backup=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    guard(module)
    p = module.params
    guard_distinct(module, [("tools.%s" % t, os.path.join(p["directory"], "%s.args" % t)) for t in sorted(p["tools"])])
    try:
        try:
            mode = int(p["mode"], 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise DicomTlsError("mode must be an octal file mode from 0000 to 0777 such as 0644, got %r" % p["mode"])
        for tool, lines in p["tools"].items():
            if not isinstance(lines, list):
                raise DicomTlsError("tools.%s must be a list of option lines" % tool)
        actions = dcmtk_options.plan(p["directory"], p["tools"], mode)
        backup_files = []
        if actions and not module.check_mode:
            files.check_writable_dir(os.path.join(p["directory"], "x.args"))
            files.make_dirs(p["directory"])
            # read, compare and write under the folder's lock: a run started meanwhile is seen
            with files.locked_for(os.path.join(p["directory"], "x.args")):
                actions = dcmtk_options.plan(p["directory"], p["tools"], mode)
                backup_files = dcmtk_options.apply(actions, mode, backup=p["backup"])
    except DicomTlsError as exc:
        module.fail_json(msg=str(exc), path=exc.path)
    result = dict(
        changed=bool(actions),
        actions=[{k: a[k] for k in ("path", "action", "reason")} for a in actions],
        files=[os.path.join(p["directory"], t + ".args") for t in sorted(p["tools"])],
        backup_files=backup_files,
    )
    if module._diff:
        before, after = [], []
        for a in actions:
            before.append("# %s\n%s" % (a["path"], (a["before"] or b"").decode("utf-8", "replace")))
            after.append("# %s\n%s" % (a["path"], a["content"].decode("utf-8")))
        result["diff"] = dict(before="".join(before), after="".join(after))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
