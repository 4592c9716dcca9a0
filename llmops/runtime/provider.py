"""The one interface every model backend implements; the runtime and evals depend on it.

Implementations live in ``llmops.adapters`` (the OpenAI-compatible HTTP client); tests may
use any object with these methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from llmops.domain.chat import ChatRequest, ChatResponse


class ModelProvider(Protocol):
    """An async chat-completions backend with pooled connections."""

    async def complete(self, request: ChatRequest, api_key: str | None = None) -> ChatResponse:
        """One reply. Raises ``Retryable``/``Permanent`` (llmops.domain.errors) after retries."""
        ...

    def stream(self, request: ChatRequest, api_key: str | None = None) -> AsyncIterator[str]:
        """The reply as text deltas (server-sent events), in order."""
        ...

    async def embed(
        self, base_url: str, model: str, texts: list[str], api_key: str | None = None
    ) -> list[list[float]]:
        """Embedding vectors for ``texts``, in order."""
        ...

    async def aclose(self) -> None:
        """Close pooled connections."""
        ...
