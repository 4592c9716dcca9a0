"""Rendered Kubernetes objects: strict schema validation of every kind, names, labels,
selectors, digests, security settings, no secret values, determinism."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_support import (
    K8S_VERSION,
    app_manifest,
    bundle_of,
    check_names,
    desired_apps,
    environment_of,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.deploy.desired import desired_app
from llmops.deploy.k8s import (
    CONFIG_ANNOTATION,
    render_app,
    render_colour,
    render_stable,
)
from llmops.domain.deploy import (
    BUNDLE_PATH_IN_IMAGE,
    COLOUR_LABEL,
    DesiredApp,
    SecretEnv,
)
from llmops.domain.errors import InvalidInput

DIGEST = "4f1c2b" + "0" * 58
RELEASE = f"support-bot@sha256:{DIGEST}"
IMAGE = "127.0.0.1:5000/llm-apps/support-bot@sha256:" + "e" * 64

PLAIN = DesiredApp(
    app="support-bot",
    env="prod",
    release=RELEASE,
    image=IMAGE,
    replicas=3,
    port=8080,
    cpu="250m",
    memory="256Mi",
    env_vars=(("LLMOPS_ENVIRONMENT", "prod"),),
)
FULL = replace(
    PLAIN,
    env_vars=(
        ("LLMOPS_ENVIRONMENT", "prod"),
        ("LLMOPS_MODEL_API_KEY_ENV", "LLMOPS_SECRET_OPENAI_API_KEY"),
        ("LLMOPS_MODEL_URL", "http://vllm.llm-prod.svc:8000/v1"),
    ),
    secret_env=(
        SecretEnv("LLMOPS_SECRET_OPENAI_API_KEY", secret_name="openai", secret_key="api-key"),
        SecretEnv("PASSED_THROUGH", from_env="PASSED_THROUGH"),
        SecretEnv("", file="/var/run/secrets/llm/key"),
    ),
    autoscaling=(2, 6, 70),
    min_available=1,
)
VARIANTS = {"plain": PLAIN, "full": FULL, "no-image": replace(PLAIN, image=None, replicas=0)}


def validate(obj: dict[str, Any]) -> None:
    """Strict schema of the Kubernetes version named above, plus name and label rules."""
    assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True) == K8S_VERSION
    check_names(obj)


def by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def container(objects: list[dict[str, Any]], colour: str = "blue") -> dict[str, Any]:
    deployment = by_name(objects)[f"Deployment/support-bot-{colour}"]
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    found: dict[str, Any] = containers[0]
    return found


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("colour", ["blue", "green"])
def test_every_object_validates(variant: str, colour: str) -> None:
    objects = render_app(VARIANTS[variant], "llm-prod", colour)  # type: ignore[arg-type]
    assert objects, "nothing rendered"
    for obj in objects:
        validate(obj)


def test_kinds_and_names() -> None:
    assert list(by_name(render_app(PLAIN, "llm-prod", "blue"))) == [
        "ConfigMap/support-bot-blue",
        "Deployment/support-bot-blue",
        "Service/support-bot-blue",
        "Service/support-bot",
    ]
    assert list(by_name(render_app(FULL, "llm-prod", "green"))) == [
        "ConfigMap/support-bot-green",
        "Deployment/support-bot-green",
        "Service/support-bot-green",
        "Service/support-bot",
        "HorizontalPodAutoscaler/support-bot",
        "PodDisruptionBudget/support-bot",
    ]
    assert render_app(FULL, "ns", "blue") == render_colour(FULL, "ns", "blue") + render_stable(
        FULL, "ns", "blue"
    )
    assert {o["metadata"]["namespace"] for o in render_app(FULL, "llm-prod", "blue")} == {
        "llm-prod"
    }


def test_labels_and_annotations() -> None:
    expected = {
        "app.kubernetes.io/name": "support-bot",
        "app.kubernetes.io/instance": "support-bot-prod",
        "app.kubernetes.io/version": DIGEST[:12],
        "app.kubernetes.io/component": "llm-app",
        "app.kubernetes.io/part-of": "llmops",
        "app.kubernetes.io/managed-by": "llmops",
        "llmops.dev/environment": "prod",
    }
    for obj in render_colour(FULL, "llm-prod", "green"):
        assert obj["metadata"]["labels"] == {**expected, COLOUR_LABEL: "green"}
        assert obj["metadata"]["annotations"] == {
            "llmops.dev/release": RELEASE,
            "llmops.dev/fingerprint": FULL.fingerprint,
        }
    # the stable objects carry no colour: deleting the old colour by label spares them
    for obj in render_stable(FULL, "llm-prod", "green"):
        assert obj["metadata"]["labels"] == expected
        assert obj["metadata"]["annotations"]["llmops.dev/fingerprint"] == FULL.fingerprint


def test_selectors_follow_the_colour() -> None:
    objects = by_name(render_app(FULL, "llm-prod", "green"))
    pods = objects["Deployment/support-bot-green"]["spec"]["template"]["metadata"]["labels"]
    green = {
        "app.kubernetes.io/name": "support-bot",
        "app.kubernetes.io/instance": "support-bot-prod",
        COLOUR_LABEL: "green",
    }
    assert objects["Deployment/support-bot-green"]["spec"]["selector"]["matchLabels"] == green
    assert objects["Service/support-bot-green"]["spec"]["selector"] == green
    assert objects["Service/support-bot"]["spec"]["selector"] == green
    assert objects["PodDisruptionBudget/support-bot"]["spec"]["selector"]["matchLabels"] == green
    assert green.items() <= pods.items()
    hpa = objects["HorizontalPodAutoscaler/support-bot"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "support-bot-green",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 70,
    }
    # switching colour changes only the selector of the stable Service
    blue = by_name(render_stable(FULL, "llm-prod", "blue"))["Service/support-bot"]
    assert blue["spec"]["selector"][COLOUR_LABEL] == "blue"
    assert blue["metadata"] == objects["Service/support-bot"]["metadata"]


def test_container_runs_the_release_by_digest() -> None:
    spec = container(render_app(FULL, "llm-prod", "blue"))
    assert spec["image"] == IMAGE
    assert spec["command"] == ["llmops"]
    assert spec["args"] == [
        "serve",
        "support-bot",
        "--bundle",
        BUNDLE_PATH_IN_IMAGE,
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    assert spec["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert spec["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert spec["envFrom"] == [{"configMapRef": {"name": "support-bot-blue"}}]


def test_the_port_reaches_container_service_and_args() -> None:
    objects = by_name(render_app(replace(PLAIN, port=9123), "llm-prod", "blue"))
    spec = container(list(objects.values()))
    assert spec["args"][-1] == "9123" and spec["ports"][0]["containerPort"] == 9123
    for name in ("Service/support-bot", "Service/support-bot-blue"):
        assert objects[name]["spec"]["ports"] == [
            {"name": "http", "port": 9123, "targetPort": "http", "protocol": "TCP"}
        ]


def test_security_settings() -> None:
    deployment = by_name(render_app(PLAIN, "llm-prod", "blue"))["Deployment/support-bot-blue"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = pod["containers"][0]["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_replicas_omitted_when_an_hpa_manages_them() -> None:
    plain = by_name(render_app(PLAIN, "ns", "blue"))["Deployment/support-bot-blue"]["spec"]
    scaled = by_name(render_app(FULL, "ns", "blue"))["Deployment/support-bot-blue"]["spec"]
    zero = by_name(render_app(replace(PLAIN, replicas=0), "ns", "blue"))[
        "Deployment/support-bot-blue"
    ]
    assert plain["replicas"] == 3
    assert "replicas" not in scaled
    assert zero["spec"]["replicas"] == 0


def test_secrets_are_references_only(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-render-must-never-show-1234567890"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("PASSED_THROUGH", secret)
    objects = render_app(FULL, "llm-prod", "blue")
    text = yaml.safe_dump_all(objects) + json.dumps(objects)
    assert secret not in text
    spec = container(objects)
    # only the Kubernetes Secret key is wired; env and file references mean nothing there
    assert spec["env"] == [
        {
            "name": "LLMOPS_SECRET_OPENAI_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}},
        }
    ]
    assert "PASSED_THROUGH" not in text
    assert "/var/run/secrets/llm/key" not in text
    config = by_name(objects)["ConfigMap/support-bot-blue"]["data"]
    assert "LLMOPS_SECRET_OPENAI_API_KEY" not in config
    assert "env" not in container(render_app(PLAIN, "llm-prod", "blue"))


def test_release_with_env_key_renders_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-deployer-0987654321")
    desired = desired_app(bundle_of(app_manifest()), environment_of(), IMAGE)
    text = json.dumps(render_app(desired, "llm-prod", "blue"))
    assert "sk-from-the-deployer" not in text and "OPENAI_API_KEY" not in text


def test_config_map_holds_the_plain_variables_sorted() -> None:
    unsorted = replace(
        PLAIN, env_vars=(("ZED", "1"), ("ALPHA", "2"), ("LLMOPS_ENVIRONMENT", "prod"))
    )
    data = by_name(render_app(unsorted, "ns", "blue"))["ConfigMap/support-bot-blue"]["data"]
    assert list(data.items()) == [("ALPHA", "2"), ("LLMOPS_ENVIRONMENT", "prod"), ("ZED", "1")]


def test_rendering_is_deterministic() -> None:
    first = json.dumps(render_app(FULL, "llm-prod", "blue"))
    again = json.dumps(render_app(replace(FULL), "llm-prod", "blue"))
    assert first == again
    reordered = replace(FULL, secret_env=tuple(reversed(FULL.secret_env)))
    assert json.dumps(render_app(reordered, "llm-prod", "blue"))
    assert (
        container(render_app(reordered, "llm-prod", "blue"))["env"]
        == container(render_app(FULL, "llm-prod", "blue"))["env"]
    )


def test_pods_roll_on_config_changes_not_on_scaling() -> None:
    def pod_annotations(desired: DesiredApp) -> dict[str, str]:
        deployment = render_colour(desired, "ns", "blue")[1]
        found: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
        return found

    base = pod_annotations(PLAIN)
    assert base["llmops.dev/release"] == RELEASE and CONFIG_ANNOTATION in base
    assert pod_annotations(replace(PLAIN, replicas=7)) == base
    changed = replace(PLAIN, env_vars=(("LLMOPS_ENVIRONMENT", "prod"), ("NEW", "1")))
    assert pod_annotations(changed)[CONFIG_ANNOTATION] != base[CONFIG_ANNOTATION]


def test_long_names_are_shortened_in_labels_only() -> None:
    app = "a" * 57
    desired = replace(PLAIN, app=app, env="e" * 63, release=f"{app}@sha256:{DIGEST}")
    objects = render_app(desired, "llm-prod", "green")
    for obj in objects:
        validate(obj)
    instance = objects[0]["metadata"]["labels"]["app.kubernetes.io/instance"]
    assert len(instance) <= 63 and instance.startswith(app[:50])
    other = render_app(replace(desired, env="e" * 62 + "f"), "llm-prod", "green")
    assert other[0]["metadata"]["labels"]["app.kubernetes.io/instance"] != instance
    assert (
        by_name(objects)[f"Service/{app}-green"]["spec"]["selector"]["app.kubernetes.io/instance"]
        == instance
    )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"app": "1bot"}, "starts with a letter"),
        ({"app": "a" * 58}, "at most 57"),
        ({"env_vars": (("NOT A NAME", "x"),)}, "'NOT A NAME'"),
        ({"env_vars": (("9LIVES", "x"),)}, "'9LIVES'"),
        ({"secret_env": (SecretEnv("K", secret_name="Open_AI", secret_key="k"),)}, "'Open_AI'"),
        ({"secret_env": (SecretEnv("K", secret_name="openai", secret_key="a/b"),)}, "'a/b'"),
    ],
)
def test_names_kubernetes_cannot_take_are_invalid_input(change: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        render_app(replace(PLAIN, **change), "llm-prod", "blue")
    assert words in info.value.message


def test_bad_namespace_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        render_stable(PLAIN, "Not_A_Namespace", "blue")


# --- property: any valid DesiredApp renders objects the API server accepts ---------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desired=desired_apps(), colour=st.sampled_from(["blue", "green"]))
def test_any_desired_app_renders_valid_objects(desired: DesiredApp, colour: str) -> None:
    objects = render_app(desired, "llm-ns", colour)  # type: ignore[arg-type]
    kinds = [o["kind"] for o in objects]
    assert kinds.count("HorizontalPodAutoscaler") == (desired.autoscaling is not None)
    assert kinds.count("PodDisruptionBudget") == (desired.min_available is not None)
    for obj in objects:
        validate(obj)
    # what a YAML round trip gives back is the same object (no type surprises)
    assert list(yaml.safe_load_all(yaml.safe_dump_all(objects))) == objects


def test_validation_would_catch_a_bad_object() -> None:
    """The validator is strict: an unknown field or a wrong type fails."""
    deployment = render_colour(PLAIN, "ns", "blue")[1]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullSecret"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    service = render_stable(PLAIN, "ns", "blue")[0]
    service["spec"]["ports"][0]["port"] = "8080"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, K8S_VERSION, strict=True)
