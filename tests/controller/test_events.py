"""Kubernetes Events for promotions, rollbacks, gate failures and app failures."""

from __future__ import annotations

import io
from typing import Any

from llmops.adapters.kubelease import EventSpec, KubeEvents, api_client
from llmops.controller.events import EventRecorder, Regarding
from llmops.controller.types import AppFailure, GateFailure, PassOutcome, Promotion, Rollback
from llmops.domain.errors import Permanent
from llmops.runtime.logs import JsonLogger


def recorder() -> tuple[EventRecorder, list[EventSpec], io.StringIO]:
    sent: list[EventSpec] = []
    log = io.StringIO()
    return EventRecorder(sent.append, Regarding("ops"), "pod-a", JsonLogger(log)), sent, log


def everything(_: str) -> bool:
    return True


def test_each_outcome_becomes_an_event_about_the_lease() -> None:
    events, sent, _ = recorder()
    events.record(
        PassOutcome(
            promotions=(Promotion("bot", "prod", "bot@sha256:aa", "test", "https://pr/1"),),
            rollbacks=(Rollback("faq", "test", "faq@sha256:01", "faq@sha256:02", "verify failed"),),
            gate_failures=(GateFailure("faq", "prod", "faq@sha256:02", "pass rate 0.50 < 0.95"),),
            app_failures=(AppFailure("broken", "dev", "model endpoint refused"),),
        ),
        everything,
    )
    assert [(e.reason, e.type) for e in sent] == [
        ("Promoted", "Normal"),
        ("RolledBack", "Warning"),
        ("GateFailed", "Warning"),
        ("ReconcileFailed", "Warning"),
    ]
    assert sent[0].message == "bot: bot@sha256:aa promoted from test to prod (https://pr/1)"
    assert sent[1].message == "faq in test rolled back from faq@sha256:02 to faq@sha256:01: verify failed"
    assert sent[3].message == "broken in dev: model endpoint refused"
    assert {(e.namespace, e.regarding_kind, e.regarding_name, e.host) for e in sent} == {
        ("ops", "Lease", "llmops-controller", "pod-a")
    }


def test_a_failure_is_reported_when_it_starts_or_changes_and_when_it_ends() -> None:
    events, sent, _ = recorder()
    failing = PassOutcome(app_failures=(AppFailure("x", "dev", "refused"),))
    for _ in range(5):
        events.record(failing, everything)
    assert [e.reason for e in sent] == ["ReconcileFailed"]
    events.record(PassOutcome(app_failures=(AppFailure("x", "dev", "timed out"),)), everything)
    assert [e.reason for e in sent] == ["ReconcileFailed", "ReconcileFailed"]
    # a pass that left x out says nothing about x
    events.record(PassOutcome(), lambda app: app != "x")
    assert len(sent) == 2
    events.record(PassOutcome(), everything)
    assert [e.reason for e in sent][-1] == "Recovered"
    assert sent[-1].message == "x in dev reconciles again"


def test_a_failing_event_write_is_logged_once_and_never_raised() -> None:
    log = io.StringIO()

    def refuse(spec: EventSpec) -> None:
        raise Permanent("the Kubernetes API refused to create an Event (403 Forbidden)")

    events = EventRecorder(refuse, Regarding("ops"), logger=JsonLogger(log))
    for _ in range(3):
        events.record(PassOutcome(promotions=(Promotion("a", "prod", "a@sha256:1"),)), everything)
    assert log.getvalue().count("could not write an event") == 1


def test_events_reach_the_api_server(kube_server: Any) -> None:
    events = EventRecorder(
        KubeEvents(api_client(kube_server.kubeconfig)).create, Regarding("llm-test"), "pod-a"
    )
    events.record(
        PassOutcome(rollbacks=(Rollback("faq", "prod", "faq@sha256:01", "faq@sha256:02"),)),
        everything,
    )
    stored = kube_server.objects("Event", "llm-test")
    assert [(e["reason"], e["type"]) for e in stored] == [("RolledBack", "Warning")]
    assert stored[0]["involvedObject"]["kind"] == "Lease"
