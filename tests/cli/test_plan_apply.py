"""``llmops plan`` and ``llmops apply`` as a person runs them, on a git copy of the example:
plan lists per-object changes (text and JSON) and ``--exit-code`` ends 1 while there are
changes; apply refuses releases without gate evidence in one line (exit 1, nothing
started), applies once, and a second plan shows no changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reconcile"))
from recon_helpers import archive_of, events, make_repo, processes, stop_targets

from llmops.manifests.repository import load_repo
from llmops.ops.deploy import load_release
from llmops.ops.evidence import record_gate_evidence
from llmops.ops.release import create_release
from llmops.reconcile.gate import run_gate


def llmops(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "llmops", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    path = make_repo(tmp_path / "repo")
    try:
        yield path
    finally:
        stop_targets(path)


def test_plan_lists_changes_and_exit_code_says_whether_there_are_any(repo: Path) -> None:
    text = llmops("plan", "--env", "dev", "--path", str(repo))
    assert text.returncode == 0, text.stderr
    assert (
        "plan for dev (target local): 2 to create, 0 to update, 0 to delete, 0 unchanged"
        in text.stdout
    )
    assert (
        "+ create    summarizer" in text.stdout and "+ release: summarizer@sha256:" in text.stdout
    )

    found = llmops("plan", "--env", "dev", "--path", str(repo), "-o", "json", "--exit-code")
    assert found.returncode == 1
    plan = json.loads(found.stdout)
    assert plan["env"] == "dev" and plan["noop"] is False
    assert sorted(c["app"] for c in plan["changes"] if c["kind"] == "create") == [
        "summarizer",
        "support-bot",
    ]

    empty = llmops("plan", "--env", "prod", "--path", str(repo), "--exit-code")
    assert empty.returncode == 0 and "no changes" in empty.stdout
    unknown = llmops("plan", "--env", "qa", "--path", str(repo))
    assert unknown.returncode == 2 and "no environment named 'qa'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_apply_refuses_without_evidence_then_applies_once(repo: Path) -> None:
    refused = llmops("apply", "--env", "dev", "--path", str(repo))
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: refusing to apply dev: ")
    assert "no passing gate evidence for stage dev" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert processes(repo) == {}

    from recon_helpers import start_stub

    from llmops.stub.runner import StubServer

    stub: StubServer = start_stub()
    try:
        loaded = load_repo(repo, prefix="")
        archive = archive_of(repo)
        stage = loaded.pipelines["default"].pipeline.spec.stages[0]
        for app in loaded.apps:
            release = create_release(loaded, app, archive).release_id
            result, report = run_gate(
                loaded, archive, load_release(archive, release), stage, None, model_url=stub.url
            )
            record_gate_evidence(archive, app, release, stage, result, report)

        dry = llmops("apply", "--env", "dev", "--path", str(repo), "--dry-run")
        assert dry.returncode == 0 and "dry run: nothing applied" in dry.stdout
        assert processes(repo) == {}

        done = llmops(
            "apply", "--env", "dev", "--path", str(repo), "--model-url", stub.url, "-o", "json"
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert {r["app"]: r["outcome"] for r in answer["results"]} == {
            "summarizer": "deployed",
            "support-bot": "deployed",
        }
        assert [e["event"] for e in answer["ledger"]] == ["deployed", "deployed"]
        assert len(events(repo, "deployed", "dev")) == 2

        again = llmops(
            "plan", "--env", "dev", "--path", str(repo), "--model-url", stub.url, "--exit-code"
        )
        assert again.returncode == 0 and "no changes" in again.stdout
        # without the model URL the apps were deployed with, their settings differ
        other = llmops("plan", "--env", "dev", "--path", str(repo), "--exit-code")
        assert other.returncode == 1 and "~ settings: fingerprint" in other.stdout
    finally:
        stub.stop()


def test_plan_refuses_a_hand_edited_pin_without_evidence_naming_it(repo: Path) -> None:
    created = create_release(load_repo(repo), "summarizer", archive_of(repo))
    env_file = repo / "environments" / "test.yaml"
    text = env_file.read_text()
    assert "releases: {}" in text
    env_file.write_text(text.replace("releases: {}", f'releases: {{summarizer: "{created.release_id}"}}'))
    refused = llmops("plan", "--env", "test", "--path", str(repo))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith("error: refusing to plan test: ")
    assert "environments/test.yaml" in refused.stderr and "spec.releases.summarizer" in refused.stderr
    assert f"release {created.release_id} has no passing gate evidence" in refused.stderr
    assert "Traceback" not in refused.stderr and refused.stdout == ""
