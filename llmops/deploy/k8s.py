"""Kubernetes objects of one app, as plain dicts. Pure and deterministic.

Called by ``llmops render`` (``llmops.ops.render``) and the kubernetes deploy target,
which applies them with server-side apply. The naming convention other modules rely on
(do not change it): per app and colour

- ``ConfigMap/<app>-<colour>``: the plain environment variables, loaded with ``envFrom``;
- ``Deployment/<app>-<colour>``: the pods of that colour;
- ``Service/<app>-<colour>``: selects that colour only (post-deploy verify talks to it);

and per app, independent of colour (the "stable" objects)

- ``Service/<app>``: what clients use; its selector names the *active* colour, so
  switching traffic is re-applying it with the other colour;
- ``HorizontalPodAutoscaler/<app>`` (autoscaling/v2, targets ``Deployment/<app>-<active>``)
  and ``PodDisruptionBudget/<app>`` (policy/v1, selects the active colour), only when the
  app configures autoscaling / ``minAvailable``.

:func:`render_colour` gives one colour's objects (start or update a colour),
:func:`render_stable` the stable objects pointing at the active colour (switch traffic),
:func:`render_app` both (what ``llmops render`` prints).

Every object carries ``app.kubernetes.io/{name,instance,version,component,part-of,
managed-by}`` and ``llmops.dev/environment`` labels plus the ``llmops.dev/release`` and
``llmops.dev/fingerprint`` annotations (``DesiredApp.fingerprint``: read it back to tell
whether anything changed). Only colour objects (and their pods) carry the
``llmops.dev/colour`` label, so deleting "everything of the old colour" by label never
touches the stable objects. The pod template carries the release and a hash of the
environment variables instead of the fingerprint, so a replica change never restarts pods
while a configuration change rolls them. Secrets are referenced with ``secretKeyRef``, never copied;
references to a variable of the deploying process (``from_env``) or to a file have no
meaning in a cluster and are left out (nothing is mounted: use ``{secret: …}`` on
Kubernetes). A Deployment managed by an HPA has no ``replicas`` field, so the HPA owns it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from llmops.deploy.images import DEFAULT_REPOSITORY_PREFIX
from llmops.domain.archive import canonical_json, sha256_hex
from llmops.domain.deploy import (
    APP_LABEL,
    BUNDLE_PATH_IN_IMAGE,
    COLOUR_LABEL,
    ENV_LABEL,
    FINGERPRINT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RELEASE_ANNOTATION,
    Colour,
    DesiredApp,
    SecretEnv,
)
from llmops.domain.errors import InvalidInput
from llmops.domain.ids import dns_label_problem

INSTANCE_LABEL = "app.kubernetes.io/instance"
VERSION_LABEL = "app.kubernetes.io/version"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
COMPONENT = "llm-app"
PART_OF = "llmops"

#: the container's name in every Deployment
CONTAINER = "app"
#: the uid/gid the runtime runs as (the image creates this user)
RUN_AS_USER = 10001
#: on the pod template: a hash of the plain and secret variables, so a ConfigMap change rolls
#: the pods (the fingerprint is not used there: a replica change must not restart pods)
CONFIG_ANNOTATION = "llmops.dev/config-hash"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
#: the longest app name whose ``<app>-green`` is still a DNS-1035 label (Service names)
MAX_APP_NAME = 63 - len("-green")
_LABEL_MAX = 63
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def colour_name(app: str, colour: Colour) -> str:
    """``<app>-<colour>``: the ConfigMap, Deployment and Service of one colour."""
    return f"{app}-{colour}"


def _label_value(text: str) -> str:
    """``text`` if it fits a label value, else a shortened form with a hash suffix."""
    if len(text) <= _LABEL_MAX:
        return text
    head = text[: _LABEL_MAX - 9].rstrip("-._")
    return f"{head}-{sha256_hex(text.encode())[:8]}"


def _check(desired: DesiredApp, namespace: str) -> None:
    app = desired.app
    if not _DNS_1035.match(app) or len(app) > MAX_APP_NAME:
        raise InvalidInput(
            f"app {app!r} cannot be deployed to Kubernetes: its Services need a name that "
            f"starts with a letter and has at most {MAX_APP_NAME} characters"
        )
    problem = dns_label_problem(namespace)
    if problem is not None:
        raise InvalidInput(f"namespace {namespace!r}: {problem}")
    for name, _ in desired.env_vars:
        if not _ENV_NAME.match(name):
            raise InvalidInput(
                f"app {app!r}: environment variable {name!r} is not a valid name on Kubernetes "
                "(letters, digits and '_', not starting with a digit)"
            )
    for secret in desired.secret_env:
        if not secret.secret_name:
            continue
        if not _ENV_NAME.match(secret.name):
            raise InvalidInput(f"app {app!r}: secret variable {secret.name!r} is not a valid name")
        if len(secret.secret_name) > 253 or not _DNS_SUBDOMAIN.match(secret.secret_name):
            raise InvalidInput(
                f"app {app!r}: apiKey.secret.name {secret.secret_name!r} is not a Kubernetes "
                "Secret name (lowercase letters, digits, '-' and '.')"
            )
        if not secret.secret_key or not _SECRET_KEY.match(secret.secret_key):
            raise InvalidInput(
                f"app {app!r}: apiKey.secret.key {secret.secret_key!r} is not a Secret key "
                "(letters, digits, '-', '_' and '.')"
            )


def selector(desired: DesiredApp, colour: Colour) -> dict[str, str]:
    """The labels that select the pods of one colour of one app in one environment."""
    return {
        APP_LABEL: desired.app,
        INSTANCE_LABEL: _label_value(f"{desired.app}-{desired.env}"),
        COLOUR_LABEL: colour,
    }


def object_labels(desired: DesiredApp, colour: Colour | None) -> dict[str, str]:
    """Every object's labels; ``colour`` only on colour objects and pods."""
    found = {
        APP_LABEL: desired.app,
        INSTANCE_LABEL: _label_value(f"{desired.app}-{desired.env}"),
        VERSION_LABEL: desired.digest[:12],
        COMPONENT_LABEL: COMPONENT,
        PART_OF_LABEL: PART_OF,
        MANAGED_BY_LABEL: MANAGED_BY,
        ENV_LABEL: desired.env,
    }
    if colour is not None:
        found[COLOUR_LABEL] = colour
    return found


