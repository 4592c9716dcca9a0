"""An in-memory Kubernetes API server for the tests, served over real HTTP on 127.0.0.1.

Why our own and not kmock: kmock's emulator stores objects as plain merged dicts and
routes through a DSL that runs in the caller's event loop. Making it faithful meant
replacing its create/update/delete handlers, its discovery, its error rendering and its
object store (no resourceVersion, uid, generation, PUT, label selectors, namespaces or
server-side apply), which left nothing of kmock but the routing. This server is a
threaded ``http.server`` (no event loop, so the synchronous official client can call
it from the test's thread) and implements what llmops and the official client use:

- discovery: ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>[/<version>]``;
- namespaced CRUD for apps/v1 Deployments, v1 Services, ConfigMaps, Secrets, Events,
  autoscaling/v2 HorizontalPodAutoscalers, policy/v1 PodDisruptionBudgets,
  coordination.k8s.io/v1 Leases, and cluster-scoped v1 Namespaces;
- GET, LIST (``labelSelector`` with equality, set and existence terms, ``fieldSelector``
  on ``metadata.name``/``metadata.namespace``, ``limit``/``continue``), WATCH (JSON lines),
  POST (201, 409 AlreadyExists, 404 when the namespace does not exist), PUT (409 Conflict
  on a stale ``metadata.resourceVersion``), DELETE (preconditions), PATCH with
  ``application/apply-patch+yaml`` (server-side apply with field ownership from the
  Kubernetes OpenAPI schema: list-map keys, atomic maps and lists, conflicts between
  managers, ``force``, fields a manager stops applying are removed), merge patch,
  strategic merge patch (lists merged by their patch merge key) and JSON patch;
- ``resourceVersion`` (a global counter; unchanged by a no-op write), ``uid``,
  ``generation`` (bumped on spec changes), ``creationTimestamp``, ``managedFields``;
  API-server defaults (Deployment strategy, container pull policy, Service ClusterIP, …),
  schema validation (the kubernetes-validate schemas; strict for apply) and a few
  semantic checks a real server makes (name and label syntax, a Deployment's selector
  must match its template and is immutable, a Service needs ports);
- Status objects for errors (401, 403, 404, 409, 422, 500) shaped like the real ones;
- knobs: fault injection (the next N matching requests answer 500/409/403/… or drop the
  connection, before or after the write), latency, RBAC denials per verb and resource,
  and the Deployment controller's part: a Deployment becomes ready ``after`` seconds
  (or never, or with ProgressDeadlineExceeded), or its status is set by hand.

Gaps (what a real API server does and this one does not) are listed in the README.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import functools
import ipaddress
import itertools
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

JSON = dict[str, Any]
FieldPath = tuple[str, ...]

K8S_VERSION = kubernetes_validate.latest_version()  # e.g. "1.37.0"

# --- resource types ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str
    short_names: tuple[str, ...] = ()
    #: writes to the main resource keep status; status is written through ``/status``
    status_subresource: bool = False
    #: metadata.generation is kept and bumped when anything but metadata/status changes
    generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps``: how the API server names a resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, "namespace", ("ns",), True),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, "configmap", ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True, "secret"),
    ResourceType("", "v1", "services", "Service", True, "service", ("svc",), True),
    ResourceType("", "v1", "events", "Event", True, "event", ("ev",)),
    ResourceType(
        "apps", "v1", "deployments", "Deployment", True, "deployment", ("deploy",), True, True
    ),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        True,
        "horizontalpodautoscaler",
        ("hpa",),
        True,
        True,
    ),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        True,
        "poddisruptionbudget",
        ("pdb",),
        True,
        True,
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True, "lease"),
)
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {r.kind: r for r in RESOURCES}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def resource_for(kind_or_plural: str) -> ResourceType:
    """A resource by kind (``Deployment``), plural (``deployments``) or short name."""
    for r in RESOURCES:
        if kind_or_plural in (r.kind, r.plural, r.singular, *r.short_names):
            return r
    raise KeyError(f"the test server does not serve {kind_or_plural!r}")


# --- errors as Status objects -----------------------------------------------------------


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(res: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{res.qualified} "{name}" not found',
        {"name": name, "group": res.group, "kind": res.plural},
    )


def invalid(res: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    text = "; ".join(f"{f}: {m}" if f else m for f, m in causes)
    kind = f"{res.kind}.{res.group}" if res.group else res.kind
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {text}',
        {
            "name": name,
            "group": res.group,
            "kind": res.kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes
            ],
        },
    )


def conflict(res: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": res.group, "kind": res.plural},
    )


# --- the OpenAPI schema (from kubernetes-validate) ---------------------------------------


class Schemas:
    """Navigates the Kubernetes OpenAPI schema: properties, list types, merge keys."""

    def __init__(self) -> None:
        base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
        self._dir = base / f"v{K8S_VERSION}-local"
        self._defs: JSON = json.loads((self._dir / "_definitions.json").read_text())["$defs"]

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one instance per process
    def root(self, kind: str, api_version: str) -> JSON | None:
        short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        path = self._dir / f"{kind.lower()}-{short}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def resolve(self, schema: JSON | None) -> JSON | None:
        while schema is not None and "$ref" in schema:
            schema = self._defs.get(schema["$ref"].rsplit("/", 1)[-1])
        return schema

    def prop(self, schema: JSON | None, key: str) -> JSON | None:
        s = self.resolve(schema)
        if s is None:
            return None
        props = s.get("properties") or {}
        if key in props:
            return props[key]  # type: ignore[no-any-return]
        extra = s.get("additionalProperties")
        return extra if isinstance(extra, dict) else None

    def items(self, schema: JSON | None) -> JSON | None:
        s = self.resolve(schema)
        return None if s is None else s.get("items")

    @staticmethod
    def list_type(schema: JSON | None) -> tuple[str, tuple[str, ...]]:
        if schema is None:
            return "atomic", ()
        kind = schema.get("x-kubernetes-list-type")
        if kind == "map":
            return "map", tuple(schema.get("x-kubernetes-list-map-keys") or ())
        if kind == "set":
            return "set", ()
        if schema.get("x-kubernetes-patch-strategy", "").startswith("merge") and schema.get(
            "x-kubernetes-patch-merge-key"
        ):
            return "map", (schema["x-kubernetes-patch-merge-key"],)
        return "atomic", ()

    def atomic_map(self, schema: JSON | None) -> bool:
        s = self.resolve(schema)
        return bool(s and s.get("x-kubernetes-map-type") == "atomic")


SCHEMAS = Schemas()
#: defaults of list-map key fields a client may leave out
KEY_DEFAULTS = {"protocol": "TCP"}


def _key_elem(item: JSON, keys: tuple[str, ...]) -> str:
    key = {k: item.get(k, KEY_DEFAULTS.get(k)) for k in keys if k in item or k in KEY_DEFAULTS}
    return "k:" + json.dumps(key, sort_keys=True, separators=(",", ":"))


def fieldset(obj: JSON, schema: JSON | None, skip_status: bool) -> set[FieldPath]:
    """The leaf field paths of ``obj`` in FieldsV1 notation (``f:``, ``k:``, ``v:``)."""
    out: set[FieldPath] = set()

    def walk(value: Any, s: JSON | None, p: FieldPath) -> None:
        if isinstance(value, dict):
            if p and (SCHEMAS.atomic_map(s) or not value):
                out.add(p)
                return
            for k, child in value.items():
                walk(child, SCHEMAS.prop(s, k), (*p, f"f:{k}"))
        elif isinstance(value, list):
            kind, keys = Schemas.list_type(s)
            if kind == "map" and keys and all(isinstance(i, dict) for i in value):
                for item in value:
                    kp = (*p, _key_elem(item, keys))
                    out.add(kp)
                    walk(item, SCHEMAS.items(s), kp)
            elif kind == "set":
                for item in value:
                    out.add((*p, "v:" + json.dumps(item, sort_keys=True)))
            else:
                out.add(p)
        else:
            out.add(p)

    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and skip_status):
            continue
        if key == "metadata":
            meta = {
                k: v
                for k, v in value.items()
                if k in ("labels", "annotations", "finalizers", "ownerReferences")
            }
            if meta:
                walk(meta, SCHEMAS.prop(schema, "metadata"), ("f:metadata",))
            continue
        walk(value, SCHEMAS.prop(schema, key), (f"f:{key}",))
    return out


_MISSING = object()


def _step(node: Any, elem: str) -> Any:
    if elem.startswith("f:"):
        return node.get(elem[2:], _MISSING) if isinstance(node, dict) else _MISSING
    if elem.startswith("k:") and isinstance(node, list):
        want = json.loads(elem[2:])
        for item in node:
            if isinstance(item, dict) and all(
                item.get(k, KEY_DEFAULTS.get(k)) == v for k, v in want.items()
            ):
                return item
        return _MISSING
    if elem.startswith("v:") and isinstance(node, list):
        want = json.loads(elem[2:])
        return want if want in node else _MISSING
    return _MISSING


def get_path(obj: Any, path: FieldPath) -> Any:
    node = obj
    for elem in path:
        node = _step(node, elem)
        if node is _MISSING:
            return _MISSING
    return node


def remove_path(obj: JSON, path: FieldPath) -> None:
    """Remove one field (or list item); containers it leaves empty go too."""
    chain: list[tuple[Any, str, Any]] = []
    node: Any = obj
    for elem in path:
        child = _step(node, elem)
        if child is _MISSING:
            return
        chain.append((node, elem, child))
        node = child
    for parent, elem, child in reversed(chain):
        if elem.startswith("f:"):
            parent.pop(elem[2:], None)
        else:
            parent[:] = [
                i for i in parent if i is not child and (elem.startswith("k:") or i != child)
            ]
        if parent is obj or parent:
            break


def merge_applied(live: Any, applied: Any, schema: JSON | None) -> Any:
    """Server-side apply's merge: maps key by key, list-maps item by key, sets as unions."""
    if isinstance(applied, dict) and isinstance(live, dict) and not SCHEMAS.atomic_map(schema):
        out = dict(live)
        for k, v in applied.items():
            out[k] = (
                merge_applied(live[k], v, SCHEMAS.prop(schema, k))
                if k in live
                else copy.deepcopy(v)
            )
        return out
    if isinstance(applied, list) and isinstance(live, list):
        kind, keys = Schemas.list_type(schema)
        if kind == "map" and keys and all(isinstance(i, dict) for i in applied + live):
            by_key = {_key_elem(i, keys): i for i in live}
            seen = set()
            merged = []
            for item in applied:
                k = _key_elem(item, keys)
                seen.add(k)
                merged.append(
                    merge_applied(by_key[k], item, SCHEMAS.items(schema))
                    if k in by_key
                    else copy.deepcopy(item)
                )
            merged += [copy.deepcopy(i) for i in live if _key_elem(i, keys) not in seen]
            return merged
        if kind == "set":
            return copy.deepcopy(applied) + [i for i in live if i not in applied]
    return copy.deepcopy(applied)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge(target: Any, patch: Any, schema: JSON | None) -> Any:
    """Strategic merge patch: like a merge patch, but lists with a patch merge key are
    merged item by item (``$patch: delete`` removes an item)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        s = SCHEMAS.prop(schema, k)
        if v is None:
            out.pop(k, None)
        elif (
            isinstance(v, list)
            and isinstance(out.get(k), list)
            and s is not None
            and s.get("x-kubernetes-patch-strategy", "").startswith("merge")
        ):
            key = s.get("x-kubernetes-patch-merge-key")
            current = list(out[k])
            for item in v:
                if key and isinstance(item, dict):
                    idx = next(
                        (
                            i
                            for i, c in enumerate(current)
                            if isinstance(c, dict) and c.get(key) == item.get(key)
                        ),
                        None,
                    )
                    if item.get("$patch") == "delete":
                        if idx is not None:
                            current.pop(idx)
                    elif idx is None:
                        current.append({a: b for a, b in item.items() if a != "$patch"})
                    else:
                        current[idx] = strategic_merge(current[idx], item, SCHEMAS.items(s))
                elif item not in current:
                    current.append(item)
            out[k] = current
        else:
            out[k] = strategic_merge(out.get(k), v, s)
    return out


def json_patch(target: JSON, ops: list[JSON]) -> JSON:
    """RFC 6902 JSON patch: add, remove, replace, test."""
    doc = copy.deepcopy(target)

    def locate(pointer: str) -> tuple[Any, str]:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
        node: Any = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node, parts[-1]

    for op in ops:
        try:
            parent, last = locate(op["path"])
            name = op["op"]
            if name == "test":
                current = parent[int(last)] if isinstance(parent, list) else parent[last]
                if current != op["value"]:
                    raise ApiError(422, "Invalid", f"the test operation on {op['path']} failed")
            elif name == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif name in ("add", "replace"):
                if isinstance(parent, list):
                    idx = len(parent) if last == "-" else int(last)
                    if name == "add":
                        parent.insert(idx, op["value"])
                    else:
                        parent[idx] = op["value"]
                else:
                    if name == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
            else:
                raise ApiError(400, "BadRequest", f"unsupported JSON patch operation {name!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422, "Invalid", f"the JSON patch operation {op!r} cannot apply: {exc}"
            ) from exc
    return doc


# --- label selectors -------------------------------------------------------------------

_SELECTOR_TERM = re.compile(
    r"^\s*(?:(?P<notexists>!)\s*(?P<nkey>[\w./-]+)"
    r"|(?P<skey>[\w./-]+)\s+(?P<setop>in|notin)\s+\((?P<values>[^)]*)\)"
    r"|(?P<key>[\w./-]+)\s*(?P<op>==|!=|=)\s*(?P<value>[\w.-]*)"
    r"|(?P<ekey>[\w./-]+))\s*$"
)


def parse_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """A label selector (``a=b,c!=d,e in (f,g),!h,i``) as a predicate on labels."""
    terms: list[Callable[[Mapping[str, str]], bool]] = []
    for raw in re.split(r",(?![^()]*\))", text):
        if not raw.strip():
            continue
        m = _SELECTOR_TERM.match(raw)
        if m is None:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {raw!r}")
        if m["nkey"]:
            k = m["nkey"]
            terms.append(lambda labels, k=k: k not in labels)
        elif m["skey"]:
            k, values = m["skey"], {v.strip() for v in m["values"].split(",") if v.strip()}
            if m["setop"] == "in":
                terms.append(lambda labels, k=k, vs=values: labels.get(k) in vs)
            else:
                terms.append(lambda labels, k=k, vs=values: labels.get(k) not in vs)
        elif m["key"]:
            k, v = m["key"], m["value"]
            if m["op"] == "!=":
                terms.append(lambda labels, k=k, v=v: labels.get(k) != v)
            else:
                terms.append(lambda labels, k=k, v=v: labels.get(k) == v)
        else:
            k = m["ekey"]
            terms.append(lambda labels, k=k: k in labels)
    return lambda labels: all(t(labels) for t in terms)


# --- validation ------------------------------------------------------------------------

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _name_problems(res: ResourceType, name: str) -> list[tuple[str, str]]:
    if res.kind == "Service":
        ok, limit, what = _DNS1035_LABEL.match(name), 63, "a DNS-1035 label"
    elif res.kind == "Namespace":
        ok, limit, what = _DNS1123_LABEL.match(name), 63, "a lowercase RFC 1123 label"
    else:
        ok, limit, what = _DNS1123_SUBDOMAIN.match(name), 253, "a lowercase RFC 1123 subdomain"
    problems = []
    if not ok:
        problems.append(("metadata.name", f'Invalid value: "{name}": a name must be {what}'))
    if len(name) > limit:
        problems.append(
            ("metadata.name", f'Invalid value: "{name}": must be no more than {limit} characters')
        )
    return problems


def _key_problems(where: str, key: str) -> list[tuple[str, str]]:
    prefix, _, name = key.rpartition("/")
    problems = []
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        problems.append(
            (where, f'Invalid value: "{key}": prefix part must be a lowercase RFC 1123 subdomain')
        )
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        problems.append(
            (
                where,
                f'Invalid value: "{key}": name part must consist of alphanumeric '
                "characters, '-', '_' or '.', at most 63, and start and end with an alphanumeric",
            )
        )
    return problems


def _metadata_problems(meta: JSON) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for key, value in (meta.get("labels") or {}).items():
        problems += _key_problems("metadata.labels", key)
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(
                (
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be an empty '
                    "string or consist of alphanumeric characters, '-', '_' or '.', at most 63",
                )
            )
    annotations = meta.get("annotations") or {}
    for key in annotations:
        problems += _key_problems("metadata.annotations", key)
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > 256 * 1024:
        problems.append(("metadata.annotations", "Too long: must have at most 262144 bytes"))
    return problems


def _semantic_problems(res: ResourceType, obj: JSON, old: JSON | None) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    spec = obj.get("spec") or {}
    if res.kind == "Deployment":
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            problems.append(("spec.selector", "Required value"))
        else:
            match = parse_selector(
                ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
            )
            if not match(labels):
                problems.append(
                    (
                        "spec.template.metadata.labels",
                        f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
                    )
                )
            if old is not None and old.get("spec", {}).get("selector") != selector:
                problems.append(
                    ("spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable")
                )
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers:
            problems.append(("spec.template.spec.containers", "Required value"))
        for i, c in enumerate(containers):
            if not c.get("image"):
                problems.append((f"spec.template.spec.containers[{i}].image", "Required value"))
    elif res.kind == "Service":
        if spec.get("type", "ClusterIP") in (
            "ClusterIP",
            "NodePort",
            "LoadBalancer",
        ) and not spec.get("ports"):
            problems.append(("spec.ports", "Required value"))
        if old is not None and spec.get("clusterIP") not in (None, old["spec"].get("clusterIP")):
            problems.append(("spec.clusterIP", "Invalid value: field is immutable"))
    elif res.kind in ("ConfigMap", "Secret"):
        for section in ("data", "binaryData", "stringData"):
            for key in obj.get(section) or {}:
                if not _DATA_KEY.match(key):
                    problems.append(
                        (
                            f"{section}[{key}]",
                            "Invalid value: a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                        )
                    )
    elif res.kind == "HorizontalPodAutoscaler":
        lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas", 0)
        if hi < lo:
            problems.append(
                (
                    "spec.maxReplicas",
                    f"Invalid value: {hi}: must be greater than or equal to `minReplicas`",
                )
            )
    return problems


@functools.lru_cache(maxsize=64)
def _validator(kind: str, api_version: str, strict: bool) -> Any:
    """A cached JSON-schema validator of one kind (kubernetes-validate's schemas; its own
    ``validate()`` re-reads the multi-megabyte definitions file on every call)."""
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = base / (f"v{K8S_VERSION}-local" + ("-strict" if strict else ""))
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = folder / f"{kind.lower()}-{short}.json"
    if not path.exists():
        return None
    schema = json.loads(path.read_text())
    definitions = json.loads((folder / "_definitions.json").read_text())
    registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _schema_problems(obj: JSON, strict: bool, partial: bool = False) -> list[tuple[str, str]]:
    """Schema problems of ``obj``; ``partial``: an apply configuration, which may leave
    out required fields (they are checked on the merged object)."""
    validator = _validator(str(obj.get("kind")), str(obj.get("apiVersion")), strict)
    if validator is None:
        return []
    errors = validator.iter_errors(obj)
    if partial:
        errors = (e for e in errors if e.validator != "required")
    error = jsonschema.exceptions.best_match(errors)
    if error is None:
        return []
    return [(".".join(str(p) for p in error.absolute_path), error.message)]


# --- defaults --------------------------------------------------------------------------


_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([numkMGTPE]|[KMGTPE]i|[eE][+-]?[0-9]+)?$"
)
_DECIMAL_EXP = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_EXP = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}


def canonical_quantity(text: object) -> object:
    """A resource quantity as the API server stores it: ``0.5`` → ``500m``, ``1000m`` → ``1``,
    ``1024Mi`` → ``1Gi``, ``1.5Gi`` → ``1536Mi`` (values below 1n round up to 1n)."""
    if not isinstance(text, str):
        return text
    match = _QUANTITY.match(text.strip())
    if match is None:
        return text
    number, suffix = Decimal(match[1]), match[2] or ""
    if suffix in _BINARY_EXP:
        value = number * 2 ** _BINARY_EXP[suffix]
        if value == value.to_integral_value():
            for name, exp in sorted(_BINARY_EXP.items(), key=lambda item: -item[1]):
                if value % 2**exp == 0:
                    return f"{int(value // 2**exp)}{name}"
            return str(int(value))
    elif suffix[:1] in ("e", "E"):
        value = number * Decimal(10) ** int(suffix[1:])
    else:
        value = number * Decimal(10) ** _DECIMAL_EXP[suffix]
    nanos = (value * Decimal(10) ** 9).to_integral_value(rounding="ROUND_CEILING")
    if nanos == 0:
        return "0"
    for name, exp in sorted(_DECIMAL_EXP.items(), key=lambda item: -item[1]):
        if nanos % Decimal(10) ** (exp + 9) == 0:
            return f"{int(nanos // Decimal(10) ** (exp + 9))}{name}"
    return text


def _default_container(c: JSON) -> None:
    image = str(c.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    resources = c.setdefault("resources", {})
    for section in ("requests", "limits"):
        if isinstance(resources.get(section), dict):
            resources[section] = {k: canonical_quantity(v) for k, v in resources[section].items()}
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_name)
        if isinstance(probe, dict):
            for k, v in (
                ("timeoutSeconds", 1),
                ("periodSeconds", 10),
                ("successThreshold", 1),
                ("failureThreshold", 3),
            ):
                probe.setdefault(k, v)
            if isinstance(probe.get("httpGet"), dict):
                probe["httpGet"].setdefault("scheme", "HTTP")


def apply_defaults(res: ResourceType, obj: JSON, allocate_ip: Callable[[], str]) -> None:
    spec = (
        obj.setdefault("spec", {})
        if res.kind in ("Deployment", "Service", "Namespace")
        else obj.get("spec")
    )
    if res.kind == "Deployment":
        assert spec is not None
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
        pod = spec.setdefault("template", {}).setdefault("spec", {})
        pod.setdefault("restartPolicy", "Always")
        pod.setdefault("terminationGracePeriodSeconds", 30)
        pod.setdefault("dnsPolicy", "ClusterFirst")
        pod.setdefault("securityContext", {})
        pod.setdefault("schedulerName", "default-scheduler")
        for c in pod.get("containers") or []:
            _default_container(c)
        for c in pod.get("initContainers") or []:
            _default_container(c)
    elif res.kind == "Service":
        assert spec is not None
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            if "clusterIP" not in spec:
                spec["clusterIP"] = allocate_ip()
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})
    elif res.kind == "Namespace":
        assert spec is not None
        spec.setdefault("finalizers", ["kubernetes"])
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = (
            obj["metadata"]["name"]
        )
        obj.setdefault("status", {"phase": "Active"})
    elif res.kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
    elif res.kind == "HorizontalPodAutoscaler" and spec is not None:
        spec.setdefault("minReplicas", 1)
        obj.setdefault("status", {"currentReplicas": 0, "desiredReplicas": 0})
    elif res.kind == "PodDisruptionBudget":
        obj.setdefault(
            "status",
            {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0},
        )


# --- the store -------------------------------------------------------------------------


@dataclass(slots=True)
class Managed:
    manager: str
    operation: str  # "Apply" | "Update"
    api_version: str
    time: str
    fields: set[FieldPath]
    subresource: str = ""


@dataclass(slots=True)
class Entry:
    res: ResourceType
    obj: JSON
    managers: dict[tuple[str, str, str], Managed] = field(default_factory=dict)
    #: Deployments: when the simulated rollout of the current generation is done
    ready_at: float | None = None
    deadline_exceeded: bool = False


@dataclass(slots=True)
class Fault:
    status: int
    remaining: int
    methods: frozenset[str] | None = None
    path_contains: str | None = None
    #: True: the write happens, then the fault is answered (the response is "lost")
    after_write: bool = False
    message: str = ""
    retry_after: float | None = None
    path_endswith: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: Mapping[str, str]
    verb: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str
    content_type: str
    status: int
    field_manager: str | None


@dataclass(slots=True)
class Parsed:
    """What an API request names."""

    res: ResourceType | None
    namespace: str | None
    name: str | None
    subresource: str
    verb: str


@dataclass(slots=True)
class Reply:
    status: int
    body: JSON | None = None
    stream: Iterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_fieldsv1(paths: set[FieldPath]) -> JSON:
    tree: JSON = {}
    for path in sorted(paths):
        node = tree
        for elem in path:
            node = node.setdefault(elem, {})
            if elem.startswith("k:"):
                node.setdefault(".", {})
    return tree


def _field_text(path: FieldPath) -> str:
    out = ""
    for elem in path:
        out += "." + elem[2:] if elem.startswith("f:") else f"[{elem[2:]}]"
    return out


class KubeApiServer:
    """The server state plus its HTTP front; ``start()`` serves from a background thread."""

    def __init__(
        self,
        *,
        token: str | None = "llmops-test-token",
        user: str = "system:serviceaccount:llmops:llmops",
        namespaces: tuple[str, ...] = ("default",),
    ) -> None:
        self.token = token
        self.user = user
        #: the kubeconfig the fixture wrote for this server (None until written)
        self.kubeconfig: Path | None = None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._store: dict[tuple[str, str, str], Entry] = {}
        self._rv = itertools.count(1000)
        self._last_rv = 1000
        self._ips = ipaddress.ip_network("10.96.0.0/16").hosts()
        next(self._ips)
        #: (resourceVersion, type, resource plural, object) for watches
        self._events: list[tuple[int, str, str, JSON]] = []
        self._faults: list[Fault] = []
        self._denied: set[tuple[str, str, str | None]] = set()
        self.latency = 0.0
        self.requests: list[RequestRecord] = []
        #: seconds from a Deployment's new generation until it is ready; None: never
        self.ready_after: float | None = 0.0
        self._ready_overrides: dict[str, float | None] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        for ns in namespaces:
            self.create_namespace(ns)

    # -- lifecycle ------------------------------------------------------------------

    def start(self, port: int = 0) -> KubeApiServer:
        server = self

        class Handler(_Handler):
            api = server

        httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="kube-api-server",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._changed.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for conn in list(self._connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> KubeApiServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the server first"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(
        self,
        path: Path,
        *,
        namespace: str = "default",
        context: str = "llmops-test",
        token: str | None = None,
    ) -> Path:
        """A kubeconfig naming this server (plain HTTP, a bearer token)."""
        user: JSON = (
            {"token": token if token is not None else self.token} if (token or self.token) else {}
        )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test-cluster", "cluster": {"server": self.url}}],
            "users": [{"name": "test-user", "user": user}],
            "contexts": [
                {
                    "name": context,
                    "context": {
                        "cluster": "test-cluster",
                        "user": "test-user",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        if self.kubeconfig is None:
            self.kubeconfig = path
        return path

    # -- knobs ----------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        methods: tuple[str, ...] | None = None,
        path_contains: str | None = None,
        after_write: bool = False,
        message: str = "",
        retry_after: float | None = None,
        path_endswith: str | None = None,
    ) -> None:
        """The next ``n`` matching requests answer ``status`` (0: drop the connection).

        Matching: ``methods``, ``path_contains`` / ``path_endswith`` (the URL path, no query).
        ``after_write``: the request is carried out, then the fault is answered instead.
        """
        with self._lock:
            self._faults.append(
                Fault(
                    status,
                    n,
                    frozenset(m.upper() for m in methods) if methods else None,
                    path_contains,
                    after_write,
                    message,
                    retry_after,
                    path_endswith,
                )
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def deny(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """RBAC: ``verb`` on ``resource`` (plural, e.g. ``deployments``) answers 403."""
        with self._lock:
            self._denied.add((verb, resource_for(resource).plural, namespace))

    def allow_all(self) -> None:
        with self._lock:
            self._denied.clear()

    def rollout(self, after: float | None, name: str | None = None) -> None:
        """Deployments (or the one named) become ready ``after`` seconds past each new
        generation; ``None``: never (pods stay unready)."""
        with self._lock:
            if name is None:
                self.ready_after = after
            else:
                self._ready_overrides[name] = after

    def fail_progress(self, name: str, namespace: str) -> None:
        """The Deployment's rollout reports ProgressDeadlineExceeded (and never gets ready)."""
        with self._lock:
            entry = self._entry(resource_for("Deployment"), namespace, name)
            entry.deadline_exceeded = True
            entry.ready_at = None
            self._refresh(entry, force=True)

    def mark_ready(self, name: str, namespace: str) -> None:
        with self._lock:
            entry = self._entry(resource_for("Deployment"), namespace, name)
            entry.ready_at = time.monotonic()
            entry.deadline_exceeded = False
            self._refresh(entry, force=True)

    def set_deployment_status(self, name: str, namespace: str, **status: Any) -> None:
        """Set status fields by hand (``readyReplicas=1``, ``observedGeneration=2`` …)."""
        with self._lock:
            entry = self._entry(resource_for("Deployment"), namespace, name)
            entry.ready_at = None
            entry.obj.setdefault("status", {}).update(status)
            self._bump(entry, "MODIFIED")

    # -- direct access for assertions -----------------------------------------------

    def objects(self, kind: str, namespace: str | None = None) -> list[JSON]:
        """Stored objects of one kind (deep copies, with kind and apiVersion)."""
        res = resource_for(kind)
        with self._lock:
            out = []
            for (plural, ns, _), entry in sorted(self._store.items()):
                if plural == res.plural and (namespace is None or ns == namespace):
                    self._refresh(entry)
                    out.append(self._render(entry))
            return out

    def get(self, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        res = resource_for(kind)
        with self._lock:
            entry = self._store.get((res.plural, (namespace or "") if res.namespaced else "", name))
            if entry is None:
                return None
            self._refresh(entry)
            return self._render(entry)

    def create_namespace(self, name: str) -> None:
        with self._lock:
            res = resource_for("Namespace")
            if (res.plural, "", name) not in self._store:
                self._write(
                    res,
                    None,
                    name,
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                    mode="create",
                    manager="test-setup",
                )

    def edit(
        self, kind: str, name: str, namespace: str, patch: JSON, manager: str = "kubectl-edit"
    ) -> JSON:
        """A merge patch by another field manager: what ``kubectl edit`` does by hand."""
        res = resource_for(kind)
        with self._lock:
            entry = self._entry(res, namespace, name)
            new = merge_patch(self._render(entry, managed=False), patch)
            return self._write(res, namespace, name, new, mode="update", manager=manager)

    @property
    def resource_version(self) -> int:
        return self._last_rv

    def count(
        self, method: str | None = None, resource: str | None = None, verb: str | None = None
    ) -> int:
        """How many requests matched (method, resource plural, verb)."""
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method)
            and (resource is None or r.resource == resource)
            and (verb is None or r.verb == verb)
        )

    # -- request handling -----------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if self.latency:
            time.sleep(self.latency)
        split = urlsplit(raw_path)
        path = split.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        content_type = headers.get("content-type", "").split(";")[0].strip()
        parsed = self._parse(method, path, query)
        fault = self._take_fault(method, path)
        reply: Reply
        if fault is not None and not fault.after_write:
            reply = self._fault_reply(fault, parsed)
        else:
            try:
                reply = self._dispatch(method, path, query, headers, content_type, body, parsed)
            except ApiError as exc:
                reply = Reply(exc.code, exc.status())
            except Exception as exc:  # a bug in the test server: answer like the real one would
                reply = Reply(
                    500,
                    ApiError(500, "InternalError", f"Internal error occurred: {exc!r}").status(),
                )
            if fault is not None:
                reply = self._fault_reply(fault, parsed)
        with self._lock:
            self.requests.append(
                RequestRecord(
                    method,
                    path,
                    query,
                    parsed.verb,
                    parsed.res.plural if parsed.res else "",
                    parsed.namespace,
                    parsed.name,
                    parsed.subresource,
                    content_type,
                    reply.status,
                    query.get("fieldManager"),
                )
            )
        return reply

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining <= 0:
                    continue
                if fault.methods is not None and method not in fault.methods:
                    continue
                if fault.path_contains is not None and fault.path_contains not in path:
                    continue
                if fault.path_endswith is not None and not path.endswith(fault.path_endswith):
                    continue
                fault.remaining -= 1
                return fault
        return None

    def _fault_reply(self, fault: Fault, parsed: Parsed) -> Reply:
        if fault.status == 0:
            return Reply(0, drop=True)
        res = parsed.res
        name = parsed.name or ""
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if fault.status == 409 and res is not None:
            err = conflict(res, name)
        elif fault.status == 403 and res is not None:
            err = self._forbidden(parsed)
        else:
            reasons = {
                401: "Unauthorized",
                404: "NotFound",
                409: "Conflict",
                422: "Invalid",
                429: "TooManyRequests",
                500: "InternalError",
                503: "ServiceUnavailable",
                504: "Timeout",
            }
            err = ApiError(
                fault.status,
                reasons.get(fault.status, "InternalError"),
                fault.message or f"injected fault: {fault.status}",
            )
        if fault.message:
            err.message = fault.message
        return Reply(fault.status, err.status(), headers=headers)

    def _forbidden(self, p: Parsed) -> ApiError:
        assert p.res is not None
        what = f'{p.res.qualified} "{p.name}"' if p.name else p.res.qualified
        group = f'in API group "{p.res.group}"'
        where = f' in the namespace "{p.namespace}"' if p.namespace else " at the cluster scope"
        resource = f"{p.res.plural}/{p.subresource}" if p.subresource else p.res.plural
        return ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{self.user}" cannot {p.verb} resource "{resource}" {group}{where}',
            {"name": p.name or "", "group": p.res.group, "kind": p.res.plural},
        )

    def _parse(self, method: str, path: str, query: Mapping[str, str]) -> Parsed:
        parts = path.strip("/").split("/")
        res: ResourceType | None = None
        namespace = name = None
        sub = ""
        rest: list[str] = []
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return Parsed(None, None, None, "", "get")
        if rest[:1] == ["namespaces"] and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        if rest:
            res = BY_PATH.get((group, version, rest[0]))
            name = rest[1] if len(rest) > 1 else None
            sub = rest[2] if len(rest) > 2 else ""
        watch = query.get("watch") in ("true", "1")
        verb = {
            "GET": "watch" if watch else ("get" if name else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(method, method.lower())
        return Parsed(res, namespace, name, sub, verb)

    def _dispatch(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        content_type: str,
        body: bytes,
        p: Parsed,
    ) -> Reply:
        public = path in ("/version", "/healthz", "/readyz", "/livez")
        if (
            not public
            and self.token is not None
            and headers.get("authorization") != f"Bearer {self.token}"
        ):
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if public or path in ("/api", "/apis", "/") or p.res is None:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")
            return Reply(200, self._discovery(path))
        res = p.res
        with self._lock:
            denied = {(p.verb, res.plural, None), (p.verb, res.plural, p.namespace)} & self._denied
        if denied:
            raise self._forbidden(p)
        if res.namespaced and p.namespace is None and method != "GET":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if p.subresource not in ("", "status"):
            raise ApiError(
                404,
                "NotFound",
                f"the server could not find the requested resource ({p.subresource})",
            )
        ns = p.namespace if res.namespaced else None
        dry_run = query.get("dryRun") == "All"
        manager = query.get("fieldManager") or headers.get("user-agent", "unknown").split("/")[0]
        if method == "GET" and p.name is None:
            if p.verb == "watch":
                return self._watch(res, ns, query)
            return Reply(200, self._list(res, ns, query))
        if method == "GET":
            with self._lock:
                entry = self._entry(res, ns, p.name)  # type: ignore[arg-type]
                self._refresh(entry)
                return Reply(200, self._render(entry))
        if method == "DELETE":
            return self._delete(res, ns, p.name, body)
        data = self._decode(body, content_type, method)
        with self._lock:
            if method == "POST":
                if p.name is not None:
                    raise ApiError(405, "MethodNotAllowed", "POST on a named object is not allowed")
                name = self._name_from_body(res, ns, data)
                out = self._write(
                    res,
                    ns,
                    name,
                    data,
                    mode="create",
                    manager=manager,
                    dry_run=dry_run,
                    validation=query.get("fieldValidation", "Warn"),
                )
                return Reply(201, out)
            assert p.name is not None
            if method == "PUT":
                body_meta = data.get("metadata") or {}
                if body_meta.get("name") not in (None, p.name):
                    raise ApiError(
                        400,
                        "BadRequest",
                        "the name of the object does not match the name on the URL",
                    )
                self._check_namespace(res, ns, data)
                if p.subresource == "status":
                    entry = self._entry(res, ns, p.name)
                    new = self._render(entry, managed=False)
                    new["status"] = data.get("status")
                    return Reply(
                        200,
                        self._write(
                            res,
                            ns,
                            p.name,
                            new,
                            mode="status",
                            manager=manager,
                            dry_run=dry_run,
                            expect_rv=body_meta.get("resourceVersion"),
                        ),
                    )
                return Reply(
                    200,
                    self._write(
                        res,
                        ns,
                        p.name,
                        data,
                        mode="update",
                        manager=manager,
                        dry_run=dry_run,
                        expect_rv=body_meta.get("resourceVersion"),
                        validation=query.get("fieldValidation", "Warn"),
                    ),
                )
            if method == "PATCH":
                return self._patch(res, ns, p, data, content_type, query, manager, dry_run)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    def _decode(self, body: bytes, content_type: str, method: str) -> Any:
        if not body:
            raise ApiError(400, "BadRequest", "the request body is empty")
        try:
            if content_type == "application/apply-patch+yaml" and body.lstrip()[:1] not in (
                b"{",
                b"[",
            ):
                data = yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            else:
                data = json.loads(body)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, "BadRequest", f"the request body cannot be decoded: {exc}") from exc
        if content_type == "application/json-patch+json":
            if not isinstance(data, list):
                raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
        elif not isinstance(data, dict):
            raise ApiError(400, "BadRequest", "the request body must be an object")
        return data

    def _name_from_body(self, res: ResourceType, ns: str | None, data: JSON) -> str:
        meta = data.setdefault("metadata", {})
        self._check_namespace(res, ns, data)
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        if not name:
            raise invalid(
                res, "", [("metadata.name", "Required value: name or generateName is required")]
            )
        return str(name)

    def _check_namespace(self, res: ResourceType, ns: str | None, data: JSON) -> None:
        body_ns = (data.get("metadata") or {}).get("namespace")
        if res.namespaced and body_ns not in (None, "", ns):
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )

    def _patch(
        self,
        res: ResourceType,
        ns: str | None,
        p: Parsed,
        data: Any,
        content_type: str,
        query: Mapping[str, str],
        manager: str,
        dry_run: bool,
    ) -> Reply:
        assert p.name is not None
        if content_type == "application/apply-patch+yaml":
            if not query.get("fieldManager"):
                raise ApiError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                )
            meta = data.get("metadata") or {}
            if meta.get("name") not in (None, p.name):
                raise ApiError(
                    400, "BadRequest", "the name of the object does not match the name on the URL"
                )
            self._check_namespace(res, ns, data)
            if data.get("apiVersion") != res.api_version or data.get("kind") != res.kind:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"apply needs apiVersion {res.api_version} and kind {res.kind} in the body",
                )
            existed = (res.plural, ns or "", p.name) in self._store
            out = self._apply(
                res, ns, p.name, data, manager, force=query.get("force") == "true", dry_run=dry_run
            )
            return Reply(200 if existed else 201, out)
        entry = self._entry(res, ns, p.name)
        current = self._render(entry, managed=False)
        if content_type == "application/merge-patch+json":
            new = merge_patch(current, data)
        elif content_type == "application/strategic-merge-patch+json":
            new = strategic_merge(current, data, SCHEMAS.root(res.kind, res.api_version))
        elif content_type == "application/json-patch+json":
            new = json_patch(current, data)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {content_type}",
            )
        expect = (
            (data.get("metadata") or {}).get("resourceVersion") if isinstance(data, dict) else None
        )
        mode = "status" if p.subresource == "status" else "update"
        if mode == "status":
            status = new.get("status")
            new = self._render(entry, managed=False)
            new["status"] = status
        return Reply(
            200,
            self._write(
                res, ns, p.name, new, mode=mode, manager=manager, dry_run=dry_run, expect_rv=expect
            ),
        )

    # -- the write path ---------------------------------------------------------------

    def _entry(self, res: ResourceType, ns: str | None, name: str) -> Entry:
        entry = self._store.get((res.plural, ns or "", name))
        if entry is None:
            raise not_found(res, name)
        return entry

    def _validate(
        self, res: ResourceType, name: str, obj: JSON, old: JSON | None, validation: str
    ) -> None:
        problems = _name_problems(res, name) if old is None else []
        problems += _metadata_problems(obj.get("metadata") or {})
        if validation != "Applied":  # an apply's body was checked strictly already
            problems += _schema_problems(obj, strict=validation == "Strict")
        if not problems:
            problems += _semantic_problems(res, obj, old)
        if problems:
            raise invalid(res, name, problems)

    def _apply(
        self,
        res: ResourceType,
        ns: str | None,
        name: str,
        applied: JSON,
        manager: str,
        *,
        force: bool,
        dry_run: bool,
    ) -> JSON:
        problems = _schema_problems(applied, strict=True, partial=True)
        if problems:
            where, message = problems[0]
            if "Additional properties" in message:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"failed to create typed patch object ({ns}/{name}; {res.api_version}, Kind={res.kind}): "
                    f".{where}: field not declared in schema ({message})",
                )
            raise invalid(res, name, problems)
        schema = SCHEMAS.root(res.kind, res.api_version)
        applied_fields = fieldset(applied, schema, skip_status=res.status_subresource)
        entry = self._store.get((res.plural, ns or "", name))
        me = (manager, "Apply", "")
        if entry is None:
            live: JSON = {}
            managers: dict[tuple[str, str, str], Managed] = {}
        else:
            live = self._render(entry, managed=False)
            managers = {
                k: Managed(
                    m.manager, m.operation, m.api_version, m.time, set(m.fields), m.subresource
                )
                for k, m in entry.managers.items()
            }
        conflicts: list[tuple[Managed, FieldPath]] = []
        for key, other in managers.items():
            if key == me:
                continue
            for path in other.fields & applied_fields:
                if path[-1][:2] in ("k:", "v:"):  # an item's existence is not a value
                    continue
                if get_path(live, path) != get_path(applied, path):
                    conflicts.append((other, path))
        if conflicts and not force:
            lines = [
                f'conflict with "{m.manager}"'
                + (f" using {m.api_version}" if m.operation == "Update" else "")
                + f": {_field_text(path)}"
                for m, path in sorted(conflicts, key=lambda c: (c[0].manager, c[1]))
            ]
            raise ApiError(
                409,
                "Conflict",
                f"Apply failed with {len(lines)} conflict{'s' if len(lines) > 1 else ''}: "
                + "; ".join(lines),
                {
                    "name": name,
                    "group": res.group,
                    "kind": res.plural,
                    "causes": [
                        {
                            "reason": "FieldManagerConflict",
                            "message": line,
                            "field": _field_text(path),
                        }
                        for line, (_, path) in zip(lines, conflicts, strict=True)
                    ],
                },
            )
        for other, path in conflicts:
            other.fields.discard(path)
        previous = managers[me].fields if me in managers else set()
        merged = merge_applied(
            live,
            {k: v for k, v in applied.items() if not (k == "status" and res.status_subresource)},
            schema,
        )
        merged.setdefault("metadata", {})
        for k in ("name", "namespace"):
            merged["metadata"].pop(k, None)
        owned_by_others = set().union(*(m.fields for k, m in managers.items() if k != me))
        removals = {
            path
            for path in previous - applied_fields
            if not any(o[: len(path)] == path or path[: len(o)] == o for o in owned_by_others)
        }
        for path in sorted(removals, key=len):  # an item's marker first: its fields go with it
            if not any(path[:i] in removals for i in range(1, len(path))):
                remove_path(merged, path)
        managers[me] = Managed(manager, "Apply", res.api_version, _now(), applied_fields)
        return self._write(
            res,
            ns,
            name,
            merged,
            mode="apply" if entry else "create",
            manager=manager,
            dry_run=dry_run,
            managers=managers,
            # the body was checked strictly; a new object's required fields are checked here
            validation="Applied" if entry is not None else "Warn",
        )

    def _write(
        self,
        res: ResourceType,
        ns: str | None,
        name: str,
        data: JSON,
        *,
        mode: str,
        manager: str,
        dry_run: bool = False,
        expect_rv: str | None = None,
        managers: dict[tuple[str, str, str], Managed] | None = None,
        validation: str = "Warn",
    ) -> JSON:
        """Store ``data`` as the object (mode: create, update, apply, status) and return it."""
        key = (res.plural, ns or "", name)
        entry = self._store.get(key)
        if mode == "create" and entry is not None:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{res.qualified} "{name}" already exists',
                {"name": name, "group": res.group, "kind": res.plural},
            )
        if mode != "create" and mode != "apply" and entry is None:
            raise not_found(res, name)
        if res.namespaced and ns is not None and ("namespaces", "", ns) not in self._store:
            raise ApiError(
                404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"}
            )
        old = self._render(entry, managed=False) if entry is not None else None
        if expect_rv and old is not None and old["metadata"].get("resourceVersion") != expect_rv:
            raise conflict(res, name)
        new = copy.deepcopy(data)
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        meta = new.setdefault("metadata", {})
        meta["name"] = name
        if res.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        for k in (
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "managedFields",
            "deletionTimestamp",
            "selfLink",
        ):
            meta.pop(k, None)
        if old is not None:
            for k in ("uid", "creationTimestamp", "generation"):
                if k in old["metadata"]:
                    meta[k] = old["metadata"][k]
            if res.status_subresource and mode != "status":
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            elif mode == "status":
                new = {**old, "status": new.get("status")}
                meta = new["metadata"]
        elif res.status_subresource:
            new.pop("status", None)
        apply_defaults(res, new, self._allocate_ip)
        if (
            old is not None
            and res.kind == "Service"
            and "clusterIP" not in (data.get("spec") or {})
        ):
            new["spec"]["clusterIP"] = old["spec"].get("clusterIP")
            new["spec"]["clusterIPs"] = old["spec"].get("clusterIPs")
        if mode != "status":
            self._validate(
                res,
                name,
                {k: v for k, v in new.items() if k != "status"}
                | (
                    {
                        "metadata": {
                            k: v
                            for k, v in meta.items()
                            if k
                            not in ("resourceVersion", "uid", "creationTimestamp", "generation")
                        }
                    }
                ),
                old,
                validation,
            )
        schema = SCHEMAS.root(res.kind, res.api_version)
        if managers is None:
            managers = {
                k: Managed(
                    m.manager, m.operation, m.api_version, m.time, set(m.fields), m.subresource
                )
                for k, m in (entry.managers.items() if entry else ())
            }
            old_fields = fieldset(old, schema, False) if old else set()
            new_fields = fieldset(new, schema, False)
            changed = {
                p for p in new_fields if p not in old_fields or get_path(old, p) != get_path(new, p)
            }
            if mode != "status":
                changed = (
                    {p for p in changed if p[:1] != ("f:status",)}
                    if res.status_subresource
                    else changed
                )
            else:
                changed = {p for p in changed if p[:1] == ("f:status",)}
            sub = "status" if mode == "status" else ""
            me = (manager, "Update", sub)
            for k, m in managers.items():
                if k != me:
                    m.fields -= changed
            if changed:
                if me in managers:
                    managers[me].fields |= changed
                    managers[me].time = _now()
                else:
                    managers[me] = Managed(manager, "Update", res.api_version, _now(), changed, sub)
        present = fieldset(new, schema, False)
        for m in managers.values():
            m.fields &= present
        managers = {k: m for k, m in managers.items() if m.fields}
        if old is not None:
            new_meta = new["metadata"]
            same = {k: v for k, v in new.items() if k != "metadata"} == {
                k: v for k, v in old.items() if k != "metadata"
            }
            same = same and {k: v for k, v in new_meta.items() if k != "resourceVersion"} == {
                k: v for k, v in old["metadata"].items() if k != "resourceVersion"
            }
            if same and {k: m.fields for k, m in managers.items()} == {
                k: m.fields for k, m in entry.managers.items()
            }:  # type: ignore[union-attr]
                return self._render(entry)  # type: ignore[arg-type]
        if res.generation:
            spec_changed = old is None or {
                k: v for k, v in new.items() if k not in ("metadata", "status")
            } != {k: v for k, v in old.items() if k not in ("metadata", "status")}
            gen = int((old or {}).get("metadata", {}).get("generation", 0))
            new["metadata"]["generation"] = gen + 1 if spec_changed else max(gen, 1)
        if old is None:
            new["metadata"]["uid"] = str(uuid.uuid4())
            new["metadata"]["creationTimestamp"] = _now()
        if dry_run:
            scratch = Entry(res, new, managers)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"] if old else "0"
            return self._render(scratch)
        if entry is None:
            entry = Entry(res, new, managers)
            self._store[key] = entry
        else:
            entry.obj, entry.managers = new, managers
        if (
            res.kind == "Deployment"
            and mode != "status"
            and (old is None or new["metadata"]["generation"] != old["metadata"].get("generation"))
        ):
            self._start_rollout(entry, old)
        self._bump(entry, "ADDED" if old is None else "MODIFIED")
        return self._render(entry)

    def _allocate_ip(self) -> str:
        return str(next(self._ips))

    def _bump(self, entry: Entry, event: str) -> None:
        rv = next(self._rv)
        self._last_rv = rv
        entry.obj["metadata"]["resourceVersion"] = str(rv)
        self._events.append((rv, event, entry.res.plural, self._render(entry)))
        del self._events[:-2000]
        self._changed.notify_all()

    def _delete(self, res: ResourceType, ns: str | None, name: str | None, body: bytes) -> Reply:
        if name is None:
            raise ApiError(
                405, "MethodNotAllowed", "deletecollection is not supported by the test server"
            )
        options = json.loads(body) if body else {}
        with self._lock:
            entry = self._entry(res, ns, name)
            pre = options.get("preconditions") or {}
            meta = entry.obj["metadata"]
            if pre.get("resourceVersion") not in (None, meta["resourceVersion"]) or pre.get(
                "uid"
            ) not in (None, meta["uid"]):
                raise conflict(res, name)
            if options.get("dryRun") == ["All"]:
                return Reply(200, self._render(entry))
            self._remove(entry)
            if res.kind == "Namespace":
                for other in [e for (_, ens, _), e in self._store.items() if ens == name]:
                    self._remove(other)
            return Reply(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": res.group,
                        "kind": res.plural,
                        "uid": meta["uid"],
                    },
                },
            )

    def _remove(self, entry: Entry) -> None:
        meta = entry.obj["metadata"]
        del self._store[(entry.res.plural, meta.get("namespace") or "", meta["name"])]
        self._bump(entry, "DELETED")

    # -- reads ------------------------------------------------------------------------

    def _render(self, entry: Entry, managed: bool = True) -> JSON:
        obj = copy.deepcopy(entry.obj)
        if managed and entry.managers:
            obj["metadata"]["managedFields"] = [
                {
                    "manager": m.manager,
                    "operation": m.operation,
                    "apiVersion": m.api_version,
                    "time": m.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": _to_fieldsv1(m.fields),
                }
                | ({"subresource": m.subresource} if m.subresource else {})
                for m in entry.managers.values()
            ]
        return obj

    def _list(self, res: ResourceType, ns: str | None, query: Mapping[str, str]) -> JSON:
        match = parse_selector(query.get("labelSelector", ""))
        fields = self._field_filter(query.get("fieldSelector", ""))
        limit = int(query.get("limit") or 0)
        start = (
            base64.urlsafe_b64decode(query["continue"]).decode() if query.get("continue") else ""
        )
        with self._lock:
            items = []
            for (plural, ens, name), entry in sorted(self._store.items()):
                if (
                    plural != res.plural
                    or (ns is not None and ens != ns)
                    or f"{ens}/{name}" <= start
                ):
                    continue
                self._refresh(entry)
                if match(entry.obj["metadata"].get("labels") or {}) and fields(entry.obj):
                    items.append(entry)
            meta: JSON = {"resourceVersion": str(self._last_rv)}
            if limit and len(items) > limit:
                last = items[limit - 1].obj["metadata"]
                meta["continue"] = base64.urlsafe_b64encode(
                    f"{last.get('namespace') or ''}/{last['name']}".encode()
                ).decode()
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            rendered = []
            for entry in items:
                obj = self._render(entry)
                obj.pop("apiVersion", None)
                obj.pop("kind", None)
                rendered.append(obj)
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.api_version,
            "metadata": meta,
            "items": rendered,
        }

    @staticmethod
    def _field_filter(text: str) -> Callable[[JSON], bool]:
        terms = []
        for raw in filter(None, (t.strip() for t in text.split(","))):
            m = re.match(r"^(metadata\.name|metadata\.namespace)\s*(==|!=|=)\s*(.*)$", raw)
            if m is None:
                raise ApiError(
                    400,
                    "BadRequest",
                    f'"{raw}" is not a known field selector: only "metadata.name", "metadata.namespace"',
                )
            terms.append((m[1].split(".")[1], m[2] != "!=", m[3]))
        return lambda obj: all((obj["metadata"].get(f) == v) == eq for f, eq, v in terms)

    def _watch(self, res: ResourceType, ns: str | None, query: Mapping[str, str]) -> Reply:
        match = parse_selector(query.get("labelSelector", ""))
        fields = self._field_filter(query.get("fieldSelector", ""))
        timeout = min(float(query.get("timeoutSeconds") or 30), 300.0)
        since = int(query.get("resourceVersion") or 0)

        def selected(obj: JSON) -> bool:
            return (
                (ns is None or obj["metadata"].get("namespace") == ns)
                and match(obj["metadata"].get("labels") or {})
                and fields(obj)
            )

        def stream() -> Iterator[bytes]:
            deadline = time.monotonic() + timeout
            with self._lock:
                if since:
                    cursor = since
                    pending = []
                else:  # no resourceVersion: synthetic ADDED for what exists, then changes
                    pending = [
                        ("ADDED", self._render(e))
                        for (plural, _, _), e in sorted(self._store.items())
                        if plural == res.plural and selected(e.obj)
                    ]
                    cursor = self._last_rv
            for kind, obj in pending:
                yield _event_line(kind, obj)
            while not self._stopping.is_set():
                with self._lock:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    for entry in [
                        e
                        for (_, ens, _), e in self._store.items()
                        if e.res.kind == "Deployment" and (ns is None or ens == ns)
                    ]:
                        self._refresh(entry)
                    fresh = [
                        (rv, kind, obj)
                        for rv, kind, plural, obj in self._events
                        if rv > cursor and plural == res.plural
                    ]
                    if not fresh:
                        self._changed.wait(timeout=min(remaining, 0.05))
                        continue
                    cursor = fresh[-1][0]
                for _, kind, obj in fresh:
                    if selected(obj):
                        yield _event_line(kind, obj)

        return Reply(200, stream=stream())

    # -- the Deployment controller's part -----------------------------------------------

    def _start_rollout(self, entry: Entry, old: JSON | None) -> None:
        name = entry.obj["metadata"]["name"]
        after = self._ready_overrides.get(name, self.ready_after)
        entry.deadline_exceeded = False
        entry.ready_at = None if after is None else time.monotonic() + after
        old_status = (old or {}).get("status") or {}
        replicas = int(entry.obj["spec"].get("replicas", 1))
        entry.obj["status"] = {
            "observedGeneration": entry.obj["metadata"]["generation"],
            "replicas": max(replicas, int(old_status.get("replicas", 0))),
            "updatedReplicas": 0,
            "readyReplicas": int(old_status.get("readyReplicas", 0)),
            "availableReplicas": int(old_status.get("availableReplicas", 0)),
            "unavailableReplicas": replicas,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "ReplicaSetUpdated",
                    "message": f'ReplicaSet "{name}-{uuid.uuid4().hex[:10]}" is progressing.',
                },
            ],
        }
        self._refresh(entry)

    def _refresh(self, entry: Entry, force: bool = False) -> None:
        """Advance a Deployment's status when its simulated rollout time has come."""
        if entry.res.kind != "Deployment":
            return
        status = entry.obj.setdefault("status", {})
        replicas = int(entry.obj["spec"].get("replicas", 1))
        gen = entry.obj["metadata"].get("generation", 1)
        done = status.get("observedGeneration") == gen and all(
            status.get(k, 0) == replicas for k in ("replicas", "updatedReplicas", "readyReplicas")
        )
        if entry.deadline_exceeded:
            if force or not any(
                c.get("reason") == "ProgressDeadlineExceeded" for c in status.get("conditions", [])
            ):
                status["conditions"] = [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": f'ReplicaSet "{entry.obj["metadata"]["name"]}" has timed out progressing.',
                    }
                ]
                self._bump(entry, "MODIFIED")
            return
        ready_now = replicas == 0 or (
            entry.ready_at is not None and time.monotonic() >= entry.ready_at
        )
        if ready_now and not done:
            entry.obj["status"] = {
                "observedGeneration": gen,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "conditions": [
                    {
                        "type": "Available",
                        "status": "True",
                        "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability.",
                    },
                    {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "NewReplicaSetAvailable",
                        "message": f'ReplicaSet "{entry.obj["metadata"]["name"]}" has successfully progressed.',
                    },
                ],
            }
            if replicas == 0:
                for k in ("readyReplicas", "availableReplicas", "updatedReplicas"):
                    entry.obj["status"].pop(k)
            self._bump(entry, "MODIFIED")
        elif force:
            self._bump(entry, "MODIFIED")

    # -- discovery ------------------------------------------------------------------------

    def _discovery(self, path: str) -> JSON:
        if path == "/version":
            major, minor, _ = K8S_VERSION.split(".")
            return {
                "major": major,
                "minor": minor,
                "gitVersion": f"v{K8S_VERSION}",
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.24",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if path in ("/healthz", "/readyz", "/livez"):
            return {"status": "ok"}
        if path == "/":
            groups = sorted(
                {f"/apis/{r.group}" for r in RESOURCES if r.group}
                | {f"/apis/{r.api_version}" for r in RESOURCES if r.group}
            )
            return {
                "paths": [
                    "/api",
                    "/api/v1",
                    "/apis",
                    *groups,
                    "/healthz",
                    "/livez",
                    "/readyz",
                    "/version",
                ]
            }
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                ],
            }
        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group(g) for g in sorted({r.group for r in RESOURCES if r.group})],
            }
        parts = path.strip("/").split("/")
        if parts[0] == "api" and parts[1:] == ["v1"]:
            return self._resource_list("", "v1")
        if parts[0] == "apis" and len(parts) == 2 and any(r.group == parts[1] for r in RESOURCES):
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1])}
        if (
            parts[0] == "apis"
            and len(parts) == 3
            and any((r.group, r.version) == (parts[1], parts[2]) for r in RESOURCES)
        ):
            return self._resource_list(parts[1], parts[2])
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    @staticmethod
    def _group(group: str) -> JSON:
        versions = sorted({r.version for r in RESOURCES if r.group == group})
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[-1]}

    @staticmethod
    def _resource_list(group: str, version: str) -> JSON:
        resources: list[JSON] = []
        for r in RESOURCES:
            if (r.group, r.version) != (group, version):
                continue
            resources.append(
                {
                    "name": r.plural,
                    "singularName": r.singular,
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": VERBS,
                    "shortNames": list(r.short_names),
                }
            )
            if r.status_subresource:
                resources.append(
                    {
                        "name": f"{r.plural}/status",
                        "singularName": "",
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }


def _event_line(kind: str, obj: JSON) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class _Handler(BaseHTTPRequestHandler):
    api: KubeApiServer
    protocol_version = "HTTP/1.1"
    timeout = 30
    #: headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.api._connections.add(self.connection)

    def finish(self) -> None:
        self.api._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.api.handle(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        if reply.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in reply.stream:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                self.close_connection = True
            return
        data = json.dumps(reply.body).encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
