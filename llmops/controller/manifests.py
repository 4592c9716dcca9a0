"""The Kubernetes objects that install ``llmops controller``, as plain dicts; rendered by
``llmops controller manifests``. Pure and deterministic.

Objects, in the order ``kubectl apply -f -`` needs them: the controller's Namespace and
each target Namespace, a ServiceAccount, least-privilege RBAC, the Deployment and its
Service. RBAC grants only what the controller does, with no wildcard anywhere:

- in its own namespace (Role ``llmops-controller``): create Leases, and get/update only
  the one Lease it elects on (``resourceNames``); create Events (they are written
  there only, about the Lease);
- in each target namespace (Role ``llmops-deployer``): on Deployments, Services,
  ConfigMaps, HorizontalPodAutoscalers and PodDisruptionBudgets the verbs of the
  deploy target (get and list to read what runs and wait for rollouts; create and patch
  for server-side apply and scaling; delete to retire an old colour or prune an app);
  create Events (the deploy target records rollouts on the objects). No Secrets: apps reference them by name, the controller never reads one.

The Deployment runs as a non-root user with a read-only root filesystem, no privilege
escalation, no capabilities and the runtime's default seccomp profile; git clones and
temporary files go to ``emptyDir`` volumes. Two replicas by default: one leads, one
waits for the lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops import __version__

NAME = "llmops-controller"
DEPLOYER_ROLE = "llmops-deployer"
PORT = 8080
WORKDIR = "/var/lib/llmops"
WEBHOOK_SECRET_NAME = "llmops-webhook"
WEBHOOK_SECRET_KEY = "secret"
WEBHOOK_SECRET_ENV = "LLMOPS_WEBHOOK_SECRET"
RUN_AS = 10001

#: what the deploy target touches in a target namespace: (apiGroup, resources)
TARGET_RESOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("configmaps", "services")),
    ("apps", ("deployments",)),
    ("autoscaling", ("horizontalpodautoscalers",)),
    ("policy", ("poddisruptionbudgets",)),
)
TARGET_VERBS = ("get", "list", "create", "patch", "delete")


@dataclass(frozen=True, slots=True)
class InstallOptions:
    """What ``llmops controller manifests`` is asked for."""

    repo: str
    namespace: str = "llmops-system"
    target_namespaces: tuple[str, ...] = ()
    image: str = f"llmops/controller:{__version__}"
    replicas: int = 2
    interval: float = 60.0
    lease_name: str = NAME
    branch: str | None = None
    environments: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = field(default_factory=tuple)


def _labels(component: str = "controller") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "llmops",
        "app.kubernetes.io/managed-by": "llmops",
        "app.kubernetes.io/version": __version__,
    }


def _selector() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "controller"}


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": _labels()}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def namespace(name: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/part-of": "llmops", "app.kubernetes.io/managed-by": "llmops"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def service_account(opts: InstallOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(NAME, opts.namespace),
        "automountServiceAccountToken": True,
    }


def _events_rule() -> dict[str, Any]:
    return {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}


def controller_role(opts: InstallOptions) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(NAME, opts.namespace),
        "rules": [
            # create cannot be limited to a name (the name is in the body)
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": [opts.lease_name],
                "verbs": ["get", "update"],
            },
            _events_rule(),
        ],
    }


def deployer_role(target: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {"apiGroups": [group], "resources": list(resources), "verbs": list(TARGET_VERBS)}
        for group, resources in TARGET_RESOURCES
    ]
    rules.append(_events_rule())
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(DEPLOYER_ROLE, target),
        "rules": rules,
    }


def role_binding(role: str, namespace: str, opts: InstallOptions) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(role, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": opts.namespace}],
    }


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def controller_args(opts: InstallOptions) -> list[str]:
    args = [
        "controller",
        "--repo",
        opts.repo,
        "--interval",
        _number(opts.interval),
        "--port",
        str(PORT),
        "--lease-namespace",
        opts.namespace,
        "--lease-name",
        opts.lease_name,
        "--webhook-secret-env",
        WEBHOOK_SECRET_ENV,
        "--workdir",
        f"{WORKDIR}/repo",
    ]
    if opts.branch:
        args += ["--branch", opts.branch]
    for env in opts.environments:
        args += ["--env", env]
    return [*args, *opts.extra_args]


def deployment(opts: InstallOptions) -> dict[str, Any]:
    def probe(path: str = "/healthz") -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": 10}

    container: dict[str, Any] = {
        "name": "controller",
        "image": opts.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["llmops"],
        "args": controller_args(opts),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
            },
            {"name": "HOME", "value": WORKDIR},
            {
                "name": WEBHOOK_SECRET_ENV,
                "valueFrom": {
                    "secretKeyRef": {
                        "name": WEBHOOK_SECRET_NAME,
                        "key": WEBHOOK_SECRET_KEY,
                        "optional": True,
                    }
                },
            },
        ],
        "livenessProbe": {**probe(), "initialDelaySeconds": 10, "failureThreshold": 3},
        "readinessProbe": {**probe("/readyz"), "failureThreshold": 3},
        "startupProbe": {**probe(), "periodSeconds": 2, "failureThreshold": 30},
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "1Gi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "work", "mountPath": WORKDIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(NAME, opts.namespace),
        "spec": {
            "replicas": opts.replicas,
            "selector": {"matchLabels": _selector()},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": _labels()},
                "spec": {
                    "serviceAccountName": NAME,
                    "automountServiceAccountToken": True,
                    # SIGTERM lets the pass in flight finish, then releases the lease
                    "terminationGracePeriodSeconds": 330,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "work", "emptyDir": {"sizeLimit": "2Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                },
            },
        },
    }


def service(opts: InstallOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(NAME, opts.namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def render(opts: InstallOptions) -> list[dict[str, Any]]:
    """Every object, in apply order."""
    targets: Sequence[str] = sorted(set(opts.target_namespaces) - {opts.namespace})
    objects: list[dict[str, Any]] = [namespace(opts.namespace)]
    objects += [namespace(t) for t in targets]
    objects.append(service_account(opts))
    objects.append(controller_role(opts))
    objects.append(role_binding(NAME, opts.namespace, opts))
    for target in sorted(set(opts.target_namespaces)):
        objects.append(deployer_role(target))
        objects.append(role_binding(DEPLOYER_ROLE, target, opts))
    objects.append(deployment(opts))
    objects.append(service(opts))
    return objects
