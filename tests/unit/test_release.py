"""The release tarball carries what users run and read, and nothing from the development tree."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Top-level entries of the tarball (ansible-galaxy adds MANIFEST.json and FILES.json).
TOP_LEVEL = {
    "CHANGELOG.md",
    "FILES.json",
    "LICENSE",
    "MANIFEST.json",
    "README.md",
    "bindep.txt",
    "changelogs",
    "docs",
    "meta",
    "playbooks",
    "plugins",
    "requirements.txt",
    "roles",
}
CHANGELOGS = {"changelogs/changelog.yaml", "changelogs/config.yaml"}


def build(tmp_path) -> list[str]:
    galaxy = yaml.safe_load(open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8"))
    name = "{namespace}-{name}-{version}.tar.gz".format(**galaxy)
    ansible_galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    subprocess.run(
        [ansible_galaxy, "collection", "build", "--output-path", str(tmp_path), ROOT],
        check=True,
        capture_output=True,
    )
    with tarfile.open(tmp_path / name) as tar:
        return [m.name for m in tar.getmembers() if m.isfile()]


def test_tarball_file_list(tmp_path):
    files = build(tmp_path)
    assert {f.split("/", 1)[0] for f in files} == TOP_LEVEL
    assert {f for f in files if f.startswith("changelogs/")} == CHANGELOGS
    stray = [
        f
        for f in files
        if "__pycache__" in f or f.endswith((".pyc", ".keep", ".tar.gz")) or "/." in f or f.startswith(".")
    ]
    assert stray == []
    # every role with its README and argument specs, every module and playbook
    for role in os.listdir(os.path.join(ROOT, "roles")):
        if os.path.isdir(os.path.join(ROOT, "roles", role)):
            assert f"roles/{role}/README.md" in files
            assert f"roles/{role}/meta/argument_specs.yml" in files
    for module in os.listdir(os.path.join(ROOT, "plugins", "modules")):
        if module.endswith(".py"):
            assert f"plugins/modules/{module}" in files
    assert not [f for f in files if f.startswith("playbooks/inventory")]
    assert "playbooks/rollout.yml" in files


def test_requires_ansible_is_the_tested_floor():
    """meta/runtime.yml claims the ansible-core versions the tests run on: its floor is the floor of the
    ansible-core that requirements-test.txt installs (and execution-environment.yml builds with)."""
    with open(os.path.join(ROOT, "meta", "runtime.yml"), encoding="utf-8") as fh:
        claimed = yaml.safe_load(fh)["requires_ansible"]
    with open(os.path.join(ROOT, "requirements-test.txt"), encoding="utf-8") as fh:
        tested = next(line.strip() for line in fh if line.startswith("ansible-core"))
    floor = tested.split(">=")[1].split(",")[0]
    assert claimed == ">=%s.0" % floor, (claimed, tested)
    with open(os.path.join(ROOT, "execution-environment.yml"), encoding="utf-8") as fh:
        assert "ansible-core>=%s," % floor in fh.read()
