"""--baseline: a report file, a release's archived eval, or the release pinned in the
gate's environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalkit import contains_cases, write_repo

from llmops.archive import DirArchive
from llmops.domain.errors import UsageError
from llmops.domain.evals import CaseResult, EvalRun, Sample, SuiteResult
from llmops.evals.api import load_repo
from llmops.evals.baseline import resolve_baseline
from llmops.evals.reports import render_json

RELEASE = "bot@sha256:" + "ab" * 32


def a_run(outcome: str = "pass") -> EvalRun:
    case = CaseResult("smoke", "c0", (Sample(outcome, "out"),))  # type: ignore[arg-type]
    return EvalRun(app="bot", release=RELEASE, suites=(SuiteResult("smoke", (case,)),))


def test_report_file_release_and_auto(tmp_path: Path) -> None:
    repo_dir = write_repo(tmp_path / "repo", {"smoke": contains_cases(1)})
    envs = repo_dir / "environments"
    envs.mkdir()
    (envs / "dev.yaml").write_text(
        "apiVersion: llmops.dev/v1\nkind: Environment\nmetadata: {name: dev}\n"
        f"spec:\n  target: {{kind: local}}\n  releases: {{bot: '{RELEASE}'}}\n"
    )
    (envs / "test.yaml").write_text(
        "apiVersion: llmops.dev/v1\nkind: Environment\nmetadata: {name: test}\n"
        "spec:\n  target: {kind: local}\n"
    )
    repo = load_repo(repo_dir)
    report = tmp_path / "report.json"
    report.write_text(render_json(a_run("fail")))
    from_file = resolve_baseline(str(report), repo, "bot", None, None)
    assert from_file is not None and from_file.cases[0].outcome == "fail"

    archive = DirArchive(tmp_path / "archive")
    digest = archive.put(render_json(a_run()).encode())
    archive.append("evaluated", "bot", release=RELEASE, env="dev", evidence={"report": digest})
    named = resolve_baseline(RELEASE, repo, "bot", None, archive)
    assert named is not None and named.release == RELEASE and named.cases[0].outcome == "pass"
    auto = resolve_baseline("auto", repo, "bot", "dev", archive)
    assert auto is not None and auto.release == RELEASE
    assert resolve_baseline("auto", repo, "bot", "test", archive) is None  # nothing pinned
    with pytest.raises(UsageError, match="no archived eval"):
        resolve_baseline("bot@sha256:" + "cd" * 32, repo, "bot", None, archive)
    with pytest.raises(UsageError, match="needs --gate"):
        resolve_baseline("auto", repo, "bot", None, archive)
