"""Chat-completion values exchanged between the runtime, evals and model providers.

Frozen and I/O-free. Providers (``llmops.adapters.openai_client``) turn a ChatRequest
into a ChatResponse; the runtime and the eval runner build requests and read responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """Everything that shapes a model's reply; also the key of the eval response cache."""

    base_url: str
    model: str
    messages: tuple[ChatMessage, ...]
    params: dict[str, Any] = field(default_factory=dict)
    timeout_seconds: float = 30.0
    max_retries: int = 2


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the provider, and the cost computed from the price table."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A completed reply."""

    content: str
    usage: Usage
    model: str
    latency_ms: float
    retries: int = 0
    finish_reason: str | None = None
