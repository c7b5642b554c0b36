# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible's file options (mode, owner, group, SELinux context, attributes) for the modules that
write files, one way: the module is made with ``add_file_common_args=True`` and documents them with
the ``ansible.builtin.files`` doc fragment; an octal O(mode) is the mode files are created with
(atomically, by files.py), and everything the options ask is then set by Ansible itself. The options
are checked before anything is written by options.guard."""

from __future__ import annotations

import os

from ansible_collections.medimg.dicom_tls.plugins.module_utils import files
from ansible_collections.medimg.dicom_tls.plugins.module_utils.reports import Action

DEFAULT_MODE = 0o644


def create_mode(mode, default: int = DEFAULT_MODE) -> int:
    """The mode a new file is created with: an octal ``mode`` (``'0640'``, ``0o640``), else ``default``
    (a symbolic mode such as ``u=rw,g=r`` is applied afterwards by set_attributes)."""
    if mode is None:
        return default
    if isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        return default


def set_attributes(module, paths, planned=(), keep_mode=()) -> list:
    """Set owner, group, mode, SELinux context and attributes of each existing path as the module's file
    options say (in check mode: only look), and return an ``attributes_changed`` Action for each path
    where something differed that the plan does not write anyway (``planned``: a written file gets its
    attributes as part of its own action, so check mode and the real run list the same actions). A path
    in ``keep_mode`` (a private key or key store, 0600) keeps its mode: everything but O(mode) applies."""
    actions = []
    for path in paths:
        if not path or (module.check_mode and path in planned) or not os.path.lexists(path):
            continue
        # a link into a key's generation store (files.write_generation): the options reach its file
        args = module.load_file_common_arguments(module.params, path=files.real_path(path))
        if path in keep_mode:
            args["mode"] = None
        seen = {"before": {}, "after": {}}
        if module.set_fs_attributes_if_different(args, False, diff=seen) and path not in planned:
            before, after = seen["before"], seen["after"]
            keys = [k for k in ("mode", "owner", "group", "attributes") if k in after]
            reason = ", ".join("%s %s -> %s" % (k, before.get(k), after[k]) for k in keys) or "SELinux context differs"
            actions.append(Action(path, "attributes_changed", reason, before=before, after=after))
    return actions
