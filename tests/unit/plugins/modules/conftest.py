"""Fixtures of the module tests that run modules in-process on a prepared set of inputs."""

from __future__ import annotations

import shutil

import pytest
from support.hostile import Workspace


@pytest.fixture(scope="module")
def workspace(request, tmp_path_factory):
    """Inputs every module can be pointed at (support.hostile.Workspace), built once per test file."""
    return Workspace(str(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])))


@pytest.fixture
def work(workspace):
    """A fresh copy of the workspace for one test, removed after it."""
    directory = workspace.copy()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)
