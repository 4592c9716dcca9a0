"""Hot reload over real HTTP: an edited template is used by the next request; a broken
manifest or template keeps the last good version serving and prints each problem as
file:line:col on its own line; fixing it reloads again."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from gateway_kit import API_KEY, Served

from llmops import api
from llmops.runtime.loaded import LoadedApp, load_app
from llmops.runtime.logs import JsonLogger
from llmops.runtime.reload import snapshot
from llmops.runtime.server import Gateway
from llmops.runtime.serving import build_gateway
from llmops.stub.runner import StubServer


def test_snapshot_sees_edits_additions_and_removals(tmp_path: Path) -> None:
    (tmp_path / "a.j2").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.j2").write_text("b")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x").write_text("x")
    first = snapshot((tmp_path,))
    assert set(first) == {str(tmp_path / "a.j2"), str(tmp_path / "sub" / "b.j2")}
    (tmp_path / "sub" / "b.j2").write_text("bb")
    assert snapshot((tmp_path,)) != first
    (tmp_path / "c.j2").write_text("c")
    (tmp_path / "a.j2").unlink()
    assert set(snapshot((tmp_path,))) == {str(tmp_path / "sub" / "b.j2"), str(tmp_path / "c.j2")}


def wait_for(predicate: Callable[[], bool], seconds: float = 8.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def reloading(
    repo_dir: Path, stub: StubServer, serve: Callable[[Gateway], Served]
) -> tuple[httpx.Client, io.StringIO]:
    def load() -> LoadedApp:
        repo = api.load(repo_dir)
        return load_app(repo, "demo", model_url=stub.url, environ={"DEMO_API_KEY": API_KEY})

    err = io.StringIO()
    gateway = build_gateway(
        load(),
        load,
        reload=True,
        reload_interval=0.1,
        logger=JsonLogger(io.StringIO()),
        reload_err=err,
    )
    served = serve(gateway)
    return httpx.Client(base_url=served.url, timeout=10), err


def reply(http: httpx.Client) -> str:
    response = http.post("/v1/apps/demo/invoke", json={"inputs": {"question": "hello"}})
    assert response.status_code == 200, response.text
    return str(response.json()["output"])


def test_an_edited_template_is_used_by_the_next_request(
    reloading: tuple[httpx.Client, io.StringIO], repo_dir: Path
) -> None:
    http, err = reloading
    assert reply(http) == "echo: Question: hello"
    (repo_dir / "manifests/demo/prompts/user.j2").write_text("Q2: {{ question }}\n")
    assert wait_for(lambda: reply(http) == "echo: Q2: hello"), err.getvalue()
    assert "reloaded demo" in err.getvalue()
    assert 'llmops_reloads_total{app="demo",result="ok"} 1' in http.get("/metrics").text


def test_a_broken_manifest_keeps_the_last_good_version(
    reloading: tuple[httpx.Client, io.StringIO], repo_dir: Path
) -> None:
    http, err = reloading
    manifest = repo_dir / "manifests/demo/app.yaml"
    good = manifest.read_text()
    manifest.write_text(good.replace("maxRetries: 0", "maxRetries: 0\n    temprature: 3"))
    assert wait_for(lambda: "reload failed" in err.getvalue()), err.getvalue()
    assert reply(http) == "echo: Question: hello", "the old version must keep serving"
    problems = err.getvalue().splitlines()[1:]
    assert problems and all(":" in line for line in problems)
    assert any(
        line.startswith(f"{manifest.as_posix()}:") or "manifests/demo/app.yaml:" in line
        for line in problems
    ), problems
    assert any("temprature" in line for line in problems)
    assert "reload failed" not in problems[0]
    assert 'llmops_reloads_total{app="demo",result="failed"} 1' in http.get("/metrics").text

    manifest.write_text(good)
    (repo_dir / "manifests/demo/prompts/user.j2").write_text("Q3: {{ question }}\n")
    assert wait_for(lambda: reply(http) == "echo: Q3: hello"), err.getvalue()


def test_a_broken_template_is_reported_with_its_line(
    reloading: tuple[httpx.Client, io.StringIO], repo_dir: Path
) -> None:
    http, err = reloading
    (repo_dir / "manifests/demo/prompts/user.j2").write_text("ok\n{% if question %}\n")
    assert wait_for(lambda: "reload failed" in err.getvalue()), err.getvalue()
    assert "manifests/demo/prompts/user.j2:" in err.getvalue()
    assert reply(http) == "echo: Question: hello"
