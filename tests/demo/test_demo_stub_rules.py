"""The demo's scripted stub replies (demo/stub-rules.yaml) against the example apps.

The real stub model (``StubServer``, and ``llmops stub-model`` in a subprocess) serves
the rules; every suite of both example apps runs through ``llmops.evals.api.run_eval``
(the path ``llmops eval`` takes: the runtime's own ``complete()``, guardrails, the
llm-rubric judge on the same endpoint) with 3 repeats, and every gate of
pipelines/default.yaml is decided by ``llmops.evals.gates.evaluate_gate``.

Named ``test_demo_stub_rules.py`` because tests/stub/test_stub_rules.py exists and the
test directories have no ``__init__.py``: equal basenames break collection.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.domain.evals import EvalRun
from llmops.domain.models.pipeline import Gate
from llmops.evals.api import EvalSettings, prepare_eval, run_eval
from llmops.evals.gates import evaluate_gate
from llmops.manifests.repository import load_repo
from llmops.stub.config import StubConfig
from llmops.stub.rules import Rule, load_rules
from llmops.stub.runner import StubServer

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "demo" / "stub-rules.yaml"
APPS = ("support-bot", "summarizer")
#: where each app's rendered user message starts (the anchors of the rules)
PREFIX = {"support-bot": "Customer message:", "summarizer": "Summarise this:"}
#: the release pipeline's stages, in order
STAGES = ("dev", "test", "prod")
REPEATS = 3


def copy_example(root: Path, *, injection_heuristics: bool = True) -> Path:
    """The example repository's manifests, environments and pipelines under ``root``;
    optionally with the apps' prompt-injection input heuristics switched off."""
    for name in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / name, root / name)
    if not injection_heuristics:
        for app in APPS:
            path = root / "manifests" / app / "app.yaml"
            text = path.read_text(encoding="utf-8")
            if "injectionHeuristics: true" in text:
                text = text.replace("injectionHeuristics: true", "injectionHeuristics: false")
            else:
                text = text.replace(
                    "  guardrails:\n    input:\n",
                    "  guardrails:\n    input:\n      injectionHeuristics: false\n",
                )
            assert "injectionHeuristics: false" in text, f"{path}: cannot switch heuristics off"
            path.write_text(text, encoding="utf-8")
    return root


def gates(repo: Path) -> dict[str, Gate]:
    (pipeline,) = load_repo(repo).pipelines.values()
    return {stage.env: stage.gate for stage in pipeline.pipeline.spec.stages}


def failing(run: EvalRun) -> set[tuple[str, str, str]]:
    """(app, suite, case) of every case with a sample that did not pass."""
    return {
        (run.app, suite.name, case.case_id)
        for suite in run.suites
        for case in suite.cases
        if any(sample.outcome != "pass" for sample in case.samples)
    }


def explain(run: EvalRun) -> str:
    lines = []
    for suite in run.suites:
        for case in suite.cases:
            for sample in case.samples:
                if sample.outcome == "pass":
                    continue
                why = [a.reason for a in sample.assertions if a.outcome != "pass"]
                lines.append(f"{suite.name}/{case.case_id}: {sample.error or why} {sample.output!r}")
                break
    return "\n".join(lines)


@pytest.fixture(scope="module")
def rules() -> tuple[Rule, ...]:
    return load_rules(RULES_FILE)


@pytest.fixture(scope="module")
def stub(rules: tuple[Rule, ...]) -> Iterator[StubServer]:
    with StubServer(StubConfig(rules=rules)) as server:
        yield server


def _runs(root: Path, stub: StubServer, **copy: bool) -> dict[str, EvalRun]:
    repo = copy_example(root, **copy)
    settings = EvalSettings(model_url=stub.url, repeat=REPEATS, use_cache=False)
    return {app: run_eval(repo, app, (), settings) for app in APPS}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, stub: StubServer) -> dict[str, EvalRun]:
    """Every suite of both apps, 3 samples per case, on a copy of the example."""
    return _runs(tmp_path_factory.mktemp("example"), stub)


def test_the_file_is_a_valid_rules_file_and_says_it_is_a_stub(rules: tuple[Rule, ...]) -> None:
    head = RULES_FILE.read_text(encoding="utf-8").split("\nrules:", 1)[0]
    assert "NOT a real LLM" in head and "not used" in head
    assert len(rules) == 76
    assert rules[0].pattern.pattern.startswith(r"\A<rubric>")  # the judge first
    assert all(rule.scope == "last" for rule in rules)


