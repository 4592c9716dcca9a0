"""Reuse the check of an app directory whose content has not changed since the last load.

Called by ``llmops.manifests.repository.validate_repo`` when a long-running process (the
controller, a ``reconcile`` loop, ``llmops up``) passes the same :class:`LoadCache` to
every load. Checking an app reads its manifest, analyses every template and validates
every suite: milliseconds per app, so reloading 300 apps after a commit that changed one
of them costs a second. With the cache, an app whose directory (every file's name, link
target and bytes) and whose referenced files outside that directory are unchanged keeps
the outcome of its last check, diagnostics included; only changed apps are checked
again, and cross-references between apps, environments and pipelines are still checked
on every load.

The key is content, never a timestamp: a file rewritten with the same bytes is a hit, a
file changed within the same second is a miss. The cache is in memory and belongs to one
process; it is a cache, so dropping it only costs the checks.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_MISSING = b"\xff missing"


def tree_digest(directory: str) -> str:
    """A hash of every file under ``directory``: relative names, symlink targets, bytes."""
    digest = hashlib.sha256()
    found: list[tuple[str, str]] = []
    for folder, dirs, files in os.walk(directory):
        dirs.sort()
        rel = os.path.relpath(folder, directory)
        for name in files:
            found.append((name if rel == "." else f"{rel}/{name}", os.path.join(folder, name)))
        for name in dirs:
            path = os.path.join(folder, name)
            if os.path.islink(path):  # os.walk does not enter it; its target is the content
                found.append((name if rel == "." else f"{rel}/{name}", path))
    for rel, path in sorted(found):
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        if os.path.islink(path):
            digest.update(b"-> " + os.fsencode(os.readlink(path)) + b"\0")
        data = _read(path)
        digest.update(str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


def file_digest(path: str) -> str:
    """A hash of one file's bytes (or of its absence)."""
    return hashlib.sha256(_read(path)).hexdigest()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except IsADirectoryError:
        return b"\xff directory"
    except OSError:
        return _MISSING


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: str
    #: the files outside the directory the check read or looked for, with their digests
    outside: tuple[tuple[str, str], ...]
    outcome: object


class LoadCache:
    """Outcomes of app checks by content, for the loads of one long-running process."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], _Entry] = {}
        self._lock = threading.Lock()
        #: app directory name -> its tree digest at the last load
        self.digests: dict[str, str] = {}
        self.hits = 0
        self.misses = 0

    def outcome(
        self,
        root: Path,
        prefix: str,
        app_dir: Path,
        check: Callable[[], T],
        touched: Callable[[T], Iterable[str]],
    ) -> T:
        """The outcome of ``check()`` for ``app_dir``: remembered when nothing it depends on
        changed, else computed now and remembered. ``touched(outcome)`` names the files
        the check read or looked for (inside the directory or outside it)."""
        directory = os.fspath(app_dir)
        key = (os.fspath(root), prefix, directory)
        digest = tree_digest(directory)
        with self._lock:
            self.digests[app_dir.name] = digest
            entry = self._entries.get(key)
        if (
            entry is not None
            and entry.digest == digest
            and all(file_digest(path) == known for path, known in entry.outside)
        ):
            with self._lock:
                self.hits += 1
            return entry.outcome  # type: ignore[return-value]
        result = check()
        inside = os.path.realpath(directory).rstrip(os.sep) + os.sep
        outside = tuple(
            (path, file_digest(path))
            for path in sorted(set(touched(result)))
            if not os.path.realpath(path).startswith(inside)
        )
        with self._lock:
            self.misses += 1
            self._entries[key] = _Entry(digest, outside, result)
        return result

    def forget(self, keep: Iterable[Path]) -> None:
        """Drop the outcomes of app directories not in ``keep`` (apps that were removed)."""
        wanted = {os.fspath(p) for p in keep}
        with self._lock:
            for key in [k for k in self._entries if k[2] not in wanted]:
                del self._entries[key]
            names = {Path(p).name for p in wanted}
            for name in [n for n in self.digests if n not in names]:
                del self.digests[name]
