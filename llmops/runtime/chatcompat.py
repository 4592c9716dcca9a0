"""The OpenAI chat-completions surface of an app; called by ``llmops.runtime.server`` for
``POST /v1/chat/completions``.

How a chat request maps to the app (``model`` is the app's name):

1. an ``inputs`` object in the body (an OpenAI SDK sends it with
   ``extra_body={"inputs": {...}}``) is used as the app's inputs, as with ``/invoke``;
2. otherwise the last ``user`` message is read: when its text is a JSON object whose keys
   are all declared input names, that object is the inputs;
3. otherwise its whole text becomes the app's *primary input*: its only required string
   input or, when none is required, its only string input. An app with no single such
   input answers 400 and asks for (1) or (2).

The app's own templates build the conversation sent to the model: the caller's system
and assistant messages, and earlier turns, are not forwarded — the released prompt is the
contract. Sampling parameters come from the manifest for the same reason; ``temperature``,
``max_tokens`` and the like in the request are accepted and ignored. ``n`` must be 1.
Replies, stream chunks and errors have OpenAI's shapes, so OpenAI clients work unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmops.domain.chat import Usage
from llmops.domain.models.app import InputSpec

_ROLES = frozenset({"system", "user", "assistant", "developer", "tool", "function"})


class ChatRequestInvalid(ValueError):
    """A chat request that cannot be served; ``param`` names the field, as OpenAI does."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ChatCall:
    """What a chat-completions request asks for."""

    model: str
    stream: bool
    include_usage: bool
    body: dict[str, Any]


def parse_chat(body: dict[str, Any]) -> ChatCall:
    """Check the request's shape (not yet its inputs)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ChatRequestInvalid("'model' must be the name of the app to call", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ChatRequestInvalid("'stream' must be true or false", "stream")
    n = body.get("n", 1)
    if n != 1 or isinstance(n, bool):
        raise ChatRequestInvalid("only n=1 is supported", "n")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise ChatRequestInvalid("'stream_options' must be an object", "stream_options")
        include_usage = options.get("include_usage") is True
    messages = body.get("messages")
    if not isinstance(messages, list) or (not messages and "inputs" not in body):
        raise ChatRequestInvalid("'messages' must be a non-empty list", "messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise ChatRequestInvalid(
                f"{where} must be an object with a role ({', '.join(sorted(_ROLES))})", where
            )
        _text(message.get("content"), f"{where}.content")
    return ChatCall(model, stream, include_usage, body)


def _text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict):
                raise ChatRequestInvalid(f"{where} parts must be objects", where)
            if part.get("type") == "text":
                if not isinstance(part.get("text"), str):
                    raise ChatRequestInvalid(f"{where} text parts need a string 'text'", where)
                parts.append(part["text"])
        return "".join(parts)
    raise ChatRequestInvalid(f"{where} must be a string or a list of content parts", where)


def primary_input(declared: Mapping[str, InputSpec]) -> str | None:
    """The input a plain chat message fills, or None when there is no single one."""
    strings = [name for name, spec in declared.items() if spec.type == "string"]
    required = [name for name in strings if declared[name].is_required]
    if len(required) == 1:
        return required[0]
    if not required and len(strings) == 1:
        return strings[0]
    return None


def chat_inputs(call: ChatCall, declared: Mapping[str, InputSpec]) -> dict[str, Any]:
    """The app inputs a chat request carries (see the module docstring for the rules)."""
    explicit = call.body.get("inputs")
    if explicit is not None:
        if not isinstance(explicit, dict):
            raise ChatRequestInvalid("'inputs' must be an object of input values", "inputs")
        return explicit
    users = [m for m in call.body["messages"] if m.get("role") == "user"]
    if not users:
        raise ChatRequestInvalid("the request has no user message to answer", "messages")
    text = _text(users[-1].get("content"), "messages.content")
    if text.lstrip().startswith("{"):
        try:
            candidate = json.loads(text)
        except ValueError:
            candidate = None
        if isinstance(candidate, dict) and candidate and set(candidate) <= set(declared):
            return candidate
    name = primary_input(declared)
    if name is None:
        listing = ", ".join(declared) or "none"
        raise ChatRequestInvalid(
            f"app {call.model!r} takes several inputs ({listing}); send them as a JSON object "
            "in the last user message, or as 'inputs' in the request body",
            "messages",
        )
    return {name: text}


def completion(
    request_id: str, model: str, text: str, finish_reason: str | None, usage: Usage, release: str
) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": release,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_object(usage),
    }


def usage_object(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def chunk(
    request_id: str,
    model: str,
    created: int,
    release: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: Usage | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` object; ``delta`` None makes the usage-only chunk."""
    body: dict[str, Any] = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": release,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage is not None:
        body["usage"] = usage_object(usage)
    return body
