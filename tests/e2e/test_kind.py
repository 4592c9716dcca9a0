"""End to end against a real cluster (kind in GitHub Actions; see conftest.py for when these
run): the adapter's server-side apply, lists, deletes, Leases, Events and RBAC errors as a
real API server answers them, and the kubernetes target's blue/green with real rollouts,
readiness probes and Services."""

from __future__ import annotations

import base64
import dataclasses
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.adapters.kube import KubeClient, KubeConflict, KubeForbidden, micro_time
from llmops.deploy.kubernetes import KubernetesTarget
from llmops.deploy.target import VerifyResult
from llmops.domain.deploy import COLOUR_LABEL, DesiredApp

JSON = dict[str, Any]
#: every kind node has the pause image (its sandbox); it never runs `llmops`
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:5]}"


def desired(
    app: str, image: str, release: str = "a", env: str = "e2e", **changes: Any
) -> DesiredApp:
    base = DesiredApp(
        app=app,
        env=env,
        release=f"{app}@sha256:{release * 64}",
        image=image,
        replicas=1,
        port=8080,
        cpu="50m",
        memory="64Mi",
        env_vars=(("LLMOPS_ENVIRONMENT", env),),
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def target(kube: KubeClient, namespace: str) -> KubernetesTarget:
    return KubernetesTarget(kube, namespace, unique("env"), poll=1.0)


# --- the adapter on a real API server ----------------------------------------------------


def test_server_side_apply_creates_then_is_idempotent(kube: KubeClient, namespace: str) -> None:
    name = unique("cm")
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"llmops-e2e": "yes"}},
        "data": {"a": "1"},
    }
    first = kube.apply(obj)
    again = kube.apply(obj)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert [(m["manager"], m["operation"]) for m in again["metadata"]["managedFields"]] == [
        ("llmops", "Apply")
    ]
    changed = kube.apply({**obj, "data": {"b": "2"}})
    assert changed["data"] == {"b": "2"}  # a field llmops stopped applying is gone
    assert [o["metadata"]["name"] for o in kube.list("ConfigMap", namespace, "llmops-e2e=yes")] == [
        name
    ]
    assert kube.delete("ConfigMap", name, namespace) and not kube.delete(
        "ConfigMap", name, namespace
    )
    assert kube.get("ConfigMap", name, namespace) is None


def test_a_lease_race_is_a_conflict(kube: KubeClient, namespace: str) -> None:
    name = unique("lease")
    lease = kube.create_lease(
        name,
        namespace,
        {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": micro_time()},
    )
    with pytest.raises(KubeConflict):
        kube.create_lease(name, namespace, {"holderIdentity": "b"})
    kube.replace_lease({**lease, "spec": {**lease["spec"], "renewTime": micro_time()}})
    with pytest.raises(KubeConflict):
        kube.replace_lease({**lease, "spec": {**lease["spec"], "holderIdentity": "b"}})


def test_events_are_recorded(kube: KubeClient, namespace: str) -> None:
    cm = kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": unique("ev"), "namespace": namespace},
        }
    )
    event = kube.create_event(cm, "Tested", "an e2e event")
    assert kube.get("Event", event["metadata"]["name"], namespace) is not None


@pytest.fixture
def powerless_kubeconfig(
    kube: KubeClient, namespace: str, cluster_kubeconfig: str
) -> Iterator[Path]:
    """A kubeconfig for a ServiceAccount with no Role at all (a TokenRequest token)."""
    from kubernetes import client, config

    account = unique("nobody")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": namespace},
        }
    )
    cfg = client.Configuration()
    config.load_kube_config(config_file=cluster_kubeconfig, client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        token = (
            client.CoreV1Api(api)
            .create_namespaced_service_account_token(
                account, namespace, {"spec": {"expirationSeconds": 600}}
            )
            .status.token
        )
    document = yaml.safe_load(Path(cluster_kubeconfig).read_text())
    context = next(c for c in document["contexts"] if c["name"] == document["current-context"])
    cluster = next(c for c in document["clusters"] if c["name"] == context["context"]["cluster"])
    if cfg.ssl_ca_cert and "certificate-authority-data" not in cluster["cluster"]:
        cluster["cluster"]["certificate-authority-data"] = base64.b64encode(
            Path(cfg.ssl_ca_cert).read_bytes()
        ).decode()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [cluster],
                    "users": [{"name": account, "user": {"token": token}}],
                    "contexts": [
                        {"name": account, "context": {"cluster": cluster["name"], "user": account}}
                    ],
                    "current-context": account,
                }
            )
        )
        yield path


