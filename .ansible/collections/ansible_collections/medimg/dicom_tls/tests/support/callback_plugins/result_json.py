"""Test-only stdout callback: the play's results as one JSON document (the shape of the json
callback that ansible-core 2.19 moved out to ansible.posix), so tests read structured results."""

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: result_json
type: stdout
short_description: results as JSON, for the test suite
description: Prints plays, tasks, per-host results and stats as one JSON document.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "result_json"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({"play": {"name": play.get_name()}, "tasks": []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.plays[-1]["tasks"].append({"task": {"name": task.get_name()}, "hosts": {}})

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _record(self, result, **flags):
        res = dict(self._convert_result(result._result))
        res.update(flags)
        self.plays[-1]["tasks"][-1]["hosts"][result._host.get_name()] = res

    def _convert_result(self, value):
        return json.loads(json.dumps(value, default=str))

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result, **kwargs):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        summary = {h: stats.summarize(h) for h in sorted(stats.processed)}
        self._display.display(json.dumps({"plays": self.plays, "stats": summary}, indent=1))
