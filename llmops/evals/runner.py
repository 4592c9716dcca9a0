"""The concurrent eval runner: samples of planned cases through the app's invoke path,
graded, gathered into an :class:`~llmops.domain.evals.EvalRun`.

Called by ``llmops.evals.api.run_eval``. ``concurrency`` workers pull ``(case, sample)``
items from one iterator, so at most ``concurrency`` model requests are in flight (a
judge call of ``llm-rubric`` is made by the same worker). Each sample runs the runtime's
own ``complete()`` (model, output guardrails, schema repair, PII redaction) on the
prompt the plan rendered once, through :class:`~llmops.evals.calls.RunCalls` (cache,
rate limit, counters).

Failures are data: a provider error, a timeout or a crash while grading makes that
sample an ``error`` with the reason, never a pass, never the end of the run. A request
or reply blocked by a guardrail is what the app serves, so it is graded: its output is
``[blocked by the <side> guardrail <name>]`` and ``is-refusal`` counts it as a refusal.

Interruption (Ctrl-C, or the task being cancelled) stops the workers and returns what
finished: cases whose every sample completed are in the result, the others are
**absent**, and ``interrupted`` is True so gates and reports can say the run is partial.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.domain.chat import Usage
from llmops.domain.errors import ExternalError
from llmops.domain.evals import AssertionResult, CaseResult, Outcome, Sample, SuiteResult
from llmops.evals.assertions import EmbedHook, GradeContext, JudgeHook, grade_all, grade_all_sync
from llmops.evals.calls import RunCalls
from llmops.evals.plan import PlannedCase
from llmops.runtime.errors import GuardrailBlocked
from llmops.runtime.invoke import chat_request, complete
from llmops.runtime.loaded import LoadedApp

DEFAULT_CONCURRENCY = 8
_EMPTY_USAGE = Usage()


def block_text(exc: GuardrailBlocked) -> str:
    """The output a blocked sample is graded on (the reason is kept out of it: it may
    quote the very input that tripped the guardrail)."""
    return f"[blocked by the {exc.side} guardrail {exc.guardrail}]"


def sample_outcome(results: Sequence[AssertionResult]) -> Outcome:
    """error if any assertion errored; pass if every weighted one passed (an assertion
    with weight 0 is informational and never fails a sample)."""
    outcome: Outcome = "pass"
    for result in results:
        if result.outcome == "error":
            return "error"
        if result.outcome == "fail" and result.weight > 0:
            outcome = "fail"
    return outcome


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """How a run goes: samples per case, parallel requests and the per-sample deadline
    (None: the model's timeout × attempts, plus backoff slack)."""

    repeat: int = 1
    concurrency: int = DEFAULT_CONCURRENCY
    sample_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class RunnerResult:
    suites: tuple[SuiteResult, ...]
    interrupted: bool
    duration_s: float


class EvalRunner:
    """Runs planned cases; one instance per run."""

    def __init__(
        self,
        loaded: LoadedApp,
        calls: RunCalls,
        options: RunnerOptions,
        *,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        judge: JudgeHook | None = None,
        embed: EmbedHook | None = None,
        on_case: Callable[[CaseResult], None] | None = None,
    ) -> None:
        if options.repeat < 1 or options.concurrency < 1:
            raise ValueError("repeat and concurrency must be ≥ 1")
        self.loaded = loaded
        self.calls = calls
        self.options = options
        self.on_case = on_case
        model = loaded.model
        self._timeout = options.sample_timeout or (
            model.timeout_seconds * (model.max_retries + 1) + 5.0 * model.max_retries + 5.0
        )
        self._canary = loaded.canary
        self._schema = loaded.output_schema
        self._app_dir: Path = loaded.app_dir
        self._schemas = dict(schemas or {})
        self._judge = judge
        self._embed = embed

    def prefetch(self, planned: Sequence[PlannedCase]) -> None:
        """Look every first-call reply up in the cache in one pass."""
        if self.calls.cache is None:
            return
        keys = [
            self.calls.key(chat_request(self.loaded, item.rendered.messages), sample)
            for item in planned
            if item.rendered is not None
            for sample in range(self.options.repeat)
        ]
        self.calls.prefetch(keys)

    async def run(self, planned: Sequence[PlannedCase]) -> RunnerResult:
        """Every sample of every planned case; partial (``interrupted``) when cancelled."""
        started = time.perf_counter()
        repeat = self.options.repeat
        self.prefetch(planned)
        samples: list[list[Sample | None]] = [[None] * repeat for _ in planned]
        left = [repeat] * len(planned)
        finished: list[CaseResult | None] = [None] * len(planned)
        items: Iterator[tuple[int, int]] = (
            (index, sample) for index in range(len(planned)) for sample in range(repeat)
        )

        async def worker() -> None:
            for index, sample in items:
                item = planned[index]
                samples[index][sample] = await self._sample(item, sample)
                left[index] -= 1
                if left[index] == 0:
                    done = tuple(s for s in samples[index] if s is not None)
                    finished[index] = _case_result(item, done)
                    if self.on_case is not None:
                        self.on_case(finished[index])  # type: ignore[arg-type]

        count = max(1, min(self.options.concurrency, len(planned) * repeat))
        interrupted = await run_workers(worker, count)
        return collect(planned, finished, interrupted, started)

    async def _sample(self, item: PlannedCase, sample: int) -> Sample:
        if item.problem is not None:
            return Sample("error", "", error=f"the case cannot be rendered: {item.problem}")
        usage = _EMPTY_USAGE
        latency = 0.0
        cached = False
        retries = 0
        blocked: str | None = None
        if item.blocked is not None:
            output = block_text(item.blocked)
            blocked = f"input guardrail {item.blocked.guardrail}: {item.blocked.reason}"
        else:
            assert item.rendered is not None
            view = self.calls.for_sample(sample)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._timeout):
                    result = await complete(self.loaded, view, item.rendered)
                output, usage = result.text, result.usage
            except GuardrailBlocked as exc:
                output = block_text(exc)
                usage = exc.usage or _EMPTY_USAGE
                blocked = f"{exc.side} guardrail {exc.guardrail}: {exc.reason}"
            except ExternalError as exc:
                return self._error(f"model call failed: {exc.message}", started, view.retries)
            except TimeoutError:
                why = f"no reply within {self._timeout:g}s (sample deadline)"
                return self._error(why, started, view.retries)
            except Exception as exc:  # a bug below must not end the run
                why = f"internal error: {type(exc).__name__}: {exc}"
                return self._error(why, started, view.retries)
            cached, retries = view.cached, view.retries
            latency = view.latency_ms if cached else (time.perf_counter() - started) * 1000.0
        ctx = GradeContext(
            latency_ms=latency,
            cost_usd=usage.cost_usd,
            canary=self._canary,
            output_schema=self._schema,
            app_dir=self._app_dir,
            schemas=self._schemas,
            blocked=blocked,
            judge=self._judge,
            embed=self._embed,
        )
        results = grade_all_sync(output, item.assertions, ctx)
        if results is None:
            results = await grade_all(output, item.assertions, ctx)
        return Sample(
            outcome=sample_outcome(results),
            output=output,
            assertions=results,
            latency_ms=latency,
            usage=usage,
            cached=cached,
            retries=retries,
        )

    @staticmethod
    def _error(reason: str, started: float, retries: int) -> Sample:
        return Sample(
            "error",
            "",
            latency_ms=(time.perf_counter() - started) * 1000.0,
            retries=retries,
            error=reason,
        )