def test_rbac_denial_names_the_verb_and_resource(
    powerless_kubeconfig: Path, namespace: str
) -> None:
    with (
        KubeClient.from_config(powerless_kubeconfig) as powerless,
        pytest.raises(KubeForbidden) as caught,
    ):
        powerless.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "x", "namespace": namespace},
            }
        )
    assert str(caught.value).startswith(
        f"forbidden: cannot patch configmaps in namespace {namespace}"
    )


def test_wait_rollout_on_a_real_deployment(kube: KubeClient, namespace: str) -> None:
    name = unique("pause")
    labels = {"app": name}
    kube.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "pause",
                                "image": PAUSE_IMAGE,
                                "imagePullPolicy": "IfNotPresent",
                            }
                        ]
                    },
                },
            },
        }
    )
    state = kube.wait_rollout(name, namespace, timeout=180, poll=1.0)
    assert state.ready, state.message
    assert kube.deployment_ready(name, namespace)


# --- the target on a real cluster -----------------------------------------------------------------


def test_an_app_that_never_starts_fails_and_exposes_nothing(
    target: KubernetesTarget, kube: KubeClient
) -> None:
    app = desired(
        unique("broken"), PAUSE_IMAGE
    )  # pause has no `llmops`: the container never starts
    (done,) = target.apply(target.plan([app], target.live()), timeout=20).results
    assert done.outcome == "failed", done.message
    assert kube.get("Service", app.app, target.namespace) is None
    deployment = kube.get("Deployment", f"{app.app}-blue", target.namespace)
    assert deployment is not None and deployment["spec"]["replicas"] == 0


def test_blue_green_rollback_and_prune(
    target: KubernetesTarget, kube: KubeClient, standin_image: str
) -> None:
    ns = target.namespace
    app = desired(unique("bot"), standin_image, env=target.env)
    (first,) = target.apply(target.plan([app], target.live()), timeout=180).results
    assert (first.outcome, first.colour) == ("deployed", "blue"), first.message
    assert target.plan([app], target.live()).noop

    second_app = dataclasses.replace(app, release=f"{app.app}@sha256:{'c' * 64}")
    (second,) = target.apply(target.plan([second_app], target.live()), timeout=180).results
    assert (second.outcome, second.colour, second.previous) == ("deployed", "green", app.release), (
        second.message
    )
    assert kube.get("Service", app.app, ns)["spec"]["selector"][COLOUR_LABEL] == "green"  # type: ignore[index]
    assert kube.get("Deployment", f"{app.app}-blue", ns)["spec"]["replicas"] == 0  # type: ignore[index]

    third_app = dataclasses.replace(app, release=f"{app.app}@sha256:{'d' * 64}")
    refuse = lambda desired_app, url: VerifyResult(False, f"refused {url}")  # noqa: E731
    (third,) = target.apply(
        target.plan([third_app], target.live()), verify=refuse, timeout=180
    ).results
    assert (third.outcome, third.colour) == ("rolled-back", "green"), third.message
    assert f"http://{app.app}-blue.{ns}.svc:8080" in third.message
    assert kube.get("Service", app.app, ns)["spec"]["selector"][COLOUR_LABEL] == "green"  # type: ignore[index]

    kube.scale(f"{app.app}-green", ns, 3)  # a hand edit
    time.sleep(1)
    assert any("spec.replicas: 3 → 1" in line for line in target.live()[app.app].drift)

    (pruned,) = target.apply(target.plan([], target.live()), timeout=60).results
    assert pruned.outcome == "pruned"
    assert target.live() == {}
