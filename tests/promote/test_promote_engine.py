"""Promotion with the real eval engine: a missing target gate is run against the stub model
(the environment's model override points at it), the JSON report is archived as the
evidence, and the promotion goes on only if the gate passed."""

from __future__ import annotations

from pathlib import Path

import pytest
from promote_helpers import git, identity

from llmops.archive import DirArchive
from llmops.domain.errors import Refused
from llmops.evals.reports import parse_report
from llmops.ops.promote import World, engine_gate_runner, promote
from llmops.promote import conditions as c
from llmops.promote.pins import read_pin
from llmops.stub.config import StubConfig
from llmops.stub.runner import StubServer

APP = """\
apiVersion: llmops.dev/v1
kind: LLMApp
metadata: {name: bot}
spec:
  model: {provider: stub, name: stub, timeoutSeconds: 5, maxRetries: 1}
  prompt:
    system: prompts/system.j2
    user: prompts/user.j2
    inputs:
      question: {type: string}
  evals: [evals/smoke.yaml]
"""
SUITE = """\
apiVersion: llmops.dev/v1
kind: EvalSuite
metadata: {name: smoke}
spec:
  cases:
    - {id: c0, inputs: {question: hello 0}, assert: [{type: contains, value: '%s'}]}
    - {id: c1, inputs: {question: hello 1}, assert: [{type: contains, value: 'hello 1'}]}
"""
ENV = """\
apiVersion: llmops.dev/v1
kind: Environment
metadata: {name: %(name)s}
spec:
  target: {kind: local}
  overrides:
    bot: {model: {baseUrl: "%(url)s"}}
  releases: {}
"""
PIPELINE = """\
apiVersion: llmops.dev/v1
kind: Pipeline
metadata: {name: default}
spec:
  stages:
    - {env: dev, source: head, gate: {suites: [smoke], minPassRate: 1.0}}
    - {env: test, gate: {suites: [smoke], minPassRate: 1.0}}
"""


def _repo(tmp_path: Path, url: str, expected: str) -> tuple[Path, Path]:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", str(bare))
    work = tmp_path / "work"
    git(tmp_path, "init", "--quiet", "-b", "main", str(work))
    identity(work)
    app = work / "manifests" / "bot"
    (app / "prompts").mkdir(parents=True)
    (app / "evals").mkdir()
    (app / "app.yaml").write_text(APP)
    (app / "prompts" / "system.j2").write_text("You repeat what you are told.\n")
    (app / "prompts" / "user.j2").write_text("{{ question }}\n")
    (app / "evals" / "smoke.yaml").write_text(SUITE % expected)
    (work / "environments").mkdir()
    for name in ("dev", "test"):
        (work / "environments" / f"{name}.yaml").write_text(ENV % {"name": name, "url": url})
    (work / "pipelines").mkdir()
    (work / "pipelines" / "default.yaml").write_text(PIPELINE)
    (work / ".gitignore").write_text(".llmops/\n")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "bot")
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "--quiet", "-u", "origin", "main")
    return work, bare


@pytest.fixture(scope="module")
def stub() -> StubServer:  # type: ignore[misc]
    with StubServer(StubConfig()) as server:
        yield server


def _world(tmp_path: Path) -> World:
    return World(
        archive=DirArchive(tmp_path / "archive"), environ={}, gate_runner=engine_gate_runner
    )


def test_the_gate_runs_then_the_release_is_promoted(tmp_path: Path, stub: StubServer) -> None:
    work, bare = _repo(tmp_path, stub.url, "hello 0")
    world = _world(tmp_path)
    result = promote(work, "bot", "dev", world=world)

    assert result.applied and result.plan.check(c.TARGET_GATE_PASSED).reason == c.EVIDENCE_PRESENT  # type: ignore[union-attr]
    evaluated = next(e for e in result.entries if e.event == "evaluated")
    assert evaluated.env == "dev" and evaluated.data["gate"]["passed"] is True
    report = parse_report(world.archive.get(evaluated.evidence["report"]).decode())  # type: ignore[union-attr]
    assert (
        report.gate is not None
        and report.gate.passed
        and report.run.release == result.plan.candidate
    )
    assert len(report.run.cases) == 2
    pinned = git(bare, "show", "main:environments/dev.yaml")
    assert read_pin(pinned, "bot") == result.plan.candidate


def test_a_failing_gate_stops_the_promotion(tmp_path: Path, stub: StubServer) -> None:
    work, bare = _repo(tmp_path, stub.url, "something the stub never says")
    world = _world(tmp_path)
    before = git(bare, "rev-parse", "main")
    with pytest.raises(Refused) as info:
        promote(work, "bot", "dev", world=world)
    assert info.value.detail.check(c.TARGET_GATE_PASSED).reason == c.GATE_FAILED
    assert "pass rate 50.0%" in info.value.message
    assert git(bare, "rev-parse", "main") == before
    events = [e.event for e in world.archive.entries()]  # type: ignore[union-attr]
    assert events == ["evaluated"]  # the failed run is evidence; nothing else happened
