"""The Prometheus text exposition: types, escaping, cumulative histogram buckets."""

from __future__ import annotations

import re

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
