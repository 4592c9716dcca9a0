"""The command line: `llmops promote|rollback|hold|unhold` print the plan by condition,
exit 1 on a refusal without a traceback, and `promote --check` reports pins that lack
gate evidence as file:line:col diagnostics (text, json, GitHub annotations)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from promote_helpers import Remote, commit_pins, fake_release, give_evidence

from llmops.ops.evidence import unevidenced_pins
from llmops.ops.promote import load_repo


def llmops(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "llmops", *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def _ready(remote: Remote) -> tuple[Path, str]:
    release = fake_release(remote.archive, "support-bot", "A")
    give_evidence(remote.archive, release, "dev")
    give_evidence(remote.archive, release, "test")
    commit_pins(remote.seed, "dev", {"support-bot": release})
    return remote.clone("cli"), release


def test_dry_run_prints_the_plan(remote: Remote) -> None:
    clone, _ = _ready(remote)
    refs = remote.refs()
    proc = llmops(
        clone,
        "promote",
        "support-bot",
        "--to",
        "test",
        "--dry-run",
        "--archive",
        str(remote.archive.root),
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("promote support-bot into test (pipeline default, mode commit)")
    for words in (
        "✓ CandidateResolved",
        "PinnedInPreviousStage",
        "✓ TargetGatePassed",
        "✓ PinChange",
        "environments/test.yaml spec.releases.support-bot: (none) → support-bot@sha256:",
    ):
        assert words in out
    assert out.rstrip().endswith("dry run: nothing changed (would apply)")
    assert remote.refs() == refs


def test_apply_and_json(remote: Remote) -> None:
    clone, release = _ready(remote)
    proc = llmops(
        clone,
        "promote",
        "support-bot",
        "--to",
        "test",
        "-o",
        "json",
        "--archive",
        str(remote.archive.root),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["applied"] and data["candidate"] == release and data["mode"] == "commit"
    assert data["checks"][0]["condition"] == "CandidateResolved"
    assert data["ledger"][-1]["event"] == "promoted"


def test_a_refusal_exits_1_with_the_plan(remote: Remote) -> None:
    clone, _ = _ready(remote)
    archive = str(remote.archive.root)
    assert (
        llmops(
            clone,
            "hold",
            "support-bot",
            "--env",
            "test",
            "--reason",
            "freeze",
            "--archive",
            archive,
        ).returncode
        == 0
    )
    proc = llmops(clone, "promote", "support-bot", "--to", "test", "--archive", archive)
    assert proc.returncode == 1
    assert "✗ NotHeld" in proc.stdout and "HoldActive" in proc.stdout
    assert proc.stderr.startswith("error: cannot promote support-bot into test: NotHeld:")
    assert "Traceback" not in proc.stderr
    unhold = llmops(clone, "unhold", "support-bot", "--env", "test", "--archive", archive)
    assert unhold.returncode == 0 and "✓ unheld" in unhold.stdout


def test_rollback_dry_run(remote: Remote) -> None:
    clone, _ = _ready(remote)
    proc = llmops(
        clone,
        "rollback",
        "support-bot",
        "--env",
        "dev",
        "--dry-run",
        "--archive",
        str(remote.archive.root),
    )
    assert proc.returncode == 1, proc.stderr  # the plan's verdict, without changing anything
    assert "roll back support-bot in dev" in proc.stdout and "NoEarlierRelease" in proc.stdout
    assert "would be refused" in proc.stdout


def test_usage_errors(remote: Remote) -> None:
    proc = llmops(remote.seed, "promote", "support-bot")
    assert proc.returncode == 2 and "needs APP and --to ENV" in proc.stderr
    proc = llmops(remote.seed, "promote", "nope", "--to", "test", "--dry-run")
    assert proc.returncode == 2 and "no app named 'nope'" in proc.stderr


def test_check_reports_unevidenced_pins(remote: Remote) -> None:
    archive = remote.archive
    release = fake_release(archive, "support-bot", "A")
    give_evidence(archive, release, "dev")
    commit_pins(remote.seed, "test", {"support-bot": release})  # pinned by hand, no test gate
    proc = llmops(remote.seed, "promote", "--check", "--archive", str(archive.root))
    assert proc.returncode == 1
    line = (
        f"environments/test.yaml:13:27 spec.releases.support-bot: release {release} has no "
        "passing gate evidence for stage 'test'; promote it with "
        "`llmops promote support-bot --to test`"
    )
    assert line in proc.stdout.splitlines()
    github = llmops(
        remote.seed, "promote", "--check", "-o", "github", "--archive", str(archive.root)
    )
    assert github.stdout.startswith("::error file=environments/test.yaml,line=13,col=27,")
    give_evidence(archive, release, "test")
    ok = llmops(remote.seed, "promote", "--check", "--archive", str(archive.root))
    assert ok.returncode == 0 and "every pin has passing gate evidence" in ok.stdout


def test_unevidenced_pins_names_every_missing_stage(remote: Remote) -> None:
    archive = remote.archive
    release = fake_release(archive, "summarizer", "A")
    give_evidence(archive, release, "test", passed=False)
    commit_pins(remote.seed, "test", {"summarizer": release})
    found = unevidenced_pins(load_repo(remote.seed), archive)
    assert [(d.file, d.path) for d in found] == [
        ("environments/test.yaml", "spec.releases.summarizer")
    ] * 2
    messages = sorted(d.message for d in found)
    assert "no passing gate evidence for stage 'dev'" in messages[0]
    assert "the latest gate run of" in messages[1] and "for stage 'test' failed" in messages[1]
