"""Per-request bookkeeping of the runtime server: request ids, the in-flight gauge,
request metrics and one JSON log line per request; used by ``llmops.runtime.server``
around every HTTP request.

Endpoints fill in the request's :class:`RequestInfo` with the app, release, usage and
error; :meth:`Observer.finish` reads it once the response is done. An exception that
escapes an endpoint (a bug) becomes a JSON 500 and an error log line (the server does
that part, since only it knows whether the response had started).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from llmops.domain.chat import Usage
from llmops.runtime.httpio import request_id
from llmops.runtime.logs import JsonLogger
from llmops.runtime.metrics import RuntimeMetrics

_STATUS_TEXT = {code: str(code) for code in range(100, 600)}
_NO_REDACTIONS: Mapping[str, int] = MappingProxyType({})


@dataclass(slots=True, init=False)
class RequestInfo:
    """What is logged and counted about one request; endpoints fill it in."""

    request_id: str
    route: str
    app: str
    release: str
    upstream_ms: float | None
    usage: Usage | None
    error: str | None
    guardrail: str | None
    detail: str | None
    stream: bool | None
    status: int
    started: float
    #: An endpoint answered whole: usage and ``redactions`` are yet to be counted.
    answered: bool
    redactions: Mapping[str, int]

    def __init__(self, request_id: str, started: float = 0.0) -> None:
        # by hand: the generated one would build an empty dict per request
        self.request_id = request_id
        self.route = "other"
        self.app = self.release = ""
        self.upstream_ms = self.usage = None
        self.error = self.guardrail = self.detail = self.stream = None
        self.status = 500
        self.started = started
        self.answered = False
        self.redactions = _NO_REDACTIONS


class Observer:
    """Request id, in-flight gauge, metrics and one log line per request."""

    def __init__(self, metrics: RuntimeMetrics, logger: JsonLogger) -> None:
        self.metrics = metrics
        self.logger = logger

    def start(self, header: bytes | None) -> RequestInfo:
        """A request begins; ``header`` is its ``x-request-id`` (honoured when sane)."""
        info = RequestInfo(
            request_id(header.decode("latin-1") if header else None), time.perf_counter()
        )
        self.metrics.in_flight.inc((), 1.0)
        return info

    def finish(self, info: RequestInfo, method: str, path: str) -> None:
        """The request is done (``info.status`` was sent): count it and log one line (it is
        written after the answer left, off the request's path)."""
        metrics = self.metrics
        metrics.in_flight.inc((), -1.0)
        elapsed = time.perf_counter() - info.started
        app, release, route, status = info.app, info.release, info.route, info.status
        metrics.requests.inc((app, release, route, _STATUS_TEXT.get(status) or str(status)))
        metrics.latency.observe((app, release, route), elapsed)
        level = "error" if status >= 500 and info.error == "internal" else "info"
        logger = self.logger
        if not logger.enabled(level):
            return
        usage = info.usage
        logger.log(
            level,
            "request",
            request_id=info.request_id,
            method=method,
            path=path,
            app=app,
            release=release,
            status=status,
            latency_ms=round(elapsed * 1000, 3),
            upstream_ms=round(info.upstream_ms, 3) if info.upstream_ms is not None else None,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            cost_usd=usage.cost_usd if usage else None,
            stream=info.stream,
            error=info.error,
            guardrail=info.guardrail,
            detail=info.detail,
        )
