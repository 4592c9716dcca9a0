"""KubeClient over real HTTP against the Kubernetes API test server: server-side apply
(create, update, idempotent), reads, lists, deletes, rollout waits, events, Leases, and
every failure mapped to one actionable line: unreachable, DNS, TLS, 401, 403, 404
namespace, 409 and 5xx retried with backoff and never duplicating an object."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.kube import TEST_NAMESPACE as NS
from support.kube import write_kubeconfig
from support.kubeserver import KubeApiServer

from llmops.adapters.kube import (
    KubeClient,
    KubeConflict,
    KubeForbidden,
    KubeUnreachable,
    RolloutStatus,
    client_for,
    micro_time,
)
from llmops.domain.errors import ExternalError, Permanent, Retryable

JSON = dict[str, Any]


class Sleeps:
    """Records the delays the client asked for (and waits a tiny bit, not the full delay)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(min(seconds, 0.01))


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def kube(kube_server: KubeApiServer, sleeps: Sleeps) -> Iterator[KubeClient]:
    with KubeClient.from_config(
        kube_server.kubeconfig, backoff_base=0.05, rng=random.Random(7), sleep=sleeps
    ) as kube_client:
        yield kube_client


def deployment(
    name: str = "web", image: str = "nginx:1.0", replicas: int = 2, **labels: str
) -> JSON:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name, **labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


def configmap(name: str, **labels: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "data": {"k": "v"},
    }


# --- apply, get, list, delete --------------------------------------------------------------


