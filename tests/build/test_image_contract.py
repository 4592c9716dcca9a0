"""The runtime side of the image contract, without Docker: `llmops serve --bundle` takes
its settings from LLMOPS_ENVIRONMENT, LLMOPS_MODEL_URL, LLMOPS_MODEL_NAME and
LLMOPS_MODEL_API_KEY_ENV, and an environment name without an environments/ directory is
only a label."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmops import api
from llmops.domain.deploy import ENV_API_KEY_VAR, ENV_ENVIRONMENT, ENV_MODEL_NAME, ENV_MODEL_URL
from llmops.releases.bundle import build_bundle
from llmops.runtime.loaded import load_app
from llmops.stub.config import StubConfig
from llmops.stub.runner import StubServer

ROOT = Path(__file__).resolve().parents[2]
KEY = "contract-key-7f3a9c1e5b"


def test_the_key_variable_named_by_the_deployer_wins() -> None:
    repo = api.load(ROOT)
    environ = {ENV_API_KEY_VAR: "MOUNTED_KEY", "MOUNTED_KEY": KEY, "OPENAI_API_KEY": "other"}
    loaded = load_app(repo, "summarizer", environ=environ)
    assert loaded.model.api_key == KEY and loaded.model.api_key_problem is None
    assert loaded.model.api_key_ref is not None and loaded.model.api_key_ref.env == "MOUNTED_KEY"

    missing = load_app(repo, "summarizer", environ={ENV_API_KEY_VAR: "NOT_SET_ANYWHERE"})
    assert missing.model.api_key is None
    assert missing.model.api_key_problem is not None
    assert "NOT_SET_ANYWHERE" in missing.model.api_key_problem


def test_a_key_put_where_its_name_belongs_is_refused_and_not_repeated() -> None:
    loaded = load_app(api.load(ROOT), "summarizer", environ={ENV_API_KEY_VAR: "sk-live-123456"})
    assert loaded.model.api_key is None
    problem = loaded.model.api_key_problem or ""
    assert ENV_API_KEY_VAR in problem and "sk-live-123456" not in problem


def test_model_name_and_environment_label() -> None:
    loaded = load_app(
        api.load(ROOT), "summarizer", model_name="local-llama", environment_label="prod", environ={}
    )
    assert loaded.model.name == "local-llama"
    assert loaded.environment == "prod" and loaded.builtins()["environment"] == "prod"
    # a real environment still applies its overrides and wins over the label
    assert load_app(api.load(ROOT), "summarizer", environment="dev", environ={}).environment == "dev"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(StubConfig(api_key=KEY)) as server:
        yield server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_bundle_reads_the_contract_from_the_environment(tmp_path: Path, stub: StubServer) -> None:
    bundle = build_bundle(api.load(ROOT).apps["summarizer"], ROOT)
    workdir = tmp_path / "srv"  # like the image: a bundle, no repository
    workdir.mkdir()
    (workdir / "release.json").write_bytes(bundle.data)
    port = free_port()
    env = {
        **os.environ,
        ENV_ENVIRONMENT: "prod",
        ENV_MODEL_URL: stub.url,
        ENV_MODEL_NAME: "served-by-stub",
        ENV_API_KEY_VAR: "MOUNTED_KEY",
        "MOUNTED_KEY": KEY,
    }
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops", "serve", "summarizer", "--bundle", "release.json",
         "--port", str(port)],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
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
                proc.stderr.read() if proc.stderr else ""
            )
            time.sleep(0.1)
        stub.reset()
        reply = httpx.post(
            f"{base}/v1/apps/summarizer/invoke", json={"inputs": {"text": "Disk full."}}, timeout=20
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["release"] == bundle.release_id
        calls = [r for r in stub.state.recent() if r["endpoint"] == "/v1/chat/completions"]
        assert calls and all(c["authorized"] for c in calls)  # the key came from MOUNTED_KEY
        assert {c["body"]["model"] for c in calls} == {"served-by-stub"}
    finally:
        proc.terminate()
        proc.wait(20)
    stderr = proc.stderr.read() if proc.stderr else ""
    serving = [json.loads(line) for line in stderr.splitlines() if '"msg": "serving"' in line]
    assert serving and serving[0]["environment"] == "prod"
    assert KEY not in stderr
