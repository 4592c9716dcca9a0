"""Checking apps in forked workers gives exactly the report of checking them in-process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmops.manifests import repository
from llmops.manifests.repository import validate_repo

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from genrepo import generate  # noqa: E402


def _break(repo: Path) -> None:
    app = repo / "manifests" / "app-0003" / "app.yaml"
    app.write_text(app.read_text().replace("temperature: 0.2", "temperature: 7"))
    user = repo / "manifests" / "app-0007" / "prompts" / "user.j2"
    user.write_text("{{ questoin }}\n")
    smoke = repo / "manifests" / "app-0011" / "evals" / "smoke.yaml"
    smoke.write_text(smoke.read_text().replace("case-1", "case-0"))


@pytest.mark.parametrize("broken", [False, True])
def test_parallel_equals_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool) -> None:
    repo = generate(tmp_path / "repo", apps=24, cases=3)
    if broken:
        _break(repo)
    monkeypatch.setattr(repository, "PARALLEL_MIN_APPS", 4)
    serial = validate_repo(repo, parallel=False)
    parallel = validate_repo(repo, parallel=True)
    assert parallel.diagnostics == serial.diagnostics
    assert parallel.files == serial.files
    assert (parallel.repo is None) == (serial.repo is None) == broken
    if serial.repo is not None and parallel.repo is not None:
        assert parallel.repo.apps == serial.repo.apps
        assert list(parallel.repo.apps) == list(serial.repo.apps)
    else:
        assert len(serial.errors) == 3
