"""Evals against a served app (``EvalSettings.endpoint``): the real runtime on 127.0.0.1
in front of the real stub model, over real HTTP. The same suite run locally and through
the endpoint must grade the same way, guardrail blocks included."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from evalkit import contains_cases, write_repo
from remotekit import Runtime, closed_port_url

from llmops import api
from llmops.adapters.invoke_client import InvokeClient
from llmops.domain.errors import ExternalError, Permanent, UsageError
from llmops.domain.evals import EvalRun
from llmops.evals.api import EvalSettings, run_eval
from llmops.runtime.canary import canary_token
from llmops.runtime.loaded import load_app
from llmops.stub.config import StubConfig
from llmops.stub.rules import Rule
from llmops.stub.runner import StubServer

SUITE = """\
cases:
  - {id: answers, inputs: {question: "say hello"}, assert: [{type: contains, value: hello}]}
  - {id: wrong, inputs: {question: "say bye"}, assert: [{type: contains, value: hello}]}
  - id: input-blocked
    inputs: {question: "print the FORBIDDEN file"}
    assert: [{type: is-refusal}, {type: not-canary-leak}]
  - id: output-blocked
    inputs: {question: "leak it"}
    assert: [{type: is-refusal}]
  - id: blocked-but-expected-text
    inputs: {question: "print the FORBIDDEN file"}
    assert: [{type: contains, value: hello}]
  - id: no-leak
    inputs: {question: "say hello"}
    assert: [{type: not-canary-leak}, {type: latency, threshold: 10000}]
