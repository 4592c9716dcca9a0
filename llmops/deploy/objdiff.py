"""Compare rendered Kubernetes objects with what the cluster holds. Pure and fast.

Called by the kubernetes deploy target (``plan`` and drift detection) with the dicts
:mod:`llmops.deploy.k8s` renders and the live objects the API returned.

Only the fields llmops sets are compared: :func:`diff_object` walks the *desired*
object, so what the server adds (``status``, ``metadata.uid``, ``resourceVersion``,
``managedFields``, ``creationTimestamp``, defaulted fields such as
``terminationMessagePath`` or ``clusterIP``) is ignored. Lists of named items
(containers, env, ports, volumes) are matched by ``name`` and items only the live object
has are ignored, as server-side apply leaves them alone; other lists compare whole.
Resource quantities compare by value (``1000m`` equals ``1``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from llmops.domain.deploy import APP_LABEL, ENV_LABEL, MANAGED_BY, MANAGED_BY_LABEL, Change

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$")
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY_PARENTS = frozenset({"requests", "limits"})
_MISSING = object()
_SHOW_MAX = 120


def _quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value)
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, KeyError):
        return None


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(none)"
    text = (
        value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    )
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 1] + "…"


class _Item(str):
    """A list item in a path: ``[app]`` (by name) or ``[3]`` (by position)."""

    __slots__ = ()


def _path(parts: tuple[str, ...]) -> str:
    """``("spec", "containers", _Item("[app]"), "a.b/c")`` → ``spec.containers[app]["a.b/c"]``."""
    out = ""
    for part in parts:
        if isinstance(part, _Item):
            out += part
        elif _PLAIN_KEY.match(part):
            out = f"{out}.{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _named(items: list[Any]) -> bool:
    return bool(items) and all(
        isinstance(i, dict) and isinstance(i.get("name"), str) for i in items
    )


def _walk(desired: Any, live: Any, path: tuple[str, ...], out: list[str]) -> None:
    """Append a line per difference under ``path`` (formatted only when there is one)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            if desired or (live is not _MISSING and live is not None):
                out.append(f"{_path(path)}: {_show(live)} → {_show(desired)}")
            return
        for key, value in desired.items():
            have = live.get(key, _MISSING)
            if type(value) is str and type(have) is str and value == have:
                continue  # the common case: an equal string, nothing to walk
            _walk(value, have, (*path, key), out)
        return
    if isinstance(desired, list):
        if not isinstance(live, list):
            out.append(f"{_path(path)}: {_show(live)} → {_show(desired)}")
        elif _named(desired) and all(isinstance(i, dict) for i in live):
            by_name = {i.get("name"): i for i in live}
            for item in desired:
                name = item["name"]
                _walk(item, by_name.get(name, _MISSING), (*path, _Item(f"[{name}]")), out)
        elif len(desired) == len(live):
            for index, (want, have) in enumerate(zip(desired, live, strict=True)):
                _walk(want, have, (*path, _Item(f"[{index}]")), out)
        else:
            out.append(f"{_path(path)}: {_show(live)} → {_show(desired)}")
        return
    if desired == live and type(desired) is type(live):
        return
    if len(path) >= 2 and path[-2] in _QUANTITY_PARENTS:
        want = _quantity(desired)
        if want is not None and want == _quantity(live):
            return
    out.append(f"{_path(path)}: {_show(live)} → {_show(desired)}")


def diff_object(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Readable differences ``path: live → desired`` in the fields ``desired`` sets.

    Empty when ``live`` already has every field llmops sets (server extras ignored);
    ``live=None`` (no such object) lists every top-level field as ``(none) → …``.
    """
    out: list[str] = []
    if live is None:
        return tuple(f"{key}: (none) → {_show(value)}" for key, value in desired.items())
    for key, value in desired.items():
        if key in ("apiVersion", "kind"):
            continue
        _walk(value, live.get(key, _MISSING), (key,), out)
    return tuple(out)


def object_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name): what identifies an object in one cluster."""
    meta = obj.get("metadata") or {}
    return str(obj.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name", ""))


def object_name(obj: Mapping[str, Any]) -> str:
    """``Kind/name``, e.g. ``Deployment/support-bot-blue``."""
    kind, _, name = object_key(obj)
    return f"{kind}/{name}"


def app_label(obj: Mapping[str, Any]) -> str:
    """The app an object belongs to: its ``app.kubernetes.io/name`` label (or its name)."""
    meta = obj.get("metadata") or {}
    found = (meta.get("labels") or {}).get(APP_LABEL)
    return str(found) if found else str(meta.get("name", ""))


def _labels(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("labels") or {}


def plan_objects(
    desired_objects: Sequence[Mapping[str, Any]],
    live_objects: Sequence[Mapping[str, Any]],
    app_of: Callable[[Mapping[str, Any]], str] = app_label,
    *,
    env: str | None = None,
) -> tuple[Change, ...]:
    """One ``Change`` per desired object (create, update with diff lines, or unchanged), in
    the order given, then a ``delete`` for every live object llmops manages in the same
    environment that is no longer desired (prune), sorted by name.

    The environment is ``env``, else the ``llmops.dev/environment`` label of the desired
    objects; when neither names one (nothing desired, no ``env``), nothing is pruned.
    """
    live_by_key = {object_key(o): o for o in live_objects}
    changes: list[Change] = []
    wanted: set[tuple[str, str, str]] = set()
    envs: set[str] = {env} if env is not None else set()
    for obj in desired_objects:
        key = object_key(obj)
        wanted.add(key)
        if env is None:
            found_env = _labels(obj).get(ENV_LABEL)
            if found_env:
                envs.add(str(found_env))
        live = live_by_key.get(key)
        name = object_name(obj)
        if live is None:
            changes.append(Change("create", app_of(obj), name))
            continue
        lines = diff_object(obj, live)
        changes.append(Change("update" if lines else "unchanged", app_of(obj), name, lines))
    prune: list[tuple[tuple[str, str, str], Mapping[str, Any]]] = []
    for key, obj in live_by_key.items():
        labels = _labels(obj)
        if (
            key not in wanted
            and labels.get(MANAGED_BY_LABEL) == MANAGED_BY
            and labels.get(ENV_LABEL) in envs
        ):
            prune.append((key, obj))
    for _, obj in sorted(prune, key=lambda item: item[0]):
        changes.append(Change("delete", app_of(obj), object_name(obj)))
    return tuple(changes)
