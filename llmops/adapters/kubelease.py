"""The controller's own writes to a cluster: its ``coordination.k8s.io/v1`` Lease and its
core/v1 Events; used by ``llmops.controller.leader`` and ``llmops.controller.events``
(wired by ``llmops.cli.controller``).

Leases are read, created and replaced with ``resourceVersion`` optimistic concurrency:
a replace that lost a race raises :class:`LeaseConflict`, never overwrites. Every
library error is mapped to the llmops error tree here (``from`` the original), so the
layers above see ``Retryable``/``Permanent``/``UsageError`` only. The ``kubernetes``
package is imported on first use, which keeps ``--help`` fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops.domain.errors import LlmopsError, Permanent, Retryable, UsageError

#: the Lease annotation through which followers pass webhook pushes on to the leader
NUDGE_ANNOTATION = "llmops.dev/webhook-push"

#: seconds for one API call (connect, read); a lease call must end well within a lease
DEFAULT_TIMEOUT = (2.0, 5.0)


class LeaseConflict(Retryable):
    """Someone else wrote the Lease first (409): read it again and decide again."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The fields of a Lease leader election uses; ``holder`` is empty once released."""

    holder: str
    lease_duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    #: the server's version of the object; None for a Lease not created yet
    resource_version: str | None = None
    #: the last webhook push a follower passed on to the leader (an annotation)
    nudge: str | None = None


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One core/v1 Event about ``regarding`` (kind, name, api_version) in ``namespace``."""

    namespace: str
    reason: str
    message: str
    type: str  # "Normal" | "Warning"
    regarding_kind: str
    regarding_name: str
    regarding_api_version: str
    component: str = "llmops-controller"
    host: str = ""


def micro_time(moment: datetime) -> str:
    """A MicroTime as the API server parses it: always six fractional digits, UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def api_client(kubeconfig: str | Path | None = None, context: str | None = None) -> Any:
    """A ``kubernetes.client.ApiClient``: the in-cluster service account when running in a
    pod and no kubeconfig is named, else the kubeconfig (``KUBECONFIG`` or ~/.kube/config)."""
    from kubernetes import client
    from kubernetes import config as kube_config
    from kubernetes.config.config_exception import ConfigException

    config: Any = kube_config  # its loaders are untyped
    configuration = client.Configuration()
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "KUBECONFIG / ~/.kube/config"
        raise UsageError(
            f"no usable Kubernetes configuration ({where}): {exc}; run in a cluster, set "
            "KUBECONFIG or pass --kubeconfig"
        ) from exc
    # One attempt per call: the caller owns retries and their timing (a lease cannot wait).
    configuration.retries = False
    return client.ApiClient(configuration)


def _host(api: Any) -> str:
    try:
        return str(api.api_client.configuration.host)
    except AttributeError:  # pragma: no cover - always an ApiClient in practice
        return "the Kubernetes API"


