"""Shared pytest fixtures: the collection on sys.path, a test PKI, live listeners, Ansible runs."""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
sys.path[:0] = [COLLECTIONS, os.path.join(ROOT, "tests")]

from support.pki import TestPKI  # noqa: E402


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> TestPKI:
    """Root CA -> issuing CA; call ``pki.node(name)`` for node certificates."""
    return TestPKI(tmp_path_factory.mktemp("pki"))