@lru_cache(maxsize=4096)
def _fingerprint(desired: DesiredApp) -> str:
    """``desired.fingerprint``, hashed once per app however many objects carry it."""
    return desired.fingerprint


def object_annotations(desired: DesiredApp) -> dict[str, str]:
    """Every object's annotations: the release and the fingerprint of ``desired``."""
    return {RELEASE_ANNOTATION: desired.release, FINGERPRINT_ANNOTATION: _fingerprint(desired)}


@lru_cache(maxsize=4096)
def _config_hash(env_vars: tuple[tuple[str, str], ...], secrets: tuple[SecretEnv, ...]) -> str:
    config = {
        "env": [list(pair) for pair in env_vars],
        "secrets": [[s.name, s.secret_name, s.secret_key] for s in secrets],
    }
    return sha256_hex(canonical_json(config))[:32]


def pod_annotations(desired: DesiredApp) -> dict[str, str]:
    """The pod template's annotations: the release and the hash of its configuration."""
    digest = _config_hash(desired.env_vars, desired.secret_env)
    return {RELEASE_ANNOTATION: desired.release, CONFIG_ANNOTATION: digest}


def _metadata(
    desired: DesiredApp, name: str, namespace: str, colour: Colour | None
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": object_labels(desired, colour),
        "annotations": object_annotations(desired),
    }


