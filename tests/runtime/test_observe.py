"""The request log line and metrics of :class:`Observer`: the line is what
``JsonLogger.log`` writes for the request's fields."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from llmops.domain.chat import Usage
from llmops.runtime.logs import JsonLogger
from llmops.runtime.metrics import RuntimeMetrics
from llmops.runtime.observe import Observer, RequestInfo


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"app": "demo", "release": "dev", "route": "invoke", "status": 200, "upstream_ms": 1.23456,
         "usage": Usage(3, 4, 0.5)},
        {"status": 500, "error": "internal", "detail": "ValueError: x", "stream": False},
        {"status": 400, "error": "guardrail", "guardrail": "deny-patterns", "stream": True,
         "usage": Usage(0, 0, 0.0), "upstream_ms": 0.0},
    ],
)
def test_the_request_line_is_what_log_writes(fields: dict[str, Any]) -> None:
    stream = io.StringIO()
    logger = JsonLogger(stream)
    logger.add_secret("sk-secret")
    observer = Observer(RuntimeMetrics(), logger)
    info = observer.start(b"req-1")
    for name, value in fields.items():
        setattr(info, name, value)
    observer.finish(info, "POST", "/v1/apps/demo/invoke?k=sk-secret")
    line = json.loads(stream.getvalue())
    usage = info.usage
    reference = io.StringIO()
    JsonLogger(reference).log(
        line["level"],
        "request",
        request_id="req-1",
        method="POST",
        path="/v1/apps/demo/invoke?k=[redacted]",
        app=info.app,
        release=info.release,
        status=info.status,
        latency_ms=line["latency_ms"],
        upstream_ms=round(info.upstream_ms, 3) if info.upstream_ms is not None else None,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        cost_usd=usage.cost_usd if usage else None,
        stream=info.stream,
        error=info.error,
        guardrail=info.guardrail,
        detail=info.detail,
    )
    expected = json.loads(reference.getvalue())
    assert list(line) == list(expected), "the same fields, in the same order"
    assert {**line, "ts": None} == {**expected, "ts": None}
    assert line["level"] == ("error" if fields.get("error") == "internal" else "info")


def test_a_new_request_has_its_own_state_and_no_redactions() -> None:
    observer = Observer(RuntimeMetrics(), JsonLogger(io.StringIO(), level="error"))
    first, second = observer.start(None), observer.start(None)
    assert first.request_id != second.request_id and len(first.request_id) == 32
    assert dict(first.redactions) == {} and first.status == 500 and first.route == "other"
    assert first.started > 0 and not first.answered
    assert observer.metrics.in_flight.get(()) == 2
    observer.finish(first, "GET", "/healthz")
    assert observer.metrics.in_flight.get(()) == 1
    assert observer.metrics.requests.get(("", "", "other", "500")) == 1
    assert RequestInfo("x").redactions is RequestInfo("y").redactions, "shared, read-only"