def test_apply_creates_updates_and_is_idempotent(
    kube: KubeClient, kube_server: KubeApiServer
) -> None:
    created = kube.apply(deployment())
    assert created["metadata"]["uid"] and created["spec"]["replicas"] == 2
    same = kube.apply(deployment())
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    updated = kube.apply(deployment(image="nginx:2.0"))
    assert updated["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2.0"
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert len(kube_server.objects("Deployment")) == 1
    applies = [r for r in kube_server.requests if r.method == "PATCH"]
    assert {(r.content_type, r.field_manager) for r in applies} == {
        ("application/apply-patch+yaml", "llmops")
    }
    assert all(r.query.get("force") == "true" for r in applies)


def test_get_returns_none_for_a_missing_object(kube: KubeClient) -> None:
    assert kube.get("Deployment", "nope", NS) is None
    kube.apply(configmap("cm"))
    found = kube.get("ConfigMap", "cm", NS)
    assert found is not None and found["data"] == {"k": "v"}


def test_list_filters_by_label_pages_and_fills_kind(kube: KubeClient) -> None:
    for i in range(5):
        kube.apply(configmap(f"cm{i}", team="a" if i % 2 else "b"))
    everything = kube.list("ConfigMap", NS, limit=2)
    assert [o["metadata"]["name"] for o in everything] == [f"cm{i}" for i in range(5)]
    assert {(o["kind"], o["apiVersion"]) for o in everything} == {("ConfigMap", "v1")}
    assert [o["metadata"]["name"] for o in kube.list("ConfigMap", NS, "team=a")] == ["cm1", "cm3"]
    assert kube.list("Namespace")[0]["kind"] == "Namespace"


def test_delete_reports_whether_it_existed(kube: KubeClient, kube_server: KubeApiServer) -> None:
    kube.apply(configmap("cm"))
    assert kube.delete("ConfigMap", "cm", NS) is True
    assert kube.delete("ConfigMap", "cm", NS) is False
    assert kube_server.objects("ConfigMap", NS) == []


def test_unknown_kinds_are_refused_before_any_request(
    kube: KubeClient, kube_server: KubeApiServer
) -> None:
    before = len(kube_server.requests)
    with pytest.raises(ValueError, match="does not manage Kubernetes kind 'CronJob'"):
        kube.get("CronJob", "x", NS)
    assert len(kube_server.requests) == before


def test_scale_is_a_merge_patch_of_replicas(kube: KubeClient, kube_server: KubeApiServer) -> None:
    kube.apply(deployment())
    scaled = kube.scale("web", NS, 0)
    assert scaled is not None and scaled["spec"]["replicas"] == 0
    assert kube_server.requests[-1].content_type == "application/merge-patch+json"
    assert kube.scale("gone", NS, 0) is None


# --- retries --------------------------------------------------------------------------------


def test_409_and_500_on_apply_are_retried_without_duplicates(
    kube: KubeClient, kube_server: KubeApiServer, sleeps: Sleeps
) -> None:
    kube_server.fail_next(1, 409, methods=("PATCH",))
    kube_server.fail_next(1, 500, methods=("PATCH",), after_write=True)
    applied = kube.apply(deployment())
    assert applied["metadata"]["name"] == "web"
    assert kube_server.count("PATCH", "deployments") == 3
    assert len(kube_server.objects("Deployment")) == 1
    assert len(sleeps.delays) == 2
    assert all(0 <= d <= 0.05 * 2**i for i, d in enumerate(sleeps.delays))  # full jitter


def test_retries_are_bounded_and_end_in_a_retryable_error(
    kube: KubeClient, kube_server: KubeApiServer, sleeps: Sleeps
) -> None:
    kube_server.fail_next(10, 503, methods=("PATCH",), message="etcd is slow")
    with pytest.raises(Retryable) as caught:
        kube.apply(deployment())
    assert "answered 503 to patch Deployment/web" in str(caught.value)
    assert "after 5 attempts: etcd is slow" in str(caught.value)
    assert kube_server.count("PATCH") == 5 and len(sleeps.delays) == 4
    assert caught.value.exit_code == 2


def test_retry_after_is_honoured(
    kube: KubeClient, kube_server: KubeApiServer, sleeps: Sleeps
) -> None:
    kube_server.fail_next(1, 429, methods=("GET",), retry_after=0.5)
    assert kube.get("Deployment", "web", NS) is None
    assert sleeps.delays == [0.5]


def test_a_dropped_connection_is_retried(kube: KubeClient, kube_server: KubeApiServer) -> None:
    kube_server.fail_next(2, 0, methods=("GET",))
    assert kube.get("ConfigMap", "x", NS) is None
    assert kube_server.count("GET") == 3


def test_a_field_manager_conflict_is_not_retried(
    kube: KubeClient, kube_server: KubeApiServer
) -> None:
    kube.apply(deployment())
    kube_server.edit("Deployment", "web", NS, {"spec": {"replicas": 9}}, manager="kubectl-scale")
    with pytest.raises(Permanent, match=r'another field manager owns fields: .*"kubectl-scale"'):
        kube.apply(deployment(), force=False)
    assert kube_server.count("PATCH", "deployments") == 2


# --- failures as one line -------------------------------------------------------------------------


def test_403_names_the_verb_the_resource_and_what_to_grant(
    kube: KubeClient, kube_server: KubeApiServer
) -> None:
    kube_server.deny("patch", "deployments")
    with pytest.raises(KubeForbidden) as caught:
        kube.apply(deployment())
    message = str(caught.value)
    assert message.startswith(
        f"forbidden: cannot patch deployments.apps in namespace {NS} — grant the llmops ServiceAccount"
    )
    assert "\n" not in message
    assert (caught.value.verb, caught.value.resource, caught.value.namespace) == (
        "patch",
        "deployments.apps",
        NS,
    )
    assert kube_server.count("PATCH") == 1  # not retried


def test_401_says_the_credentials_are_rejected(kube_server: KubeApiServer, tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "kc", kube_server.url, token="expired")
    with KubeClient.from_config(config) as kube, pytest.raises(Permanent) as caught:
        kube.list("Deployment", NS)
    assert "rejected the credentials of context llmops-test" in str(caught.value)
    assert "401" in str(caught.value)


def test_unreachable_server_is_one_line_naming_url_and_context(
    unreachable_kubeconfig: Path, sleeps: Sleeps
) -> None:
    with KubeClient.from_config(unreachable_kubeconfig, sleep=sleeps, backoff_base=0.01) as kube:
        started = time.monotonic()
        with pytest.raises(KubeUnreachable) as caught:
            kube.check(NS)
    message = str(caught.value)
    assert message.startswith(
        f"cannot reach the Kubernetes API at {kube.server} (context llmops-test of "
    )
    assert "connection refused — check KUBECONFIG and the context" in message
    assert "\n" not in message and caught.value.exit_code == 2
    assert time.monotonic() - started < 5


def test_dns_failure_is_not_retried(tmp_path: Path, sleeps: Sleeps) -> None:
    config = write_kubeconfig(tmp_path / "kc", "http://no-such-host.invalid:6443")
    with (
        KubeClient.from_config(config, sleep=sleeps) as kube,
        pytest.raises(KubeUnreachable) as caught,
    ):
        kube.get("ConfigMap", "x", NS)
    assert "http://no-such-host.invalid:6443" in str(caught.value)
    assert "does not resolve (DNS)" in str(caught.value)
    assert sleeps.delays == []


def test_tls_failure_says_so(kube_server: KubeApiServer, tmp_path: Path, sleeps: Sleeps) -> None:
    # an https client against the plain-HTTP server: the handshake fails
    config = write_kubeconfig(tmp_path / "kc", kube_server.url.replace("http://", "https://"))
    with (
        KubeClient.from_config(config, sleep=sleeps) as kube,
        pytest.raises(KubeUnreachable) as caught,
    ):
        kube.get("ConfigMap", "x", NS)
    assert "TLS failed" in str(caught.value) and "CA and server name" in str(caught.value)
    assert sleeps.delays == []


def test_a_missing_namespace_says_how_to_create_it(kube: KubeClient) -> None:
    obj = configmap("cm")
    obj["metadata"]["namespace"] = "llm-nope"
    with pytest.raises(Permanent, match="namespace llm-nope does not exist — create it"):
        kube.apply(obj)


def test_an_invalid_object_quotes_the_api(kube: KubeClient) -> None:
    with pytest.raises(Permanent) as caught:
        kube.apply(deployment(bad="has spaces"))
    assert str(caught.value).startswith(f"Kubernetes rejected Deployment/web in namespace {NS}: ")
    assert "metadata.labels" in str(caught.value)


def test_config_errors_name_the_file_and_the_contexts(
    tmp_path: Path, kube_server: KubeApiServer
) -> None:
    with pytest.raises(ExternalError, match=r"no kubeconfig at .*nope — set KUBECONFIG"):
        KubeClient.from_config(tmp_path / "nope")
    with pytest.raises(ExternalError, match=r"has no context 'prod' \(contexts: llmops-test\)"):
        KubeClient.from_config(kube_server.kubeconfig, "prod")
    broken = tmp_path / "broken"
    broken.write_text("clusters: [")
    with pytest.raises(ExternalError, match="cannot be read"):
        KubeClient.from_config(broken)


def test_kubeconfig_from_the_environment(
    kube_server: KubeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube_server.kubeconfig))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # KUBECONFIG wins
    with client_for() as kube:
        assert kube.server == kube_server.url
        assert kube.list("Namespace")


