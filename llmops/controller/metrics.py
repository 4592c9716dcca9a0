"""Prometheus metrics of ``llmops controller``; updated by ``llmops.controller.loop`` and
the webhook, rendered at ``GET /metrics`` by ``llmops.controller.server``.

The metric types are the runtime's hand-written ones (``llmops.runtime.metrics``), so the
controller needs no client library either. Labels are apps and environments of the
repository (a bounded set), never request data.
"""

from __future__ import annotations

from llmops.runtime.metrics import Counter, Gauge, Histogram

PASS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class ControllerMetrics:
    """Every metric ``llmops controller`` exposes."""

    def __init__(self) -> None:
        self.pass_duration = Histogram(
            "llmops_controller_pass_duration_seconds",
            "Duration of reconcile passes, by trigger and result.",
            ("trigger", "result"),
            PASS_BUCKETS,
        )
        self.passes = Counter(
            "llmops_controller_passes_total",
            "Reconcile passes, by trigger and result (ok, degraded, error).",
            ("trigger", "result"),
        )
        self.queue_depth = Gauge(
            "llmops_controller_queue_depth", "Work items ready for the next pass.", ()
        )
        self.queue_delayed = Gauge(
            "llmops_controller_queue_delayed",
            "Work items waiting for their backoff to end.",
            (),
        )
        self.last_success = Gauge(
            "llmops_controller_last_success_timestamp_seconds",
            "Unix time of the last pass in which the environment converged.",
            ("environment",),
        )
        self.promotions = Counter(
            "llmops_controller_promotions_total",
            "Releases promoted (or proposed by pull request) into an environment.",
            ("app", "environment"),
        )
        self.rollbacks = Counter(
            "llmops_controller_rollbacks_total",
            "Automatic rollbacks after a failed rollout or verify.",
            ("app", "environment"),
        )
        self.gate_failures = Counter(
            "llmops_controller_gate_failures_total",
            "Releases that did not pass the gate into an environment.",
            ("app", "environment"),
        )
        self.app_failures = Counter(
            "llmops_controller_app_failures_total",
            "Apps that failed in a pass (each then backs off).",
            ("app",),
        )
        self.backoff = Gauge(
            "llmops_controller_app_backoff_seconds",
            "The current backoff of an app that keeps failing.",
            ("app",),
        )
        self.leader = Gauge(
            "llmops_controller_leader",
            "1 while this replica holds the lease (or runs without election), else 0.",
            (),
        )
        self.leader_transitions = Counter(
            "llmops_controller_leader_transitions_total",
            "Times this replica started or stopped leading.",
            ("to",),
        )
        self.webhooks = Counter(
            "llmops_controller_webhooks_total",
            "Webhook deliveries, by event and result.",
            ("event", "result"),
        )
        self.families = (
            self.pass_duration,
            self.passes,
            self.queue_depth,
            self.queue_delayed,
            self.last_success,
            self.promotions,
            self.rollbacks,
            self.gate_failures,
            self.app_failures,
            self.backoff,
            self.leader,
            self.leader_transitions,
            self.webhooks,
        )

    def render(self) -> str:
        """The exposition text served at ``/metrics``."""
        lines: list[str] = []
        for family in self.families:
            lines.extend(family.header())
            lines.extend(family.samples())
        return "\n".join(lines) + "\n"