def config_map(desired: DesiredApp, namespace: str, colour: Colour) -> dict[str, Any]:
    """``ConfigMap/<app>-<colour>``: the plain environment variables (never secrets)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(desired, colour_name(desired.app, colour), namespace, colour),
        "data": dict(sorted(desired.env_vars)),
    }


def _secret_env(desired: DesiredApp) -> list[dict[str, Any]]:
    """Secret keys as ``secretKeyRef`` variables; env and file references are left out."""
    found = {
        s.name: {
            "name": s.name,
            "valueFrom": {"secretKeyRef": {"name": s.secret_name, "key": s.secret_key}},
        }
        for s in desired.secret_env
        if s.secret_name and s.secret_key and s.name
    }
    return [found[name] for name in sorted(found)]


_DROP_ALL = {"drop": ["ALL"]}
_SECCOMP = {"type": "RuntimeDefault"}


def container(desired: DesiredApp, colour: Colour) -> dict[str, Any]:
    """The one container: ``llmops serve <app> --bundle …`` on ``desired.port``, from
    ``desired.image`` (or, when None, the tag ``llmops/<app>:<release digest>``)."""
    body: dict[str, Any] = {
        "name": CONTAINER,
        "image": desired.image or f"{DEFAULT_REPOSITORY_PREFIX}/{desired.app}:{desired.digest}",
        "imagePullPolicy": "IfNotPresent",
        "command": ["llmops"],
        "args": [
            "serve",
            desired.app,
            "--bundle",
            BUNDLE_PATH_IN_IMAGE,
            "--host",
            "0.0.0.0",
            "--port",
            str(desired.port),
        ],
        "ports": [{"name": "http", "containerPort": desired.port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": colour_name(desired.app, colour)}}],
    }
    secret_env = _secret_env(desired)
    if secret_env:
        body["env"] = secret_env
    body.update(
        {
            "readinessProbe": {
                "httpGet": {"path": READINESS_PATH, "port": "http"},
                "periodSeconds": 5,
                "timeoutSeconds": 2,
                "failureThreshold": 3,
            },
            "livenessProbe": {
                "httpGet": {"path": LIVENESS_PATH, "port": "http"},
                "initialDelaySeconds": 5,
                "periodSeconds": 10,
                "timeoutSeconds": 2,
                "failureThreshold": 3,
            },
            "resources": {
                "requests": {"cpu": desired.cpu, "memory": desired.memory},
                "limits": {"memory": desired.memory},
            },
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS_USER,
                "runAsGroup": RUN_AS_USER,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": dict(_DROP_ALL),
                "seccompProfile": dict(_SECCOMP),
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }
    )
    return body


def deployment(desired: DesiredApp, namespace: str, colour: Colour) -> dict[str, Any]:
    """``Deployment/<app>-<colour>``; no ``replicas`` when an HPA manages it."""
    spec: dict[str, Any] = {}
    if desired.autoscaling is None:
        spec["replicas"] = desired.replicas
    spec.update(
        {
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(desired, colour)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": object_labels(desired, colour),
                    "annotations": pod_annotations(desired),
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_USER,
                        "fsGroup": RUN_AS_USER,
                        "seccompProfile": dict(_SECCOMP),
                    },
                    "containers": [container(desired, colour)],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        }
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(desired, colour_name(desired.app, colour), namespace, colour),
        "spec": spec,
    }


def _service(
    desired: DesiredApp, name: str, namespace: str, colour: Colour, own_colour: Colour | None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(desired, name, namespace, own_colour),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(desired, colour),
            "ports": [
                {"name": "http", "port": desired.port, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def colour_service(desired: DesiredApp, namespace: str, colour: Colour) -> dict[str, Any]:
    """``Service/<app>-<colour>``: that colour's pods only (post-deploy verify)."""
    return _service(desired, colour_name(desired.app, colour), namespace, colour, colour)


def stable_service(desired: DesiredApp, namespace: str, colour: Colour) -> dict[str, Any]:
    """``Service/<app>``: what clients use; selects the active ``colour``."""
    return _service(desired, desired.app, namespace, colour, None)


def autoscaler(desired: DesiredApp, namespace: str, colour: Colour) -> dict[str, Any] | None:
    """``HorizontalPodAutoscaler/<app>`` on ``Deployment/<app>-<colour>``, if configured."""
    if desired.autoscaling is None:
        return None
    minimum, maximum, cpu = desired.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(desired, desired.app, namespace, None),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": colour_name(desired.app, colour),
            },
            "minReplicas": minimum,
            "maxReplicas": maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cpu},
                    },
                }
            ],
        },
    }


def disruption_budget(desired: DesiredApp, namespace: str, colour: Colour) -> dict[str, Any] | None:
    """``PodDisruptionBudget/<app>`` over the active ``colour``, if ``minAvailable`` is set."""
    if desired.min_available is None:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(desired, desired.app, namespace, None),
        "spec": {
            "minAvailable": desired.min_available,
            "selector": {"matchLabels": selector(desired, colour)},
        },
    }


def render_colour(desired: DesiredApp, namespace: str, colour: Colour) -> list[dict[str, Any]]:
    """One colour's objects: ConfigMap, Deployment and Service ``<app>-<colour>``.

    Apply these to start (or update) that colour; they do not move traffic.
    Raises ``InvalidInput`` for names Kubernetes cannot take.
    """
    _check(desired, namespace)
    return [
        config_map(desired, namespace, colour),
        deployment(desired, namespace, colour),
        colour_service(desired, namespace, colour),
    ]


def render_stable(desired: DesiredApp, namespace: str, colour: Colour) -> list[dict[str, Any]]:
    """The colour-independent objects pointing at the active ``colour``: Service ``<app>``,
    and the HPA and PodDisruptionBudget ``<app>`` when configured.

    Applying these with the new colour is the traffic switch.
    """
    _check(desired, namespace)
    found = [stable_service(desired, namespace, colour)]
    for extra in (
        autoscaler(desired, namespace, colour),
        disruption_budget(desired, namespace, colour),
    ):
        if extra is not None:
            found.append(extra)
    return found


def render_app(desired: DesiredApp, namespace: str, colour: Colour) -> list[dict[str, Any]]:
    """Everything of one app with ``colour`` active: :func:`render_colour` then
    :func:`render_stable` (what ``llmops render`` prints)."""
    return render_colour(desired, namespace, colour) + render_stable(desired, namespace, colour)
