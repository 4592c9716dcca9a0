"""HTTP plumbing of the runtime server, on plain ASGI: request ids, JSON bodies within
limits, whole answers (:class:`Reply`: one start and one body message), error bodies,
and how llmops errors map to statuses; called by ``llmops.runtime.server``.

- 400 ``invalid_request``: body not JSON, not an object, NaN, unknown fields; inputs
  unknown, missing or ill-typed;
- 400 ``render``: a template failed with these inputs (names template file:line);
- 400 ``guardrail``: an input guardrail blocked the request;
- 404 ``not_found``: unknown app (or ``model`` of a chat request) or path;
- 405 ``method_not_allowed``: e.g. GET on an invoke URL;
- 413 ``payload_too_large``: body over the limit (1 MiB by default);
- 415 ``unsupported_media_type``: Content-Type is not application/json;
- 502 ``guardrail``: an output guardrail blocked the model's reply (canary, schema,
  length) — the request was fine, the upstream's answer was not;
- 502 ``upstream``: the backend failed after retries (5xx, malformed reply) or rejected
  the call (401, 404);
- 503 ``upstream``: the backend is unreachable or rate-limits us (with Retry-After);
- 504 ``upstream``: the backend did not answer in time.

Every error body is ``{"error": {"type", "message", "code", "param", ...}}`` — OpenAI's
shape, so OpenAI clients surface the message. Messages never carry the API key.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from llmops.domain import jsoncodec
from llmops.domain.errors import ExternalError, Retryable
from llmops.runtime.chatcompat import ChatRequestInvalid
from llmops.runtime.errors import GuardrailBlocked, InputRejected, RenderFailed

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

MAX_BODY_BYTES = 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class HttpProblem(Exception):
    """An error answer: status, type and message, plus OpenAI's ``code``/``param``."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "type": self.type,
            "message": self.message,
            "code": self.code,
            "param": self.param,
        }
        error.update(self.extra)
        return {"error": error}

    def reply(self) -> Reply:
        """The answer to send: the JSON body, with the extra headers (``Retry-After``…)."""
        extra = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()
        ]
        return Reply(self.status, encode_json(self.body()), extra)


#: Starlette's ``JSONResponse`` encoding (compact, UTF-8, NaN refused), made once.
JSON_TYPE = b"application/json"


def encode_json(value: Any) -> bytes:
    """``value`` as a compact UTF-8 JSON body; ``ValueError`` for NaN or infinity."""
    return jsoncodec.dumps(value)


