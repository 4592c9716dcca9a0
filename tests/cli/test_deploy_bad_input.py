"""Bad input to the build, deploy, reconcile, up and controller commands: a clear message,
exit 1 or 2, never a traceback, and nothing started or written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def llmops(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(
        [sys.executable, "-m", "llmops", *args],
        capture_output=True, text=True, timeout=120, env=env, cwd=cwd,
    )


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example repository (no git: the commands below must refuse before
    anything needs it)."""
    repo = tmp_path_factory.mktemp("bad") / "repo"
    for name in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / name, repo / name)
    return repo


# (arguments, expected exit, a piece of the one-line message); {repo} is the example copy
CASES = [
    (["render", "nope", "--env", "dev"], 2, "no app named 'nope' (apps: summarizer, support-bot)"),
    (["render", "support-bot", "--env", "qa"], 2, "no environment named 'qa'"),
    (["render", "support-bot", "--env", "dev", "--release", "support-bot@sha256:zz"], 2,
     "give at least 4 hex digits"),
    (["plan", "--env", "qa"], 2, "no environment named 'qa' (environments: dev, prod, test)"),
    (["apply", "--env", "qa"], 2, "no environment named 'qa'"),
    (["build", "nope", "--dry-run"], 2, "no app named 'nope'"),
    (["reconcile", "{repo}", "--once"], 2, "is not inside a git repository"),
    (["up", "{repo}"], 2, "is not a git repository with a commit"),
]


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_one_line_and_an_exit_code(
    example: Path, args: list[str], code: int, message: str
) -> None:
    argv = [a.replace("{repo}", str(example)) for a in args]
    if "{repo}" not in " ".join(args):
        argv += ["--path", str(example)]
    done = llmops(*argv)
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert message in lines[0]
    assert not (example / ".llmops" / "targets").exists(), "something was started"


@pytest.mark.parametrize(
    "args",
    [
        ["build", "--controller", "support-bot"],
        ["render", "support-bot", "--env", "dev", "--colour", "purple"],
        ["controller", "--port", "99999"],
        ["apply", "--env", "dev", "--timeout", "-1"],
    ],
    ids=["controller-with-app", "bad-colour", "bad-port", "negative-timeout"],
)
def test_usage_errors_name_the_option(example: Path, args: list[str]) -> None:
    done = llmops(*args, cwd=example)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "Error:" in done.stderr or done.stderr.startswith("error: ")


def test_a_broken_manifest_is_named_by_file_line_and_field(example: Path, tmp_path: Path) -> None:
    broken = tmp_path / "repo"
    shutil.copytree(example, broken)
    app = broken / "manifests" / "summarizer" / "app.yaml"
    app.write_text(app.read_text().replace("temperature: 0\n", "temperature: 3.5\n", 1))
    assert "temperature: 3.5" in app.read_text()
    for args in (["plan", "--env", "dev"], ["apply", "--env", "dev"], ["render", "summarizer", "--env", "dev"]):
        done = llmops(*args, "--path", str(broken))
        assert done.returncode in (1, 2), done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert "manifests/summarizer/app.yaml:" in done.stderr
        assert "spec.model.params.temperature" in done.stderr
    assert not (broken / ".llmops" / "targets").exists()