def map_error(exc: Exception, what: str, host: str) -> LlmopsError:
    """The llmops error for a failed API call ``what`` (e.g. ``update Lease ns/name``)."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        reason = f"{status} {exc.reason or ''}".strip()
        if status == 409:
            return LeaseConflict(f"cannot {what}: it changed meanwhile ({reason})", delay=0.0)
        if status in (401, 403):
            return Permanent(
                f"the Kubernetes API at {host} refused to {what} ({reason}): grant the "
                "service account the RBAC rules of `llmops controller manifests`"
            )
        if status == 404:
            return Permanent(
                f"cannot {what}: not found at {host} ({reason}); does the namespace exist?"
            )
        if status == 429 or status >= 500:
            retry_after = (exc.headers or {}).get("Retry-After") if exc.headers else None
            try:
                delay = float(retry_after) if retry_after else 1.0
            except ValueError:
                delay = 1.0
            return Retryable(f"cannot {what}: the Kubernetes API answered {reason}", delay)
        body = (exc.body or "")[:300] if isinstance(exc.body, str) else ""
        return Permanent(f"cannot {what}: the Kubernetes API answered {reason} {body}".strip())
    return Retryable(
        f"cannot reach the Kubernetes API at {host} to {what} ({type(exc).__name__}: {exc}); "
        "check that the cluster is up and the kubeconfig points at it"
    )


def _is_api_failure(exc: Exception) -> bool:
    import urllib3
    from kubernetes.client.exceptions import ApiException

    return isinstance(exc, ApiException | urllib3.exceptions.HTTPError | OSError)


def _record(lease: Any) -> LeaseRecord:
    spec = lease.spec
    return LeaseRecord(
        holder=(spec.holder_identity or "") if spec else "",
        lease_duration_seconds=int(spec.lease_duration_seconds or 0) if spec else 0,
        acquire_time=spec.acquire_time if spec else None,
        renew_time=spec.renew_time if spec else None,
        transitions=int(spec.lease_transitions or 0) if spec else 0,
        resource_version=lease.metadata.resource_version,
        nudge=(lease.metadata.annotations or {}).get(NUDGE_ANNOTATION),
    )


class KubeLeases:
    """One named Lease in one namespace: get, create, replace (optimistic)."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        name: str,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.name = name
        self.timeout = timeout
        # Any: the bodies are plain dicts (exact MicroTime strings), not the typed models
        self._api: Any = client.CoordinationV1Api(api_client)

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    def _body(self, record: LeaseRecord) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": record.holder,
            "leaseDurationSeconds": record.lease_duration_seconds,
            "leaseTransitions": record.transitions,
        }
        if record.acquire_time is not None:
            spec["acquireTime"] = micro_time(record.acquire_time)
        if record.renew_time is not None:
            spec["renewTime"] = micro_time(record.renew_time)
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "llmops"},
        }
        if record.resource_version is not None:
            metadata["resourceVersion"] = record.resource_version
        if record.nudge is not None:
            metadata["annotations"] = {NUDGE_ANNOTATION: record.nudge}
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def get(self) -> LeaseRecord | None:
        """The Lease, or None when it does not exist yet."""
        from kubernetes.client.exceptions import ApiException

        try:
            lease = self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise map_error(exc, f"read {self.where}", _host(self._api)) from exc
        except Exception as exc:
            if not _is_api_failure(exc):
                raise
            raise map_error(exc, f"read {self.where}", _host(self._api)) from exc
        return _record(lease)

    def create(self, record: LeaseRecord) -> LeaseRecord:
        """Create the Lease; :class:`LeaseConflict` when it exists already."""
        try:
            lease = self._api.create_namespaced_lease(
                self.namespace, self._body(record), _request_timeout=self.timeout
            )
        except Exception as exc:
            if not _is_api_failure(exc):
                raise
            raise map_error(exc, f"create {self.where}", _host(self._api)) from exc
        return _record(lease)

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        """Replace the Lease if it is still at ``record.resource_version``; else
        :class:`LeaseConflict`."""
        if record.resource_version is None:
            raise ValueError("replace needs the resourceVersion that was read")
        try:
            lease = self._api.replace_namespaced_lease(
                self.name, self.namespace, self._body(record), _request_timeout=self.timeout
            )
        except Exception as exc:
            if not _is_api_failure(exc):
                raise
            raise map_error(exc, f"update {self.where}", _host(self._api)) from exc
        return _record(lease)


class KubeEvents:
    """Creates core/v1 Events (``kubectl get events``, ``kubectl describe``)."""

    def __init__(self, api_client: Any, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        from kubernetes import client

        self.timeout = timeout
        self._api: Any = client.CoreV1Api(api_client)

    def create(self, event: EventSpec) -> None:
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        source: dict[str, str] = {"component": event.component}
        if event.host:
            source["host"] = event.host
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                # the name only has to be unique; kubectl's recorder uses name.<hex time>
                "name": f"{event.regarding_name}.{now.strftime('%Y%m%d%H%M%S')}{now.microsecond:06x}",
                "namespace": event.namespace,
                "labels": {"app.kubernetes.io/managed-by": "llmops"},
            },
            "involvedObject": {
                "apiVersion": event.regarding_api_version,
                "kind": event.regarding_kind,
                "name": event.regarding_name,
                "namespace": event.namespace,
            },
            "reason": event.reason,
            "message": event.message[:1024],
            "type": event.type,
            "source": source,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        what = f"create an Event in namespace {event.namespace}"
        try:
            self._api.create_namespaced_event(
                event.namespace, body, _request_timeout=self.timeout
            )
        except Exception as exc:
            if not _is_api_failure(exc):
                raise
            raise map_error(exc, what, _host(self._api)) from exc
