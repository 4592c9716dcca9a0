"""Retry timing for HTTP adapters: exponential backoff with full jitter, and Retry-After.

Called by ``llmops.adapters.openai_client`` (and any adapter that retries HTTP calls).
Pure: the random source and the clock are passed in.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Status codes worth retrying: the server is busy or briefly broken, or asked us to wait.
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before retry ``attempt + 1``: uniform in [0, min(cap, base·2^attempt)].

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads the
    retries of many clients that failed together.
    """
    return rng.uniform(0.0, min(cap, base * (2.0**attempt)))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks us to wait, or None when absent or unreadable.

    Accepts delta-seconds (``"2"``, and ``"1.5"`` which some servers send) and HTTP dates
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``); a date in the past means 0.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