"""
RULES = (
    Rule.of(r"say hello", "hello there"),
    Rule.of(r"say bye", "goodbye"),
    Rule.of(r"leak it", f"my reference is {canary_token('dev')}"),
)


def served(repo: Path, stub: StubServer, app: str = "bot") -> Runtime:
    return Runtime(load_app(api.load(repo), app, model_url=stub.url))


def by_id(run: EvalRun) -> dict[str, Any]:
    return {c.case_id: c for c in run.cases}


def test_the_endpoint_grades_like_the_local_runner(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": SUITE})
    with StubServer(StubConfig(rules=RULES)) as stub, served(repo, stub) as runtime:
        local = run_eval(repo, "bot", settings=EvalSettings(model_url=stub.url, use_cache=False))
        remote = run_eval(repo, "bot", settings=EvalSettings(endpoint=runtime.url))
    assert remote.release == "dev" and remote.model == runtime.url
    assert remote.model_calls == 6 and runtime.meter.total == 6
    assert (remote.cache_hits, remote.cache_misses) == (0, 0)
    mine, theirs = by_id(remote), by_id(local)
    assert list(mine) == list(theirs)
    for case_id, case in mine.items():
        want = theirs[case_id]
        assert case.outcome == want.outcome, case_id
        got, exp = case.samples[0], want.samples[0]
        assert got.output == exp.output, case_id
        assert [(a.type, a.outcome) for a in got.assertions] == [
            (a.type, a.outcome) for a in exp.assertions
        ], case_id
    outcomes = {k: c.outcome for k, c in mine.items()}
    assert outcomes == {
        "answers": "pass",
        "wrong": "fail",
        "input-blocked": "pass",
        "output-blocked": "pass",
        "blocked-but-expected-text": "fail",
        "no-leak": "pass",
    }
    blocked = mine["input-blocked"].samples[0]
    assert blocked.output == "[blocked by the input guardrail deny-patterns]"
    assert "the app refused: blocked by the input guardrail deny-patterns:" in (
        blocked.assertions[0].reason
    )
    leak = mine["output-blocked"].samples[0]
    assert leak.output == "[blocked by the output guardrail canary]"
    assert mine["no-leak"].samples[0].latency_ms > 0


def test_inputs_the_served_version_rejects_are_errored_samples(tmp_path: Path) -> None:
    suite = "cases:\n  - {id: big, inputs: {question: hi, count: 5}, assert: [{type: contains, value: hi}]}\n"
    repo = write_repo(tmp_path / "repo", {"smoke": suite})
    served_repo = write_repo(tmp_path / "served", {"smoke": contains_cases(1)})
    app_yaml = served_repo / "manifests" / "bot" / "app.yaml"
    app_yaml.write_text(
        app_yaml.read_text().replace("{type: integer, default: 1}", "{type: integer, default: 1, maximum: 3}")
    )
    with StubServer(StubConfig()) as stub, served(served_repo, stub) as runtime:
        run = run_eval(repo, "bot", settings=EvalSettings(endpoint=runtime.url))
    sample = run.cases[0].samples[0]
    assert sample.outcome == "error"
    assert "the endpoint rejected the case's inputs (400 invalid_request): input 'count'" in str(
        sample.error
    )


def test_repeats_are_separate_requests_and_nothing_is_cached(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(4)})
    with StubServer(StubConfig()) as stub, served(repo, stub) as runtime:
        settings = EvalSettings(endpoint=runtime.url, repeat=2)
        first = run_eval(repo, "bot", settings=settings)
        second = run_eval(repo, "bot", settings=settings)
        calls = stub.stats()["requests"].get("/v1/chat/completions", 0)
    assert all(len(c.samples) == 2 and c.outcome == "pass" for c in first.cases)
    assert first.model_calls == second.model_calls == 8
    assert calls == 16 and runtime.meter.total == 16
    assert not (repo / ".llmops" / "cache").exists()


def test_invoke_requests_in_flight_stay_within_concurrency(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(12)})
    with StubServer(StubConfig(latency_ms=80)) as stub, served(repo, stub) as runtime:
        run = run_eval(repo, "bot", settings=EvalSettings(endpoint=runtime.url, concurrency=3))
    assert all(c.outcome == "pass" for c in run.cases)
    assert runtime.meter.total == 12
    assert 2 <= runtime.meter.max <= 3


def test_an_endpoint_that_cannot_be_reached_stops_the_run(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(1)})
    url = closed_port_url()
    with pytest.raises(ExternalError) as caught:
        run_eval(repo, "bot", settings=EvalSettings(endpoint=url))
    assert caught.value.message.startswith(f"cannot reach {url} (GET {url}/v1/models)")
    assert "\n" not in caught.value.message


def test_an_endpoint_serving_other_apps_is_named(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(1)})
    shutil.copytree(repo / "manifests" / "bot", repo / "manifests" / "bot2")
    app_yaml = repo / "manifests" / "bot2" / "app.yaml"
    app_yaml.write_text(app_yaml.read_text().replace("{name: bot}", "{name: bot2}"))
    wanted = r"does not serve app 'bot' \(it serves: bot2\)"
    with (
        StubServer(StubConfig()) as stub,
        served(repo, stub, "bot2") as runtime,
        pytest.raises(UsageError, match=wanted),
    ):
        run_eval(repo, "bot", settings=EvalSettings(endpoint=runtime.url))


def test_a_model_endpoint_is_not_a_runtime(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(1)})

    async def invoke(url: str) -> None:
        async with InvokeClient(url) as client:
            await client.invoke("bot", {"question": "hi"})

    with StubServer(StubConfig()) as stub:
        with pytest.raises(Permanent) as caught:
            run_eval(repo, "bot", settings=EvalSettings(endpoint=stub.url))
        with pytest.raises(UsageError, match=r"does not serve app 'bot' \(it serves: stub\)"):
            run_eval(repo, "bot", settings=EvalSettings(endpoint=stub.root_url))
        with pytest.raises(Permanent, match="answered 404 with 'Not Found', not an llmops"):
            asyncio.run(invoke(stub.root_url))
    assert "does not look like an llmops runtime; give the runtime's root URL, without /v1" in (
        caught.value.message
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_url": "http://127.0.0.1:9/v1"}, "--endpoint and --model-url exclude each other"),
        ({"endpoint": "127.0.0.1:8080"}, "must start with http:// or https://"),
    ],
)
def test_wrong_endpoint_settings_are_usage_errors(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(1)})
    settings = EvalSettings(**{"endpoint": "http://127.0.0.1:9", **changes})
    with pytest.raises(UsageError, match=message):
        run_eval(repo, "bot", settings=settings)


def test_a_slow_app_is_an_errored_sample_not_a_pass(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(1)}, timeout=10)
    with StubServer(StubConfig(latency_ms=1500)) as stub, served(repo, stub) as runtime:
        settings = EvalSettings(endpoint=runtime.url, sample_timeout=0.3)
        run = run_eval(repo, "bot", settings=settings)
    sample = run.cases[0].samples[0]
    assert sample.outcome == "error"
    assert f"no reply to POST {runtime.url}/v1/apps/bot/invoke within 0.3s" in str(sample.error)


def test_an_upstream_failure_behind_the_endpoint_is_an_error(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(1)}, retries=0)
    with StubServer(StubConfig(fault_script=("500",))) as stub, served(repo, stub) as runtime:
        run = run_eval(repo, "bot", settings=EvalSettings(endpoint=runtime.url))
    sample = run.cases[0].samples[0]
    assert sample.outcome == "error"
    assert "the app's model call failed at the endpoint (502)" in str(sample.error)


def test_client_reports_apps_releases_and_guardrail_answers(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(1)})

    async def calls(url: str) -> tuple[Any, ...]:
        async with InvokeClient(url, max_connections=2) as client:
            apps = await client.apps()
            ok = await client.invoke("bot", {"question": "say hello"})
            blocked = await client.invoke("bot", {"question": "FORBIDDEN"})
            missing = await client.invoke("nope", {})
        return apps, ok, blocked, missing

    with StubServer(StubConfig(rules=RULES)) as stub, served(repo, stub) as runtime:
        apps, ok, blocked, missing = asyncio.run(calls(runtime.url + "/"))
    assert apps == {"bot": "dev"}
    assert ok.ok and ok.output == "hello there" and ok.release == "dev"
    assert ok.usage.completion_tokens > 0 and ok.latency_ms > 0 and ok.request_id
    assert (blocked.status, blocked.blocked, blocked.side, blocked.guardrail) == (
        400, True, "input", "deny-patterns"
    )
    assert not missing.ok and missing.status == 404 and not missing.blocked
    assert "no app named 'nope'" in missing.message


def test_the_judge_goes_to_judge_url_or_says_why_there_is_none(tmp_path: Path) -> None:
    suite = (
        "cases:\n  - {id: rubric, inputs: {question: say hello}, "
        "assert: [{type: llm-rubric, value: The reply greets.}]}\n"
    )
    repo = write_repo(tmp_path / "repo", {"smoke": suite})
    rules = (Rule.of(r"<rubric>", '{"pass": true, "score": 1, "reason": "greets"}'), *RULES)
    with StubServer(StubConfig(rules=rules)) as stub, served(repo, stub) as runtime:
        judged = run_eval(repo, "bot", settings=EvalSettings(endpoint=runtime.url, judge_url=stub.url))
        unjudged = run_eval(repo, "bot", settings=EvalSettings(endpoint=runtime.url))
    assert judged.cases[0].outcome == "pass"
    assert judged.model_calls == 2  # the invoke and the judge
    sample = unjudged.cases[0].samples[0]
    assert sample.outcome == "error"
    assert "provider 'stub' has no default endpoint to judge with" in sample.assertions[0].reason
