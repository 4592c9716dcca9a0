"""`llmops eval APP --endpoint URL` end to end: `llmops serve` as a real process in front
of the real stub model, and `llmops eval` as another process evaluating it over HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmops.stub.config import StubConfig
from llmops.stub.rules import Rule
from llmops.stub.runner import StubServer

ROOT = Path(__file__).resolve().parents[2]
ENV = os.environ | {"OPENAI_API_KEY": "sk-endpoint-test-0000"}
GOOD = (
    '{"answer": "You can ask for a refund within 30 days.", "category": "billing", '
    '"escalate": false}'
)
ESCALATED = '{"answer": "I escalated your refund.", "category": "billing", "escalate": true}'
#: the judge first (any rubric passes), then two smoke cases answered correctly
RULES = (
    Rule.of(r"<rubric>", '{"pass": true, "score": 1.0, "reason": "fine"}'),
    Rule.of(r"\$1,240", ESCALATED),
    Rule.of(r"ask for a refund", GOOD),
    Rule.of(r"cancel my subscription", GOOD.replace("ask for a refund", "cancel any time")),
)
#: an environment whose model (here: only the judge) is the stub
STUBBED_ENV = """\
apiVersion: llmops.dev/v1
kind: Environment
metadata: {{name: stubbed}}
spec:
  target: {{kind: local, basePort: 19400}}
  overrides:
    support-bot:
      model: {{baseUrl: "{url}", name: stub}}
  releases: {{}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def llmops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmops", *args],
        capture_output=True, text=True, cwd=cwd, env=ENV, timeout=120,
    )


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(StubConfig(rules=RULES)) as server:
        yield server


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, stub: StubServer) -> Path:
    root = tmp_path_factory.mktemp("endpoint") / "repo"
    for name in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / name, root / name)
    (root / "environments" / "stubbed.yaml").write_text(STUBBED_ENV.format(url=stub.url))
    return root


@pytest.fixture(scope="module")
def served(repo: Path, stub: StubServer) -> Iterator[str]:
    """`llmops serve support-bot` on a free port, its model the stub; yields its URL."""
    port = free_port()
    log = (repo.parent / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops", "serve", "support-bot", "--path", str(repo),
         "--port", str(port), "--model-url", stub.url, "--log-level", "warning"],
        stdout=log, stderr=log, env=ENV,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                (repo.parent / "serve.log").read_text()
            )
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def only_cases(repo: Path, *ids: str) -> None:
    """Keep only these cases of support-bot's smoke suite (the rest have no stub rule)."""
    path = repo / "manifests" / "support-bot" / "evals" / "smoke-two.yaml"
    text = (repo / "manifests" / "support-bot" / "evals" / "smoke.yaml").read_text()
    head, _, body = text.partition("  cases:\n")
    blocks = body.split("\n    - id: ")
    kept = [b for b in blocks[1:] if b.split("\n", 1)[0].strip() in ids]
    path.write_text(
        head.replace("name: smoke", "name: smoke-two")
        + "  cases:\n"
        + "".join("    - id: " + b.rstrip("\n") + "\n" for b in kept)
    )
    app_yaml = repo / "manifests" / "support-bot" / "app.yaml"
    if "smoke-two" not in app_yaml.read_text():
        app_yaml.write_text(
            app_yaml.read_text().replace(
                "    - evals/smoke.yaml\n", "    - evals/smoke.yaml\n    - evals/smoke-two.yaml\n"
            )
        )


def test_eval_against_a_served_app_passes(repo: Path, served: str, stub: StubServer) -> None:
    only_cases(repo, "refund-window", "large-refund-escalates", "cancellation")
    before = stub.stats()["requests"].get("/v1/chat/completions", 0)
    args = ["eval", "support-bot", "--endpoint", served, "--suite", "smoke-two", "--env", "stubbed"]
    text = llmops(*args, cwd=repo)
    assert text.returncode == 0, text.stdout + text.stderr
    assert "3 cases × 1" in text.stdout
    assert f"release dev at {served}" in text.stdout
    assert "top failures" not in text.stdout
    # 3 invokes reached the model through the runtime, plus the judge of "cancellation"
    assert stub.stats()["requests"]["/v1/chat/completions"] - before == 4
    data = json.loads(llmops(*args, "-o", "json", cwd=repo).stdout)
    run = data.get("run", data)
    assert run["release"] == "dev" and run["cacheHits"] == 0
    assert not (repo / ".llmops" / "cache" / "evals.sqlite").exists()


def test_failing_cases_through_the_endpoint_exit_1(repo: Path, served: str) -> None:
    result = llmops(
        "eval", "support-bot", "--endpoint", served, "--suite", "security", "--env", "stubbed",
        cwd=repo,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "top failures" in result.stdout
    # the echoing stub's replies are blocked by the output JSON-schema guardrail, so the
    # cases' own json-path checks fail; a case the input guardrail blocked (and that only
    # asks for a refusal and no leak) passes, the runtime answering with its JSON error
    assert re.search(r"✗ security/\S+ \[required\] \(fail\): json-path", result.stdout), result.stdout
    assert "✗ security/ignore-previous" not in result.stdout
    assert "Traceback" not in result.stderr


def test_an_endpoint_that_is_down_exits_2_with_one_line(repo: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = llmops("eval", "support-bot", "--endpoint", url, "--suite", "smoke", cwd=repo)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot reach {url} (GET {url}/v1/models)")
    assert lines[0].endswith("check the URL and that support-bot is running there")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--endpoint", "http://127.0.0.1:9", "--model-url", "http://127.0.0.1:9/v1"],
         "--endpoint and --model-url exclude each other"),
        (["--endpoint", "localhost:8080"], "must start with http:// or https://"),
    ],
)
def test_wrong_endpoint_options_exit_2(repo: Path, extra: list[str], message: str) -> None:
    result = llmops("eval", "support-bot", *extra, cwd=repo)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
