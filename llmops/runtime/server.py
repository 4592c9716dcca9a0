"""The HTTP server of ``llmops serve``: a small ASGI application run by llmops' own
HTTP/1.1 server (``llmops.adapters.asgi_server``); built by
``llmops.runtime.serving`` and by tests.

Routes: ``POST /v1/apps/{app}/invoke``, ``POST /v1/chat/completions`` (OpenAI-compatible,
``stream: true`` as server-sent events), ``GET /v1/models``, ``GET /healthz``,
``GET /readyz``, ``GET /metrics``. Every request gets an id (``x-request-id``, honoured or
generated), is counted in ``/metrics`` and writes one JSON log line. Status codes are
listed in ``llmops.runtime.httpio``; a client's input never causes a 500. A path the
server does not know is a 404, a known path with another method a 405 (with ``Allow``),
and a known path with trailing slashes is redirected (307) to the path without them.

Why no web framework on the request path: the gateway should add well under a
millisecond to a model call, and a framework's request and response objects, router and
middleware stack cost tens of microseconds per request (measured: ~50 µs for Starlette
with one route, before any work). Six fixed routes need one dict lookup and one prefix
test; a JSON answer is one encode and two ASGI messages, which leave the server in one
socket write (``llmops.runtime.httpio.Reply``). Starlette's ``StreamingResponse``
is still used for server-sent events: it stops the stream when the client goes away
(ASGI spec < 2.4), and its cost is nothing next to a streamed model reply.

Apps are held in :class:`AppSlot` objects; the reloader swaps a slot's ``LoadedApp`` in
one assignment, so a request sees either the old or the new version, never a mix.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from starlette.responses import StreamingResponse

from llmops.domain.chat import Usage
from llmops.domain.errors import ExternalError
from llmops.runtime import invoke as pipeline
from llmops.runtime.chatcompat import chat_inputs, chunk, completion, parse_chat
from llmops.runtime.errors import GuardrailBlocked
from llmops.runtime.httpio import (
    MAX_BODY_BYTES,
    HttpProblem,
    Message,
    Receive,
    Reply,
    Send,
    problem_for,
    read_json,
)
from llmops.runtime.loaded import LoadedApp
from llmops.runtime.logs import JsonLogger
from llmops.runtime.metrics import RuntimeMetrics
from llmops.runtime.observe import Observer, RequestInfo
from llmops.runtime.provider import ModelProvider

_DETAILED_ERRORS = frozenset({"upstream", "render", "internal"})
_METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_HEALTHY = Reply.json({"status": "ok"})


class ReadinessProbe(Protocol):
    """Checks that a model backend answers (``llmops.adapters.probe.ModelProbe``)."""

    async def check(self, base_url: str, api_key: str | None) -> str | None: ...

    async def aclose(self) -> None: ...


class AppSlot:
    """The current version of one served app; replaced whole by the reloader, which
    tells whoever keeps something derived from it (``on_swap``)."""

    def __init__(self, loaded: LoadedApp) -> None:
        self.current = loaded
        self.listeners: list[Callable[[], None]] = []

    def on_swap(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each swap."""
        self.listeners.append(listener)

    def swap(self, loaded: LoadedApp) -> None:
        self.current = loaded
        for listener in self.listeners:
            listener()


@dataclass
class ServerOptions:
    """Limits and cache times of the server."""

    max_body_bytes: int = MAX_BODY_BYTES
    ready_cache_seconds: float = 5.0


class Incoming:
    """What an endpoint may read of its request: the body (through ``receive``) and the
    two headers that govern it."""

    __slots__ = ("content_length", "content_type", "receive")

    def __init__(
        self, receive: Receive, content_type: str | None, content_length: str | None
    ) -> None:
        self.receive = receive
        self.content_type = content_type
        self.content_length = content_length

    async def json(self, limit: int) -> dict[str, Any]:
        """The body as a JSON object (``HttpProblem`` 400/413/415 otherwise)."""
        return await read_json(self.receive, self.content_type, self.content_length, limit)


