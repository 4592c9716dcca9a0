"""Fixtures for promotion tests: a bare remote with the example repository, a shared
archive, and the fake GitHub API served over real HTTP (helpers: ``promote_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_github import FakeGitHub, serve
from promote_helpers import Remote, make_remote


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_remote(tmp_path)


@pytest.fixture(scope="session")
def github_api() -> Iterator[FakeGitHub]:
    with serve(FakeGitHub()) as fake:
        yield fake


@pytest.fixture
def github(github_api: FakeGitHub) -> FakeGitHub:
    github_api.requests.clear()
    github_api.pulls.clear()
    github_api.comments.clear()
    github_api.fail_next.clear()
    return github_api
