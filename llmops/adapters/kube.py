"""The Kubernetes API client of the deploy target (with ``kubelease``, the controller's
Lease and Event writer, the only modules that import ``kubernetes``).

Used by ``llmops.deploy.kubernetes`` (apply, read, prune, rollout waits, events) through
``llmops.ops.deploy`` (``client_for``); its Lease helpers serve leader election too.
Objects are plain dicts as the API serves them; the official client supplies kubeconfig /
in-cluster loading, authentication (tokens, client certificates, exec plugins) and the
HTTP pool, and requests go through ``ApiClient.call_api`` with a small table of the kinds
llmops uses, so no discovery round trips are needed.

Writes are server-side apply (``PATCH`` with ``application/apply-patch+yaml``, one field
manager, ``force``), which is idempotent: a retried apply never duplicates an object.
Failures become the llmops error tree with one actionable line: the cluster is
unreachable (``KubeUnreachable``, naming the server and the kubeconfig context),
credentials are rejected (401), RBAC forbids a verb (``KubeForbidden``, naming the verb
and resource to grant), the object is invalid (422), or a write lost a race
(``KubeConflict``). 409 on apply, 429 and 5xx are retried with exponential backoff and
full jitter, a bounded number of times.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from llmops.adapters.retry import backoff_delay, parse_retry_after
from llmops.domain.errors import ExternalError, Permanent, Retryable

JSON = dict[str, Any]

#: default field manager of every llmops write
FIELD_MANAGER = "llmops"


@dataclass(frozen=True, slots=True)
class Kind:
    """Where the API serves one kind."""

    kind: str
    api_version: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def resource(self) -> str:
        """``deployments.apps``: the name RBAC rules and API messages use."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = f"/apis/{self.api_version}" if self.group else f"/api/{self.api_version}"
        if self.namespaced:
            if namespace is None:
                raise ValueError(f"{self.kind} is namespaced: a namespace is needed")
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


KINDS: dict[str, Kind] = {
    k.kind: k
    for k in (
        Kind("Deployment", "apps/v1", "deployments"),
        Kind("Service", "v1", "services"),
        Kind("ConfigMap", "v1", "configmaps"),
        Kind("Secret", "v1", "secrets"),
        Kind("Event", "v1", "events"),
        Kind("Namespace", "v1", "namespaces", namespaced=False),
        Kind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers"),
        Kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets"),
        Kind("Lease", "coordination.k8s.io/v1", "leases"),
        Kind("ServiceAccount", "v1", "serviceaccounts"),
    )
}


