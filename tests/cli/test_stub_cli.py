"""`llmops stub-model` as a real subprocess: banner, HTTP over loopback, clean stop, and
clear errors for bad options and rules files."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0)
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_stub_model_serves_over_http_until_terminated(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {match: 'ping', reply: 'pong'}\n")
    port = free_port()
    command = [sys.executable, "-m", "llmops", "stub-model", "--port", str(port)]
    command += ["--rules", str(rules), "--seed", "3", "--log-level", "info"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        root = f"http://127.0.0.1:{port}"
        health = wait_healthy(root, proc)
        assert health.json()["stub"] is True
        body = {"model": "stub", "messages": [{"role": "user", "content": "ping?"}]}
        reply = httpx.post(f"{root}/v1/chat/completions", json=body, timeout=5)
        assert reply.headers["x-llmops-stub"] == "true"
        assert reply.json()["choices"][0]["message"]["content"] == "pong"
        assert httpx.get(f"{root}/stub/stats").json()["requests"]["/v1/chat/completions"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the parent sees it
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert "llmops stub model: NOT a real LLM" in out
    assert f"base URL:  http://127.0.0.1:{port}/v1" in out and "(1 rules)" in out
    assert "NOT a real LLM" in err  # the server's own start-up log line
    assert "Traceback" not in err


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "llmops", "stub-model", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_a_bad_rules_file_is_reported_without_a_traceback(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {match: '(', reply: 'x'}\n")
    proc = run_cli("--port", "0", "--rules", str(rules))
    assert proc.returncode == 1
    assert f"{rules}: rules[0].match: not a valid regular expression" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_options_are_usage_errors() -> None:
    proc = run_cli("--port", "0", "--fault-rate", "0.3", "--fault-kinds", "429,teapot")
    assert proc.returncode == 2 and "unknown fault kind 'teapot'" in proc.stderr
    proc = run_cli("--fault-rate", "2")
    assert proc.returncode == 2 and "--fault-rate" in proc.stderr
    assert "Traceback" not in proc.stderr
