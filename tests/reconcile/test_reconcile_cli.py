"""``llmops reconcile`` as a process: --once prints one pass (text or JSON) and exits 0 when
everything is Ready or Waiting; without --once it repeats until SIGTERM, finishing the
pass in progress; a path that is not a git repository is one line, exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from recon_helpers import archive_of, git, make_repo, stop_targets

from llmops.stub.runner import StubServer


def llmops(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "llmops", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_once_text_then_json_noop(tmp_path: Path, stub: StubServer) -> None:
    repo = make_repo(tmp_path / "repo")
    try:
        first = llmops("reconcile", str(repo), "--once", "--model-url", stub.url)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "dev    support-bot          gate dev passed" in first.stdout
        assert "promoted support-bot@sha256:" in first.stdout
        # prod needs approval and this repository has no remote: it waits and says so
        assert "prod  support-bot  Waiting" in first.stdout
        assert "ApprovalRequired" in first.stdout

        again = llmops("reconcile", str(repo), "--once", "--model-url", stub.url, "-o", "json")
        assert again.returncode == 0, again.stderr
        result = json.loads(again.stdout)
        assert result["noop"] is True and result["shortcut"] is True and result["ok"] is True
        assert result["work"] == []
        assert archive_of(repo).verify().ok
    finally:
        stop_targets(repo)


LOOP = ("--interval", "0.2", "-o", "json")


def test_the_loop_runs_until_sigterm(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    head = git(repo, "rev-parse", "HEAD")
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops", "reconcile", str(repo), "--dry-run", *LOOP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        passes = [json.loads(line) for line in lines]
        assert all(p["dryRun"] and p["noop"] for p in passes)
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "SIGTERM: stopping after this pass" in err and "stopped after" in err
    assert git(repo, "rev-parse", "HEAD") == head
    assert not (repo / ".llmops" / "archive").exists()


def test_not_a_git_repository(tmp_path: Path) -> None:
    result = llmops("reconcile", str(tmp_path), "--once")
    assert result.returncode == 2
    assert "not inside a git repository" in result.stderr and "Traceback" not in result.stderr


def test_app_filter_reconciles_one_app_and_refuses_an_unknown_one(
    tmp_path: Path, stub: StubServer
) -> None:
    repo = make_repo(tmp_path / "repo")
    try:
        unknown = llmops("reconcile", str(repo), "--once", "--app", "nope")
        assert unknown.returncode == 2, unknown.stdout + unknown.stderr
        assert "--app nope: no such app" in unknown.stderr
        assert "summarizer, support-bot" in unknown.stderr
        assert "Traceback" not in unknown.stderr
        assert not (repo / ".llmops" / "archive").exists()  # nothing archived

        one = llmops(
            "reconcile", str(repo), "--once", "--env", "dev", "--app", "summarizer",
            "--model-url", stub.url, "-o", "json",
        )  # fmt: skip
        assert one.returncode == 0, one.stdout + one.stderr
        result = json.loads(one.stdout)
        apps = {a["app"] for s in result["stages"] for a in s["apps"]}
        assert apps == {"summarizer"}
        deployed = {e.app for e in archive_of(repo).entries() if e.event == "deployed"}
        assert deployed == {"summarizer"}
    finally:
        stop_targets(repo)
