"""Model calls of an eval run: the cache in front, the rate limit, and the counters.

Called by ``llmops.evals.runner``: :class:`RunCalls` wraps the run's one pooled
``ModelProvider`` and is shared by every sample; :meth:`RunCalls.for_sample` hands the
runtime's ``complete()`` a view that knows the sample index (part of the cache key), so
the app is exercised exactly as ``llmops serve`` runs it while replies come from the
cache when they can. Counts: ``model_calls`` (requests that left the process),
``cache_hits``/``cache_misses`` (lookups, when the cache is on) and ``retries``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from llmops.domain.chat import ChatMessage, ChatRequest, ChatResponse
from llmops.domain.errors import Retryable
from llmops.evals.cache import EvalCache, cache_key, embed_key
from llmops.evals.ratelimit import RateLimits
from llmops.runtime.provider import ModelProvider


class RunCalls:
    """The run's provider with cache, rate limits and counters.

    ``provider`` may be a factory: the pooled client is then built on the first call
    that leaves the process, so a run served wholly from the cache never opens one.
    """

    def __init__(
        self,
        provider: ModelProvider | Callable[[], ModelProvider],
        provider_name: str,
        cache: EvalCache | None,
        limits: RateLimits,
    ) -> None:
        self._provider: ModelProvider | None = None
        self._factory: Callable[[], ModelProvider] | None = None
        if callable(provider) and not hasattr(provider, "complete"):
            self._factory = provider
        else:
            self._provider = provider  # type: ignore[assignment]
        self.provider_name = provider_name
        self.cache = cache
        self.limits = limits
        self.model_calls = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.retries = 0
        self._known: dict[str, ChatResponse] = {}
        self._looked_up: set[str] = set()
        # (id(messages), sample) -> (messages, params, key): keys computed for prefetch,
        # reused when the runtime builds the same request again from the same messages.
        self._memo: dict[tuple[int, int], tuple[Any, Any, str]] = {}

    @property
    def provider(self) -> ModelProvider:
        if self._provider is None:
            assert self._factory is not None
            self._provider = self._factory()
        return self._provider

    @property
    def opened(self) -> ModelProvider | None:
        """The provider, if it was ever built."""
        return self._provider

    def key(self, request: ChatRequest, sample: int) -> str:
        memo = self._memo.get((id(request.messages), sample))
        if memo is not None and memo[0] is request.messages and memo[1] is request.params:
            return memo[2]
        key = cache_key(request, self.provider_name, sample=sample)
        self._memo[(id(request.messages), sample)] = (request.messages, request.params, key)
        return key

    def prefetch(self, keys: Iterable[str]) -> int:
        """Look ``keys`` up in one pass before the run; later lookups of them are free."""
        if self.cache is None:
            return 0
        wanted = [k for k in keys if k not in self._looked_up]
        self._known.update(self.cache.get_many(wanted))
        self._looked_up.update(wanted)
        return len(self._known)

    def cached(self, key: str) -> ChatResponse | None:
        if self.cache is None:
            return None
        found = self._known.get(key)
        if found is None and key not in self._looked_up:
            found = self.cache.get(key)
            self._looked_up.add(key)
        if found is None:
            self.cache_misses += 1
        else:
            self.cache_hits += 1
        return found

    async def complete(
        self,
        request: ChatRequest,
        api_key: str | None,
        sample: int = 0,
        view: SampleProvider | None = None,
    ) -> tuple[ChatResponse, bool]:
        """A reply and whether it came from the cache; provider errors propagate.

        Retries of this call are added to the run's count and to ``view``'s."""
        key: str | None = None
        if self.cache is not None:
            key = self.key(request, sample)
            hit = self.cached(key)
            if hit is not None:
                return hit, True
        bucket = self.limits.bucket(request.base_url)
        if bucket is not None:
            await bucket.acquire()
        self.model_calls += 1
        try:
            response = await self.provider.complete(request, api_key)
        except Exception as exc:
            # After a Retryable the client has retried exactly max_retries times.
            default = request.max_retries if isinstance(exc, Retryable) else 0
            self._count_retries(getattr(exc, "retries", default), view)
            raise
        self._count_retries(response.retries, view)
        if key is not None and self.cache is not None:
            self.cache.put(key, response)
            self._known[key] = response
        return response, False

    def _count_retries(self, retries: int, view: SampleProvider | None) -> None:
        self.retries += retries
        if view is not None:
            view.retries += retries

    async def embed(
        self, base_url: str, model: str, texts: list[str], api_key: str | None
    ) -> list[list[float]]:
        """Embedding vectors, through the cache."""
        key = embed_key(base_url, self.provider_name, model, texts) if self.cache else None
        if key is not None and self.cache is not None:
            found = self.cache.get_value(key)
            if isinstance(found, list):
                self.cache_hits += 1
                return found
            self.cache_misses += 1
        bucket = self.limits.bucket(base_url)
        if bucket is not None:
            await bucket.acquire()
        self.model_calls += 1
        vectors = await self.provider.embed(base_url, model, texts, api_key)
        if key is not None and self.cache is not None:
            self.cache.put_value(key, vectors)
        return vectors

    def for_sample(self, sample: int) -> SampleProvider:
        return SampleProvider(self, sample)


class SampleProvider:
    """A ``ModelProvider`` for one sample: what the runtime's ``complete()`` calls.

    ``cached``, ``retries`` and ``latency_ms`` (as measured when each reply was first
    produced) describe the calls made through it (a schema repair makes two).
    """

    __slots__ = ("_calls", "cached", "latency_ms", "retries", "sample")

    def __init__(self, calls: RunCalls, sample: int) -> None:
        self._calls = calls
        self.sample = sample
        self.cached = True
        self.retries = 0
        self.latency_ms = 0.0

    async def complete(self, request: ChatRequest, api_key: str | None = None) -> ChatResponse:
        response, hit = await self._calls.complete(request, api_key, self.sample, self)
        self.cached = self.cached and hit
        self.latency_ms += response.latency_ms
        return response

    def stream(self, request: ChatRequest, api_key: str | None = None) -> AsyncIterator[str]:
        return self._calls.provider.stream(request, api_key)

    async def embed(
        self, base_url: str, model: str, texts: list[str], api_key: str | None = None
    ) -> list[list[float]]:
        return await self._calls.embed(base_url, model, texts, api_key)

    async def aclose(self) -> None:
        """The run owns the pooled provider; nothing to close here."""


def judge_request(
    base_url: str, model: str, system: str, prompt: str, params: dict[str, Any], timeout: float,
    max_retries: int,
) -> ChatRequest:
    """The judge's request for one rubric prompt."""
    return ChatRequest(
        base_url=base_url,
        model=model,
        messages=(ChatMessage("system", system), ChatMessage("user", prompt)),
        params=params,
        timeout_seconds=timeout,
        max_retries=max_retries,
    )
