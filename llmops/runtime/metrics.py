"""Prometheus metrics of the runtime, in the text exposition format (version 0.0.4);
updated by ``llmops.runtime.server`` and rendered at ``GET /metrics``.

Hand-written: a counter, a gauge and a histogram are a few lines each, and the runtime
stays free of a client library. Every family is labelled by ``app`` and ``release`` (the
404s of unknown apps are counted under ``app=""`` so a scanner cannot grow the label set).

Each update is O(1): a dict update, and a binary search for a histogram's bucket. A family
is thread-safe (a lock around updates and reads) unless it is made with
``threadsafe=False``: the server's families are, because only its event loop touches them
(requests, the reloader's swap, ``/metrics``), and the loop already runs one callback at a
time. The controller updates its metrics from threads and keeps the locks.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _labels(names: Iterable[str], values: Iterable[str], extra: str = "") -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


class _Family:
    kind = "untyped"

    def __init__(
        self, name: str, help_text: str, labelnames: Labels, *, threadsafe: bool = True
    ) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = labelnames
        self._lock: threading.Lock | None = threading.Lock() if threadsafe else None

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Family):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(
        self, name: str, help_text: str, labelnames: Labels, *, threadsafe: bool = True
    ) -> None:
        super().__init__(name, help_text, labelnames, threadsafe=threadsafe)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        values = self.values
        if self._lock is None:
            values[labels] = values.get(labels, 0.0) + amount
            return
        with self._lock:
            values[labels] = values.get(labels, 0.0) + amount

    def get(self, labels: Labels) -> float:
        return self.values.get(labels, 0.0)

    def samples(self) -> list[str]:
        if self._lock is None:
            items = sorted(self.values.items())
        else:
            with self._lock:
                items = sorted(self.values.items())
        return [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in items]


class Gauge(Counter):
    """A value that goes up and down."""

    kind = "gauge"

    def set(self, labels: Labels, value: float) -> None:
        if self._lock is None:
            self.values[labels] = value
            return
        with self._lock:
            self.values[labels] = value

    def remove_other(self, keep: Labels) -> None:
        def kept() -> dict[Labels, float]:
            return {k: v for k, v in self.values.items() if k == keep or k[0] != keep[0]}

        if self._lock is None:
            self.values = kept()
            return
        with self._lock:
            self.values = kept()


class Histogram(_Family):
    """Observations counted into cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Labels,
        buckets: tuple[float, ...],
        *,
        threadsafe: bool = True,
    ) -> None:
        super().__init__(name, help_text, labelnames, threadsafe=threadsafe)
        self.buckets = buckets
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = {}

    def observe(self, labels: Labels, value: float) -> None:
        # the first bucket whose bound is >= value; NaN (no bound holds) counts under +Inf
        index = bisect.bisect_left(self.buckets, value) if value == value else len(self.buckets)
        if self._lock is None:
            self._add(labels, index, value)
            return
        with self._lock:
            self._add(labels, index, value)

    def _add(self, labels: Labels, index: int, value: float) -> None:
        counts = self.counts.get(labels)
        if counts is None:
            counts = self.counts[labels] = [0] * (len(self.buckets) + 1)
            self.sums[labels] = 0.0
        counts[index] += 1
        self.sums[labels] += value

    def samples(self) -> list[str]:
        lines: list[str] = []
        if self._lock is None:
            items = sorted((k, list(v), self.sums[k]) for k, v in self.counts.items())
        else:
            with self._lock:
                items = sorted((k, list(v), self.sums[k]) for k, v in self.counts.items())
        for labels, counts, total in items:
            running = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                le = f'le="{_number(bound)}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, labels, le)} {running}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, labels)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, labels)} {running}")
        return lines


class RuntimeMetrics:
    """Every metric ``llmops serve`` exposes; updated and rendered on the server's event
    loop only (``threadsafe=False``: no locks)."""

    def __init__(self) -> None:
        app_release = ("app", "release")
        self.requests = Counter(
            "llmops_requests_total",
            "HTTP requests by route and status.",
            (*app_release, "route", "status"),
            threadsafe=False,
        )
        self.latency = Histogram(
            "llmops_request_duration_seconds",
            "Time from request to last response byte.",
            (*app_release, "route"),
            LATENCY_BUCKETS,
            threadsafe=False,
        )
        self.upstream_latency = Histogram(
            "llmops_upstream_duration_seconds",
            "Time spent waiting for the model backend, retries included.",
            app_release,
            LATENCY_BUCKETS,
            threadsafe=False,
        )
        self.tokens = Counter(
            "llmops_tokens_total",
            "Tokens sent (in) to and received (out) from the model.",
            (*app_release, "direction"),
            threadsafe=False,
        )
        self.cost = Counter(
            "llmops_cost_usd_total", "Model cost in US dollars.", app_release, threadsafe=False
        )
        self.guardrail_blocks = Counter(
            "llmops_guardrail_blocks_total",
            "Requests or replies blocked, by guardrail.",
            (*app_release, "guardrail", "side"),
            threadsafe=False,
        )
        self.redactions = Counter(
            "llmops_pii_redactions_total",
            "PII items redacted from replies, by kind.",
            (*app_release, "kind"),
            threadsafe=False,
        )
        self.upstream_errors = Counter(
            "llmops_upstream_errors_total",
            "Model backend failures, by reason.",
            (*app_release, "reason"),
            threadsafe=False,
        )
        self.reloads = Counter(
            "llmops_reloads_total", "Hot reloads by result.", ("app", "result"), threadsafe=False
        )
        self.in_flight = Gauge(
            "llmops_requests_in_flight", "Requests being served now.", (), threadsafe=False
        )
        self.info = Gauge(
            "llmops_app_info",
            "The release being served (value 1).",
            ("app", "release", "environment", "model"),
            threadsafe=False,
        )
        self.families: tuple[_Family, ...] = (
            self.requests,
            self.latency,
            self.upstream_latency,
            self.tokens,
            self.cost,
            self.guardrail_blocks,
            self.redactions,
            self.upstream_errors,
            self.reloads,
            self.in_flight,
            self.info,
        )

    def render(self) -> str:
        """The exposition text served at ``/metrics``."""
        lines: list[str] = []
        for family in self.families:
            lines.extend(family.header())
            lines.extend(family.samples())
        return "\n".join(lines) + "\n"
