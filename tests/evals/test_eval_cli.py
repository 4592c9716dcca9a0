"""``llmops eval`` end to end: a subprocess on a copy of the example repo, its model
pointed at the stub with rules that make some cases pass."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from evalkit import contains_cases, write_repo

from llmops.stub.config import StubConfig
from llmops.stub.rules import Rule
from llmops.stub.runner import StubServer

ROOT = Path(__file__).resolve().parents[2]
BILLING = (
    '{"answer": "You can get a refund within 30 days.", "category": "billing", '
    '"escalate": false}'
)
ACCOUNT = (
    '{"answer": "Use Forgot password to reset your password.", "category": "account", '
    '"escalate": false}'
)


def example_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for name in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / name, repo / name)
    return repo


def llmops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmops", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture()
def stub() -> StubServer:  # type: ignore[misc]
    rules = (Rule.of("(?i)refund", BILLING), Rule.of("(?i)password", ACCOUNT))
    with StubServer(StubConfig(rules=rules)) as server:
        yield server


def test_eval_text_and_json_with_cache_and_reports(tmp_path: Path, stub: StubServer) -> None:
    repo = example_repo(tmp_path)
    args = ["eval", "support-bot", "--suite", "smoke", "--model-url", stub.url]
    text = llmops(*args, "--judge-model", "stub", cwd=repo)
    assert text.returncode == 1, text.stderr  # some cases fail
    assert "Traceback" not in text.stderr
    assert "smoke" in text.stdout and "pass rate" in text.stdout
    assert "top failures" in text.stdout
    assert "✗ smoke/large-refund-escalates (fail): json-path: expected $.escalate to be true" in (
        text.stdout
    )
    reports = tmp_path / "reports"
    again = llmops(*args, "-o", "json", "--report-dir", str(reports), cwd=repo)
    assert again.returncode == 1, again.stderr
    data = json.loads(again.stdout)
    flat = json.dumps(data)
    assert '"refund-window"' in flat
    run = data.get("run", data)
    assert run["cacheHits"] > 0 and run["modelCalls"] < run["cacheHits"]
    assert (reports / "report.json").is_file() and (reports / "junit.xml").is_file()
    cases = {c["caseId"]: c for s in run["suites"] for c in s["cases"]}
    assert cases["refund-window"]["samples"][0]["outcome"] == "pass"
    assert cases["password-reset"]["samples"][0]["outcome"] == "pass"
    assert cases["large-refund-escalates"]["samples"][0]["outcome"] == "fail"
    assert (repo / ".llmops" / "cache" / "evals.sqlite").is_file()


def test_eval_gate_decides_the_exit_code(tmp_path: Path, stub: StubServer) -> None:
    repo = example_repo(tmp_path)
    result = llmops(
        "eval", "support-bot", "--gate", "dev", "--model-url", stub.url, "--no-cache", cwd=repo
    )
    assert result.returncode == 1, result.stderr
    assert "gate dev: failed" in result.stdout
    assert "PassRateBelowMinimum" in result.stdout


def test_all_passing_exits_0(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(3)})
    with StubServer(StubConfig()) as server:
        result = llmops("eval", "bot", "--model-url", server.url, cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 cases × 1" in result.stdout
    assert "\x1b[" not in result.stderr  # no progress bar without a terminal


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "nope"], "no app named 'nope'"),
        (["eval", "bot", "--suite", "smok"], "did you mean 'smoke'?"),
        (["eval", "bot", "--gate", "staging"], "no pipeline has a stage 'staging'"),
        (["eval", "bot", "--env", "nowhere"], "no environment named 'nowhere'"),
    ],
)
def test_could_not_run_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(1)})
    result = llmops(*args, "--model-url", "http://127.0.0.1:9/v1", cwd=repo)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_bad_dataset_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {"data": "dataset: data/cases.jsonl\n"},
        files={"evals/data/cases.jsonl": '{"id": "a", "question": "q", "assert": []}\n{oops\n'},
    )
    result = llmops("eval", "bot", "--model-url", "http://127.0.0.1:9/v1", cwd=repo)
    assert result.returncode == 2
    assert "manifests/bot/evals/data/cases.jsonl:2:1: not valid JSON" in result.stderr


def test_ctrl_c_leaves_a_partial_result(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(200)})
    with StubServer(StubConfig(latency_ms=100)) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmops", "eval", "bot", "--model-url", server.url,
             "--concurrency", "2", "--no-cache", "-o", "json"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while server.stats()["requests"].get("/v1/chat/completions", 0) < 6:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    data = json.loads(out)
    run = data.get("run", data)
    assert run["interrupted"] is True
    assert 0 < sum(len(s["cases"]) for s in run["suites"]) < 200
