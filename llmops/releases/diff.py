"""Readable differences between two release bundles: manifest fields, files, suites.

Called by ``llmops.ops.release`` for ``llmops release diff``. Pure.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from llmops.releases.bundle import Bundle

_MISSING = object()


@dataclass(frozen=True, slots=True)
class FieldChange:
    """A manifest value that differs; ``None`` old/new with ``added``/``removed`` set."""

    path: str
    old: Any
    new: Any
    change: str  # "changed" | "added" | "removed"


@dataclass(frozen=True, slots=True)
class FileChange:
    """A file that differs, with a unified diff."""

    path: str
    change: str  # "changed" | "added" | "removed"
    unified: str


@dataclass(frozen=True, slots=True)
class SuiteChange:
    """Cases added, removed or changed in one suite (or the whole suite added/removed)."""

    suite: str
    change: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BundleDiff:
    """Everything that differs from release ``old`` to release ``new``."""

    old: str
    new: str
    fields: tuple[FieldChange, ...]
    files: tuple[FileChange, ...]
    suites: tuple[SuiteChange, ...]

    @property
    def identical(self) -> bool:
        return not (self.fields or self.files or self.suites)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    else:
        out[prefix] = value


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[FieldChange, ...]:
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(old, "", a)
    _flatten(new, "", b)
    changes = []
    for path in sorted(set(a) | set(b)):
        va, vb = a.get(path, _MISSING), b.get(path, _MISSING)
        if va is _MISSING:
            changes.append(FieldChange(path, None, vb, "added"))
        elif vb is _MISSING:
            changes.append(FieldChange(path, va, None, "removed"))
        elif va != vb:
            changes.append(FieldChange(path, va, vb, "changed"))
    return tuple(changes)


def _file_changes(old: Bundle, new: Bundle) -> tuple[FileChange, ...]:
    changes = []
    for path in sorted(set(old.files) | set(new.files)):
        a, b = old.files.get(path), new.files.get(path)
        if a == b:
            continue
        change = "added" if a is None else "removed" if b is None else "changed"
        unified = "".join(
            difflib.unified_diff(
                (a or "").splitlines(keepends=True),
                (b or "").splitlines(keepends=True),
                fromfile=f"a/{path}",
                tofile=f"b/{path}",
            )
        )
        changes.append(FileChange(path, change, unified))
    return tuple(changes)


def _cases(suite: dict[str, Any]) -> dict[str, Any]:
    return {c["id"]: c for c in suite["manifest"]["spec"]["cases"]}


def _suite_changes(old: Bundle, new: Bundle) -> tuple[SuiteChange, ...]:
    a: dict[str, Any] = old.document["suites"]
    b: dict[str, Any] = new.document["suites"]
    changes = []
    for name in sorted(set(a) | set(b)):
        if name not in a:
            changes.append(SuiteChange(name, "added", added=tuple(_cases(b[name]))))
        elif name not in b:
            changes.append(SuiteChange(name, "removed", removed=tuple(_cases(a[name]))))
        elif a[name] != b[name]:
            ca, cb = _cases(a[name]), _cases(b[name])
            changes.append(
                SuiteChange(
                    name,
                    "changed",
                    added=tuple(sorted(set(cb) - set(ca))),
                    removed=tuple(sorted(set(ca) - set(cb))),
                    changed=tuple(sorted(k for k in set(ca) & set(cb) if ca[k] != cb[k])),
                )
            )
    return tuple(changes)


def diff_bundles(old: Bundle, new: Bundle) -> BundleDiff:
    return BundleDiff(
        old=old.release_id,
        new=new.release_id,
        fields=field_changes(old.document["manifest"], new.document["manifest"]),
        files=_file_changes(old, new),
        suites=_suite_changes(old, new),
    )
