"""`llmops init` writes a repository that validates clean, and refuses to clobber one."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops import api
from llmops.domain.errors import UsageError


def test_init_validates_clean(tmp_path: Path) -> None:
    written = api.init(tmp_path / "repo", app="faq-bot")
    assert "manifests/faq-bot/app.yaml" in written
    assert ".github/workflows/llmops.yml" in written
    assert "schemas/llmapp.schema.json" in written
    report = api.validate(tmp_path / "repo")
    assert report.ok, [d.render() for d in report.diagnostics]
    assert not report.warnings, [d.render() for d in report.warnings]
    assert report.repo is not None and list(report.repo.apps) == ["faq-bot"]
    assert set(report.repo.environments) == {"dev", "test", "prod"}


def test_init_refuses_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        api.init(tmp_path)
    api.init(tmp_path, force=True)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_init_rejects_bad_app_name(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--app"):
        api.init(tmp_path / "x", app="My_App")
