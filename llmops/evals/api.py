"""The eval use case: run an app's suites against its model, as the runtime serves it.

Called by ``llmops.cli.eval`` (``llmops eval``), the pipeline (gates before promotion)
and ``llmops.evals.verify`` (the post-deploy check). :func:`run_eval` loads the
repository (or takes a loaded one), builds the app the way ``llmops serve`` does
(``llmops.runtime.loaded``: same templates, built-ins, guardrails, model settings with
environment overrides and ``--model-url``), loads every case (datasets included),
renders each once, opens the response cache, and runs the samples with bounded
concurrency. It returns an :class:`~llmops.domain.evals.EvalRun`; failures of single
cases are inside it, and only a run that cannot start raises.

With ``EvalSettings.endpoint`` the app is not run here: every case's inputs go to the
app served at that URL (``llmops.evals.remote``), nothing is rendered or cached locally,
and the run's ``release`` is the one the endpoint serves. The local app is still loaded
for its suites, schemas and the judge of model-graded assertions (``judge_url``, or the
app's model as configured, ``--env`` overrides included).
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops.domain.errors import Permanent, UsageError
from llmops.domain.evals import CaseResult, EvalRun
from llmops.domain.models.app import DEFAULT_BASE_URLS
from llmops.domain.models.evalsuite import Case
from llmops.domain.repo import AppSource, Repo
from llmops.evals.assertions import EmbedHook, JudgeHook
from llmops.evals.assertions.model_graded import JUDGE_SYSTEM
from llmops.evals.cache import DEFAULT_CACHE_PATH, EvalCache
from llmops.evals.calls import RunCalls, judge_request
from llmops.evals.datasets import suite_cases
from llmops.evals.plan import PlannedCase, plan_cases, schema_files
from llmops.evals.ratelimit import RateLimits
from llmops.evals.remote import RemoteOptions, RemoteRunner, remote_cases, served_release
from llmops.evals.runner import DEFAULT_CONCURRENCY, EvalRunner, RunnerOptions
from llmops.runtime.loaded import LoadedApp, find_app, load_app
from llmops.runtime.provider import ModelProvider

#: Embedding model for ``similar`` when none is given (the stub accepts its own name).
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"


@dataclass(frozen=True, slots=True)
class EvalSettings:
    """Everything about how to run, besides which app and suites."""

    environment: str | None = None
    repeat: int = 1
    concurrency: int = DEFAULT_CONCURRENCY
    use_cache: bool = True
    model_url: str | None = None
    cache_path: Path | None = None
    rate_limit: float | None = None
    judge_model: str | None = None
    embedding_model: str | None = None
    sample_timeout: float | None = None
    #: evaluate the app served at this runtime URL (its invoke endpoint) instead of
    #: calling the model here; excludes ``model_url``
    endpoint: str | None = None
    #: where judge and embedding calls go (default: the app's model endpoint)
    judge_url: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedEval:
    """A run ready to start: the app, its planned cases and the schema files they use."""

    repo: Repo
    loaded: LoadedApp
    suites: tuple[str, ...]
    planned: tuple[PlannedCase, ...]
    schemas: dict[str, Mapping[str, Any]]
    settings: EvalSettings
    #: why model-graded assertions have no model to call (an endpoint run of an app
    #: whose model has no endpoint here), else None
    judge_problem: str | None = None

    @property
    def samples(self) -> int:
        return len(self.planned) * self.settings.repeat


def load_repo(path: str | Path) -> Repo:
    """The validated repository at ``path`` (``ManifestInvalid`` with every diagnostic)."""
    from llmops.manifests.repository import load_repo as load

    return load(Path(path))


def prepare_eval(
    repo: Repo | str | Path,
    app: str,
    suites: Sequence[str] = (),
    settings: EvalSettings | None = None,
) -> PreparedEval:
    """Load, select, render: everything before the first model call.

    Raises ``UsageError`` (unknown app, suite or environment), ``InvalidInput`` (a
    dataset or schema file is wrong, with file:line) or ``Permanent`` (no API key).
    """
    settings = settings or EvalSettings()
    if settings.repeat < 1 or settings.concurrency < 1:
        raise UsageError("--repeat and --concurrency must be at least 1")
    if settings.endpoint is not None:
        _check_endpoint(settings)
    loaded_repo = repo if isinstance(repo, Repo) else load_repo(repo)
    source = find_app(loaded_repo, app)
    remote = settings.endpoint is not None
    model_url, judge_problem = settings.model_url, None
    if remote and settings.judge_url is not None:
        model_url = settings.judge_url  # the app's model is only the judge here
    elif remote and not _has_model_endpoint(loaded_repo, source, settings.environment):
        # ... and without an endpoint nothing can judge.
        model_url = _NO_MODEL_URL
        judge_problem = (
            f"app {app!r}: provider {source.app.spec.model.provider!r} has no default endpoint "
            "to judge with; set spec.model.baseUrl or an environment override (--env)"
        )
    loaded = load_app(loaded_repo, app, environment=settings.environment, model_url=model_url)
    if loaded.model.api_key_problem and settings.model_url is None and not remote:
        raise Permanent(
            f"{loaded.model.api_key_problem} (app {app!r} needs it to call "
            f"{loaded.model.base_url}); or point the eval at another endpoint with --model-url"
        )
    pairs = zip(source.app.spec.evals, source.suites, strict=False)
    by_name = {suite.name: (rel, suite) for rel, suite in pairs}
    chosen = list(dict.fromkeys(suites)) or list(by_name)
    for name in chosen:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(
                f"app {app!r} has no suite {name!r}{hint} (suites: {', '.join(by_name) or 'none'})"
            )
    declared = source.app.spec.prompt.inputs
    selected: list[tuple[str, Sequence[Case]]] = []
    for name in chosen:
        rel, suite_source = by_name[name]
        cases = suite_cases(
            suite_source.suite, loaded.app_dir / rel, declared, display=suite_source.file
        )
        selected.append((name, cases))
    planned = remote_cases(selected) if remote else plan_cases(loaded, selected)
    schemas = schema_files(loaded, planned, source.dir)
    return PreparedEval(
        loaded_repo, loaded, tuple(chosen), tuple(planned), dict(schemas), settings,
        judge_problem,
    )


#: the model URL of an endpoint run whose app names no model endpoint; never called
_NO_MODEL_URL = "http://127.0.0.1:9/v1"


def _has_model_endpoint(repo: Repo, source: AppSource, environment: str | None) -> bool:
    """Whether the app's model has an endpoint (its own, an override, the provider's)."""
    spec = source.app.spec.model
    if spec.base_url or spec.provider in DEFAULT_BASE_URLS:
        return True
    env = repo.environments.get(environment) if environment is not None else None
    override = env.environment.spec.overrides.get(source.name) if env is not None else None
    return bool(override is not None and override.model is not None and override.model.base_url)


def _check_endpoint(settings: EvalSettings) -> None:
    from llmops.adapters.invoke_client import endpoint_problem

    assert settings.endpoint is not None
    if settings.model_url is not None:
        raise UsageError(
            "--endpoint and --model-url exclude each other: --endpoint evaluates the app "
            "served at that URL (its model is whatever that deployment uses), --model-url "
            "runs the app here against another model"
        )
    problem = endpoint_problem(settings.endpoint)
    if problem is not None:
        raise UsageError(
            f"--endpoint {settings.endpoint!r}: {problem}; give the runtime's root URL, "
            "e.g. http://127.0.0.1:8080"
        )


def _client(loaded: LoadedApp, concurrency: int) -> ModelProvider:
    from llmops.adapters.openai_client import OpenAIClient
    from llmops.runtime.pricing import PriceTable

    pricing = loaded.model.pricing
    table = PriceTable({loaded.model.name: pricing} if pricing is not None else {})
    return OpenAIClient(
        pricer=table,
        max_connections=max(concurrency, 10),
        retry_after_cap=5.0,
        backoff_cap=2.0,
    )


def _hooks(prepared: PreparedEval, calls: RunCalls) -> tuple[JudgeHook, EmbedHook]:
    model = prepared.loaded.model
    settings = prepared.settings
    base_url = settings.judge_url or model.base_url
    judge_name = settings.judge_model or model.name
    embed_name = settings.embedding_model or (
        model.name
        if model.provider == "stub" or settings.model_url or settings.judge_url
        else DEFAULT_EMBEDDING_MODEL
    )

    problem = prepared.judge_problem

    async def judge(prompt: str) -> str:
        if problem is not None:
            raise Permanent(problem)
        request = judge_request(
            base_url, judge_name, JUDGE_SYSTEM, prompt, {"temperature": 0},
            model.timeout_seconds, model.max_retries,
        )
        response, _ = await calls.complete(request, model.api_key)
        return response.content

    async def embed(texts: list[str]) -> list[list[float]]:
        if problem is not None:
            raise Permanent(problem)
        return await calls.embed(base_url, embed_name, texts, model.api_key)

    return judge, embed


async def execute(
    prepared: PreparedEval,
    *,
    provider: ModelProvider | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
) -> EvalRun:
    """Run a prepared eval in the current event loop; partial (``interrupted``) when
    cancelled. ``provider`` replaces the pooled OpenAI-compatible client (tests); with
    an endpoint it serves the judge only."""
    settings = prepared.settings
    if settings.endpoint is not None:
        return await _execute_remote(prepared, settings.endpoint, provider, on_case)
    loaded = prepared.loaded
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    cache: EvalCache | None = None
    if settings.use_cache:
        path = settings.cache_path or Path(prepared.repo.root) / DEFAULT_CACHE_PATH
        cache = EvalCache(path)
    own = provider is None

    def build() -> ModelProvider:
        return _client(loaded, settings.concurrency)

    source = provider if provider is not None else build
    calls = RunCalls(source, loaded.model.provider, cache, RateLimits(settings.rate_limit))
    judge, embed = _hooks(prepared, calls)
    runner = EvalRunner(
        loaded,
        calls,
        RunnerOptions(settings.repeat, settings.concurrency, settings.sample_timeout),
        schemas=prepared.schemas,
        judge=judge,
        embed=embed,
        on_case=on_case,
    )
    try:
        result = await runner.run(prepared.planned)
    finally:
        opened = calls.opened
        if own and opened is not None:
            await asyncio.shield(opened.aclose())
        if cache is not None:
            cache.close()
    return EvalRun(
        app=loaded.name,
        release=loaded.release,
        suites=result.suites,
        model=loaded.model.name,
        environment=settings.environment,
        started_at=started_at,
        duration_s=result.duration_s,
        repeats=settings.repeat,
        model_calls=calls.model_calls,
        cache_hits=calls.cache_hits,
        cache_misses=calls.cache_misses,
        retries=calls.retries,
        interrupted=result.interrupted,
    )


def remote_timeout(loaded: LoadedApp) -> float:
    """The deadline of one invoke request: the runtime's own model retries and backoff,
    times the schema repair call, plus slack."""
    model = loaded.model
    one = model.timeout_seconds * (model.max_retries + 1) + 5.0 * model.max_retries
    return one * (1 + loaded.output.repair_retries) + 5.0


async def _execute_remote(
    prepared: PreparedEval,
    endpoint: str,
    provider: ModelProvider | None,
    on_case: Callable[[CaseResult], None] | None,
) -> EvalRun:
    from llmops.adapters.invoke_client import InvokeClient

    settings = prepared.settings
    loaded = prepared.loaded
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    timeout = settings.sample_timeout or remote_timeout(loaded)
    client = InvokeClient(endpoint, max_connections=settings.concurrency, timeout=timeout)
    own = provider is None

    def build() -> ModelProvider:
        return _client(loaded, settings.concurrency)

    calls = RunCalls(
        provider if provider is not None else build,
        loaded.model.provider,
        None,
        RateLimits(settings.rate_limit),
    )
    judge, embed = _hooks(prepared, calls)
    try:
        release = await served_release(client, loaded.name)
        runner = RemoteRunner(
            client,
            loaded.name,
            RemoteOptions(settings.repeat, settings.concurrency, timeout, settings.rate_limit),
            release=release,
            output_schema=loaded.output_schema,
            app_dir=loaded.app_dir,
            schemas=prepared.schemas,
            judge=judge,
            embed=embed,
            on_case=on_case,
        )
        result = await runner.run(prepared.planned)
    finally:
        await asyncio.shield(client.aclose())
        opened = calls.opened
        if own and opened is not None:
            await asyncio.shield(opened.aclose())
    return EvalRun(
        app=loaded.name,
        release=release or "unknown",
        suites=result.suites,
        model=client.base_url,
        environment=settings.environment,
        started_at=started_at,
        duration_s=result.duration_s,
        repeats=settings.repeat,
        model_calls=runner.requests + calls.model_calls,
        retries=runner.retries + calls.retries,
        interrupted=result.interrupted,
    )


def run_eval(
    repo: Repo | str | Path,
    app: str,
    suites: Sequence[str] = (),
    settings: EvalSettings | None = None,
    *,
    provider: ModelProvider | None = None,
    on_start: Callable[[PreparedEval], None] | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
) -> EvalRun:
    """Run ``app``'s ``suites`` (all when empty) and return the run.

    Blocking: starts its own event loop (uvloop when installed). Ctrl-C during the run
    returns the partial result with ``interrupted=True``; a second Ctrl-C aborts.
    """
    prepared = prepare_eval(repo, app, suites, settings)
    if on_start is not None:
        on_start(prepared)
    return run_prepared(prepared, provider=provider, on_case=on_case)


def run_prepared(
    prepared: PreparedEval,
    *,
    provider: ModelProvider | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
) -> EvalRun:
    """:func:`execute` in a new event loop (uvloop when installed)."""
    done: list[EvalRun] = []

    async def main() -> None:
        # The run is handed back through ``done``, not as the task's result: on the way
        # out asyncio.Runner restores the SIGINT handler, and signal.signal() formats
        # the old handler (which holds the task, and so its result) with repr().
        done.append(await execute(prepared, provider=provider, on_case=on_case))

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())
    return done[0]


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
