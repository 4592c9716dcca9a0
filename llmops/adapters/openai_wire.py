"""The OpenAI chat-completions wire format: request bodies in, replies parsed out.

Called by ``llmops.adapters.openai_client``; pure (no I/O), so every odd reply a server
can send is testable without one. Parse failures raise :class:`WireError` whose message
says what was wrong with the reply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from llmops.domain import jsoncodec
from llmops.domain.chat import ChatRequest

#: Longest piece of a provider's error text or body quoted in our messages.
QUOTE_LIMIT = 300

_KEY_LIKE = re.compile(r"\b(sk|pk|rk|key)-[A-Za-z0-9_*\-]{6,}")


class WireError(ValueError):
    """A reply that does not have the shape of an OpenAI-compatible reply."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The parts of a chat completion llmops uses."""

    content: str
    finish_reason: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """One streamed chunk: a content delta, and usage when the server sends it."""

    delta: str
    finish_reason: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None


def chat_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The JSON body for ``request``: its params, then model, messages and stream on top."""
    body: dict[str, Any] = dict(request.params)
    body["model"] = request.model
    body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    elif "stream" in body or "stream_options" in body:  # rare: lookups cost less than pops
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` and without anything shaped like an API key."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


def error_text(body: bytes) -> str:
    """The provider's own error message from an error reply, quoted; else the raw body."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return quote(text) if text.strip() else "(empty body)"
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return quote(error["message"])
        if isinstance(error, str):
            return quote(error)
        if isinstance(data.get("detail"), str):
            return quote(data["detail"])
    return quote(text)


def _json_object(body: bytes | str, what: str) -> dict[str, Any]:
    text = ""

    def standard() -> Any:
        nonlocal text
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        return json.loads(text)

    try:
        data = jsoncodec.loads_or(body, standard)
    except json.JSONDecodeError as exc:
        start = quote(text, 80) if text.strip() else "(empty body)"
        raise WireError(f"{what} is not valid JSON ({exc.msg}; body starts: {start})") from exc
    if not isinstance(data, dict):
        raise WireError(f"{what} is JSON but not an object (got {type(data).__name__})")
    return data


def _tokens(usage: Any, name: str) -> int | None:
    if not isinstance(usage, dict):
        return None
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _first_choice(data: dict[str, Any], what: str) -> dict[str, Any]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        if isinstance(data.get("error"), dict | str):
            said = error_text(json.dumps(data).encode())
            raise WireError(f"{what} carries an error instead of choices: {said}")
        raise WireError(f"{what} has no choices")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise WireError(f"{what} has a choice that is not an object")
    return choice


#: ``(content, finish_reason, model, prompt_tokens, completion_tokens)`` of a reply.
ReplyFields = tuple[str, str | None, str | None, int, int]


def _plain_reply(body: bytes) -> ReplyFields | None:
    """The fields of a reply of the usual shape (an object with a first choice whose
    message content is text, and usage with both token counts), read without the checks
    that find what is wrong with another; None for anything else, which
    :func:`_checked_reply` then reads with them (and says what is wrong).

    The value comes from orjson, so its types are exact: ``dict``, ``list``, ``str``,
    ``int`` (a ``bool`` is not ``int`` by ``type``). Looking a string key up succeeds on a
    dict only (a list or a str raises TypeError), so the lookups below leave ``data``,
    ``message`` and ``usage`` dicts; ``data["choices"][0]`` then ``["message"]`` leave
    ``choices`` a list (a str's first item is a str, whose lookup fails) and ``choice`` a
    dict. orjson is called directly, without ``jsoncodec``'s guard against integers of 19
    digits or more (a regex search that costs more than the parse): orjson reads an
    integer beyond 64 bits as a float, which fails the ``int`` checks of the only numbers
    read here, and reads every other value as the standard library does; what it refuses
    goes to the checked path, which parses with that guard."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
        usage = data["usage"]
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    except (LookupError, TypeError):
        return None
    if not (
        type(content) is str
        and type(prompt) is int
        and prompt >= 0
        and type(completion) is int
        and completion >= 0
    ):
        return None
    finish, model = choice.get("finish_reason"), data.get("model")
    return (
        content,
        finish if type(finish) is str else None,
        model if type(model) is str else None,
        prompt,
        completion,
    )


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_reply(body: bytes) -> Reply:
    """A non-streamed chat completion."""
    fast = _plain_reply(body)
    return Reply(*fast) if fast is not None else _checked_reply(body)


def reply_fields(body: bytes) -> ReplyFields:
    """:func:`parse_reply` as a tuple (no :class:`Reply` built): ``(content,
    finish_reason, model, prompt_tokens, completion_tokens)``."""
    fast = _plain_reply(body)
    if fast is not None:
        return fast
    reply = _checked_reply(body)
    return (
        reply.content,
        reply.finish_reason,
        reply.model,
        reply.prompt_tokens,
        reply.completion_tokens,
    )


def _checked_reply(body: bytes) -> Reply:
    """:func:`parse_reply` with every check, naming what is wrong."""
    data = _json_object(body, "the reply")
    choice = _first_choice(data, "the reply")
    message = choice.get("message")
    if not isinstance(message, dict):
        raise WireError("the reply's first choice has no message")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise WireError(f"the reply's message content is {type(content).__name__}, not text")
    usage = data.get("usage")
    return Reply(
        content=content or "",
        finish_reason=_optional_str(choice.get("finish_reason")),
        model=_optional_str(data.get("model")),
        prompt_tokens=_tokens(usage, "prompt_tokens") or 0,
        completion_tokens=_tokens(usage, "completion_tokens") or 0,
    )


def parse_chunk(data: str) -> Chunk:
    """One ``data:`` payload of a stream (not ``[DONE]``)."""
    obj = _json_object(data, "a stream chunk")
    usage = obj.get("usage")
    choices = obj.get("choices")
    delta_text = ""
    finish: str | None = None
    if isinstance(choices, list) and choices:
        choice = choices[0]
        if not isinstance(choice, dict):
            raise WireError("a stream chunk has a choice that is not an object")
        delta = choice.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            delta_text = delta["content"]
        finish = _optional_str(choice.get("finish_reason"))
    elif "error" in obj:
        raise WireError(f"the stream carries an error: {error_text(data.encode())}")
    elif usage is None:
        raise WireError("a stream chunk has neither choices nor usage")
    return Chunk(
        delta=delta_text,
        finish_reason=finish,
        model=_optional_str(obj.get("model")),
        prompt_tokens=_tokens(usage, "prompt_tokens"),
        completion_tokens=_tokens(usage, "completion_tokens"),
    )


def parse_embeddings(body: bytes, count: int) -> list[list[float]]:
    """The vectors of an ``/embeddings`` reply, in input order; ``count`` inputs were sent."""
    data = _json_object(body, "the embeddings reply")
    items = data.get("data")
    if not isinstance(items, list):
        raise WireError("the embeddings reply has no data list")
    if len(items) != count:
        raise WireError(f"the embeddings reply has {len(items)} vectors for {count} inputs")
    vectors: list[list[float] | None] = [None] * count
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise WireError("the embeddings reply has an item that is not an object")
        index = item.get("index", position)
        vector = item.get("embedding")
        if not isinstance(index, int) or not 0 <= index < count or vectors[index] is not None:
            raise WireError(f"the embeddings reply has a bad or repeated index {index!r}")
        if not isinstance(vector, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in vector
        ):
            raise WireError(f"the embeddings reply's item {index} is not a list of numbers")
        vectors[index] = [float(x) for x in vector]
    return [v for v in vectors if v is not None]
