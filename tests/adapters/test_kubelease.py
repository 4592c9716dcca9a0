"""The Lease and Event adapter against the Kubernetes API test server over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from llmops.adapters.kubelease import (
    NUDGE_ANNOTATION,
    EventSpec,
    KubeEvents,
    KubeLeases,
    LeaseConflict,
    LeaseRecord,
    api_client,
    micro_time,
)
from llmops.domain.errors import Permanent, Retryable, UsageError

NS = "llm-test"


def leases(kube_server: Any, name: str = "ctl", namespace: str = NS) -> KubeLeases:
    return KubeLeases(api_client(kube_server.kubeconfig), namespace, name)


def record(holder: str = "a", **changes: Any) -> LeaseRecord:
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    fields: dict[str, Any] = {
        "holder": holder,
        "lease_duration_seconds": 15,
        "acquire_time": moment,
        "renew_time": moment,
        "transitions": 0,
    }
    fields.update(changes)
    return LeaseRecord(**fields)


def test_micro_time_always_has_six_fractional_digits() -> None:
    assert micro_time(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2025-01-02T03:04:05.000000Z"


def test_get_create_replace_round_trip(kube_server: Any) -> None:
    store = leases(kube_server)
    assert store.get() is None
    created = store.create(record())
    assert created.resource_version is not None
    stored = kube_server.get("Lease", "ctl", NS)
    assert stored["spec"]["holderIdentity"] == "a"
    assert stored["spec"]["leaseDurationSeconds"] == 15
    renewed = stored["spec"]["renewTime"].replace("Z", "+00:00")
    assert datetime.fromisoformat(renewed) == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    read = store.get()
    assert read is not None
    assert (read.holder, read.lease_duration_seconds, read.transitions) == ("a", 15, 0)
    assert read.renew_time == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    later = datetime(2025, 1, 2, 3, 4, 7, 250000, tzinfo=UTC)
    replaced = store.replace(
        LeaseRecord("b", 15, later, later, 1, read.resource_version, nudge='{"id":"1"}')
    )
    assert replaced.resource_version != read.resource_version
    again = store.get()
    assert again is not None
    assert (again.holder, again.transitions, again.renew_time) == ("b", 1, later)
    assert again.nudge == '{"id":"1"}'
    assert kube_server.get("Lease", "ctl", NS)["metadata"]["annotations"] == {
        NUDGE_ANNOTATION: '{"id":"1"}'
    }


def test_a_stale_replace_is_a_conflict_and_writes_nothing(kube_server: Any) -> None:
    store = leases(kube_server)
    first = store.create(record())
    store.replace(record("b", resource_version=first.resource_version))
    with pytest.raises(LeaseConflict):
        store.replace(record("c", resource_version=first.resource_version))
    current = store.get()
    assert current is not None and current.holder == "b"


def test_creating_an_existing_lease_is_a_conflict(kube_server: Any) -> None:
    store = leases(kube_server)
    store.create(record())
    with pytest.raises(LeaseConflict):
        leases(kube_server).create(record("b"))


def test_a_missing_namespace_is_a_permanent_error_that_says_so(kube_server: Any) -> None:
    store = leases(kube_server, namespace="nowhere")
    with pytest.raises(Permanent, match="namespace"):
        store.create(record())


def test_rbac_denial_names_the_fix(kube_server: Any) -> None:
    kube_server.deny("get", "leases")
    with pytest.raises(Permanent, match=r"403.*llmops controller manifests"):
        leases(kube_server).get()


def test_server_errors_are_retryable(kube_server: Any) -> None:
    store = leases(kube_server)
    store.create(record())
    kube_server.fail_next(1, 500, methods=("GET",), path_contains="/leases/")
    with pytest.raises(Retryable) as caught:
        store.get()
    assert not isinstance(caught.value, LeaseConflict)
    assert store.get() is not None


def test_an_unreachable_api_is_retryable_and_names_the_server(unreachable_kubeconfig: Path) -> None:
    store = KubeLeases(api_client(unreachable_kubeconfig), NS, "ctl", timeout=(0.5, 0.5))
    with pytest.raises(Retryable, match=r"cannot reach the Kubernetes API at http://127\.0\.0\.1"):
        store.get()


def test_a_broken_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(UsageError, match="no usable Kubernetes configuration"):
        api_client(bad)


def test_events_are_created_about_the_lease(kube_server: Any) -> None:
    events = KubeEvents(api_client(kube_server.kubeconfig))
    events.create(
        EventSpec(
            namespace=NS,
            reason="Promoted",
            message="support-bot: support-bot@sha256:abc promoted to prod",
            type="Normal",
            regarding_kind="Lease",
            regarding_name="llmops-controller",
            regarding_api_version="coordination.k8s.io/v1",
            host="pod-a",
        )
    )
    stored = kube_server.objects("Event", NS)
    assert len(stored) == 1
    event = stored[0]
    assert event["reason"] == "Promoted"
    assert event["type"] == "Normal"
    assert event["involvedObject"] == {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "name": "llmops-controller",
        "namespace": NS,
    }
    assert event["source"] == {"component": "llmops-controller", "host": "pod-a"}
    assert event["count"] == 1


def test_event_rbac_denial_is_permanent(kube_server: Any) -> None:
    kube_server.deny("create", "events")
    events = KubeEvents(api_client(kube_server.kubeconfig))
    spec = EventSpec(NS, "Promoted", "m", "Normal", "Lease", "x", "coordination.k8s.io/v1")
    with pytest.raises(Permanent):
        events.create(spec)
