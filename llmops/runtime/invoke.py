"""One request through an app: bind inputs, input guardrails, render, call the model,
output guardrails (with one schema repair when configured), PII redaction. Called by
``llmops.runtime.server`` for ``/invoke`` and ``/v1/chat/completions``.

Errors: ``InputRejected``/``RenderFailed`` (bad inputs), ``GuardrailBlocked`` (input or
output side), and the adapters' ``Retryable``/``Permanent`` for model failures.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from llmops.domain.chat import ChatMessage, ChatRequest, Usage
from llmops.runtime.errors import GuardrailBlocked
from llmops.runtime.guardrails import first_output_failure, parse_json_reply, redact_output
from llmops.runtime.loaded import LoadedApp
from llmops.runtime.provider import ModelProvider
from llmops.runtime.render import RenderedPrompt
from llmops.runtime.streamguard import StreamGuard

_MAX_SCHEMA_IN_REPAIR = 4000


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """A checked reply: ``output`` is the parsed JSON for apps with an output schema,
    else the text; ``text`` is what an OpenAI client receives as the message content."""

    output: Any
    text: str
    usage: Usage
    upstream_ms: float
    finish_reason: str | None
    attempts: int
    redactions: dict[str, int]


def prepare(loaded: LoadedApp, given: Mapping[str, Any]) -> RenderedPrompt:
    """Bind inputs, run the input guardrails, render the messages."""
    bound = loaded.bind(given)
    failure = loaded.input_policy.first_failure(bound)
    if failure is not None:
        raise GuardrailBlocked("input", failure.name, failure.reason)
    return loaded.prompt.render(bound, loaded.builtin_values)


def chat_request(loaded: LoadedApp, messages: tuple[ChatMessage, ...]) -> ChatRequest:
    """The model request for ``messages`` with the app's model settings."""
    model = loaded.model
    return ChatRequest(
        base_url=model.base_url,
        model=model.name,
        messages=messages,
        params=model.params,
        timeout_seconds=model.timeout_seconds,
        max_retries=model.max_retries,
    )


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.prompt_tokens + b.prompt_tokens,
        a.completion_tokens + b.completion_tokens,
        a.cost_usd + b.cost_usd,
    )


def repair_message(loaded: LoadedApp, reason: str) -> ChatMessage:
    """The follow-up that asks the model to fix a reply that broke the output schema."""
    schema = json.dumps(loaded.output_schema, separators=(",", ":")) if loaded.output_schema else ""
    shown = f"\nThe schema:\n{schema}" if 0 < len(schema) <= _MAX_SCHEMA_IN_REPAIR else ""
    return ChatMessage(
        "user",
        f"Your reply did not satisfy the required output format: {reason}.\n"
        f"Reply again with only the corrected JSON, nothing else.{shown}",
    )


async def invoke(
    loaded: LoadedApp, provider: ModelProvider, given: Mapping[str, Any]
) -> InvokeResult:
    """Answer one request, whole (not streamed)."""
    rendered = prepare(loaded, given)
    return await complete(loaded, provider, rendered)


async def complete(
    loaded: LoadedApp, provider: ModelProvider, rendered: RenderedPrompt
) -> InvokeResult:
    """Call the model for ``rendered`` and apply the output guardrails."""
    policy = loaded.output
    request = chat_request(loaded, rendered.messages)
    started = time.perf_counter()
    response = await provider.complete(request, loaded.model.api_key)
    usage, text, attempts = response.usage, response.content, 1
    failure = first_output_failure(text, policy)
    if failure is not None and failure.name == "json-schema" and policy.repair_retries > 0:
        repaired = replace(
            request,
            messages=(
                *rendered.messages,
                ChatMessage("assistant", text),
                repair_message(loaded, failure.reason),
            ),
        )
        response = await provider.complete(repaired, loaded.model.api_key)
        usage, text, attempts = _add(usage, response.usage), response.content, 2
        failure = first_output_failure(text, policy)
    upstream_ms = (time.perf_counter() - started) * 1000.0
    if failure is not None:
        raise GuardrailBlocked("output", failure.name, failure.reason, usage=usage)
    output: Any = parse_json_reply(text) if policy.validator is not None else text
    output, redactions = redact_output(output, policy.redact)
    if policy.validator is not None:
        text = json.dumps(output, ensure_ascii=False, separators=(",", ":"))
    else:
        text = output
    return InvokeResult(
        output, text, usage, upstream_ms, response.finish_reason, attempts, redactions
    )


@dataclass(slots=True)
class StreamOutcome:
    """What a finished stream cost and did; filled in as the stream runs."""

    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    redactions: dict[str, int] = field(default_factory=dict)
    upstream_ms: float = 0.0


async def stream(
    loaded: LoadedApp,
    provider: ModelProvider,
    rendered: RenderedPrompt,
    outcome: StreamOutcome,
) -> AsyncGenerator[str, None]:
    """The checked reply as text pieces. Apps with an output schema are answered whole
    (the contract needs the full reply) and sent as one piece; others stream through a
    :class:`StreamGuard`. Raises ``GuardrailBlocked`` or upstream errors mid-way."""
    if loaded.output.validator is not None:
        result = await complete(loaded, provider, rendered)
        outcome.usage, outcome.finish_reason = result.usage, result.finish_reason
        outcome.redactions, outcome.upstream_ms = result.redactions, result.upstream_ms
        yield result.text
        return
    guard = StreamGuard(loaded.output)
    started = time.perf_counter()
    deltas = provider.stream(chat_request(loaded, rendered.messages), loaded.model.api_key)
    try:
        async for delta in deltas:
            piece = guard.feed(delta)
            if piece:
                yield piece
        rest = guard.finish()
        if rest:
            yield rest
    finally:
        closer = getattr(deltas, "aclose", None)
        if closer is not None:
            await closer()
        outcome.upstream_ms = (time.perf_counter() - started) * 1000.0
        outcome.redactions = guard.redactions
        usage = getattr(deltas, "usage", None)
        if isinstance(usage, Usage):
            outcome.usage = usage
        finish = getattr(deltas, "finish_reason", None)
        outcome.finish_reason = finish if isinstance(finish, str) else outcome.finish_reason
