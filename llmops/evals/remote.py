"""Evals against a served app: each case's inputs go to the running release's
``POST /v1/apps/<app>/invoke`` and the case's assertions grade what it answered.

Called by ``llmops.evals.api`` when ``EvalSettings.endpoint`` is set (``llmops eval APP
--endpoint URL``, and ``llmops.evals.verify``, the post-deploy check of a blue/green
deploy). The local runner (``llmops.evals.runner``) renders prompts and calls the model
itself; here the deployment does all of that (inputs, guardrails, templates, model,
schema repair, PII redaction) and only grading happens in this process.

Same semantics as the local runner, sample for sample:

* a 2xx answer is graded on its ``output``: the text, or for an app with an output
  schema the JSON the runtime returns, serialised compactly exactly as the runtime's
  ``complete()`` text is (so ``is-json``/``json-path`` see the same string);
* a guardrail block (HTTP 400 for the input side, 502 for the output side, body type
  ``guardrail``) is what the app serves, so it is graded: its output is
  ``[blocked by the <side> guardrail <name>]`` and ``is-refusal`` counts it as a
  refusal, with the guardrail's reason in the assertion's reason;
* inputs the runtime rejects (400 ``invalid_request``/``render``), an upstream failure
  (5xx ``upstream``), an endpoint that cannot be reached mid-run, a timeout, or any
  other answer make the sample an ``error`` with the reason: never a pass;
* ``canary-leak`` uses the canary token of the release that answered (every reply says
  which release served it; a block reply does not, so the release found before the run
  is used); ``latency`` is the round trip measured here; ``cost`` is the runtime's.

No eval cache: the point is to exercise the running release, and a reply cached under
a key computed here (the URL, the inputs) would pass without reaching it; what answers
behind a URL is not a function of anything this process can hash (the release may
change, environment overrides are invisible). Judge and embedding calls of model-graded
assertions still go to the model configured for the run (``llmops.evals.calls``).

Concurrency: ``concurrency`` workers pull ``(case, sample)`` items, so at most that many
invoke requests are in flight (the client's pool is sized to match). Interruption
returns the finished cases with ``interrupted`` set, as the local runner does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmops.domain.errors import ExternalError, Retryable, UsageError
from llmops.domain.evals import CaseResult, Sample
from llmops.domain.models.evalsuite import Case
from llmops.evals.assertions import EmbedHook, GradeContext, JudgeHook, grade_all, grade_all_sync
from llmops.evals.plan import PlannedCase
from llmops.evals.ratelimit import RateLimits
from llmops.evals.runner import (
    DEFAULT_CONCURRENCY,
    RunnerResult,
    block_text,
    collect,
    run_workers,
    sample_outcome,
)
from llmops.runtime.canary import canary_token
from llmops.runtime.errors import GuardrailBlocked, Side

if TYPE_CHECKING:  # the adapter (and aiohttp) is imported when a run starts
    from llmops.adapters.invoke_client import InvokeReply


class Invoker(Protocol):
    """What the remote runner needs of an HTTP client (``InvokeClient``)."""

    base_url: str

    async def apps(self) -> dict[str, str | None]: ...

    async def invoke(
        self, app: str, inputs: dict[str, Any], *, timeout: float | None = None
    ) -> InvokeReply: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RemoteOptions:
    """Samples per case, invoke requests in flight, the per-request deadline and the
    request rate (per second, None for no limit)."""

    repeat: int = 1
    concurrency: int = DEFAULT_CONCURRENCY
    sample_timeout: float = 60.0
    rate_limit: float | None = None


def remote_cases(suites: Sequence[tuple[str, Sequence[Case]]]) -> list[PlannedCase]:
    """Every case of ``suites`` in order, unrendered: the endpoint renders them."""
    return [
        PlannedCase(name, case, tuple(case.assert_), None)
        for name, cases in suites
        for case in cases
    ]


async def served_release(client: Invoker, app: str) -> str | None:
    """The release ``app`` runs at the client's endpoint, checked before a run.

    Raises ``ExternalError`` ("cannot reach …") when nothing answers, and ``UsageError``
    when the endpoint serves other apps only."""
    try:
        apps = await client.apps()
    except Retryable as exc:
        raise Retryable(
            f"{exc.message}; check the URL and that {app} is running there", exc.delay
        ) from exc
    if app not in apps:
        listed = ", ".join(sorted(apps)) or "none"
        raise UsageError(
            f"the endpoint {client.base_url} does not serve app {app!r} (it serves: {listed})"
        )
    return apps[app]


def reply_text(output: Any) -> str:
    """What a reply is graded on: text as is, JSON as the runtime serialises it."""
    if isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, separators=(",", ":"))


class RemoteRunner:
    """Runs planned cases against one app at one endpoint; one instance per run.

    ``release`` is the release found before the run (its canary grades block replies);
    afterwards ``releases`` holds every release that answered, ``requests`` the invoke
    requests sent and ``retries`` the connection retries."""

    def __init__(
        self,
        client: Invoker,
        app: str,
        options: RemoteOptions,
        *,
        release: str | None = None,
        output_schema: Mapping[str, Any] | None = None,
        app_dir: Path | None = None,
        schemas: Mapping[str, Mapping[str, Any]] | None = None,
        judge: JudgeHook | None = None,
        embed: EmbedHook | None = None,
        on_case: Callable[[CaseResult], None] | None = None,
    ) -> None:
        if options.repeat < 1 or options.concurrency < 1:
            raise ValueError("repeat and concurrency must be ≥ 1")
        self.client = client
        self.app = app
        self.options = options
        self.release = release
        self.on_case = on_case
        self._schema = output_schema
        self._app_dir = app_dir
        self._schemas = dict(schemas or {})
        self._judge = judge
        self._embed = embed
        self._limits = RateLimits(options.rate_limit)
        self.releases: set[str] = set()
        self.requests = 0
        self.retries = 0

    async def run(self, planned: Sequence[PlannedCase]) -> RunnerResult:
        """Every sample of every planned case; partial (``interrupted``) when cancelled."""
        started = time.perf_counter()
        repeat = self.options.repeat
        samples: list[list[Sample | None]] = [[None] * repeat for _ in planned]
        left = [repeat] * len(planned)
        finished: list[CaseResult | None] = [None] * len(planned)
        items: Iterator[tuple[int, int]] = (
            (index, sample) for index in range(len(planned)) for sample in range(repeat)
        )

        async def worker() -> None:
            for index, sample in items:
                item = planned[index]
                samples[index][sample] = await self._sample(item)
                left[index] -= 1
                if left[index] == 0:
                    done = tuple(s for s in samples[index] if s is not None)
                    result = _case_result(item, done)
                    finished[index] = result
                    if self.on_case is not None:
                        self.on_case(result)

        count = max(1, min(self.options.concurrency, len(planned) * repeat))
        interrupted = await run_workers(worker, count)
        return collect(planned, finished, interrupted, started)

    async def _sample(self, item: PlannedCase) -> Sample:
        bucket = self._limits.bucket(self.client.base_url)
        if bucket is not None:
            await bucket.acquire()
        self.requests += 1
        started = time.perf_counter()
        timeout = self.options.sample_timeout
        try:
            reply = await self.client.invoke(self.app, dict(item.case.inputs), timeout=timeout)
        except ExternalError as exc:
            return _error(f"invoke failed: {exc.message}", started)
        except TimeoutError:
            return _error(f"no reply within {timeout:g}s (sample deadline)", started)
        except Exception as exc:  # a bug below must not end the run
            return _error(f"internal error: {type(exc).__name__}: {exc}", started)
        self.retries += reply.retries
        blocked: str | None = None
        release = self.release
        if reply.ok:
            output = reply_text(reply.output)
            if reply.release is not None:
                self.releases.add(reply.release)
                release = reply.release
        elif reply.blocked:
            assert reply.guardrail is not None
            side: Side = "input" if reply.side == "input" else "output"
            output = block_text(GuardrailBlocked(side, reply.guardrail, reply.message))
            blocked = f"{side} guardrail {reply.guardrail}: {reply.message}"
        else:
            return _error(_refusal_reason(reply), started, reply.latency_ms, reply.retries)
        ctx = GradeContext(
            latency_ms=reply.latency_ms,
            cost_usd=reply.usage.cost_usd,
            canary=canary_token(release) if release else None,
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
            latency_ms=reply.latency_ms,
            usage=reply.usage,
            retries=reply.retries,
        )


def _refusal_reason(reply: InvokeReply) -> str:
    """Why a non-2xx, non-guardrail answer has no verdict, for people."""
    kind = reply.error_type or "error"
    said = f": {reply.message}" if reply.message else ""
    if reply.status in (400, 422) and kind in ("invalid_request", "render"):
        return f"the endpoint rejected the case's inputs ({reply.status} {kind}){said}"
    if kind == "upstream":
        return f"the app's model call failed at the endpoint ({reply.status}){said}"
    return f"the endpoint answered {reply.status} {kind}{said}"


def _error(
    reason: str, started: float, latency_ms: float | None = None, retries: int = 0
) -> Sample:
    took = latency_ms if latency_ms is not None else (time.perf_counter() - started) * 1000.0
    return Sample("error", "", latency_ms=took, retries=retries, error=reason)


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
