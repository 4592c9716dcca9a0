"""The Prometheus text exposition: types, escaping, cumulative histogram buckets."""

from __future__ import annotations

import re

import pytest

from llmops.runtime.metrics import Counter, Histogram, RuntimeMetrics

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+Inf-]+$')


def test_counter_labels_are_escaped() -> None:
    counter = Counter("x_total", "help", ("app",))
    counter.inc(('we"ird\\app\n',), 2)
    assert counter.samples() == ['x_total{app="we\\"ird\\\\app\\n"} 2']


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    histogram = Histogram("h_seconds", "help", ("app",), (0.1, 1.0))
    for value in (0.05, 0.5, 0.5, 3.0):
        histogram.observe(("a",), value)
    assert histogram.samples() == [
        'h_seconds_bucket{app="a",le="0.1"} 1',
        'h_seconds_bucket{app="a",le="1"} 3',
        'h_seconds_bucket{app="a",le="+Inf"} 4',
        'h_seconds_sum{app="a"} 4.05',
        'h_seconds_count{app="a"} 4',
    ]


def test_every_line_of_the_exposition_is_well_formed() -> None:
    metrics = RuntimeMetrics()
    metrics.requests.inc(("demo", "dev", "invoke", "200"))
    metrics.latency.observe(("demo", "dev", "invoke"), 0.012)
    metrics.cost.inc(("demo", "dev"), 0.000123)
    metrics.in_flight.inc(())
    text = metrics.render()
    assert text.endswith("\n")
    names = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            names.add(line.split()[2])
            continue
        assert SAMPLE.match(line), line
    assert {
        "llmops_requests_total",
        "llmops_request_duration_seconds",
        "llmops_tokens_total",
        "llmops_cost_usd_total",
        "llmops_guardrail_blocks_total",
        "llmops_upstream_errors_total",
    } <= names
    assert "llmops_requests_in_flight 1" in text


@pytest.mark.parametrize("threadsafe", [True, False])
def test_a_value_on_a_bound_counts_in_that_bucket(threadsafe: bool) -> None:
    histogram = Histogram("h", "help", (), (0.1, 1.0), threadsafe=threadsafe)
    for value in (0.1, 1.0, 1.0000001, float("nan")):
        histogram.observe((), value)
    assert histogram.counts[()] == [1, 1, 2]


def test_the_servers_metrics_take_no_locks_and_count_the_same() -> None:
    """The server's families live on its event loop: no lock, same numbers."""
    metrics = RuntimeMetrics()
    assert all(family._lock is None for family in metrics.families)
    locked = Counter("x_total", "help", ("app",))
    for counter in (metrics.requests, locked):
        labels = ("a",) if counter is locked else ("a", "dev", "invoke", "200")
        counter.inc(labels)
        counter.inc(labels, 2)
        assert counter.get(labels) == 3
    metrics.in_flight.inc(())
    metrics.in_flight.inc((), -1)
    assert metrics.in_flight.get(()) == 0