def _case_result(item: PlannedCase, samples: tuple[Sample, ...]) -> CaseResult:
    case = item.case
    return CaseResult(
        suite=item.suite,
        case_id=case.id,
        samples=samples,
        required=case.required,
        weight=case.weight,
        tags=tuple(case.tags),
        inputs=case.inputs,
        description=case.description,
    )


async def run_workers(worker: Callable[[], Coroutine[Any, Any, None]], count: int) -> bool:
    """Run ``count`` copies of ``worker`` to the end; ``True`` when interrupted (Ctrl-C or
    cancelled), after every copy stopped. Shared by the local and the endpoint runner."""
    workers = [asyncio.create_task(worker()) for _ in range(count)]
    try:
        await asyncio.gather(*workers)
    except (asyncio.CancelledError, KeyboardInterrupt):
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
        return True
    return False


def collect(
    planned: Sequence[PlannedCase],
    finished: Sequence[CaseResult | None],
    interrupted: bool,
    started: float,
) -> RunnerResult:
    """The finished cases grouped by suite, in plan order."""
    suites: dict[str, list[CaseResult]] = {}
    for item, result in zip(planned, finished, strict=True):
        bucket = suites.setdefault(item.suite, [])
        if result is not None:
            bucket.append(result)
    return RunnerResult(
        tuple(SuiteResult(name, tuple(cases)) for name, cases in suites.items()),
        interrupted,
        time.perf_counter() - started,
    )
