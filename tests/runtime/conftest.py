"""Fixtures for the runtime tests: small repositories on disk, the stub model, and the
gateway served by uvicorn in a thread on 127.0.0.1 (real HTTP, nothing mocked)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gateway_kit import API_KEY, STUB_RULES, Served, write_repo

from llmops import api
from llmops.runtime.loaded import LoadedApp, load_app
from llmops.runtime.logs import JsonLogger
from llmops.runtime.server import Gateway
from llmops.stub.config import StubConfig
from llmops.stub.runner import StubServer


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "repo")


@pytest.fixture
def load(repo_dir: Path) -> Callable[..., LoadedApp]:
    """``load(app, **kwargs)``: the app from ``repo_dir``, with DEMO_API_KEY set."""

    def loader(app: str = "demo", **kwargs: object) -> LoadedApp:
        kwargs.setdefault("environ", {"DEMO_API_KEY": API_KEY})
        return load_app(api.load(repo_dir), app, **kwargs)  # type: ignore[arg-type]

    return loader


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    with StubServer(StubConfig(rules=STUB_RULES, api_key=API_KEY)) as server:
        yield server


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """``serve(gateway)`` starts it; every gateway started is stopped after the test."""
    started: list[Served] = []

    def start(gateway: Gateway) -> Served:
        served = Served(gateway).start()
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


@pytest.fixture
def log_buffer() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def logger(log_buffer: io.StringIO) -> JsonLogger:
    return JsonLogger(log_buffer)