class Reply:
    """A whole response: status, body, content type (None: no such header) and headers
    besides the length and type (lower-case names)."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes,
        headers: Headers | None = None,
        content_type: bytes | None = JSON_TYPE,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []
        self.content_type = content_type

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(status, encode_json(value))

    async def send(self, send: Send, *extra: tuple[bytes, bytes]) -> None:
        """Send it as one start and one body message; ``extra`` headers go last. The
        gateway's server (``llmops.adapters.asgi_server``) offers ``send.llmops_respond(status,
        headers, body)``: the same two messages, written at once without building them
        or awaiting twice; any other server gets the two messages."""
        headers = [*self.headers, (b"content-length", b"%d" % len(self.body))]
        if self.content_type is not None:
            headers.append((b"content-type", self.content_type))
        headers.extend(extra)
        respond = getattr(send, "llmops_respond", None)
        if respond is not None:
            respond(self.status, headers, self.body)
            return
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def request_id(header: str | None) -> str:
    """The caller's ``x-request-id`` when it is a sane token, else a new random one
    (32 hex digits, 128 random bits: as unique as a UUID4, without building one; the
    bits come from the OS 256 ids at a time, one system call instead of one per id)."""
    if header and _REQUEST_ID.match(header):
        return header
    return _RANDOM_IDS.take()


class _RandomIds:
    """128-bit random ids as hex, read from ``os.urandom`` in batches."""

    __slots__ = ("at", "hex")

    def __init__(self) -> None:
        self.hex = ""
        self.at = 0

    def take(self) -> str:
        at = self.at
        if at >= len(self.hex):
            self.hex, at = os.urandom(16 * 256).hex(), 0
        self.at = at + 32
        return self.hex[at : at + 32]

    def reset(self) -> None:
        self.hex, self.at = "", 0


_RANDOM_IDS = _RandomIds()
os.register_at_fork(after_in_child=_RANDOM_IDS.reset)  # a child never repeats its parent's


class ClientDisconnected(Exception):
    """The client went away before its request body was read."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def check_media_type(content_type: str | None) -> None:
    """``HttpProblem`` 415 unless ``content_type`` is JSON (``application/json`` or
    ``application/*+json``, parameters ignored)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        shown = media or "none"
        raise HttpProblem(
            415, "unsupported_media_type", f"Content-Type must be application/json (got {shown})"
        )


async def read_json(
    receive: Receive,
    content_type: str | None,
    content_length: str | None,
    limit: int = MAX_BODY_BYTES,
) -> dict[str, Any]:
    """The request body (read from the ASGI ``receive``) as a JSON object;
    ``HttpProblem`` 400/413/415 otherwise. ``content_type`` and ``content_length`` are the
    request's headers (None when absent)."""
    if content_type is None or content_type != "application/json":
        check_media_type(content_type)
    if content_length is not None:
        if not content_length.isdigit():
            raise HttpProblem(400, "invalid_request", "Content-Length is not a number")
        if int(content_length) > limit:
            raise _too_large(limit)
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnected()
    raw: bytes = message.get("body", b"")
    if len(raw) > limit:
        raise _too_large(limit)
    if message.get("more_body", False):
        chunks = [raw]
        size = len(raw)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnected()
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
    if not raw.strip():
        raise HttpProblem(400, "invalid_request", "the request body is empty; send a JSON object")
    try:
        # json.loads(raw, parse_constant=...) without building a decoder per request, for
        # what orjson refuses (and to word the error)
        data = jsoncodec.loads_or(
            raw, lambda: _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
        )
    except json.JSONDecodeError as exc:
        raise HttpProblem(
            400,
            "invalid_request",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise HttpProblem(400, "invalid_request", f"the body is not valid JSON: {reason}") from None
    if not isinstance(data, dict):
        raise HttpProblem(
            400, "invalid_request", f"the body must be a JSON object (got {type(data).__name__})"
        )
    return data


def _too_large(limit: int) -> HttpProblem:
    return HttpProblem(
        413, "payload_too_large", f"the request body is over the limit of {limit:,} bytes"
    )


def scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def upstream_reason(exc: ExternalError) -> tuple[int, str]:
    """(status, reason) for a model backend failure; reason labels the metric."""
    text = exc.message.lower()
    if "timeout" in text or "stalled" in text or ("within" in text and "no reply" in text):
        return 504, "timeout"
    if isinstance(exc, Retryable):
        if "answered 429" in text:
            return 503, "rate_limited"
        if "cannot reach" in text:
            return 503, "unavailable"
        return 502, "failed"
    return 502, "rejected"


def problem_for(exc: Exception, secret: str | None = None) -> HttpProblem | None:
    """The HTTP answer for an error the runtime raises on purpose, or None for a bug."""
    if isinstance(exc, HttpProblem):
        return exc
    if isinstance(exc, InputRejected):
        return HttpProblem(
            400,
            "invalid_request",
            exc.message,
            code="invalid_inputs",
            param=exc.problems[0].name if exc.problems else None,
            extra={"problems": [{"input": p.name, "message": p.message} for p in exc.problems]},
        )
    if isinstance(exc, RenderFailed):
        return HttpProblem(400, "render", exc.message, code="render_failed")
    if isinstance(exc, ChatRequestInvalid):
        return HttpProblem(400, "invalid_request", exc.message, param=exc.param)
    if isinstance(exc, GuardrailBlocked):
        status = 400 if exc.side == "input" else 502
        return HttpProblem(
            status,
            "guardrail",
            exc.reason,
            code=f"{exc.side}_blocked",
            extra={"guardrail": exc.guardrail, "side": exc.side},
        )
    if isinstance(exc, ExternalError):
        status, reason = upstream_reason(exc)
        headers = {}
        if status == 503 and isinstance(exc, Retryable):
            headers["Retry-After"] = str(max(1, math.ceil(exc.delay)))
        return HttpProblem(
            status,
            "upstream",
            f"the model backend failed: {scrub(exc.message, secret)}",
            code=f"upstream_{reason}",
            headers=headers,
        )
    return None
