"""`llmops build` as a real process, where no Docker Engine is needed: an engine that does
not answer is one line and exit 2, bad options are usage errors before anything is
touched, and a dry run without an engine still prints the Dockerfile and the tag."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    for name in ("manifests", "environments", "pipelines", "schemas"):
        shutil.copytree(ROOT / name, dest / name)
    return dest


def llmops(repo: Path, *args: str, docker_host: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": docker_host}
    return subprocess.run(
        [sys.executable, "-m", "llmops", "build", *args, "--path", str(repo)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def archived(repo: Path) -> list[Path]:
    ledger = repo / ".llmops" / "archive"
    return sorted(p for p in ledger.rglob("*") if p.is_file()) if ledger.exists() else []


def test_no_engine_is_one_line_and_exit_2(repo: Path, tmp_path: Path) -> None:
    dead = f"unix://{tmp_path}/nothing.sock"
    proc = llmops(repo, "summarizer", docker_host=dead)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: cannot reach the Docker Engine at {dead}: start dockerd or set DOCKER_HOST"
    ]
    assert archived(repo) == []  # nothing released when nothing can be built


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nope"], "no app named 'nope'"),
        (["summarizer", "--env", "staging"], "no environment named 'staging'"),
        (["summarizer", "--push"], "--push needs --env ENV"),
        (["summarizer", "--env", "dev", "--push"], "environment 'dev' names no registry"),
        (["summarizer", "--python", "2.7"], "--python '2.7': give a version like 3.12"),
        (["summarizer", "--base-image", "Not An Image"], "is not an image reference"),
        (["summarizer", "--release", "summarizer@sha256:beef"], "no archived release matches"),
    ],
)
def test_bad_options_are_usage_errors_before_the_engine(
    repo: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    proc = llmops(repo, *args, docker_host=f"unix://{tmp_path}/nothing.sock")
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Docker Engine" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_dry_run_without_an_engine_still_shows_the_plan(repo: Path, tmp_path: Path) -> None:
    dead = f"unix://{tmp_path}/nothing.sock"
    proc = llmops(repo, "summarizer", "--dry-run", docker_host=dead)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "FROM python:3.12-slim" in out and "COPY release.json /srv/llmops/release.json" in out
    assert "tag      llmops/summarizer:" in out
    assert "build    unknown: the Docker Engine could not be reached" in out
    assert "(dry run: nothing built, pushed or recorded)" in out
    assert archived(repo) == []

    proc = llmops(repo, "summarizer", "--dry-run", "-o", "json", docker_host=dead)
    plan = json.loads(proc.stdout)
    assert plan["release"].startswith("summarizer@sha256:") and plan["releaseSource"] == "work tree"
    assert plan["tag"] == "llmops/summarizer:" + plan["release"].split(":", 1)[1]
    assert (plan["build"], plan["push"], plan["builds"], plan["pushes"]) == ("unknown", "none", 0, 0)
    assert plan["python"] == "3.12" and plan["baseImage"] == "python:3.12-slim"


def test_the_release_defaults_to_the_environment_s_pin(repo: Path, tmp_path: Path) -> None:
    dead = f"unix://{tmp_path}/nothing.sock"
    created = subprocess.run(
        [sys.executable, "-m", "llmops", "release", "create", "summarizer", "--path", str(repo),
         "-o", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    pinned = json.loads(created.stdout)["release"]
    dev = repo / "environments" / "dev.yaml"
    dev.write_text(dev.read_text().replace("releases: {}", f"releases: {{summarizer: '{pinned}'}}"))
    prompt = repo / "manifests" / "summarizer" / "prompts" / "system.j2"
    prompt.write_text(prompt.read_text() + "A newer line.\n")
    proc = llmops(repo, "summarizer", "--env", "dev", "--dry-run", "-o", "json", docker_host=dead)
    plan = json.loads(proc.stdout)
    assert (plan["release"], plan["releaseSource"]) == (pinned, "pin")
    work = llmops(repo, "summarizer", "--dry-run", "-o", "json", docker_host=dead)
    assert json.loads(work.stdout)["release"] != pinned
