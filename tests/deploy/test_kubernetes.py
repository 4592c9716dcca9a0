"""KubernetesTarget against the Kubernetes API test server over real HTTP (the official
client underneath): first deploy, idempotent re-apply, blue/green with the old colour
retired, rollout timeout and failed verify rolled back with the Service untouched, prune,
drift, retried 409/500 without duplicates, 403 naming verb and resource, one app's failure
not stopping another, HPA/PDB following the active colour, and an unreachable cluster
refused before any write."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.kube import TEST_NAMESPACE as NS
from support.kubeserver import KubeApiServer

from llmops.adapters.kube import KubeClient, KubeUnreachable
from llmops.deploy.kubernetes import (
    DESIRED_ANNOTATION,
    KubeLiveApp,
    KubernetesTarget,
    desired_from_json,
    desired_to_json,
)
from llmops.deploy.target import VerifyResult
from llmops.domain.deploy import COLOUR_LABEL, DeployPlan, DesiredApp, SecretEnv
from llmops.domain.errors import ExternalError, UsageError

JSON = dict[str, Any]
TIMEOUT = 5.0  # rollouts that should succeed are ready at once; this only bounds a bug


def desired(app: str = "bot", release: str = "a", env: str = "dev", **changes: Any) -> DesiredApp:
    base = DesiredApp(
        app=app,
        env=env,
        release=f"{app}@sha256:{release * 64}",
        image=f"registry.test/{app}@sha256:{'b' * 64}",
        replicas=2,
        port=8080,
        cpu="250m",
        memory="256Mi",
        env_vars=(("LLMOPS_ENVIRONMENT", env), ("LLMOPS_MODEL_NAME", "gpt-4o-mini")),
        secret_env=(SecretEnv("OPENAI_API_KEY", secret_name="openai", secret_key="key"),),
    )
    return dataclasses.replace(base, **changes)


class Recorder:
    def __init__(self, ok: bool = True, message: str = "") -> None:
        self.calls: list[tuple[str, str]] = []
        self.ok, self.message = ok, message

    def __call__(self, app: DesiredApp, url: str) -> VerifyResult:
        self.calls.append((app.app, url))
        return VerifyResult(self.ok, self.message)


@pytest.fixture
def kube(kube_server: KubeApiServer) -> Iterator[KubeClient]:
    with KubeClient.from_config(
        kube_server.kubeconfig, backoff_base=0.01, rng=random.Random(3)
    ) as kube_client:
        yield kube_client


@pytest.fixture
def target(kube: KubeClient) -> KubernetesTarget:
    return KubernetesTarget(kube, NS, "dev", poll=0.01)


def deploy(target: KubernetesTarget, *apps: DesiredApp, **options: Any) -> Any:
    plan = target.plan(list(apps), target.live())
    options.setdefault("timeout", TIMEOUT)
    return target.apply(plan, **options)


def selector_colour(server: KubeApiServer, app: str = "bot") -> str | None:
    service = server.get("Service", app, NS)
    return None if service is None else service["spec"]["selector"][COLOUR_LABEL]


def replicas(server: KubeApiServer, name: str) -> int | None:
    found = server.get("Deployment", name, NS)
    return None if found is None else found["spec"]["replicas"]


def writes(server: KubeApiServer) -> int:
    return sum(1 for r in server.requests if r.method in ("POST", "PUT", "PATCH", "DELETE"))


# --- first deploy and idempotency ---------------------------------------------------------


def test_first_deploy_creates_blue_then_plans_nothing(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    plan = target.plan([desired()], target.live())
    assert [(c.kind, c.object) for c in plan.changes] == [
        ("create", "ConfigMap/bot-blue"),
        ("create", "Deployment/bot-blue"),
        ("create", "Service/bot-blue"),
        ("create", "Service/bot"),
    ]
    verify = Recorder()
    result = target.apply(plan, verify=verify, timeout=TIMEOUT)
    assert result.ok
    (done,) = result.results
    assert (done.outcome, done.colour, done.release, done.previous) == (
        "deployed",
        "blue",
        desired().release,
        None,
    )
    assert done.endpoint == f"http://bot.{NS}.svc:8080"
    assert verify.calls == [("bot", f"http://bot-blue.{NS}.svc:8080")]
    assert selector_colour(kube_server) == "blue"
    live = target.live()["bot"]
    assert (live.release, live.fingerprint, live.colour, live.ready, live.drift) == (
        desired().release,
        desired().fingerprint,
        "blue",
        True,
        (),
    )
    assert target.plan([desired()], target.live()).noop


def test_an_unchanged_plan_writes_nothing(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    deploy(target, desired())
    before = writes(kube_server)
    result = deploy(target, desired())
    assert [(r.outcome, r.colour, r.release) for r in result.results] == [
        ("unchanged", "blue", desired().release)
    ]
    assert writes(kube_server) == before


def test_server_side_apply_owns_every_object(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    deploy(target, desired())
    for kind in ("ConfigMap", "Deployment", "Service"):
        for obj in kube_server.objects(kind, NS):
            managers = {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]}
            assert ("llmops", "Apply") in managers, obj["metadata"]["name"]
    stored = kube_server.get("Deployment", "bot-blue", NS)
    assert desired_from_json(stored["metadata"]["annotations"][DESIRED_ANNOTATION]) == desired()


# --- blue/green -----------------------------------------------------------------------------


def test_a_new_release_moves_to_green_and_retires_blue(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    deploy(target, desired())
    waited: list[float] = []
    target._sleep = waited.append  # grace is waited through the target's sleep
    plan = target.plan([desired(release="c")], target.live())
    objects = [(c.kind, c.object) for c in plan.changes]
    assert ("create", "Deployment/bot-green") in objects and ("update", "Service/bot") in objects
    service_change = next(c for c in plan.changes if c.object == "Service/bot")
    assert any(
        "llmops.dev/colour" in line and "blue → green" in line for line in service_change.diff
    )
    (done,) = target.apply(plan, timeout=TIMEOUT, grace=7.5).results
    assert (done.outcome, done.colour, done.release, done.previous) == (
        "deployed",
        "green",
        desired(release="c").release,
        desired().release,
    )
    assert waited == [7.5]
    assert selector_colour(kube_server) == "green"
    assert (replicas(kube_server, "bot-blue"), replicas(kube_server, "bot-green")) == (0, 2)
    live = target.live()["bot"]
    assert (live.colour, live.release, live.ready, live.drift) == (
        "green",
        desired(release="c").release,
        True,
        (),
    )
    # and back to blue, which was kept at 0 replicas
    (again,) = deploy(target, desired(release="d")).results
    assert (again.outcome, again.colour) == ("deployed", "blue")
    assert (replicas(kube_server, "bot-blue"), replicas(kube_server, "bot-green")) == (2, 0)
    assert len(kube_server.objects("Deployment", NS)) == 2


def test_a_rollout_timeout_rolls_back_and_leaves_the_service_alone(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    deploy(target, desired())
    service_before = kube_server.get("Service", "bot", NS)
    kube_server.rollout(None, name="bot-green")
    verify = Recorder()
    (done,) = deploy(target, desired(release="c"), verify=verify, timeout=0.3).results
    assert (done.outcome, done.colour, done.release, done.previous) == (
        "rolled-back",
        "blue",
        desired().release,
        desired().release,
    )
    assert "Deployment/bot-green not ready after 0.3s" in done.message
    assert "Service/bot still selects blue" in done.message
    assert verify.calls == []  # never verified what did not roll out
    assert kube_server.get("Service", "bot", NS) == service_before  # not even re-applied
    assert (replicas(kube_server, "bot-blue"), replicas(kube_server, "bot-green")) == (2, 0)
    assert target.live()["bot"].release == desired().release


def test_a_failed_verify_rolls_back(target: KubernetesTarget, kube_server: KubeApiServer) -> None:
    deploy(target, desired())
    verify = Recorder(ok=False, message="smoke: 2 of 5 cases failed")
    (done,) = deploy(target, desired(release="c"), verify=verify).results
    assert verify.calls == [("bot", f"http://bot-green.{NS}.svc:8080")]
    assert done.outcome == "rolled-back" and done.colour == "blue"
    assert (
        f"verify of http://bot-green.{NS}.svc:8080 failed: smoke: 2 of 5 cases failed"
        in done.message
    )
    assert selector_colour(kube_server) == "blue"
    assert replicas(kube_server, "bot-green") == 0
    reasons = [e["reason"] for e in kube_server.objects("Event", NS)]
    assert reasons.count("RolledBack") == 1


def test_a_verify_that_raises_rolls_back(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    deploy(target, desired())

    def broken(app: DesiredApp, url: str) -> VerifyResult:
        raise RuntimeError("boom")

    (done,) = deploy(target, desired(release="c"), verify=broken).results
    assert done.outcome == "rolled-back" and "verify raised RuntimeError: boom" in done.message
    assert selector_colour(kube_server) == "blue"


def test_a_first_deploy_that_never_gets_ready_fails_and_exposes_nothing(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    kube_server.rollout(None)
    (done,) = deploy(target, desired(), timeout=0.2).results
    assert done.outcome == "failed" and "nothing served before" in done.message
    assert kube_server.get("Service", "bot", NS) is None
    assert replicas(kube_server, "bot-blue") == 0
    live = target.live()["bot"]
    assert (live.colour, live.release, live.ready) == (None, None, False)
    kube_server.rollout(0.0)
    (retried,) = deploy(target, desired()).results  # converges on the next apply
    assert (retried.outcome, retried.colour) == ("deployed", "blue")
    assert replicas(kube_server, "bot-blue") == 2


def test_a_progress_deadline_ends_the_wait_early(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    deploy(target, desired())
    kube_server.rollout(None, name="bot-green")
    original = target.client.wait_rollout

    def deadline_then_wait(name: str, namespace: str, timeout: float, **kw: Any) -> Any:
        kube_server.fail_progress(name, namespace)
        return original(name, namespace, timeout, **kw)

    target.client.wait_rollout = deadline_then_wait  # type: ignore[method-assign]
    (done,) = deploy(target, desired(release="c"), timeout=60).results
    assert done.outcome == "rolled-back" and "exceeded its progress deadline" in done.message


# --- prune -------------------------------------------------------------------------------------


def test_prune_deletes_only_this_environments_apps_no_longer_desired(
    target: KubernetesTarget, kube: KubeClient, kube_server: KubeApiServer
) -> None:
    deploy(target, desired("bot"), desired("faq"))
    other_env = KubernetesTarget(kube, NS, "test", poll=0.01)
    deploy(other_env, desired("bot2", env="test"))
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "unmanaged", "namespace": NS},
        }
    )
    plan = target.plan([desired("faq")], target.live())
    deletions = sorted(c.object for c in plan.changes if c.kind == "delete")
    assert deletions == [
        "ConfigMap/bot-blue",
        "Deployment/bot-blue",
        "Service/bot",
        "Service/bot-blue",
    ]
    results = {r.app: r for r in target.apply(plan, timeout=TIMEOUT).results}
    assert results["bot"].outcome == "pruned" and results["bot"].previous == desired("bot").release
    assert results["faq"].outcome == "unchanged"
    names = {
        o["metadata"]["name"]
        for kind in ("ConfigMap", "Deployment", "Service")
        for o in kube_server.objects(kind, NS)
    }
    assert names == {"faq", "faq-blue", "bot2", "bot2-blue", "unmanaged"}
    assert set(target.live()) == {"faq"} and set(other_env.live()) == {"bot2"}


# --- drift -------------------------------------------------------------------------------------


def test_a_hand_edit_is_reported_as_drift_and_repaired(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    deploy(target, desired())
    kube_server.edit("Deployment", "bot-blue", NS, {"spec": {"replicas": 5}})
    kube_server.edit("ConfigMap", "bot-blue", NS, {"data": {"LLMOPS_MODEL_NAME": "gpt-5"}})
    live = target.live()["bot"]
    assert live.drift == (
        "ConfigMap/bot-blue data.LLMOPS_MODEL_NAME: gpt-5 → gpt-4o-mini",
        "Deployment/bot-blue spec.replicas: 5 → 2",
    )
    plan = target.plan([desired()], target.live())
    assert not plan.noop
    assert "! drift: Deployment/bot-blue spec.replicas: 5 → 2" in plan.changes[0].diff
    (done,) = target.apply(plan, timeout=TIMEOUT).results
    assert done.outcome == "deployed" and done.colour == "green"
    assert target.live()["bot"].drift == ()
    assert target.plan([desired()], target.live()).noop


def test_quantities_the_server_rewrites_are_not_drift(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    app = desired(cpu="0.5", memory="1024Mi")
    deploy(target, app)
    stored = kube_server.get("Deployment", "bot-blue", NS)
    assert stored["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "500m",
        "memory": "1Gi",
    }
    assert target.live()["bot"].drift == ()
    assert target.plan([app], target.live()).noop


def test_a_deleted_object_and_a_tampered_annotation_are_drift(
    target: KubernetesTarget, kube: KubeClient, kube_server: KubeApiServer
) -> None:
    deploy(target, desired())
    kube.delete("Service", "bot-blue", NS)
    assert target.live()["bot"].drift == ("Service/bot-blue: missing",)
    kube_server.edit(
        "Deployment", "bot-blue", NS, {"metadata": {"annotations": {DESIRED_ANNOTATION: "{}"}}}
    )
    (line,) = target.live()["bot"].drift
    assert "annotation is missing or altered" in line


# --- failures ------------------------------------------------------------------------------------


def test_409_and_500_during_apply_are_retried_without_duplicates(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    kube_server.fail_next(1, 409, methods=("PATCH",))
    kube_server.fail_next(2, 500, methods=("PATCH",), after_write=True)
    kube_server.fail_next(1, 503, methods=("GET",))
    (done,) = deploy(target, desired()).results
    assert done.outcome == "deployed"
    for kind in ("ConfigMap", "Deployment"):
        assert [o["metadata"]["name"] for o in kube_server.objects(kind, NS)] == ["bot-blue"]
    assert sorted(o["metadata"]["name"] for o in kube_server.objects("Service", NS)) == [
        "bot",
        "bot-blue",
    ]


def test_a_forbidden_patch_fails_the_app_naming_verb_and_resource(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    kube_server.deny("patch", "deployments")
    (done,) = deploy(target, desired()).results
    assert done.outcome == "failed"
    assert f"forbidden: cannot patch deployments.apps in namespace {NS}" in done.message
    assert (
        "grant the llmops ServiceAccount a Role with verb 'patch' on deployments.apps"
        in done.message
    )
    assert kube_server.get("Service", "bot", NS) is None


def test_a_failed_traffic_switch_keeps_both_colours(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    deploy(target, desired())
    kube_server.fail_next(
        1, 422, methods=("PATCH",), path_endswith="/services/bot", message="webhook said no"
    )
    (done,) = deploy(target, desired(release="c")).results
    assert done.outcome == "failed" and done.colour == "blue"
    assert "switching traffic to green failed" in done.message and "webhook said no" in done.message
    assert selector_colour(kube_server) == "blue"
    assert (replicas(kube_server, "bot-blue"), replicas(kube_server, "bot-green")) == (2, 2)
    (again,) = deploy(
        target, desired(release="c")
    ).results  # converges: green again, then the switch
    assert (again.outcome, again.colour) == ("deployed", "green")
    assert selector_colour(kube_server) == "green" and replicas(kube_server, "bot-blue") == 0


def test_one_apps_failure_does_not_stop_the_others(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    kube_server.rollout(None, name="bad-blue")
    results = {
        r.app: r for r in deploy(target, desired("good"), desired("bad"), timeout=0.3).results
    }
    assert results["bad"].outcome == "failed"
    assert results["good"].outcome == "deployed"
    assert selector_colour(kube_server, "good") == "blue"


def test_an_unreachable_cluster_is_refused_before_any_write(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    plan = target.plan([desired()], target.live())
    kube_server.fail_next(50, 0, methods=("GET",))  # every read: the connection drops
    with pytest.raises(KubeUnreachable) as caught:
        target.apply(plan, timeout=TIMEOUT)
    assert writes(kube_server) == 0
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


def test_a_stopped_server_is_one_line_exit_2(unreachable_kubeconfig: Path) -> None:
    with KubeClient.from_config(unreachable_kubeconfig, backoff_base=0.01) as kube:
        target = KubernetesTarget(kube, NS, "dev", poll=0.01)
        plan = DeployPlan("dev", "kubernetes", (desired(),), ())
        with pytest.raises(ExternalError) as caught:
            target.apply(plan)
        message = str(caught.value)
        assert message.startswith(f"cannot reach the Kubernetes API at {kube.server}")
        assert "check KUBECONFIG and the context" in message and "\n" not in message
        assert caught.value.exit_code == 2
        with pytest.raises(ExternalError):
            target.live()


# --- HPA and PDB ----------------------------------------------------------------------------------


def test_autoscaling_and_the_disruption_budget_follow_the_active_colour(
    target: KubernetesTarget, kube_server: KubeApiServer
) -> None:
    app = desired(autoscaling=(2, 5, 80), min_available=1)
    deploy(target, app)
    hpa = kube_server.get("HorizontalPodAutoscaler", "bot", NS)
    pdb = kube_server.get("PodDisruptionBudget", "bot", NS)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "bot-blue"
    assert pdb["spec"]["selector"]["matchLabels"][COLOUR_LABEL] == "blue"
    assert target.plan([app], target.live()).noop
    deploy(target, dataclasses.replace(app, release=f"bot@sha256:{'c' * 64}"))
    hpa = kube_server.get("HorizontalPodAutoscaler", "bot", NS)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "bot-green"
    assert replicas(kube_server, "bot-blue") == 0
    (back,) = deploy(target, dataclasses.replace(app, release=f"bot@sha256:{'d' * 64}")).results
    assert back.outcome == "deployed" and back.colour == "blue"
    assert replicas(kube_server, "bot-blue") == 2  # woken from 0 to minReplicas: an HPA cannot


# --- plan input and the annotation -----------------------------------------------------------------


def test_plan_refuses_duplicates_and_apps_of_another_environment(target: KubernetesTarget) -> None:
    with pytest.raises(UsageError, match="desired twice"):
        target.plan([desired(), desired()], {})
    with pytest.raises(UsageError, match="desired in prod, not in dev"):
        target.plan([desired(env="prod")], {})
    with pytest.raises(UsageError, match="the plan is for environment prod"):
        target.apply(DeployPlan("prod", "kubernetes", (), ()))


def test_plan_is_pure_given_live(target: KubernetesTarget, kube_server: KubeApiServer) -> None:
    deploy(target, desired())
    live = target.live()
    assert isinstance(live["bot"], KubeLiveApp)
    before = len(kube_server.requests)
    first = target.plan([desired(release="c")], live)
    assert target.plan([desired(release="c")], live) == first
    assert len(kube_server.requests) == before


def test_the_desired_annotation_round_trips() -> None:
    app = desired(
        autoscaling=(1, 3, 70),
        min_available=1,
        image=None,
        secret_env=(SecretEnv("K", secret_name="s", secret_key="k"), SecretEnv("F", file="/run/f")),
    )
    assert desired_from_json(desired_to_json(app)) == app
    assert desired_from_json(None) is None and desired_from_json("{") is None
    assert desired_from_json('{"app": 1}') is None