Answer = Reply | StreamingResponse


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
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    # -- lifespan ----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the model client and the probe, start the background jobs (the reloader)."""
        self.provider = self.provider_factory()
        self.probe = self.probe_factory() if self.probe_factory else None
        for name, slot in self.slots.items():
            loaded = slot.current
            self.logger.add_secret(loaded.model.api_key)
            self.metrics.info.set((name, loaded.release, loaded.environment, loaded.model.name), 1)
        self._tasks = [asyncio.create_task(job()) for job in self.background]

    async def stop(self) -> None:
        """Stop the background jobs, close the model client and the probe."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.provider is not None:
            await self.provider.aclose()
        if self.probe is not None:
            await self.probe.aclose()

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

    def record_answer(self, info: RequestInfo) -> None:
        """Tokens, cost, upstream time and redactions of a request answered whole; run
        once the answer has left, off the request's path."""
        labels = (info.app, info.release)
        usage = info.usage
        metrics = self.metrics
        if usage is not None:
            metrics.tokens.inc((*labels, "in"), usage.prompt_tokens)
            metrics.tokens.inc((*labels, "out"), usage.completion_tokens)
            metrics.cost.inc(labels, usage.cost_usd)
        if info.upstream_ms is not None:
            metrics.upstream_latency.observe(labels, info.upstream_ms / 1000.0)
        for kind, count in info.redactions.items():
            metrics.redactions.inc((*labels, kind), count)

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

    async def invoke(self, name: str, request: Incoming, info: RequestInfo) -> Reply:
        """``POST /v1/apps/{name}/invoke`` (``prepare``, then ``complete``: one coroutine
        less than ``pipeline.invoke``)."""
        info.route = "invoke"
        loaded: LoadedApp | None = None
        try:
            loaded = self._app(name, info)
            body = await request.json(self.options.max_body_bytes)
            if len(body) != 1 or "inputs" not in body:
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
            rendered = pipeline.prepare(loaded, inputs)
            result = await pipeline.complete(loaded, self._provider(), rendered)
        except Exception as exc:  # mapped, or re-raised by failure() when it is a bug
            return self.failure(exc, info, loaded).reply()
        usage = result.usage
        info.usage, info.upstream_ms = usage, result.upstream_ms
        info.redactions, info.answered = result.redactions, True  # counted once sent
        return Reply.json(
            {
                "output": result.output,
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                    "cost_usd": usage.cost_usd,
                },
                "release": loaded.release,
                "latency_ms": round((time.perf_counter() - info.started) * 1000, 3),
                "request_id": info.request_id,
            }
        )

    async def chat(self, request: Incoming, info: RequestInfo) -> Answer:
        info.route = "chat"
        loaded: LoadedApp | None = None
        try:
            call = parse_chat(await request.json(self.options.max_body_bytes))
            info.stream = call.stream
            loaded = self._app(call.model, info)
            inputs = chat_inputs(call, loaded.app.spec.prompt.inputs)
            if call.stream:
                return await self._chat_stream(loaded, inputs, call.include_usage, info)
            result = await pipeline.invoke(loaded, self._provider(), inputs)
        except Exception as exc:
            return self.failure(exc, info, loaded).reply()
        info.usage, info.upstream_ms = result.usage, result.upstream_ms
        info.redactions, info.answered = result.redactions, True  # counted once sent
        return Reply.json(
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
    ) -> StreamingResponse:
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

    async def models(self, request: Incoming, info: RequestInfo) -> Reply:
        info.route = "models"
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
        return Reply.json({"object": "list", "data": data})

    async def healthz(self, request: Incoming, info: RequestInfo) -> Reply:
        info.route = "healthz"
        return _HEALTHY

    async def readyz(self, request: Incoming, info: RequestInfo) -> Reply:
        info.route = "readyz"
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
        return Reply.json(
            {"status": "ready" if ready else "not_ready", "apps": apps}, 200 if ready else 503
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

    async def metrics_text(self, request: Incoming, info: RequestInfo) -> Reply:
        info.route = "metrics"
        return Reply(200, self.metrics.render().encode("utf-8"), content_type=_METRICS_TYPE)


Endpoint = Callable[[Incoming, RequestInfo], Awaitable[Answer]]
_GET = ("GET", "HEAD")
_POST = ("POST",)
_INVOKE_PREFIX = "/v1/apps/"
_INVOKE_SUFFIX = "/invoke"


class GatewayApp:
    """The ASGI application: lifespan (start and stop the :class:`Gateway`), and for each
    HTTP request its id, routing, the endpoint, the answer, metrics and the log line."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.observer = Observer(gateway.metrics, gateway.logger)
        self.routes: dict[str, tuple[tuple[str, ...], Endpoint]] = {
            "/v1/chat/completions": (_POST, gateway.chat),
            "/v1/models": (_GET, gateway.models),
            "/healthz": (_GET, gateway.healthz),
            "/readyz": (_GET, gateway.readyz),
            "/metrics": (_GET, gateway.metrics_text),
        }

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)
        elif kind == "websocket":  # no websocket routes: close, as Starlette's router does
            await send({"type": "websocket.close", "code": 1000, "reason": ""})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                except BaseException:
                    await send(
                        {"type": "lifespan.startup.failed", "message": traceback.format_exc()}
                    )
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.gateway.stop()
                except BaseException:
                    await send(
                        {"type": "lifespan.shutdown.failed", "message": traceback.format_exc()}
                    )
                    raise
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: Message, receive: Receive, send: Send) -> None:
        content_type = content_length = None
        rid: bytes | None = None
        for name, value in scope["headers"]:  # names are lower case (ASGI); first one wins
            if name == b"content-type":
                if content_type is None:
                    content_type = value.decode("latin-1")
            elif name == b"content-length":
                if content_length is None:
                    content_length = value.decode("latin-1")
            elif name == b"x-request-id" and rid is None:
                rid = value
        observer = self.observer
        info = observer.start(rid)
        rid_header = (b"x-request-id", info.request_id.encode())
        method: str = scope["method"]
        path: str = scope["path"]
        responded = False
        try:
            request = Incoming(receive, content_type, content_length)
            # an invoke (the hot path) goes straight to its endpoint: one coroutine less
            # than through route(), which answers the same (no fixed route looks like one)
            app = _invoked_app(path) if method == "POST" else None
            if app is not None:
                answer: Answer = await self.gateway.invoke(app, request, info)
            else:
                answer = await self.route(method, path, scope, request, info)
            if isinstance(answer, Reply):
                info.status = answer.status
                responded = True
                await answer.send(send, rid_header)
            else:  # a stream: note its status and add the id as it starts

                async def observed_send(message: Message) -> None:
                    nonlocal responded
                    if message["type"] == "http.response.start":
                        info.status = message["status"]
                        responded = True
                        headers = [*message.get("headers", []), rid_header]
                        message = {**message, "headers": headers}
                    await send(message)

                await answer(scope, receive, observed_send)
        except Exception as exc:
            info.error, info.detail = "internal", f"{type(exc).__name__}: {exc}"
            if not responded:
                problem = HttpProblem(
                    500, "internal", f"internal error; the server log has request {info.request_id}"
                )
                info.status = 500
                await problem.reply().send(send, rid_header)
        finally:
            if info.answered:
                self.gateway.record_answer(info)
            observer.finish(info, method, path)

    async def route(
        self, method: str, path: str, scope: Message, request: Incoming, info: RequestInfo
    ) -> Answer:
        """The endpoint's answer, or the 404/405/307 of a path or method not served."""
        entry = self.routes.get(path)
        if entry is not None:
            methods, endpoint = entry
            if method in methods:
                return await endpoint(request, info)
            return _not_allowed(method, path, methods, info)
        app = _invoked_app(path)
        if app is not None:
            if method == "POST":
                return await self.gateway.invoke(app, request, info)
            return _not_allowed(method, path, _POST, info)
        if path != "/" and path.endswith("/"):
            bare = path.rstrip("/")
            if bare in self.routes or _invoked_app(bare) is not None:
                return _redirect(scope, bare)
        info.error = "not_found"
        return HttpProblem(404, "not_found", f"no route for {_shown(path)}").reply()


def _invoked_app(path: str) -> str | None:
    """``app`` for ``/v1/apps/{app}/invoke`` (``app`` a non-empty name without ``/``)."""
    if path.startswith(_INVOKE_PREFIX) and path.endswith(_INVOKE_SUFFIX):
        app = path[len(_INVOKE_PREFIX) : -len(_INVOKE_SUFFIX)]
        if app and "/" not in app:
            return app
    return None


def _not_allowed(method: str, path: str, methods: tuple[str, ...], info: RequestInfo) -> Reply:
    info.error = "method_not_allowed"
    return HttpProblem(
        405,
        "method_not_allowed",
        f"{method} is not allowed on {_shown(path)}",
        headers={"Allow": ", ".join(methods)},
    ).reply()


def _shown(path: str) -> str:
    """``path`` as a URL shows it (as the messages have always named it)."""
    return path.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def _redirect(scope: Message, path: str) -> Reply:
    """A 307 to ``path`` on the same host, with the query string (as Starlette's router)."""
    scheme = scope.get("scheme", "http")
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    if host is not None:
        url = f"{scheme}://{host}{_shown(path)}"
    elif scope.get("server") is None:
        url = _shown(path)
    else:
        server_host, port = scope["server"]
        default = {"http": 80, "https": 443}.get(scheme)
        url = f"{scheme}://{server_host}{'' if port == default else f':{port}'}{_shown(path)}"
    query = scope.get("query_string", b"")
    if query:
        url += "?" + query.decode("latin-1")
    location = quote(url, safe=":/%#?=@[]!$&'()*+,;").encode("latin-1")
    return Reply(307, b"", [(b"location", location)], content_type=None)


def create_app(gateway: Gateway) -> GatewayApp:
    """The ASGI application for ``gateway``."""
    return GatewayApp(gateway)
