"""The install manifests: valid against the Kubernetes schemas (strict), least privilege,
hardened pods."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from llmops.controller.manifests import NAME, TARGET_VERBS, InstallOptions, controller_args, render

VERSION = kubernetes_validate.utils.latest_version()
OPTIONS = InstallOptions(
    repo="https://git.example/acme/llm-apps.git",
    namespace="llmops-system",
    target_namespaces=("llm-dev", "llm-test", "llm-prod"),
    branch="main",
    environments=("dev", "test"),
)


def objects() -> list[dict[str, Any]]:
    return render(OPTIONS)


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in objects() if o["kind"] == kind]


@pytest.mark.parametrize("index", range(len(render(OPTIONS))))
def test_every_object_validates_strictly(index: int) -> None:
    obj = objects()[index]
    kubernetes_validate.validate(obj, VERSION, strict=True)


def test_validation_is_strict_enough_to_catch_a_typo() -> None:
    broken = by_kind("Deployment")[0]
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSION, strict=True)


def test_the_order_lets_kubectl_apply_create_everything_in_one_go() -> None:
    kinds = [o["kind"] for o in objects()]
    assert kinds[:4] == ["Namespace"] * 4
    assert kinds.index("ServiceAccount") < kinds.index("Role") < kinds.index("Deployment")
    assert kinds[-2:] == ["Deployment", "Service"]
    names = [o["metadata"]["name"] for o in by_kind("Namespace")]
    assert names == ["llmops-system", "llm-dev", "llm-prod", "llm-test"]


def test_rbac_has_no_wildcard_and_no_cluster_scope() -> None:
    roles = by_kind("Role")
    assert not by_kind("ClusterRole") and not by_kind("ClusterRoleBinding")
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), (role["metadata"], rule)
            assert "nonResourceURLs" not in rule
            assert "secrets" not in rule["resources"]
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_the_controller_role_grants_only_its_lease_and_events() -> None:
    role = next(r for r in by_kind("Role") if r["metadata"]["namespace"] == "llmops-system")
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [NAME],
            "verbs": ["get", "update"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    ]


def test_each_target_namespace_gets_the_deployer_role_bound_to_the_service_account() -> None:
    targets = {"llm-dev", "llm-test", "llm-prod"}
    deployer = [r for r in by_kind("Role") if r["metadata"]["name"] == "llmops-deployer"]
    assert {r["metadata"]["namespace"] for r in deployer} == targets
    *workloads, events = deployer[0]["rules"]
    resources = {res for rule in workloads for res in rule["resources"]}
    assert resources == {
        "deployments", "services", "configmaps", "horizontalpodautoscalers", "poddisruptionbudgets"
    }
    assert all(tuple(rule["verbs"]) == TARGET_VERBS for rule in workloads)
    assert "watch" not in TARGET_VERBS and "update" not in TARGET_VERBS
    assert events == {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}
    bindings = by_kind("RoleBinding")
    assert {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings} == {
        ("llmops-system", NAME), *((t, "llmops-deployer") for t in targets)
    }
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": NAME, "namespace": "llmops-system"}
        ]


def test_the_pod_is_hardened_and_probed() -> None:
    deployment = by_kind("Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["serviceAccountName"] == NAME
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/lib/llmops"} <= mounts
    # the webhook secret is referenced, never inlined
    secret_env = next(e for e in container["env"] if e["name"] == "LLMOPS_WEBHOOK_SECRET")
    assert "value" not in secret_env and secret_env["valueFrom"]["secretKeyRef"]["optional"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        pod_labels := deployment["spec"]["template"]["metadata"]["labels"]
    ).items()
    assert by_kind("Service")[0]["spec"]["selector"].items() <= pod_labels.items()


def test_the_container_runs_the_controller_command_line() -> None:
    container = by_kind("Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["llmops"]
    args = container["args"]
    assert args == controller_args(OPTIONS)
    assert args[:3] == ["controller", "--repo", "https://git.example/acme/llm-apps.git"]
    pairs = dict(zip(args[1::2], args[2::2], strict=False))
    assert pairs["--lease-namespace"] == "llmops-system"
    assert pairs["--port"] == "8080"
    assert args.count("--env") == 2


def test_the_controller_cli_accepts_the_args_it_is_given() -> None:
    from click.testing import CliRunner

    from llmops.cli.controller import controller

    container = by_kind("Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    command = controller.make_context("controller", list(container["args"][1:]), resilient_parsing=True)
    assert command.params["repo"] == OPTIONS.repo
    assert command.params["lease_namespace"] == "llmops-system"
    assert CliRunner().invoke(controller, ["--help"]).exit_code == 0
