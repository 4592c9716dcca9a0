"""Fixtures for reconcile tests: the stub model on a port, and a git copy of the example
whose local processes are stopped after the test (helpers: ``recon_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from recon_helpers import make_repo, start_stub, stop_targets

from llmops.stub.runner import StubServer


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    server = start_stub()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    path = make_repo(tmp_path / "repo")
    try:
        yield path
    finally:
        stop_targets(path)
