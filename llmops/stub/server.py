"""The stub model's HTTP API (Starlette); served by ``llmops.stub.runner`` and the CLI.

An OpenAI-compatible server that is NOT a real LLM, for tests and demos:

- ``POST /v1/chat/completions``: scripted or echoed replies, streamed as server-sent
  events with ``stream: true`` (one delta per word, a final chunk with usage, ``[DONE]``);
  honours ``max_tokens`` (finish_reason ``length``) and ``stop``;
- ``POST /v1/embeddings``: deterministic bag-of-hashed-words vectors;
- ``GET /v1/models``, ``GET /healthz``;
- ``GET /stub/stats`` (requests by endpoint, faults injected), ``GET /stub/requests``
  (the last request bodies, never headers), ``POST /stub/faults`` (``{"script": ["429",
  null, "500"]}``: faults for the next requests, in order), ``POST /stub/reset``.

Every response carries ``x-llmops-stub: true``; replies say ``system_fingerprint:
"llmops-stub"``. Usage counts whitespace tokens.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmops.stub.config import FAULT_KINDS, FaultDice, FaultKind, StubConfig
from llmops.stub.rules import reply_for
from llmops.stub.text import count_tokens, embed_text, first_tokens, pieces

log = logging.getLogger("llmops.stub")

BANNER = "llmops stub model: NOT a real LLM"
FINGERPRINT = "llmops-stub"
STUB_HEADER = (b"x-llmops-stub", b"true")
CHAT, EMBEDDINGS = "/v1/chat/completions", "/v1/embeddings"


class BadRequest(Exception):
    """A request the stub rejects with 400, like a real provider would."""


class StubState:
    """Counters, the request log and the fault dice; shared with the runner's thread."""

    def __init__(self, config: StubConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every count and logged request; restart the dice from the seed."""
        with self._lock:
            self._requests: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()
            self._streams = 0
            self._log: deque[dict[str, Any]] = deque(maxlen=100)
            self._dice = FaultDice(self.config)
            self._jitter = random.Random(self.config.seed + 1)
            self._ids = 0

    def count(self, path: str) -> None:
        with self._lock:
            self._requests[path] += 1

    def record(self, path: str, body: dict[str, Any], authorized: bool) -> int:
        """Log a request body (never headers); returns a per-server request number."""
        with self._lock:
            self._ids += 1
            self._log.append({"endpoint": path, "body": body, "authorized": authorized})
            if body.get("stream") is True:
                self._streams += 1
            return self._ids

    def roll_fault(self) -> FaultKind | None:
        with self._lock:
            fault = self._dice.roll()
            if fault is not None:
                self._faults[fault] += 1
            return fault

    def script_faults(self, faults: Sequence[FaultKind | None]) -> None:
        """Give the next requests these faults (None: no fault), in order."""
        with self._lock:
            self._dice.script(faults)

    def latency(self) -> float:
        """Seconds to wait before answering: fixed latency plus uniform jitter."""
        config = self.config
        with self._lock:
            jitter = self._jitter.uniform(0, config.jitter_ms) if config.jitter_ms else 0.0
        return (config.latency_ms + jitter) / 1000.0

    def snapshot(self) -> dict[str, Any]:
        """The stats served at ``/stub/stats``."""
        with self._lock:
            return {
                "stub": True,
                "requests": dict(self._requests),
                "total_requests": sum(self._requests.values()),
                "streams": self._streams,
                "faults": dict(self._faults),
                "total_faults": sum(self._faults.values()),
            }

    def recent(self) -> list[dict[str, Any]]:
        """The last (up to 100) logged request bodies, oldest first."""
        with self._lock:
            return list(self._log)


class _StubHeader:
    """ASGI middleware: label every response as coming from the stub."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def labelled(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), STUB_HEADER]}
            await send(message)

        await self.app(scope, receive, labelled)


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty list of {role, content}")
    messages: list[tuple[str, str]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("role"), str):
            raise BadRequest(f"messages[{index}] must be an object with a 'role'")
        content = item.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(
                p.get("text", "")
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise BadRequest(f"messages[{index}].content must be a string or a list of parts")
        messages.append((item["role"], content))
    return messages


def _shape_reply(text: str, body: dict[str, Any]) -> tuple[str, str]:
    """Apply ``stop`` and ``max_tokens`` like a model would; returns (text, finish_reason)."""
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    cuts = [text.find(s) for s in stops if isinstance(s, str) and s and s in text]
    if cuts:
        text = text[: min(cuts)]
    limit = body.get("max_tokens", body.get("max_completion_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool) and count_tokens(text) > limit:
        return first_tokens(text, max(limit, 0)), "length"
    return text, "stop"


async def _hang(request: Request, seconds: float) -> None:
    """Sleep up to ``seconds``, returning early once the client has given up."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if await request.is_disconnected():
            return
        await asyncio.sleep(min(0.05, left))


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _stream_body(
    reply: str, finish: str, head: dict[str, Any], usage: dict[str, int], fault: FaultKind | None
) -> Iterator[bytes]:
    """The SSE chunks of a streamed reply; ``fault`` breaks or cuts the stream."""

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return {**head, "object": "chat.completion.chunk", "choices": [choice]}

    words = pieces(reply)
    yield _sse(chunk({"role": "assistant", "content": ""}, None))
    if fault == "truncate":
        for word in words[: len(words) // 2]:
            yield _sse(chunk({"content": word}, None))
        return  # ends without the final chunk, usage or [DONE]
    for index, word in enumerate(words):
        if fault == "malformed" and index == len(words) // 2:
            yield b'data: {"choices": [{"delta": {"content": \n\n'
        yield _sse(chunk({"content": word}, None))
    yield _sse(chunk({}, finish))
    yield _sse({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    yield _sse("[DONE]")


def create_app(config: StubConfig | None = None, state: StubState | None = None) -> Starlette:
    """The stub's ASGI app; pass ``state`` to read its stats from outside."""
    config = config if config is not None else StubConfig()
    state = state if state is not None else StubState(config)

    def authorized(request: Request) -> bool:
        if config.api_key is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {config.api_key}".encode())

    async def prelude(request: Request, path: str) -> tuple[dict[str, Any], FaultKind | None, int]:
        """Parse, log, check the key, roll the dice and wait; raises _Early for a reply."""
        state.count(path)
        body = await _json_body(request)
        ok = authorized(request)
        request_id = state.record(path, body, ok)
        if not ok:
            raise _Early(
                _error(
                    401,
                    "Incorrect API key provided (llmops stub; the key is not shown).",
                    "invalid_request_error",
                    "invalid_api_key",
                )
            )
        fault = state.roll_fault()
        delay = state.latency()
        if delay:
            await asyncio.sleep(delay)
        if fault == "429":
            seconds = config.retry_after_seconds
            retry_after = str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
            response = _error(429, "Rate limit reached (llmops stub fault).", "rate_limit_error")
            response.headers["Retry-After"] = retry_after
            raise _Early(response)
        if fault == "500":
            raise _Early(_error(500, "Internal server error (llmops stub fault).", "server_error"))
        if fault == "timeout":
            await _hang(request, config.hang_seconds)
        return body, fault, request_id

    async def chat(request: Request) -> Response:
        try:
            body, fault, request_id = await prelude(request, CHAT)
            messages = _messages(body)
        except _Early as early:
            return early.response
        except BadRequest as exc:
            return _error(400, str(exc), "invalid_request_error")
        reply, finish = _shape_reply(reply_for(config.rules, messages, config.echo_prefix), body)
        model = body.get("model") if isinstance(body.get("model"), str) else config.models[0]
        prompt_tokens = sum(count_tokens(content) for _, content in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": count_tokens(reply),
            "total_tokens": prompt_tokens + count_tokens(reply),
        }
        head = {
            "id": f"chatcmpl-stub-{request_id}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": FINGERPRINT,
        }
        if body.get("stream") is True:
            return StreamingResponse(
                _stream_body(reply, finish, head, usage, fault),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        message = {"role": "assistant", "content": reply}
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        payload = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        return _json_reply(payload, fault)

    async def embeddings(request: Request) -> Response:
        try:
            body, fault, _ = await prelude(request, EMBEDDINGS)
            raw = body.get("input")
            texts = [raw] if isinstance(raw, str) else raw
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise BadRequest("'input' must be a string or a list of strings")
        except _Early as early:
            return early.response
        except BadRequest as exc:
            return _error(400, str(exc), "invalid_request_error")
        data = [
            {"object": "embedding", "index": i, "embedding": embed_text(t, config.embedding_dim)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(count_tokens(t) for t in texts)
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model") or config.models[0],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return _json_reply(payload, fault)

    async def models(request: Request) -> Response:
        state.count("/v1/models")
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": FINGERPRINT}
            for name in config.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def healthz(request: Request) -> Response:
        state.count("/healthz")
        return JSONResponse({"status": "ok", "stub": True, "note": BANNER})

    async def stats(request: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def requests_log(request: Request) -> Response:
        return JSONResponse({"requests": state.recent()})

    async def faults(request: Request) -> Response:
        try:
            body = await _json_body(request)
            script = body.get("script")
            if not isinstance(script, list) or not all(
                kind is None or kind in FAULT_KINDS for kind in script
            ):
                known = ", ".join(FAULT_KINDS)
                raise BadRequest(f"'script' must be a list of fault kinds ({known}) or null")
        except BadRequest as exc:
            return _error(400, str(exc), "invalid_request_error")
        state.script_faults(script)
        return JSONResponse({"scripted": len(script)})

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.warning("%s (OpenAI-compatible test server; replies are scripted or echoed)", BANNER)
        yield

    routes = [
        Route(CHAT, chat, methods=["POST"]),
        Route(EMBEDDINGS, embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/stub/stats", stats, methods=["GET"]),
        Route("/stub/requests", requests_log, methods=["GET"]),
        Route("/stub/faults", faults, methods=["POST"]),
        Route("/stub/reset", reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_StubHeader)], lifespan=lifespan)
    app.state.stub = state
    return app


class _Early(Exception):
    """A response decided before the reply is built (401, an injected 429 or 500)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _json_reply(payload: dict[str, Any], fault: FaultKind | None) -> Response:
    if fault == "malformed":
        return Response(b'{"id": "stub-malformed", "choices": [', media_type="application/json")
    text = json.dumps(payload)
    if fault == "truncate":
        return Response(text[: len(text) // 2], media_type="application/json")
    return Response(text, media_type="application/json")
