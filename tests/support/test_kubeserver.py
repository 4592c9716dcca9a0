"""The Kubernetes API test server behaves like an API server where llmops depends on it.

Driven over real HTTP by the official ``kubernetes`` client (typed APIs, the
DynamicClient, Watch) and, where installed, by kubectl: discovery, create/read/update/
delete with resourceVersion, uid and generation, label and field selectors, paging,
server-side apply (field ownership, conflicts, force, removal of fields a manager stops
applying), the patch types, defaults, validation, Status errors, watch, and the knobs
(faults, RBAC denials, latency, rollout simulation).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from support.kube import TEST_NAMESPACE as NS
from support.kubeserver import KubeApiServer, parse_selector

JSON = dict[str, Any]


@pytest.fixture
def api(kube_server: KubeApiServer) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kube_server.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        yield api_client


def deployment(
    name: str = "web", image: str = "nginx:1.0", replicas: int = 2, **labels: str
) -> JSON:
    pod_labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name, **labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": image,
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "A", "value": "1"}],
                        }
                    ]
                },
            },
        },
    }


def raw(
    server: KubeApiServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    token: str | None = "default",
) -> tuple[int, JSON]:
    """One request without any client library in between."""
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(server.url + path, data=data, method=method)
    request.add_header("Content-Type", content_type)
    bearer = server.token if token == "default" else token
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def apply(api: client.ApiClient, obj: JSON, manager: str = "llmops", force: bool = True) -> Any:
    return client.AppsV1Api(api).patch_namespaced_deployment(
        obj["metadata"]["name"],
        NS,
        obj,
        field_manager=manager,
        force=force,
        _content_type="application/apply-patch+yaml",
    )


# --- discovery ---------------------------------------------------------------------------


def test_discovery_serves_every_kind_llmops_uses(
    api: client.ApiClient, kube_server: KubeApiServer
) -> None:
    dyn = dynamic.DynamicClient(
        api, cache_file=str(Path(kube_server.kubeconfig).parent / "discovery.json")
    )
    for api_version, kind in [
        ("apps/v1", "Deployment"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Event"),
        ("v1", "Namespace"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("policy/v1", "PodDisruptionBudget"),
        ("coordination.k8s.io/v1", "Lease"),
    ]:
        resource = dyn.resources.get(api_version=api_version, kind=kind)
        assert resource.kind == kind
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
    assert names == ["default", NS]


# --- CRUD --------------------------------------------------------------------------------


def test_create_answers_201_with_server_fields_and_409_for_a_duplicate(
    kube_server: KubeApiServer,
) -> None:
    status, created = raw(
        kube_server, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", deployment()
    )
    assert status == 201
    meta = created["metadata"]
    assert meta["namespace"] == NS  # filled from the URL
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) > 0
    assert meta["generation"] == 1
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted
    status, body = raw(
        kube_server, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", deployment()
    )
    assert (status, body["kind"], body["reason"]) == (409, "Status", "AlreadyExists")
    assert body["message"] == 'deployments.apps "web" already exists'
    assert len(kube_server.objects("Deployment")) == 1


def test_create_in_a_missing_namespace_is_404_namespace_not_found(
    kube_server: KubeApiServer,
) -> None:
    status, body = raw(
        kube_server,
        "POST",
        "/api/v1/namespaces/nope/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
    )
    assert status == 404
    assert body["message"] == 'namespaces "nope" not found'
    assert body["details"]["kind"] == "namespaces"


def test_namespace_in_body_must_match_the_url(kube_server: KubeApiServer) -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "default"},
    }
    status, body = raw(kube_server, "POST", f"/api/v1/namespaces/{NS}/configmaps", obj)
    assert status == 400 and "does not match the namespace" in body["message"]


def test_put_with_a_stale_resource_version_is_409_conflict(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(
        NS, {"metadata": {"name": "cm"}, "data": {"a": "1"}}
    )
    first = created.metadata.resource_version
    created.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("cm", NS, created)
    assert updated.metadata.resource_version != first
    assert updated.metadata.uid == created.metadata.uid
    created.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("cm", NS, created)
    assert caught.value.status == 409
    assert json.loads(caught.value.body)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("cm", NS).data == {"a": "2"}


def test_put_to_a_missing_object_is_404(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).replace_namespaced_config_map(
            "nope", NS, {"metadata": {"name": "nope"}}
        )
    assert caught.value.status == 404


def test_generation_follows_spec_changes_only(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment())
    labelled = apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 5}})
    assert scaled.metadata.generation == 2


def test_delete_then_get_is_404_and_a_second_delete_too(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}})
    core.delete_namespaced_config_map("cm", NS)
    for call in (
        lambda: core.read_namespaced_config_map("cm", NS),
        lambda: core.delete_namespaced_config_map("cm", NS),
    ):
        with pytest.raises(ApiException) as caught:
            call()
        assert caught.value.status == 404
        assert json.loads(caught.value.body)["message"] == 'configmaps "cm" not found'


def test_delete_preconditions_guard_against_a_newer_version(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(NS, {"metadata": {"name": "cm"}})
    core.patch_namespaced_config_map("cm", NS, {"data": {"a": "1"}})
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_config_map(
            "cm",
            NS,
            body=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(resource_version=cm.metadata.resource_version)
            ),
        )
    assert caught.value.status == 409


def test_deleting_a_namespace_deletes_its_objects(
    api: client.ApiClient, kube_server: KubeApiServer
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "scratch"}})
    core.create_namespaced_config_map("scratch", {"metadata": {"name": "cm"}})
    core.delete_namespace("scratch")
    assert kube_server.objects("ConfigMap", "scratch") == []
    assert "scratch" not in [n.metadata.name for n in core.list_namespace().items]


# --- LIST ----------------------------------------------------------------------------------


def test_label_selectors_filter_lists(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, labels in [
        ("a", {"tier": "web", "env": "dev"}),
        ("b", {"tier": "db", "env": "dev"}),
        ("c", {"tier": "web"}),
        ("d", {}),
    ]:
        core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": labels}})

    def names(selector: str) -> list[str]:
        return [
            i.metadata.name
            for i in core.list_namespaced_config_map(NS, label_selector=selector).items
        ]

    assert names("tier=web") == ["a", "c"]
    assert names("tier==web,env=dev") == ["a"]
    assert names("tier!=web") == ["b", "d"]
    assert names("tier in (web,db),env") == ["a", "b"]
    assert names("tier notin (web)") == ["b", "d"]
    assert names("!env") == ["c", "d"]
    assert names("") == ["a", "b", "c", "d"]


def test_parse_selector_rejects_garbage() -> None:
    with pytest.raises(Exception, match="unable to parse"):
        parse_selector("a=(b")


def test_lists_page_with_limit_and_continue_and_items_have_no_kind(
    kube_server: KubeApiServer,
) -> None:
    for i in range(5):
        raw(
            kube_server,
            "POST",
            f"/api/v1/namespaces/{NS}/configmaps",
            {"metadata": {"name": f"cm{i}"}},
        )
    seen: list[str] = []
    path = f"/api/v1/namespaces/{NS}/configmaps?limit=2"
    while True:
        status, page = raw(kube_server, "GET", path)
        assert status == 200 and page["kind"] == "ConfigMapList"
        assert all(
            "kind" not in item for item in page["items"]
        )  # as a real server: no kind per item
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        path = f"/api/v1/namespaces/{NS}/configmaps?limit=2&continue={token}"
    assert seen == [f"cm{i}" for i in range(5)]


def test_field_selector_on_name(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name in ("a", "b"):
        core.create_namespaced_config_map(NS, {"metadata": {"name": name}})
    found = core.list_namespaced_config_map(NS, field_selector="metadata.name=b").items
    assert [i.metadata.name for i in found] == ["b"]


# --- server-side apply ------------------------------------------------------------------------


def test_apply_creates_then_is_idempotent(
    api: client.ApiClient, kube_server: KubeApiServer
) -> None:
    status, _ = raw(
        kube_server,
        "PATCH",
        f"/apis/apps/v1/namespaces/{NS}/deployments/web?fieldManager=llmops&force=true",
        deployment(),
        content_type="application/apply-patch+yaml",
    )
    assert status == 201
    first = kube_server.get("Deployment", "web", NS)
    again = apply(api, deployment())
    assert (
        again.metadata.resource_version == first["metadata"]["resourceVersion"]
    )  # nothing changed
    assert [m.manager for m in again.metadata.managed_fields] == ["llmops"]
    assert again.metadata.managed_fields[0].operation == "Apply"


def test_apply_accepts_yaml_bodies(kube_server: KubeApiServer) -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: '1'\n"
    status, created = raw(
        kube_server,
        "PATCH",
        f"/api/v1/namespaces/{NS}/configmaps/cm?fieldManager=m",
        body,
        content_type="application/apply-patch+yaml",
    )
    assert status == 201 and created["data"] == {"a": "1"}


def test_apply_needs_a_field_manager(kube_server: KubeApiServer) -> None:
    status, body = raw(
        kube_server,
        "PATCH",
        f"/apis/apps/v1/namespaces/{NS}/deployments/web",
        deployment(),
        content_type="application/apply-patch+yaml",
    )
    assert status == 422 and "fieldManager" in body["message"]


def test_fields_a_manager_stops_applying_are_removed(api: client.ApiClient) -> None:
    apply(api, deployment(extra="yes"))
    without = deployment()
    without["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "B", "value": "2"}]
    result = apply(api, without)
    assert "extra" not in result.metadata.labels
    assert [(e.name, e.value) for e in result.spec.template.spec.containers[0].env] == [("B", "2")]


def test_fields_of_another_manager_survive_an_apply(api: client.ApiClient) -> None:
    apply(api, deployment())
    client.AppsV1Api(api).patch_namespaced_deployment(
        "web",
        NS,
        {"metadata": {"annotations": {"note": "by hand"}}},
        field_manager="kubectl-annotate",
    )
    result = apply(api, deployment(image="nginx:2.0"))
    assert result.metadata.annotations == {"note": "by hand"}
    assert result.spec.template.spec.containers[0].image == "nginx:2.0"


def test_apply_conflicts_with_another_managers_change_unless_forced(api: client.ApiClient) -> None:
    apply(api, deployment())
    client.AppsV1Api(api).patch_namespaced_deployment(
        "web", NS, {"spec": {"replicas": 7}}, field_manager="kubectl-scale"
    )
    with pytest.raises(ApiException) as caught:
        apply(api, deployment(), force=False)
    body = json.loads(caught.value.body)
    assert caught.value.status == 409 and body["reason"] == "Conflict"
    assert (
        'conflict with "kubectl-scale"' in body["message"] and ".spec.replicas" in body["message"]
    )
    assert body["details"]["causes"][0]["reason"] == "FieldManagerConflict"
    forced = apply(api, deployment(), force=True)
    assert forced.spec.replicas == 2
    owners = {m.manager: json.dumps(m.fields_v1) for m in forced.metadata.managed_fields}
    assert "f:replicas" in owners["llmops"] and "f:replicas" not in owners.get("kubectl-scale", "")


def test_list_map_items_are_merged_by_key(api: client.ApiClient) -> None:
    apply(api, deployment())
    other = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy:1"}]}}},
    }
    result = apply(api, other, manager="mesh-injector")
    assert [c.name for c in result.spec.template.spec.containers] == ["sidecar", "c"]
    again = apply(api, deployment(image="nginx:3"))  # llmops' apply keeps the injected sidecar
    assert sorted(c.name for c in again.spec.template.spec.containers) == ["c", "sidecar"]


def test_unknown_fields_in_an_apply_are_rejected(kube_server: KubeApiServer) -> None:
    bad = deployment()
    bad["spec"]["replicaz"] = 3
    status, body = raw(
        kube_server,
        "PATCH",
        f"/apis/apps/v1/namespaces/{NS}/deployments/web?fieldManager=m",
        bad,
        content_type="application/apply-patch+yaml",
    )
    assert status == 400 and "field not declared in schema" in body["message"]


def test_status_is_not_written_through_the_main_resource(
    api: client.ApiClient, kube_server: KubeApiServer
) -> None:
    kube_server.rollout(None)
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment())
    apps.patch_namespaced_deployment("web", NS, {"status": {"readyReplicas": 99}})
    assert apps.read_namespaced_deployment("web", NS).status.ready_replicas in (None, 0)
    apps.patch_namespaced_deployment_status("web", NS, {"status": {"readyReplicas": 1}})
    assert apps.read_namespaced_deployment("web", NS).status.ready_replicas == 1


# --- other patches --------------------------------------------------------------------------


def test_strategic_merge_merges_containers_by_name_and_json_patch_applies_ops(
    api: client.ApiClient,
) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment())
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:9"}]}}}}
    merged = apps.patch_namespaced_deployment("web", NS, patch)  # the client sends strategic merge
    container = merged.spec.template.spec.containers[0]
    assert container.image == "nginx:9" and container.env[0].name == "A"  # env kept: merged by name
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    assert apps.patch_namespaced_deployment("web", NS, ops).spec.replicas == 4


def test_merge_patch_replaces_lists_and_null_deletes(kube_server: KubeApiServer) -> None:
    raw(kube_server, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", deployment(extra="1"))
    patch = {"metadata": {"labels": {"extra": None}}}
    status, body = raw(
        kube_server,
        "PATCH",
        f"/apis/apps/v1/namespaces/{NS}/deployments/web",
        patch,
        content_type="application/merge-patch+json",
    )
    assert status == 200 and body["metadata"]["labels"] == {"app": "web"}


# --- defaults and validation ------------------------------------------------------------------


def test_service_gets_a_cluster_ip_that_survives_updates(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    svc = {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    created = core.create_namespaced_service(NS, svc)
    assert created.spec.cluster_ip.startswith("10.96.")
    assert created.spec.ports[0].target_port == 80 and created.spec.ports[0].protocol == "TCP"
    updated = core.patch_namespaced_service("web", NS, {"spec": {"selector": {"app": "other"}}})
    assert updated.spec.cluster_ip == created.spec.cluster_ip


def test_resource_quantities_are_stored_canonical(kube_server: KubeApiServer) -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "0.5", "memory": "1024Mi"},
        "limits": {"cpu": "1000m", "memory": "1.5Gi"},
    }
    status, created = raw(kube_server, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", obj)
    assert status == 201
    assert created["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1536Mi"},
    }


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["metadata"]["labels"].update({"bad": "has spaces"}), "metadata.labels"),
        (
            lambda d: d["metadata"]["labels"].update({"release": "app@sha256:" + "a" * 64}),
            "metadata.labels",
        ),
        (lambda d: d["metadata"].update({"name": "Web_App"}), "metadata.name"),
        (
            lambda d: d["spec"]["template"]["metadata"].update({"labels": {"app": "other"}}),
            "spec.template.metadata.labels",
        ),
        (lambda d: d["spec"].update({"replicas": "two"}), "spec.replicas"),
    ],
)
def test_invalid_objects_are_422_with_the_field(
    kube_server: KubeApiServer, mutate: Any, field: str
) -> None:
    obj = deployment()
    mutate(obj)
    status, body = raw(kube_server, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", obj)
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == field
    assert kube_server.objects("Deployment") == []


def test_a_deployment_selector_is_immutable(api: client.ApiClient) -> None:
    apply(api, deployment())
    changed = deployment()
    changed["spec"]["selector"]["matchLabels"]["colour"] = "blue"
    changed["spec"]["template"]["metadata"]["labels"]["colour"] = "blue"
    with pytest.raises(ApiException) as caught:
        apply(api, changed)
    assert caught.value.status == 422 and "field is immutable" in caught.value.body


def test_service_names_must_be_dns_1035_labels(kube_server: KubeApiServer) -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "1web"},
        "spec": {"ports": [{"port": 80}]},
    }
    status, body = raw(kube_server, "POST", f"/api/v1/namespaces/{NS}/services", svc)
    assert status == 422 and "DNS-1035" in body["message"]


# --- auth, faults, RBAC, latency ----------------------------------------------------------------


def test_a_wrong_token_is_401_but_version_is_public(kube_server: KubeApiServer) -> None:
    status, body = raw(kube_server, "GET", f"/api/v1/namespaces/{NS}/configmaps", token="wrong")
    assert (status, body["reason"]) == (401, "Unauthorized")
    assert raw(kube_server, "GET", "/version", token=None)[0] == 200


def test_faults_hit_the_next_matching_requests_only(kube_server: KubeApiServer) -> None:
    kube_server.fail_next(2, 503, methods=("GET",), retry_after=1)
    path = f"/api/v1/namespaces/{NS}/configmaps"
    assert raw(kube_server, "POST", path, {"metadata": {"name": "cm"}})[0] == 201
    assert [raw(kube_server, "GET", path)[0] for _ in range(3)] == [503, 503, 200]


def test_an_after_write_fault_loses_the_answer_but_keeps_the_write(
    kube_server: KubeApiServer,
) -> None:
    kube_server.fail_next(1, 500, after_write=True)
    status, _ = raw(
        kube_server, "POST", f"/api/v1/namespaces/{NS}/configmaps", {"metadata": {"name": "cm"}}
    )
    assert status == 500
    assert [o["metadata"]["name"] for o in kube_server.objects("ConfigMap", NS)] == ["cm"]


def test_a_dropped_connection_fault(kube_server: KubeApiServer) -> None:
    kube_server.fail_next(1, 0)
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        raw(kube_server, "GET", "/api/v1/namespaces")
    assert raw(kube_server, "GET", "/api/v1/namespaces")[0] == 200


def test_denied_verbs_are_403_in_the_api_servers_words(kube_server: KubeApiServer) -> None:
    kube_server.deny("patch", "deployments")
    status, body = raw(
        kube_server,
        "PATCH",
        f"/apis/apps/v1/namespaces/{NS}/deployments/web?fieldManager=m",
        deployment(),
        content_type="application/apply-patch+yaml",
    )
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'deployments.apps "web" is forbidden: User "system:serviceaccount:llmops:llmops" cannot patch '
        f'resource "deployments" in API group "apps" in the namespace "{NS}"'
    )
    assert raw(kube_server, "GET", f"/apis/apps/v1/namespaces/{NS}/deployments")[0] == 200


def test_latency_delays_every_answer(kube_server: KubeApiServer) -> None:
    kube_server.latency = 0.2
    started = time.monotonic()
    raw(kube_server, "GET", "/api/v1/namespaces")
    assert time.monotonic() - started >= 0.2


def test_requests_are_recorded_with_verb_and_resource(kube_server: KubeApiServer) -> None:
    raw(kube_server, "GET", f"/apis/apps/v1/namespaces/{NS}/deployments/web")
    record = kube_server.requests[-1]
    assert (record.verb, record.resource, record.namespace, record.name, record.status) == (
        "get",
        "deployments",
        NS,
        "web",
        404,
    )


# --- the Deployment controller's part -------------------------------------------------------------


def _ready(api: client.ApiClient, name: str = "web") -> Any:
    return client.AppsV1Api(api).read_namespaced_deployment(name, NS).status


def test_deployments_become_ready_after_the_configured_delay(
    api: client.ApiClient, kube_server: KubeApiServer
) -> None:
    kube_server.rollout(0.3)
    client.AppsV1Api(api).create_namespaced_deployment(NS, deployment())
    assert not _ready(api).ready_replicas
    time.sleep(0.4)
    status = _ready(api)
    assert (status.ready_replicas, status.updated_replicas, status.observed_generation) == (2, 2, 1)


def test_a_new_generation_restarts_the_rollout(
    api: client.ApiClient, kube_server: KubeApiServer
) -> None:
    client.AppsV1Api(api).create_namespaced_deployment(NS, deployment())
    assert _ready(api).ready_replicas == 2
    kube_server.rollout(None)
    client.AppsV1Api(api).patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}})
    status = _ready(api)
    assert status.observed_generation == 2 and status.updated_replicas in (None, 0)
    kube_server.mark_ready("web", NS)
    assert _ready(api).ready_replicas == 3


def test_never_ready_per_name_and_progress_deadline(
    api: client.ApiClient, kube_server: KubeApiServer
) -> None:
    kube_server.rollout(None, name="bad")
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NS, deployment("good"))
    apps.create_namespaced_deployment(NS, deployment("bad"))
    assert _ready(api, "good").ready_replicas == 2
    assert not _ready(api, "bad").ready_replicas
    kube_server.fail_progress("bad", NS)
    reasons = [c.reason for c in _ready(api, "bad").conditions]
    assert reasons == ["ProgressDeadlineExceeded"]


def test_set_deployment_status_by_hand(api: client.ApiClient, kube_server: KubeApiServer) -> None:
    kube_server.rollout(None)
    client.AppsV1Api(api).create_namespaced_deployment(NS, deployment())
    kube_server.set_deployment_status("web", NS, readyReplicas=1, availableReplicas=1)
    assert _ready(api).ready_replicas == 1


def test_scaled_to_zero_is_rolled_out(api: client.ApiClient, kube_server: KubeApiServer) -> None:
    kube_server.rollout(None)
    client.AppsV1Api(api).create_namespaced_deployment(NS, deployment(replicas=0))
    status = _ready(api)
    assert status.observed_generation == 1 and (status.replicas or 0) == 0


# --- watch ---------------------------------------------------------------------------------------


def test_watch_streams_existing_objects_then_changes(
    api: client.ApiClient, kube_server: KubeApiServer
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "old"}})
    import threading

    def later() -> None:
        time.sleep(0.2)
        core.create_namespaced_config_map(NS, {"metadata": {"name": "new", "labels": {"w": "1"}}})
        core.delete_namespaced_config_map("old", NS)

    threading.Thread(target=later, daemon=True).start()
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, NS, timeout_seconds=3):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "old"), ("ADDED", "new"), ("DELETED", "old")]


# --- a second client: kubectl --------------------------------------------------------------------


def test_kubectl_applies_reads_and_waits_against_the_server(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (an extra witness of fidelity; the rest needs none)")
    # client-go sends bearer tokens over TLS only: this server runs without a token
    with KubeApiServer(token=None, namespaces=("default", NS)) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
        manifest = tmp_path / "web.json"
        manifest.write_text(json.dumps(deployment()))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [kubectl, "--kubeconfig", str(kubeconfig), *args],
                capture_output=True,
                text=True,
                timeout=60,
                env=env,
            )

        applied = run("apply", "--server-side", "--validate=false", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        assert "serverside-applied" in applied.stdout
        got = run("get", "deployment", "web", "-o", "json", "--show-managed-fields")
        assert json.loads(got.stdout)["metadata"]["managedFields"][0]["manager"] == "kubectl"
        assert run("rollout", "status", "deployment/web", "--timeout=10s").returncode == 0
        server.rollout(None)
        changed = copy.deepcopy(deployment(image="nginx:2"))
        manifest.write_text(json.dumps(changed))
        assert (
            run("apply", "--server-side", "--validate=false", "-f", str(manifest)).returncode == 0
        )
        waited = run("rollout", "status", "deployment/web", "--timeout=1s")
        assert waited.returncode != 0 and "timed out" in waited.stderr
        assert run("delete", "deployment", "web").returncode == 0
        assert server.objects("Deployment") == []
