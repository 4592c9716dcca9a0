"""Per-request bookkeeping of the runtime server: request ids, the in-flight gauge,
request metrics and one JSON log line per request; the ASGI middleware installed by
``llmops.runtime.server``.

Endpoints fill in the request's :class:`RequestInfo` (found at ``scope[INFO_KEY]``) with
the app, release, usage and error; the middleware reads it once the response is done.
An exception that escapes an endpoint (a bug) becomes a JSON 500 and an error log line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmops.domain.chat import Usage
from llmops.runtime.httpio import HttpProblem, request_id
from llmops.runtime.logs import JsonLogger
from llmops.runtime.metrics import RuntimeMetrics

INFO_KEY = "llmops.request"
STARTED_KEY = "llmops.started"


@dataclass(slots=True)
class RequestInfo:
    """What the middleware logs and counts about one request; endpoints fill it in."""

    request_id: str
    route: str = "other"
    app: str = ""
    release: str = ""
    upstream_ms: float | None = None
    usage: Usage | None = None
    error: str | None = None
    guardrail: str | None = None
    detail: str | None = None
    stream: bool | None = None


class Observe:
    """ASGI middleware: request id, in-flight gauge, metrics and one log line per request."""

    def __init__(self, app: ASGIApp, metrics: RuntimeMetrics, logger: JsonLogger) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        header = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        info = RequestInfo(request_id(header.decode("latin-1") if header else None))
        scope[INFO_KEY] = info
        scope[STARTED_KEY] = started
        status = 500
        response_started = False
        rid_header = (b"x-request-id", info.request_id.encode())

        async def observed_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message = {**message, "headers": [*message.get("headers", []), rid_header]}
            await send(message)

        metrics = self.metrics
        metrics.in_flight.inc(())
        try:
            await self.app(scope, receive, observed_send)
        except Exception as exc:
            info.error, info.detail = "internal", f"{type(exc).__name__}: {exc}"
            if not response_started:
                problem = HttpProblem(
                    500, "internal", f"internal error; the server log has request {info.request_id}"
                )
                await problem.response()(scope, receive, observed_send)
        finally:
            metrics.in_flight.inc((), -1)
            elapsed = time.perf_counter() - started
            labels = (info.app, info.release)
            metrics.requests.inc((*labels, info.route, str(status)))
            metrics.latency.observe((*labels, info.route), elapsed)
            self.logger.log(
                "error" if status >= 500 and info.error == "internal" else "info",
                "request",
                request_id=info.request_id,
                method=scope.get("method"),
                path=scope.get("path"),
                app=info.app,
                release=info.release,
                status=status,
                latency_ms=round(elapsed * 1000, 3),
                upstream_ms=round(info.upstream_ms, 3) if info.upstream_ms is not None else None,
                prompt_tokens=info.usage.prompt_tokens if info.usage else None,
                completion_tokens=info.usage.completion_tokens if info.usage else None,
                cost_usd=info.usage.cost_usd if info.usage else None,
                stream=info.stream,
                error=info.error,
                guardrail=info.guardrail,
                detail=info.detail,
            )