def kind_of(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ValueError(
            f"llmops does not manage Kubernetes kind {kind!r} (known: {known})"
        ) from None


# --- errors --------------------------------------------------------------------------


class KubeUnreachable(ExternalError):
    """The API server cannot be reached: refused, DNS, TLS, timeout."""


class KubeForbidden(Permanent):
    """RBAC denied a verb on a resource; the message says what to grant."""

    def __init__(self, message: str, verb: str, resource: str, namespace: str | None) -> None:
        super().__init__(message)
        self.verb, self.resource, self.namespace = verb, resource, namespace


class KubeConflict(Retryable):
    """A write lost a race: the object exists already (create) or moved on (update)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, delay=0.0)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """A Deployment's rollout, judged like ``kubectl rollout status``."""

    ready: bool
    message: str
    #: the rollout cannot finish (ProgressDeadlineExceeded, the Deployment is gone)
    failed: bool = False


@dataclass(frozen=True, slots=True)
class _What:
    verb: str
    kind: Kind
    name: str | None
    namespace: str | None

    @property
    def label(self) -> str:
        obj = f"{self.kind.kind}/{self.name}" if self.name else self.kind.resource
        return f"{obj} in namespace {self.namespace}" if self.namespace else obj


class _Transport(Exception):
    def __init__(self, reason: str, retryable: bool, tls: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.retryable, self.tls = reason, retryable, tls


def _describe_transport(exc: BaseException) -> _Transport:
    """Classify a urllib3 / socket failure: DNS and TLS are permanent, the rest transient."""
    inner: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        inner = exc.reason
    text = str(inner)
    if isinstance(inner, urllib3.exceptions.NameResolutionError) or isinstance(
        inner.__context__, socket.gaierror
    ):
        return _Transport("the host name does not resolve (DNS)", retryable=False)
    if isinstance(inner, urllib3.exceptions.SSLError) or "SSL" in text or "CERTIFICATE" in text:
        detail = text.split(":", 1)[-1].strip() or type(inner).__name__
        return _Transport(f"TLS failed ({detail[:160]})", retryable=False, tls=True)
    # NewConnectionError subclasses ConnectTimeoutError: test it first
    if isinstance(inner, urllib3.exceptions.NewConnectionError):
        refused = "refused" in text.lower()
        return _Transport("connection refused" if refused else "cannot connect", retryable=True)
    if isinstance(inner, urllib3.exceptions.ConnectTimeoutError):
        return _Transport("the connection timed out", retryable=True)
    if isinstance(inner, urllib3.exceptions.ReadTimeoutError):
        return _Transport("the server did not answer in time", retryable=True)
    return _Transport(f"the connection failed ({type(inner).__name__})", retryable=True)


def _status_message(data: object) -> str:
    if isinstance(data, dict):
        message = data.get("message")
        if isinstance(message, str) and message:
            return message
    return ""


def micro_time(when: datetime | None = None) -> str:
    """A Kubernetes MicroTime (Lease acquire/renew times)."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the client ----------------------------------------------------------------------


class KubeClient:
    """A small client of the Kubernetes API over the official client's HTTP pool.

    Build it with :meth:`from_config` (kubeconfig path and context, or in-cluster);
    ``close()`` it when done. Thread-safe for concurrent calls (urllib3's pool is).
    """

    def __init__(
        self,
        api: Any,
        *,
        source: str,
        attempts: int = 5,
        backoff_base: float = 0.25,
        backoff_cap: float = 4.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api = api
        self.source = source
        self.server: str = api.configuration.host
        self._attempts = max(1, attempts)
        self._base, self._cap = backoff_base, backoff_cap
        self._timeout = (connect_timeout, read_timeout)
        self._rng = rng or random.Random()
        self._sleep = sleep

    @classmethod
    def from_config(
        cls,
        kubeconfig: str | Path | None = None,
        context: str | None = None,
        *,
        in_cluster: bool | None = None,
        **options: Any,
    ) -> KubeClient:
        """A client from a kubeconfig (``kubeconfig``, else ``$KUBECONFIG``, else
        ``~/.kube/config``) and ``context`` (else its current one), or from the pod's
        service account when ``in_cluster`` (default: when no kubeconfig was named and
        ``KUBERNETES_SERVICE_HOST`` is set)."""
        configuration = k8s_client.Configuration()
        named = kubeconfig is not None or bool(os.environ.get("KUBECONFIG"))
        if in_cluster is None:
            in_cluster = not named and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        if in_cluster:
            try:
                k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except ConfigException as exc:
                raise ExternalError(
                    f"cannot use the in-cluster service account: {exc} — run inside a pod with a "
                    "service account token, or name a kubeconfig (KUBECONFIG or --kubeconfig)"
                ) from exc
            source = "the in-cluster service account"
        else:
            path = str(
                kubeconfig or os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config"
            )
            files = [p for p in path.split(os.pathsep) if p]
            if not any(Path(p).expanduser().is_file() for p in files):
                raise ExternalError(
                    f"no kubeconfig at {path} — set KUBECONFIG to your cluster's kubeconfig "
                    "(kind: `kind get kubeconfig`), or run in a pod with a service account"
                )
            try:
                contexts, active = k8s_config.list_kube_config_contexts(config_file=path)  # type: ignore[no-untyped-call]
            except (ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
                detail = " ".join(str(exc).split())
                raise ExternalError(f"kubeconfig {path} cannot be read: {detail}") from exc
            names = [c["name"] for c in contexts or []]
            chosen = context or (active or {}).get("name")
            if chosen not in names:
                listed = ", ".join(names) or "none"
                raise ExternalError(
                    f"kubeconfig {path} has no context {chosen!r} (contexts: {listed}) — pick one "
                    "with the environment's target.context or `kubectl config use-context`"
                )
            try:
                k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=path, context=chosen, client_configuration=configuration
                )
            except (ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
                raise ExternalError(
                    f"kubeconfig {path}, context {chosen}: cannot load credentials: {exc}"
                ) from exc
            source = f"context {chosen} of {path}"
        configuration.retries = False  # we retry, with backoff, and classify failures
        return cls(k8s_client.ApiClient(configuration), source=source, **options)

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the HTTP exchange ------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        body: object,
        content_type: str,
    ) -> tuple[int, Any, Mapping[str, str]]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self._api.param_serialize(
            method,
            path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*request, _request_timeout=self._timeout)
            raw = response.read()
        except k8s_client.ApiException as exc:  # the client's wrapper of an SSLError
            raise _Transport(
                f"TLS failed ({str(exc.reason).splitlines()[-1][:160]})", False, tls=True
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _describe_transport(exc) from exc
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = {"message": raw[:200].decode("utf-8", "replace")}
        return int(response.status), data, response.headers

    def _call(
        self,
        method: str,
        what: _What,
        *,
        path: str | None = None,
        query: Sequence[tuple[str, str]] = (),
        body: object = None,
        content_type: str = "application/json",
        retry_conflict: bool = False,
    ) -> tuple[int, Any]:
        """One request with bounded retries; 2xx and 404 return, the rest raise."""
        url_path = path or what.kind.path(what.namespace, what.name)
        attempt = 0
        while True:
            try:
                status, data, headers = self._send(method, url_path, query, body, content_type)
            except _Transport as exc:
                if exc.retryable and attempt + 1 < self._attempts:
                    self._sleep(backoff_delay(attempt, self._base, self._cap, self._rng))
                    attempt += 1
                    continue
                raise self._unreachable(exc) from exc
            if 200 <= status < 300 or status == 404:
                return status, data
            transient = status in (429, 500, 502, 503, 504) or (
                status == 409 and retry_conflict and not self._manager_conflict(data)
            )
            if transient and attempt + 1 < self._attempts:
                wait = parse_retry_after(headers.get("Retry-After"))
                delay = (
                    min(wait, self._cap)
                    if wait is not None
                    else backoff_delay(attempt, self._base, self._cap, self._rng)
                )
                self._sleep(delay)
                attempt += 1
                continue
            raise self._http_error(status, data, what, attempts=attempt + 1)

    @staticmethod
    def _manager_conflict(data: Any) -> bool:
        causes = (
            ((data or {}).get("details") or {}).get("causes") or []
            if isinstance(data, dict)
            else []
        )
        return any(c.get("reason") == "FieldManagerConflict" for c in causes if isinstance(c, dict))

    def _unreachable(self, exc: _Transport) -> KubeUnreachable:
        host = urlsplit(self.server).netloc or self.server
        fix = (
            "check the cluster's CA and server name in the kubeconfig"
            if exc.tls
            else "check KUBECONFIG and the context (kubectl cluster-info), and that the cluster is running"
        )
        return KubeUnreachable(
            f"cannot reach the Kubernetes API at {self.server} ({self.source}): {exc.reason} — {fix}"
            if host
            else f"cannot reach the Kubernetes API ({self.source}): {exc.reason} — {fix}"
        )

    def _http_error(self, status: int, data: Any, what: _What, attempts: int) -> ExternalError:
        said = _status_message(data)
        reason = data.get("reason", "") if isinstance(data, dict) else ""
        where = f"in namespace {what.namespace}" if what.namespace else "at cluster scope"
        if status == 401:
            return Permanent(
                f"the Kubernetes API at {self.server} rejected the credentials of {self.source} "
                "(401 Unauthorized): the token or client certificate is missing or expired — "
                "refresh the kubeconfig's credentials or use another context"
            )
        if status == 403:
            return KubeForbidden(
                f"forbidden: cannot {what.verb} {what.kind.resource} {where} — grant the llmops "
                f"ServiceAccount a Role with verb {what.verb!r} on {what.kind.resource} "
                f"(the API said: {said or 'Forbidden'})",
                what.verb,
                what.kind.resource,
                what.namespace,
            )
        if status == 409:
            if reason == "AlreadyExists":
                return KubeConflict(f"{what.label} already exists", "AlreadyExists")
            if self._manager_conflict(data):
                return Permanent(
                    f"cannot apply {what.label}: another field manager owns fields: {said}"
                )
            tries = f" after {attempts} attempts" if attempts > 1 else ""
            return KubeConflict(
                f"{what.label} changed while llmops wrote it{tries}: {said}", "Conflict"
            )
        if status in (400, 422):
            return Permanent(f"Kubernetes rejected {what.label}: {said or reason or status}")
        if status in (429, 500, 502, 503, 504):
            return Retryable(
                f"the Kubernetes API at {self.server} answered {status} to {what.verb} {what.label} "
                f"after {attempts} attempt{'s' if attempts > 1 else ''}: {said or reason}",
                delay=self._cap,
            )
        return ExternalError(
            f"the Kubernetes API at {self.server} answered {status} to {what.verb} {what.label}: "
            f"{said or reason}"
        )

    @staticmethod
    def _not_found(data: Any, what: _What) -> ExternalError:
        details = (data or {}).get("details") or {} if isinstance(data, dict) else {}
        if details.get("kind") == "namespaces" and what.namespace:
            return Permanent(
                f"namespace {what.namespace} does not exist — create it "
                f"(kubectl create namespace {what.namespace}) or fix the environment's target.namespace"
            )
        return Permanent(f"{what.label} does not exist: {_status_message(data)}")

    # -- objects ------------------------------------------------------------------------

    def apply(
        self, obj: Mapping[str, Any], field_manager: str = FIELD_MANAGER, force: bool = True
    ) -> JSON:
        """Server-side apply ``obj`` (creates it when missing); returns the live object."""
        kind = kind_of(str(obj.get("kind")))
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise ValueError(f"{kind.kind} to apply has no metadata.name")
        namespace = meta.get("namespace") if kind.namespaced else None
        what = _What("patch", kind, name, namespace)
        body = {"apiVersion": kind.api_version, **obj}
        query = [("fieldManager", field_manager)] + ([("force", "true")] if force else [])
        status, data = self._call(
            "PATCH",
            what,
            query=query,
            body=body,
            content_type="application/apply-patch+yaml",
            retry_conflict=True,
        )
        if status == 404:
            raise self._not_found(data, what)
        return dict(data)

    def get(self, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        """The object, or None when it does not exist."""
        k = kind_of(kind)
        status, data = self._call("GET", _What("get", k, name, namespace if k.namespaced else None))
        return None if status == 404 else dict(data)

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        *,
        limit: int = 500,
    ) -> list[JSON]:
        """Objects of a kind (in ``namespace``; all namespaces when None), with kind and
        apiVersion filled in (list items come without them)."""
        k = kind_of(kind)
        what = _What("list", k, None, namespace if k.namespaced else None)
        path = (
            k.path(namespace)
            if (namespace is not None or not k.namespaced)
            else (
                (f"/apis/{k.api_version}" if k.group else f"/api/{k.api_version}") + f"/{k.plural}"
            )
        )
        items: list[JSON] = []
        token: str | None = None
        while True:
            query = [("limit", str(limit))]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if token:
                query.append(("continue", token))
            status, data = self._call("GET", what, path=path, query=query)
            if status == 404:
                return items
            for item in data.get("items") or []:
                items.append({"apiVersion": k.api_version, "kind": k.kind, **item})
            token = (data.get("metadata") or {}).get("continue")
            if not token:
                return items

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete an object (background propagation); False when it did not exist."""
        k = kind_of(kind)
        what = _What("delete", k, name, namespace if k.namespaced else None)
        status, _ = self._call("DELETE", what, body={"propagationPolicy": "Background"})
        return status != 404

    def patch_merge(
        self,
        kind: str,
        name: str,
        namespace: str | None,
        patch: Mapping[str, Any],
        field_manager: str = FIELD_MANAGER,
    ) -> JSON | None:
        """A JSON merge patch (an Update in managedFields); None when the object is gone."""
        k = kind_of(kind)
        what = _What("patch", k, name, namespace if k.namespaced else None)
        status, data = self._call(
            "PATCH",
            what,
            query=[("fieldManager", field_manager)],
            body=dict(patch),
            content_type="application/merge-patch+json",
        )
        return None if status == 404 else dict(data)

    def scale(
        self, name: str, namespace: str, replicas: int, field_manager: str = FIELD_MANAGER
    ) -> JSON | None:
        """Set a Deployment's replicas (a merge patch of spec.replicas)."""
        return self.patch_merge(
            "Deployment", name, namespace, {"spec": {"replicas": replicas}}, field_manager
        )

    def check(self, namespace: str) -> None:
        """Raise unless the API answers and llmops may list Deployments in ``namespace``:
        the reachability check made before the first write."""
        k = KINDS["Deployment"]
        self._call(
            "GET", _What("list", k, None, namespace), path=k.path(namespace), query=[("limit", "1")]
        )

    # -- rollouts -----------------------------------------------------------------------

    @staticmethod
    def rollout_status(deployment: Mapping[str, Any] | None) -> RolloutStatus:
        """Judge a Deployment as ``kubectl rollout status`` does."""
        if deployment is None:
            return RolloutStatus(False, "the Deployment does not exist", failed=True)
        meta = deployment.get("metadata") or {}
        spec = deployment.get("spec") or {}
        status = deployment.get("status") or {}
        name = meta.get("name", "?")
        if int(meta.get("generation", 0)) > int(status.get("observedGeneration", 0)):
            return RolloutStatus(
                False, f"Deployment {name}: waiting for the spec update to be observed"
            )
        for condition in status.get("conditions") or []:
            if (
                condition.get("type") == "Progressing"
                and condition.get("reason") == "ProgressDeadlineExceeded"
            ):
                return RolloutStatus(
                    False, f"Deployment {name} exceeded its progress deadline", failed=True
                )
        want = int(spec.get("replicas", 1))
        updated = int(status.get("updatedReplicas", 0))
        total = int(status.get("replicas", 0))
        available = int(status.get("availableReplicas", 0))
        if updated < want:
            return RolloutStatus(False, f"Deployment {name}: {updated} of {want} updated replicas")
        if total > updated:
            return RolloutStatus(
                False, f"Deployment {name}: {total - updated} old replicas pending termination"
            )
        if available < updated:
            return RolloutStatus(
                False, f"Deployment {name}: {available} of {updated} updated replicas available"
            )
        return RolloutStatus(True, f"Deployment {name}: {available} of {want} replicas ready")

    def deployment_ready(self, name: str, namespace: str) -> bool:
        return self.rollout_status(self.get("Deployment", name, namespace)).ready

    def wait_rollout(
        self,
        name: str,
        namespace: str,
        timeout: float,
        *,
        poll: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> RolloutStatus:
        """Poll until the Deployment is rolled out, cannot be, or ``timeout`` seconds pass."""
        deadline = clock() + timeout
        while True:
            state = self.rollout_status(self.get("Deployment", name, namespace))
            if state.ready or state.failed:
                return state
            left = deadline - clock()
            if left <= 0:
                return RolloutStatus(False, f"not ready after {timeout:g}s: {state.message}")
            self._sleep(min(poll, left))

    # -- events -------------------------------------------------------------------------

    def create_event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        type: str = "Normal",
        component: str = "llmops",
    ) -> JSON:
        """Record a core/v1 Event on ``involved`` (an object as the API returned it).

        The name is chosen here, so a create retried after a lost answer finds its own
        event (409 AlreadyExists) instead of recording it twice."""
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = _time()
        event_name = f"{meta.get('name', 'llmops')}.{time.time_ns():x}"
        event: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name,
                "namespace": namespace,
            },
            "involvedObject": {
                k: v
                for k, v in {
                    "apiVersion": involved.get("apiVersion"),
                    "kind": involved.get("kind"),
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    "uid": meta.get("uid"),
                    "resourceVersion": meta.get("resourceVersion"),
                }.items()
                if v
            },
            "reason": reason,
            "message": message[:1024],
            "type": type,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": socket.gethostname()[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        k = KINDS["Event"]
        what = _What("create", k, event_name, namespace)
        try:
            status, data = self._call("POST", what, path=k.path(namespace), body=event)
        except KubeConflict as exc:
            if exc.reason != "AlreadyExists":
                raise
            return event
        if status == 404:
            raise self._not_found(data, what)
        return dict(data)

    # -- leases (leader election) ---------------------------------------------------------

    def get_lease(self, name: str, namespace: str) -> JSON | None:
        return self.get("Lease", name, namespace)

    def create_lease(self, name: str, namespace: str, spec: Mapping[str, Any]) -> JSON:
        """Create a Lease; ``KubeConflict`` (reason AlreadyExists) when another holder made it first."""
        k = KINDS["Lease"]
        what = _What("create", k, name, namespace)
        body = {
            "apiVersion": k.api_version,
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": dict(spec),
        }
        status, data = self._call("POST", what, path=k.path(namespace), body=body)
        if status == 404:
            raise self._not_found(data, what)
        return dict(data)

    def replace_lease(self, lease: Mapping[str, Any]) -> JSON:
        """Replace a Lease as read (PUT with its resourceVersion); ``KubeConflict`` when
        someone else wrote it since (or deleted it)."""
        meta = lease.get("metadata") or {}
        name, namespace = meta.get("name"), meta.get("namespace")
        if not name or not namespace or not meta.get("resourceVersion"):
            raise ValueError(
                "replace_lease needs the Lease as read: name, namespace and resourceVersion"
            )
        k = KINDS["Lease"]
        what = _What("update", k, name, namespace)
        status, data = self._call(
            "PUT", what, body={"apiVersion": k.api_version, "kind": "Lease", **lease}
        )
        if status == 404:
            raise KubeConflict(f"{what.label} was deleted", "NotFound")
        return dict(data)


def client_for(context: str | None = None, kubeconfig: str | Path | None = None) -> KubeClient:
    """The client of an environment's ``target.context`` (None: the kubeconfig's current
    context, or the in-cluster service account inside a pod)."""
    return KubeClient.from_config(kubeconfig, context)