def test_in_cluster_without_a_service_account_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(ExternalError, match="cannot use the in-cluster service account"):
        KubeClient.from_config()


# --- rollouts -------------------------------------------------------------------------------------


def test_wait_rollout_returns_when_ready(kube: KubeClient, kube_server: KubeApiServer) -> None:
    kube_server.rollout(0.2)
    kube.apply(deployment())
    assert not kube.deployment_ready("web", NS)
    state = kube.wait_rollout("web", NS, timeout=5, poll=0.02)
    assert state == RolloutStatus(True, "Deployment web: 2 of 2 replicas ready")
    assert kube.deployment_ready("web", NS)


def test_wait_rollout_times_out(kube: KubeClient, kube_server: KubeApiServer) -> None:
    kube_server.rollout(None)
    kube.apply(deployment())
    started = time.monotonic()
    state = kube.wait_rollout("web", NS, timeout=0.3, poll=0.02)
    assert not state.ready and not state.failed
    assert state.message == "not ready after 0.3s: Deployment web: 0 of 2 updated replicas"
    assert time.monotonic() - started < 3


def test_wait_rollout_stops_at_a_progress_deadline(
    kube: KubeClient, kube_server: KubeApiServer
) -> None:
    kube_server.rollout(None)
    kube.apply(deployment())
    kube_server.fail_progress("web", NS)
    state = kube.wait_rollout("web", NS, timeout=30, poll=0.02)
    assert state.failed and "exceeded its progress deadline" in state.message


