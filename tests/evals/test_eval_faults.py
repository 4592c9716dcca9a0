"""Faults: with 20% of model calls failing (429, 500, timeouts, malformed and truncated
bodies) every case still ends, errors are errors, retries are counted, and nothing that
failed is cached."""

from __future__ import annotations

import asyncio
from pathlib import Path

from evalkit import contains_cases, write_repo

from llmops.adapters.openai_client import OpenAIClient
from llmops.evals.api import EvalSettings, execute, prepare_eval
from llmops.stub.config import StubConfig, spread_faults
from llmops.stub.runner import StubServer

CASES = 150


def fast_client() -> OpenAIClient:
    return OpenAIClient(backoff_base=0.005, backoff_cap=0.02, retry_after_cap=0.02, seed=1)


def run(repo: Path, stub: StubServer, cache: Path, use_cache: bool = True):  # type: ignore[no-untyped-def]
    prepared = prepare_eval(
        repo,
        "bot",
        (),
        EvalSettings(model_url=stub.url, cache_path=cache, concurrency=10, use_cache=use_cache),
    )

    async def go():  # type: ignore[no-untyped-def]
        client = fast_client()
        try:
            return await execute(prepared, provider=client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_twenty_percent_faults(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(CASES)}, timeout=2.0, retries=1)
    faults = spread_faults(0.2, ("429", "500", "timeout", "malformed", "truncate"))
    config = StubConfig(faults=faults, seed=7, retry_after_seconds=0.01, hang_seconds=4.0)
    cache = tmp_path / "cache.sqlite"
    with StubServer(config) as stub:
        first = run(repo, stub, cache)
        stats = stub.stats()
    assert len(first.cases) == CASES and not first.interrupted
    outcomes = {c.outcome for c in first.cases}
    assert outcomes <= {"pass", "error"}  # a failed call is never a pass nor a fail
    errored = [c for c in first.cases if c.outcome == "error"]
    for case in errored:
        sample = case.samples[0]
        assert sample.error and sample.error.startswith("model call failed")
        assert sample.output == "" and sample.assertions == ()
    assert first.retries > 0
    assert first.retries == sum(s.retries for c in first.cases for s in c.samples)
    # every attempt is counted: each injected fault was retried or ended its case as an
    # error (on a busy machine a slow healthy reply may time out too, hence <=)
    assert stats["requests"]["/v1/chat/completions"] == first.model_calls + first.retries
    assert stats["total_faults"] <= first.retries + len(errored)
    assert stats["total_faults"] >= 0.1 * first.model_calls
    kinds = set(stats["faults"])
    assert {"429", "500", "timeout", "malformed"} <= kinds

    # errors were not cached: a clean rerun calls the model only for them
    with StubServer(StubConfig(), port=stub.port) as clean:  # same URL, same cache keys
        second = run(repo, clean, cache)
    assert second.model_calls == len(errored)
    assert second.cache_hits == CASES - len(errored)
    assert all(c.outcome == "pass" for c in second.cases)


def test_exhausted_retries_are_errors_with_the_reason(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"smoke": contains_cases(3)}, timeout=0.3, retries=1)
    config = StubConfig(fault_script=("429", "429", "malformed", None), retry_after_seconds=0.01)
    with StubServer(config) as stub:
        prepared = prepare_eval(
            repo, "bot", (), EvalSettings(model_url=stub.url, use_cache=False, concurrency=1)
        )

        async def go():  # type: ignore[no-untyped-def]
            client = fast_client()
            try:
                return await execute(prepared, provider=client)
            finally:
                await client.aclose()

        result = asyncio.run(go())
    first, second, third = result.cases
    assert first.outcome == "error" and first.samples[0].retries == 1
    assert "429" in (first.samples[0].error or "") and "gave up after 1 retry" in (
        first.samples[0].error or ""
    )
    assert second.outcome == "pass" and second.samples[0].retries == 1
    assert third.outcome == "pass" and third.samples[0].retries == 0
    assert result.retries == 2
