"""Run modules and playbooks through Ansible itself and read back structured results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")


def ansible_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_CALLBACK_PLUGINS=os.path.join(ROOT, "tests", "support", "callback_plugins"),
        ANSIBLE_STDOUT_CALLBACK="result_json",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        ANSIBLE_PYTHON_INTERPRETER=os.environ.get("ANSIBLE_PYTHON_INTERPRETER", sys.executable),
    )
    env.update(extra)
    return env


class PlayResult:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        try:
            self.data = json.loads(proc.stdout)
        except ValueError:
            self.data = None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def results(self, host: str = "localhost") -> list[dict]:
        """Every task's result for ``host``, in order."""
        out = []
        for play in (self.data or {}).get("plays", []):
            for task in play["tasks"]:
                if host in task["hosts"]:
                    res = dict(task["hosts"][host])
                    res["_task"] = task["task"]["name"]
                    out.append(res)
        return out

    def stats(self, host: str = "localhost") -> dict:
        return (self.data or {}).get("stats", {}).get(host, {})


def run_playbook(
    path: str, *args: str, extra_vars: dict | None = None, check=False, diff=False, inventory=None, env=None
):
    cmd = ["ansible-playbook", path]
    cmd += ["-i", inventory or "localhost,", "-c", "local"] if not inventory else ["-i", inventory]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(**(env or {})), cwd=ROOT, check=False)
    return PlayResult(proc)


def run_tasks(tasks: list[dict], check=False, diff=False, gather=False, **kw) -> PlayResult:
    """Run a list of tasks in a one-play playbook against localhost."""
    play = [{"name": "test", "hosts": "localhost", "gather_facts": gather, "tasks": tasks}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False, dir=os.environ.get("TMPDIR")) as fh:
        yaml.safe_dump(play, fh)
    try:
        return run_playbook(fh.name, check=check, diff=diff, **kw)
    finally:
        os.unlink(fh.name)


def run_module(module: str, args: dict, check=False, diff=False, **kw) -> dict:
    """One module call through Ansible; returns its result dict (plus ``_rc``/``_output``)."""
    name = module if "." in module else "medimg.dicom_tls." + module
    res = run_tasks([{"name": "call", name: args, "ignore_errors": True}], check=check, diff=diff, **kw)
    results = res.results()
    if not results:
        raise AssertionError("no result from ansible-playbook:\n" + res.output[-4000:])
    out = results[-1]
    out["_rc"] = res.rc
    out["_output"] = res.output
    return out
