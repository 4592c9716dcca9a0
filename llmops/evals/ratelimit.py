"""A token bucket per model endpoint, so an eval run stays under a provider's request rate.

Called by ``llmops.evals.calls`` before every model request that leaves the process
(cache hits do not wait). Single event loop, no locks: each caller reserves a token by
decrementing the balance, possibly below zero, and sleeps until its token has accrued.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """``rate`` requests per second, evenly spaced; ``burst`` tokens may be spent at
    once after a quiet spell (default 1: no bursts)."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0 requests per second")
        self.rate = rate
        self.burst = burst if burst is not None else 1.0
        self._tokens = self.burst
        self._stamp = time.monotonic()

    def reserve(self, now: float | None = None) -> float:
        """Take one token; the seconds to wait before using it (0 when one was ready)."""
        current = time.monotonic() if now is None else now
        self._tokens = min(self.burst, self._tokens + (current - self._stamp) * self.rate)
        self._stamp = current
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


class RateLimits:
    """One bucket per base URL (per provider endpoint); no limit when ``rate`` is None."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, base_url: str) -> TokenBucket | None:
        if self.rate is None:
            return None
        key = base_url.rstrip("/")
        found = self._buckets.get(key)
        if found is None:
            found = self._buckets[key] = TokenBucket(self.rate)
        return found