def test_every_case_has_its_own_rule_and_no_rule_is_dead(
    tmp_path: Path, rules: tuple[Rule, ...]
) -> None:
    """Each case (blocked ones included, rendered with the heuristics off) is answered by
    a rule of its own, never by the judge or a fallback; every case rule is used."""
    repo = copy_example(tmp_path, injection_heuristics=False)
    judge = {0}
    anchors = {rf"\A{prefix}" for prefix in PREFIX.values()}
    fallbacks = {i for i, rule in enumerate(rules) if rule.pattern.pattern in anchors}
    assert len(fallbacks) == 2
    owner: dict[int, str] = {}
    for app in APPS:
        prepared = prepare_eval(repo, app, (), EvalSettings(model_url="http://127.0.0.1:9/v1"))
        for item in prepared.planned:
            assert item.rendered is not None, (app, item.case.id, item.blocked, item.problem)
            last = [m.content for m in item.rendered.messages if m.role == "user"][-1]
            assert last.startswith(PREFIX[app])
            hit = next(i for i, rule in enumerate(rules) if rule.pattern.search(last))
            case = f"{app}/{item.suite}/{item.case.id}"
            assert hit not in judge | fallbacks, f"{case} falls through to rule {hit}"
            assert hit not in owner, f"{case} and {owner.get(hit)} share rule {hit}"
            owner[hit] = case
    assert set(range(len(rules))) - judge - fallbacks == set(owner), "unused rules"


def test_every_sample_passes_except_the_unsatisfiable_cases(runs: dict[str, EvalRun]) -> None:
    for app, run in runs.items():
        cases = sum(len(suite.cases) for suite in run.suites)
        assert {s.name for s in run.suites} == {"smoke", "security"}, app
        assert cases == {"support-bot": 40, "summarizer": 33}[app]
        assert all(len(c.samples) == REPEATS for s in run.suites for c in s.cases)
        assert failing(run) == set(), explain(run)


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("app", APPS)
def test_pipeline_gates(runs: dict[str, EvalRun], app: str, stage: str) -> None:
    gate = gates(ROOT)[stage]
    result = evaluate_gate(stage, gate, runs[app], None)
    assert result.passed, result.reasons
    assert result.pass_rate == 1.0


def test_every_gate_passes_when_the_guardrail_lets_the_attacks_through(
    tmp_path: Path, stub: StubServer
) -> None:
    """With the injection heuristics off, the attacks reach the stub: the scripted
    refusals and summaries pass them too, and every gate of both apps passes."""
    runs = _runs(tmp_path, stub, injection_heuristics=False)
    stages = gates(tmp_path)
    for app, run in runs.items():
        assert failing(run) == set(), explain(run)
        for stage, gate in stages.items():
            result = evaluate_gate(stage, gate, run, None)
            assert result.passed, (app, stage, result.reasons)


@pytest.fixture
def stub_process() -> Iterator[str]:
    """``llmops stub-model --rules demo/stub-rules.yaml --port 0``; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops", "stub-model", "--rules", str(RULES_FILE),
         "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        banner: list[str] = []
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            banner.append(line)
            found = re.match(r"base URL:\s+(\S+)", line)
            url = found.group(1) if found else None
        assert url is not None, "".join(banner)
        for line in proc.stdout:  # the rest of the banner
            banner.append(line)
            if line.startswith("stats:"):
                break
        assert "(76 rules)" in "".join(banner), "".join(banner)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_cli_eval_gate_prod_on_the_stub_model(tmp_path: Path, stub_process: str) -> None:
    """The loop the README shows: both apps pass the prod gate on the stub (exit 0)."""
    repo = copy_example(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}

    def llmops_eval(app: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmops", "eval", app, "--model-url", stub_process,
             "--gate", "prod"],
            cwd=repo, env=env, capture_output=True, text=True, timeout=300,
        )

    bot = llmops_eval("support-bot")
    assert bot.returncode == 0, bot.stdout + bot.stderr
    assert "gate prod: passed" in bot.stdout
    summarizer = llmops_eval("summarizer")
    assert summarizer.returncode == 0, summarizer.stdout + summarizer.stderr
    assert "gate prod: passed" in summarizer.stdout
