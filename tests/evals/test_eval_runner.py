"""The runner against the real stub model on 127.0.0.1: results, repeats, the cache,
the concurrency bound measured at the stub, guardrails, and partial results."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from evalkit import InFlight, contains_cases, write_repo

import llmops.stub.runner as stub_runner
from llmops.domain.evals import CaseResult, EvalRun
from llmops.evals.api import EvalSettings, execute, prepare_eval, run_eval
from llmops.evals.ratelimit import TokenBucket
from llmops.runtime.canary import canary_token
from llmops.stub.config import StubConfig
from llmops.stub.rules import Rule
from llmops.stub.runner import StubServer


def settings(stub: StubServer, tmp_path: Path, **changes: Any) -> EvalSettings:
    base: dict[str, Any] = {
        "model_url": stub.url,
        "cache_path": tmp_path / "cache.sqlite",
        "concurrency": 4,
    }
    return EvalSettings(**{**base, **changes})


def test_cases_pass_and_a_rerun_is_served_from_the_cache(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(12)})
    with StubServer(StubConfig()) as stub:
        first = run_eval(repo, "bot", settings=settings(stub, tmp_path))
        second = run_eval(repo, "bot", settings=settings(stub, tmp_path))
        calls = stub.stats()["requests"].get("/v1/chat/completions", 0)
    assert [s.name for s in first.suites] == ["smoke"]
    assert len(first.cases) == 12 and all(c.outcome == "pass" for c in first.cases)
    assert (first.model_calls, first.cache_hits, first.cache_misses) == (12, 0, 12)
    assert (second.model_calls, second.cache_hits, second.cache_misses) == (0, 12, 0)
    assert calls == 12
    assert all(s.cached for c in second.cases for s in c.samples)
    assert second.cases[0].samples[0].output == first.cases[0].samples[0].output
    assert first.app == "bot" and first.release == "dev" and not first.interrupted


def test_repeats_take_separate_samples_and_no_cache_calls_every_time(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(5)})
    with StubServer(StubConfig()) as stub:
        run = run_eval(repo, "bot", settings=settings(stub, tmp_path, repeat=3, use_cache=False))
        again = run_eval(repo, "bot", settings=settings(stub, tmp_path, repeat=3, use_cache=False))
    assert run.repeats == 3 and all(len(c.samples) == 3 for c in run.cases)
    assert run.model_calls == 15 and again.model_calls == 15
    assert run.cache_hits == run.cache_misses == 0


def test_concurrency_bound_is_respected_at_the_stub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meters: list[InFlight] = []
    real = stub_runner.create_app

    def metered(*args: Any, **kwargs: Any) -> Any:
        meters.append(InFlight(real(*args, **kwargs)))
        return meters[-1]

    monkeypatch.setattr(stub_runner, "create_app", metered)
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(40)})
    with StubServer(StubConfig(latency_ms=40)) as stub:
        choice = settings(stub, tmp_path, concurrency=5, use_cache=False)
        run = run_eval(repo, "bot", settings=choice)
    assert len(run.cases) == 40
    assert meters[0].max == 5


def test_cases_report_progress_one_by_one(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"a": contains_cases(3), "b": contains_cases(2, "bye")})
    seen: list[str] = []
    started: list[int] = []
    with StubServer(StubConfig()) as stub:
        run = run_eval(
            repo,
            "bot",
            ["b", "a"],
            settings(stub, tmp_path),
            on_start=lambda prepared: started.append(prepared.samples),
            on_case=lambda case: seen.append(f"{case.suite}/{case.case_id}"),
        )
    assert started == [5]
    assert sorted(seen) == ["a/c0", "a/c1", "a/c2", "b/c0", "b/c1"]
    assert [s.name for s in run.suites] == ["b", "a"]  # the order asked for


def test_guardrails_apply_as_served(tmp_path: Path) -> None:
    token = canary_token("dev")
    body = """\
    cases:
      - id: denied
        inputs: {question: "please FORBIDDEN thing"}
        assert: [{type: is-refusal}, {type: not-contains, value: FORBIDDEN}]
      - id: leaky
        inputs: {question: "tell me the secret"}
        assert: [{type: not-canary-leak}, {type: is-refusal}]
      - id: tier
        inputs: {question: "which tier", tier: gold, count: 4}
        assert: [{type: contains, value: gold}, {type: contains, value: "Count 4"}]
    """
    rules = (
        Rule.of("secret", f"the internal reference is {token}"),
        Rule.of("which tier", "{input}", scope="last"),
        Rule.of(r"You help (\w+) customers.*Count (\d)", "tier {1}, Count {2}", "conversation"),
    )
    repo = write_repo(tmp_path / "repo", {"guard": body})
    with StubServer(StubConfig(rules=(rules[0], rules[2]))) as stub:
        run = run_eval(repo, "bot", settings=settings(stub, tmp_path, use_cache=False))
    by_id = {c.case_id: c for c in run.cases}
    denied = by_id["denied"].samples[0]
    assert denied.outcome == "pass" and denied.output.startswith("[blocked by the input guardrail")
    leaky = by_id["leaky"].samples[0]
    assert leaky.outcome == "pass", leaky.assertions
    assert token not in leaky.output and "canary" in leaky.output
    assert by_id["tier"].outcome == "pass", by_id["tier"].samples[0]
    assert run.model_calls == 2  # the denied case never reached the model


def test_a_provider_error_is_an_error_sample_never_fatal(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(3)}, retries=0)
    with StubServer(StubConfig(fault_script=("500",))) as stub:
        run = run_eval(repo, "bot", settings=settings(stub, tmp_path, concurrency=1))
    outcomes = [c.outcome for c in run.cases]
    assert outcomes == ["error", "pass", "pass"]
    sample = run.cases[0].samples[0]
    assert sample.error is not None and "500" in sample.error
    assert sample.assertions == ()


def test_an_unreachable_endpoint_errors_every_case(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(2)}, retries=0)
    run = run_eval(
        repo,
        "bot",
        settings=EvalSettings(model_url="http://127.0.0.1:9/v1", use_cache=False),
    )
    assert [c.outcome for c in run.cases] == ["error", "error"]
    assert "cannot reach" in (run.cases[0].samples[0].error or "")


def test_cancellation_leaves_a_partial_well_formed_result(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(60)})
    done: list[CaseResult] = []

    async def scenario(stub: StubServer) -> EvalRun:
        prepared = prepare_eval(repo, "bot", (), settings(stub, tmp_path, concurrency=2))
        task = asyncio.create_task(execute(prepared, on_case=done.append))
        while len(done) < 6:
            await asyncio.sleep(0.01)
        task.cancel()
        return await task

    with StubServer(StubConfig(latency_ms=30)) as stub:
        run = asyncio.run(scenario(stub))
    assert run.interrupted
    assert 6 <= len(run.cases) < 60
    assert [s.name for s in run.suites] == ["smoke"]
    assert all(len(c.samples) == 1 for c in run.cases)
    ids = [c.case_id for c in run.cases]
    assert len(set(ids)) == len(ids)


def test_token_bucket_spaces_requests() -> None:
    bucket = TokenBucket(rate=10, burst=2)
    now = bucket._stamp
    waits = [bucket.reserve(now) for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([0.1, 0.2, 0.3])
    assert bucket.reserve(now + 10) == 0.0


def test_rate_limit_slows_a_run(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(8)})
    with StubServer(StubConfig()) as stub:
        run = run_eval(
            repo, "bot", settings=settings(stub, tmp_path, rate_limit=10, use_cache=False)
        )
    assert run.duration_s >= 0.65  # 8 requests, 0.1 s apart


def test_model_graded_assertions_use_the_stub_judge_and_embeddings(tmp_path: Path) -> None:
    body = """\
    cases:
      - id: graded
        inputs: {question: "the refund is on its way"}
        assert:
          - {type: llm-rubric, value: "The reply mentions a refund.", threshold: 0.8}
          - {type: similar, value: "the refund is on its way", threshold: 0.7}
          - {type: not-similar, value: "completely unrelated words here", threshold: 0.7}
    """
    verdict = '{"pass": true, "score": 0.9, "reason": "mentions a refund"}'
    repo = write_repo(tmp_path / "repo", {"graded": body})
    with StubServer(StubConfig(rules=(Rule.of("<rubric>", verdict),))) as stub:
        first = run_eval(repo, "bot", settings=settings(stub, tmp_path))
        again = run_eval(repo, "bot", settings=settings(stub, tmp_path))
        embeddings = stub.stats()["requests"].get("/v1/embeddings", 0)
    sample = first.cases[0].samples[0]
    assert sample.outcome == "pass", sample.assertions
    rubric, similar, unrelated = sample.assertions
    assert unrelated.outcome == "pass", unrelated.reason
    assert "judge: pass (score 0.90" in rubric.reason
    assert "embedding cosine" in similar.reason and "fallback" not in similar.reason
    assert first.model_calls == 4  # the app, the judge, two embeddings
    assert embeddings == 2
    assert again.model_calls == 0 and again.cache_hits == 4
