"""The HTTP server of ``llmops serve`` (Starlette on uvicorn); built by
``llmops.runtime.serving`` and by tests.

Routes: ``POST /v1/apps/{app}/invoke``, ``POST /v1/chat/completions`` (OpenAI-compatible,
``stream: true`` as server-sent events), ``GET /v1/models``, ``GET /healthz``,
``GET /readyz``, ``GET /metrics``. One pure-ASGI middleware gives every request an id
(``x-request-id``, honoured or generated), counts it in ``/metrics`` and writes one JSON
log line. Status codes are listed in ``llmops.runtime.httpio``; a client's input never
causes a 500.

Apps are held in :class:`AppSlot` objects; the reloader swaps a slot's ``LoadedApp`` in
one assignment, so a request sees either the old or the new version, never a mix.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmops.domain.chat import Usage
from llmops.domain.errors import ExternalError
from llmops.runtime import invoke as pipeline
from llmops.runtime.chatcompat import chat_inputs, chunk, completion, parse_chat
from llmops.runtime.errors import GuardrailBlocked
from llmops.runtime.httpio import MAX_BODY_BYTES, HttpProblem, problem_for, read_json
from llmops.runtime.loaded import LoadedApp
from llmops.runtime.logs import JsonLogger
from llmops.runtime.metrics import RuntimeMetrics
from llmops.runtime.observe import INFO_KEY, STARTED_KEY, Observe, RequestInfo
from llmops.runtime.provider import ModelProvider

_DETAILED_ERRORS = frozenset({"upstream", "render", "internal"})


class ReadinessProbe(Protocol):
    """Checks that a model backend answers (``llmops.adapters.probe.ModelProbe``)."""

    async def check(self, base_url: str, api_key: str | None) -> str | None: ...

    async def aclose(self) -> None: ...


class AppSlot:
    """The current version of one served app; replaced whole by the reloader."""

    def __init__(self, loaded: LoadedApp) -> None:
        self.current = loaded

    def swap(self, loaded: LoadedApp) -> None:
        self.current = loaded


@dataclass
class ServerOptions:
    """Limits and cache times of the server."""

    max_body_bytes: int = MAX_BODY_BYTES
    ready_cache_seconds: float = 5.0


@dataclass
class Gateway:
    """The server's state: the apps, the model provider, metrics and the log."""

    slots: Mapping[str, AppSlot]
    provider_factory: Callable[[], ModelProvider]
    probe_factory: Callable[[], ReadinessProbe] | None = None
    metrics: RuntimeMetrics = field(default_factory=RuntimeMetrics)
    logger: JsonLogger = field(default_factory=JsonLogger)
    options: ServerOptions = field(default_factory=ServerOptions)
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    provider: ModelProvider | None = None
    probe: ReadinessProbe | None = None
    _ready_cache: dict[str, tuple[float, str | None]] = field(default_factory=dict)

    # -- bookkeeping -------------------------------------------------------------------

    def _app(self, name: str, info: RequestInfo) -> LoadedApp:
        slot = self.slots.get(name)
        if slot is None:
            known = ", ".join(sorted(self.slots)) or "none"
            raise HttpProblem(
                404,
                "not_found",
                f"no app named {name!r} is served here (apps: {known})",
                code="model_not_found",
            )
        loaded = slot.current
        info.app, info.release = loaded.name, loaded.release
        return loaded

    def _provider(self) -> ModelProvider:
        assert self.provider is not None, "the server's lifespan did not start"
        return self.provider

    def record_usage(
        self, loaded: LoadedApp, usage: Usage | None, upstream_ms: float | None
    ) -> None:
        labels = (loaded.name, loaded.release)
        if usage is not None:
            self.metrics.tokens.inc((*labels, "in"), usage.prompt_tokens)
            self.metrics.tokens.inc((*labels, "out"), usage.completion_tokens)
            self.metrics.cost.inc(labels, usage.cost_usd)
        if upstream_ms is not None:
            self.metrics.upstream_latency.observe(labels, upstream_ms / 1000.0)

    def record_redactions(self, loaded: LoadedApp, redactions: Mapping[str, int]) -> None:
        for kind, count in redactions.items():
            self.metrics.redactions.inc((loaded.name, loaded.release, kind), count)

    def failure(self, exc: Exception, info: RequestInfo, loaded: LoadedApp | None) -> HttpProblem:
        """Map ``exc`` to its answer and count it; re-raise what is not ours (a bug)."""
        problem = problem_for(exc, loaded.model.api_key if loaded else None)
        if problem is None:
            raise exc
        info.error = problem.code or problem.type
        if problem.type in _DETAILED_ERRORS:
            info.detail = problem.message
        if loaded is not None:
            labels = (loaded.name, loaded.release)
            if isinstance(exc, GuardrailBlocked):
                info.guardrail = exc.guardrail
                self.metrics.guardrail_blocks.inc((*labels, exc.guardrail, exc.side))
                self.record_usage(loaded, exc.usage, None)
            elif isinstance(exc, ExternalError):
                reason = (problem.code or "upstream").removeprefix("upstream_")
                self.metrics.upstream_errors.inc((*labels, reason))
        return problem

    # -- endpoints ---------------------------------------------------------------------

    async def invoke(self, request: Request) -> Response:
        info: RequestInfo = request.scope[INFO_KEY]
        info.route = "invoke"
        loaded: LoadedApp | None = None
        try:
            loaded = self._app(request.path_params["app"], info)
            body = await read_json(request, self.options.max_body_bytes)
            extra = sorted(set(body) - {"inputs"})
            if extra:
                raise HttpProblem(
                    400,
                    "invalid_request",
                    f'unknown field(s) {", ".join(extra)}; send {{"inputs": {{...}}}}',
                )
            inputs = body.get("inputs", {})
            if not isinstance(inputs, dict):
                raise HttpProblem(
                    400, "invalid_request", "'inputs' must be an object", param="inputs"
                )
            result = await pipeline.invoke(loaded, self._provider(), inputs)
        except Exception as exc:  # mapped, or re-raised by failure() when it is a bug
            return self.failure(exc, info, loaded).response()
        info.usage, info.upstream_ms = result.usage, result.upstream_ms
        self.record_usage(loaded, result.usage, result.upstream_ms)
        self.record_redactions(loaded, result.redactions)
        usage = result.usage
        return JSONResponse(
            {
                "output": result.output,
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                    "cost_usd": usage.cost_usd,
                },
                "release": loaded.release,
                "latency_ms": round((time.perf_counter() - request.scope[STARTED_KEY]) * 1000, 3),
                "request_id": info.request_id,
            }
        )

    async def chat(self, request: Request) -> Response:
        info: RequestInfo = request.scope[INFO_KEY]
        info.route = "chat"
        loaded: LoadedApp | None = None
        try:
            call = parse_chat(await read_json(request, self.options.max_body_bytes))
            info.stream = call.stream
            loaded = self._app(call.model, info)
            inputs = chat_inputs(call, loaded.app.spec.prompt.inputs)
            if call.stream:
                return await self._chat_stream(loaded, inputs, call.include_usage, info)
            result = await pipeline.invoke(loaded, self._provider(), inputs)
        except Exception as exc:
            return self.failure(exc, info, loaded).response()
        info.usage, info.upstream_ms = result.usage, result.upstream_ms
        self.record_usage(loaded, result.usage, result.upstream_ms)
        self.record_redactions(loaded, result.redactions)
        return JSONResponse(
            completion(
                info.request_id,
                loaded.name,
                result.text,
                result.finish_reason,
                result.usage,
                loaded.release,
            )
        )

    async def _chat_stream(
        self, loaded: LoadedApp, inputs: dict[str, Any], include_usage: bool, info: RequestInfo
    ) -> Response:
        rendered = pipeline.prepare(loaded, inputs)
        outcome = pipeline.StreamOutcome()
        pieces = pipeline.stream(loaded, self._provider(), rendered, outcome)
        # Wait for the first piece before answering, so a failure up to here still gets
        # its proper status code instead of an error event in a 200 stream.
        try:
            first: str | None = await anext(pieces)
        except StopAsyncIteration:
            first = None
        except BaseException:
            await pieces.aclose()
            self.record_usage(loaded, outcome.usage, outcome.upstream_ms)
            raise
        created = int(time.time())

        def event(
            delta: dict[str, Any] | None, finish: str | None = None, usage: Usage | None = None
        ) -> bytes:
            payload = chunk(
                info.request_id, loaded.name, created, loaded.release, delta, finish, usage
            )
            return (
                b"data: "
                + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
                + b"\n\n"
            )

        async def events() -> AsyncIterator[bytes]:
            try:
                yield event({"role": "assistant", "content": ""})
                if first:
                    yield event({"content": first})
                async for piece in pieces:
                    yield event({"content": piece})
                yield event({}, outcome.finish_reason or "stop")
                if include_usage:
                    yield event(None, usage=outcome.usage)
                yield b"data: [DONE]\n\n"
            except Exception as exc:
                problem = self.failure(exc, info, loaded)
                yield b"data: " + json.dumps(problem.body(), ensure_ascii=False).encode() + b"\n\n"
            finally:
                await pieces.aclose()
                info.usage, info.upstream_ms = outcome.usage, outcome.upstream_ms
                self.record_usage(loaded, outcome.usage, outcome.upstream_ms)
                self.record_redactions(loaded, outcome.redactions)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def models(self, request: Request) -> Response:
        request.scope[INFO_KEY].route = "models"
        data = [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "llmops",
                "release": slot.current.release,
            }
            for name, slot in sorted(self.slots.items())
        ]
        return JSONResponse({"object": "list", "data": data})

    async def healthz(self, request: Request) -> Response:
        request.scope[INFO_KEY].route = "healthz"
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        request.scope[INFO_KEY].route = "readyz"
        apps: dict[str, dict[str, Any]] = {}
        for name, slot in sorted(self.slots.items()):
            loaded = slot.current
            reason = await self._ready(loaded)
            entry: dict[str, Any] = {
                "ready": reason is None,
                "release": loaded.release,
                "model": loaded.model.name,
            }
            if reason is not None:
                entry["reason"] = reason
            apps[name] = entry
        ready = all(entry["ready"] for entry in apps.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "apps": apps},
            status_code=200 if ready else 503,
        )

    async def _ready(self, loaded: LoadedApp) -> str | None:
        if self.probe is None:
            return None
        key = loaded.model.base_url
        cached = self._ready_cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        reason = await self.probe.check(key, loaded.model.api_key)
        self._ready_cache[key] = (now + self.options.ready_cache_seconds, reason)
        return reason

    async def metrics_text(self, request: Request) -> Response:
        request.scope[INFO_KEY].route = "metrics"
        return Response(
            self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    info: RequestInfo | None = request.scope.get(INFO_KEY)
    kinds = {404: "not_found", 405: "method_not_allowed"}
    kind = kinds.get(exc.status_code, "invalid_request")
    if info is not None:
        info.error = kind
    message = {
        404: f"no route for {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return HttpProblem(exc.status_code, kind, message, headers=dict(exc.headers or {})).response()


def create_app(gateway: Gateway) -> Starlette:
    """The ASGI application for ``gateway``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gateway.provider = gateway.provider_factory()
        gateway.probe = gateway.probe_factory() if gateway.probe_factory else None
        for name, slot in gateway.slots.items():
            loaded = slot.current
            gateway.logger.add_secret(loaded.model.api_key)
            gateway.metrics.info.set(
                (name, loaded.release, loaded.environment, loaded.model.name), 1
            )
        tasks = [asyncio.create_task(job()) for job in gateway.background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await gateway.provider.aclose()
            if gateway.probe is not None:
                await gateway.probe.aclose()

    routes = [
        Route("/v1/apps/{app}/invoke", gateway.invoke, methods=["POST"]),
        Route("/v1/chat/completions", gateway.chat, methods=["POST"]),
        Route("/v1/models", gateway.models, methods=["GET"]),
        Route("/healthz", gateway.healthz, methods=["GET"]),
        Route("/readyz", gateway.readyz, methods=["GET"]),
        Route("/metrics", gateway.metrics_text, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(Observe, metrics=gateway.metrics, logger=gateway.logger)],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
