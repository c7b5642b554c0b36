# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-harness stdout callback: the whole run as one JSON document on stdout.

ansible-core 2.19 no longer ships a JSON stdout callback, so the harness (tests/support/ansible_run.py)
brings this one. Shape: {"plays": [{"play": {"name"}, "tasks": [{"task": {"name"}, "hosts": {host:
result}}]}], "stats": {host: {ok, changed, failures, ...}}}.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: test_json
type: stdout
short_description: JSON document of every task result (test harness)
description:
  - Prints every play, task and host result as one JSON document at the end of the run.
"""

import json  # noqa: E402 - after DOCUMENTATION, as Ansible plugins are laid out

from ansible.parsing.ajson import AnsibleJSONEncoder  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "test_json"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({"play": {"name": play.get_name()}, "tasks": []})

    def _task_start(self, task, **_kw):
        self.plays[-1]["tasks"].append({"task": {"name": task.get_name()}, "hosts": {}})

    v2_playbook_on_task_start = _task_start
    v2_playbook_on_handler_task_start = _task_start

    def _record(self, result, **extra):
        res = dict(result._result)
        res.update(extra)
        self.plays[-1]["tasks"][-1]["hosts"][result._host.get_name()] = res

    def v2_runner_on_ok(self, result, **_kw):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False, **_kw):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result, **_kw):
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result, **_kw):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._display.display(json.dumps({"plays": self.plays, "stats": summary}, cls=AnsibleJSONEncoder, indent=1))