@pytest.mark.parametrize(
    ("deployment_state", "ready", "words"),
    [
        (None, False, "does not exist"),
        (
            {
                "metadata": {"name": "w", "generation": 2},
                "spec": {"replicas": 1},
                "status": {"observedGeneration": 1},
            },
            False,
            "to be observed",
        ),
        (
            {
                "metadata": {"name": "w", "generation": 1},
                "spec": {"replicas": 2},
                "status": {
                    "observedGeneration": 1,
                    "replicas": 3,
                    "updatedReplicas": 2,
                    "availableReplicas": 2,
                },
            },
            False,
            "old replicas pending",
        ),
        (
            {
                "metadata": {"name": "w", "generation": 1},
                "spec": {"replicas": 2},
                "status": {
                    "observedGeneration": 1,
                    "replicas": 2,
                    "updatedReplicas": 2,
                    "availableReplicas": 1,
                },
            },
            False,
            "1 of 2 updated replicas available",
        ),
        (
            {
                "metadata": {"name": "w", "generation": 1},
                "spec": {"replicas": 2},
                "status": {
                    "observedGeneration": 1,
                    "replicas": 2,
                    "updatedReplicas": 2,
                    "availableReplicas": 2,
                },
            },
            True,
            "2 of 2 replicas ready",
        ),
    ],
)
def test_rollout_status_follows_kubectl(
    deployment_state: JSON | None, ready: bool, words: str
) -> None:
    state = KubeClient.rollout_status(deployment_state)
    assert state.ready is ready and words in state.message


# --- events and leases ----------------------------------------------------------------------------


def test_events_are_recorded_once_even_when_the_answer_is_lost(
    kube: KubeClient, kube_server: KubeApiServer
) -> None:
    target = kube.apply(deployment())
    kube_server.fail_next(1, 500, methods=("POST",), after_write=True)
    kube.create_event(target, "Deployed", "web serves", "Normal")
    events = kube_server.objects("Event", NS)
    assert len(events) == 1
    event = events[0]
    assert (
        event["involvedObject"]["kind"] == "Deployment"
        and event["involvedObject"]["uid"] == target["metadata"]["uid"]
    )
    assert (event["reason"], event["message"], event["type"], event["source"]) == (
        "Deployed",
        "web serves",
        "Normal",
        {"component": "llmops"},
    )


def test_leases_create_replace_and_conflict(kube: KubeClient, kube_server: KubeApiServer) -> None:
    assert kube.get_lease("llmops-controller", NS) is None
    spec = {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": micro_time(),
        "renewTime": micro_time(),
    }
    lease = kube.create_lease("llmops-controller", NS, spec)
    assert lease["spec"]["holderIdentity"] == "a"
    with pytest.raises(KubeConflict) as taken:
        kube.create_lease("llmops-controller", NS, {**spec, "holderIdentity": "b"})
    assert taken.value.reason == "AlreadyExists"
    renewed = kube.replace_lease({**lease, "spec": {**lease["spec"], "renewTime": micro_time()}})
    assert renewed["metadata"]["resourceVersion"] != lease["metadata"]["resourceVersion"]
    with pytest.raises(KubeConflict) as lost:  # written from the stale copy: someone renewed since
        kube.replace_lease({**lease, "spec": {**lease["spec"], "holderIdentity": "b"}})
    assert lost.value.reason == "Conflict"
    assert kube.get_lease("llmops-controller", NS)["spec"]["holderIdentity"] == "a"  # type: ignore[index]
    assert kube_server.count("PUT", "leases") == 2  # a lost race is not retried
    kube.delete("Lease", "llmops-controller", NS)
    with pytest.raises(KubeConflict, match="was deleted"):
        kube.replace_lease(renewed)


def test_micro_time_has_microseconds() -> None:
    assert micro_time().endswith("Z") and len(micro_time().split(".")[1]) == 7
