"""diff_object and plan_objects: only the fields llmops sets count; prune what it owns."""

from __future__ import annotations

import copy
import random
from dataclasses import replace
from typing import Any

from deploy_support import desired_apps
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.deploy.k8s import render_app
from llmops.deploy.objdiff import app_label, diff_object, object_name, plan_objects
from llmops.domain.deploy import DesiredApp

RELEASE = "support-bot@sha256:" + "4f1c" * 16
DESIRED = DesiredApp(
    app="support-bot",
    env="prod",
    release=RELEASE,
    image="reg/support-bot@sha256:" + "a" * 64,
    replicas=1,
    port=8080,
    cpu="1000m",
    memory="256Mi",
    env_vars=(("LLMOPS_ENVIRONMENT", "prod"), ("MODE", "strict")),
)


def as_live(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns for an applied object: extras and defaults added."""
    live = copy.deepcopy(obj)
    meta = live["metadata"]
    meta.update(
        {
            "uid": "2f7c1d0e-0000-4000-8000-000000000000",
            "resourceVersion": "12345",
            "generation": 2,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "managedFields": [{"manager": "llmops", "operation": "Apply"}],
        }
    )
    meta["annotations"]["deployment.kubernetes.io/revision"] = "2"
    live["status"] = {"observedGeneration": 2, "readyReplicas": 1}
    if live["kind"] == "Deployment":
        spec = live["spec"]
        spec["progressDeadlineSeconds"] = 600
        pod = spec["template"]["spec"]
        pod.update({"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "x"})
        for c in pod["containers"]:
            c["terminationMessagePath"] = "/dev/termination-log"
            c["livenessProbe"]["successThreshold"] = 1
            if c["resources"]["requests"]["cpu"] == "1000m":
                c["resources"]["requests"]["cpu"] = "1"  # the server canonicalises it
        pod["volumes"][0]["emptyDir"] = {}
    if live["kind"] == "Service":
        live["spec"].update(
            {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "sessionAffinity": "None"}
        )
    return live


def objects(desired: DesiredApp = DESIRED, colour: str = "blue") -> list[dict[str, Any]]:
    return render_app(desired, "llm-prod", colour)  # type: ignore[arg-type]


def named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(o for o in items if object_name(o) == name)


def test_server_extras_and_defaults_are_no_difference() -> None:
    for obj in objects(replace(DESIRED, autoscaling=(1, 3, 50), min_available=1)):
        assert diff_object(obj, as_live(obj)) == (), object_name(obj)


def test_replicas_change_is_one_readable_line() -> None:
    want = named(objects(replace(DESIRED, replicas=3)), "Deployment/support-bot-blue")
    live = as_live(named(objects(), "Deployment/support-bot-blue"))
    lines = diff_object(want, live)
    # the fingerprint annotation changes with it, nothing else (pods are not restarted)
    assert lines[1] == "spec.replicas: 1 → 3"
    assert len(lines) == 2
    assert lines[0].startswith('metadata.annotations["llmops.dev/fingerprint"]: ')


def test_image_change_names_the_container() -> None:
    new = replace(DESIRED, image="reg/support-bot@sha256:" + "b" * 64)
    want = named(objects(new), "Deployment/support-bot-blue")
    live = as_live(named(objects(), "Deployment/support-bot-blue"))
    assert (
        "spec.template.spec.containers[app].image: reg/support-bot@sha256:"
        + "a" * 64
        + " → reg/support-bot@sha256:"
        + "b" * 64
    ) in diff_object(want, live)


def test_hand_edits_are_found() -> None:
    want = named(objects(), "Service/support-bot")
    live = as_live(want)
    live["spec"]["selector"]["llmops.dev/colour"] = "green"
    live["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "someone"
    assert diff_object(want, live) == (
        'metadata.labels["app.kubernetes.io/managed-by"]: someone → llmops',
        'spec.selector["llmops.dev/colour"]: green → blue',
    )


def test_quantities_compare_by_value() -> None:
    want = named(objects(), "Deployment/support-bot-blue")
    live = as_live(want)
    res = live["spec"]["template"]["spec"]["containers"][0]["resources"]
    res["limits"]["memory"] = str(256 * 1024 * 1024)
    assert diff_object(want, live) == ()
    res["requests"]["cpu"] = "500m"
    assert diff_object(want, live) == (
        "spec.template.spec.containers[app].resources.requests.cpu: 500m → 1000m",
    )


def test_values_that_only_look_like_quantities_compare_as_text() -> None:
    want = named(
        objects(replace(DESIRED, env_vars=(("RATIO", "1"),))), "ConfigMap/support-bot-blue"
    )
    live = as_live(want)
    live["data"]["RATIO"] = "1000m"
    assert diff_object(want, live) == ("data.RATIO: 1000m → 1",)


def test_named_lists_match_by_name() -> None:
    want = named(objects(), "Deployment/support-bot-blue")
    live = as_live(want)
    pod = live["spec"]["template"]["spec"]
    # an injected sidecar (placed first) and an extra volume are someone else's
    pod["containers"].insert(0, {"name": "proxy", "image": "envoy"})
    pod["volumes"].append({"name": "proxy-certs", "emptyDir": {}})
    assert diff_object(want, live) == ()
    del pod["containers"][1]["volumeMounts"]
    assert diff_object(want, live) == (
        'spec.template.spec.containers[app].volumeMounts: (none) → [{"mountPath": "/tmp", "name": "tmp"}]',
    )
    pod["containers"].pop(1)
    lines = diff_object(want, live)
    assert lines[0].startswith("spec.template.spec.containers[app]: (none) → ")


def test_plain_lists_compare_item_by_item() -> None:
    want = named(objects(), "Deployment/support-bot-blue")
    live = as_live(want)
    args = live["spec"]["template"]["spec"]["containers"][0]["args"]
    args[-1] = "9090"
    assert diff_object(want, live) == ("spec.template.spec.containers[app].args[7]: 9090 → 8080",)
    args.append("--reload")
    assert diff_object(want, live)[0].startswith("spec.template.spec.containers[app].args: [")


def test_types_matter() -> None:
    want = named(objects(), "Deployment/support-bot-blue")
    live = as_live(want)
    pod = live["spec"]["template"]["spec"]
    pod["automountServiceAccountToken"] = 0
    # a mapping equal to the desired one by Python's == (1 == True) is still walked
    pod["containers"][0]["securityContext"]["runAsNonRoot"] = 1
    assert diff_object(want, live) == (
        "spec.template.spec.automountServiceAccountToken: 0 → false",
        "spec.template.spec.containers[app].securityContext.runAsNonRoot: 1 → true",
    )


def test_no_live_object() -> None:
    want = named(objects(), "ConfigMap/support-bot-blue")
    lines = diff_object(want, None)
    assert lines[0] == "apiVersion: (none) → v1" and any(
        x.startswith("data: (none) → ") for x in lines
    )


def test_plan_create_update_unchanged_delete() -> None:
    desired = objects(replace(DESIRED, replicas=2), "blue")
    live = [as_live(o) for o in objects(DESIRED, "blue")]
    live.remove(next(o for o in live if object_name(o) == "Service/support-bot-blue"))
    # the old colour, still running: llmops owns it, it is no longer desired
    live += [as_live(o) for o in objects(DESIRED, "green")[:3]]
    # objects llmops does not own, or owns in another environment, are left alone
    foreign = as_live(named(objects(), "ConfigMap/support-bot-blue"))
    foreign["metadata"]["name"] = "hand-made"
    del foreign["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    other_env = as_live(named(objects(replace(DESIRED, env="test")), "Service/support-bot"))
    other_env["metadata"]["name"] = "support-bot-test-copy"
    live += [foreign, other_env]

    changes = plan_objects(desired, live)
    summary = [(c.kind, c.object) for c in changes]
    assert summary == [
        ("update", "ConfigMap/support-bot-blue"),
        ("update", "Deployment/support-bot-blue"),
        ("create", "Service/support-bot-blue"),
        ("update", "Service/support-bot"),
        ("delete", "ConfigMap/support-bot-green"),
        ("delete", "Deployment/support-bot-green"),
        ("delete", "Service/support-bot-green"),
    ]
    assert {c.app for c in changes} == {"support-bot"}
    deployment = changes[1]
    assert "spec.replicas: 1 → 2" in deployment.diff


def test_plan_of_an_applied_state_is_all_unchanged() -> None:
    desired = objects(replace(DESIRED, autoscaling=(2, 4, 80), min_available=1))
    changes = plan_objects(desired, [as_live(o) for o in desired])
    assert [c.kind for c in changes] == ["unchanged"] * len(desired)
    assert all(c.diff == () for c in changes)


def test_plan_prunes_by_env_when_nothing_is_desired() -> None:
    live = [as_live(o) for o in objects()]
    assert plan_objects([], live) == ()
    pruned = plan_objects([], live, env="prod")
    assert [c.kind for c in pruned] == ["delete"] * len(live)
    assert plan_objects([], live, env="test") == ()


def test_plan_keys_by_namespace_and_uses_app_of() -> None:
    desired = objects()
    live = [as_live(o) for o in desired]
    for obj in live:
        obj["metadata"]["namespace"] = "elsewhere"
    changes = plan_objects(desired, live, app_of=lambda o: "app:" + app_label(o))
    assert [c.kind for c in changes] == ["create"] * 4 + ["delete"] * 4
    assert {c.app for c in changes} == {"app:support-bot"}


# --- properties over any renderable app -------------------------------------------------


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path]


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    return f"{value}-edited"


@settings(max_examples=60, deadline=None)
@given(desired=desired_apps(), colour=st.sampled_from(["blue", "green"]), pick=st.randoms())
def test_any_hand_edit_of_a_set_field_is_found(
    desired: DesiredApp, colour: str, pick: random.Random
) -> None:
    rendered = render_app(desired, "llm-ns", colour)  # type: ignore[arg-type]
    live = [as_live(o) for o in rendered]
    assert [c.kind for c in plan_objects(rendered, live)] == ["unchanged"] * len(rendered)
    index = pick.randrange(len(rendered))
    obj, edited = rendered[index], copy.deepcopy(rendered[index])
    path = pick.choice([p for p in _leaves(obj) if p[0] not in ("apiVersion", "kind")])
    holder: Any = edited
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = _changed(holder[path[-1]])
    lines = diff_object(obj, edited)
    assert len(lines) == 1, (path, lines)
    if path[-1] == "name" and isinstance(path[-2], int):
        # a renamed list item: the desired item is missing from the live list
        assert ": (none) → {" in lines[0], lines
    elif isinstance(path[-1], str) and path[-1].isidentifier():
        assert f"{path[-1]}: " in lines[0], lines
