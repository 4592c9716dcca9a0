"""`llmops serve` as a real process: it serves, logs JSON, and on SIGTERM finishes the
request in flight before exiting. Bad options are clean usage errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmops.stub.config import StubConfig
from llmops.stub.runner import StubServer

APP = """\
apiVersion: llmops.dev/v1
kind: LLMApp
metadata: {name: demo}
spec:
  model:
    provider: openai-compatible
    name: stub
    baseUrl: "http://127.0.0.1:9/v1"
    apiKey: {env: DEMO_KEY}
  prompt:
    user: prompts/user.j2
    inputs:
      question: {type: string}
"""
KEY = "sk-serve-test-key-1234567"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "manifests/demo/prompts").mkdir(parents=True)
    (tmp_path / "manifests/demo/app.yaml").write_text(APP)
    (tmp_path / "manifests/demo/prompts/user.j2").write_text("Q: {{ question }}\n")
    return tmp_path


@pytest.fixture(scope="module")
def slow_stub() -> Iterator[StubServer]:
    with StubServer(StubConfig(latency_ms=1500, api_key=KEY)) as stub:
        yield stub


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_and_shuts_down_gracefully(repo: Path, slow_stub: StubServer) -> None:
    port = free_port()
    env = {**os.environ, "DEMO_KEY": KEY}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmops",
            "serve",
            "demo",
            "--path",
            str(repo),
            "--port",
            str(port),
            "--model-url",
            slow_stub.url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                proc.stderr.read() if proc.stderr else ""
            )
            time.sleep(0.1)
        result: dict[str, httpx.Response] = {}

        def call() -> None:
            result["r"] = httpx.post(
                f"{base}/v1/apps/demo/invoke", json={"inputs": {"question": "slow one"}}, timeout=20
            )

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the request is now waiting on the slow model
        proc.send_signal(signal.SIGTERM)
        caller.join(20)
        assert result["r"].status_code == 200, result["r"].text
        assert result["r"].json()["output"] == "echo: Q: slow one"
        # uvicorn re-raises SIGTERM once it has drained, so the exit status is the signal's
        assert proc.wait(20) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read() if proc.stderr else ""
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line["msg"] == "serving" and line["app"] == "demo" for line in lines)
    assert any(line["msg"] == "request" and line["status"] == 200 for line in lines)
    assert KEY not in stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nope"], "no app named 'nope'"),
        (["demo", "--model-url", "ftp://x"], "--model-url must be an http(s) URL"),
        (["demo", "--env", "prod"], "no environment named 'prod'"),
    ],
)
def test_bad_options_are_usage_errors(repo: Path, args: list[str], needle: str) -> None:
    fails_with(repo, args, needle)


def fails_with(repo: Path, args: list[str], needle: str) -> None:
    """``llmops serve ARGS`` exits 2 with ``needle`` in its one-line error."""
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "serve", "--path", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_a_port_in_use_is_a_clear_error(repo: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        needle = f"cannot listen on 127.0.0.1:{port}: Address already in use"
        fails_with(repo, ["demo", "--port", str(port)], needle)
