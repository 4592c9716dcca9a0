"""The work tree's release of each app, remembered by the content of the app's directory.

Called by ``llmops.ops.reconcile``. Building a release bundle reads and analyses every
template (milliseconds per app); hashing the bytes of ``manifests/<app>/`` is much
cheaper. The cache maps that hash (with the llmops version and the bundle schema, which
decide how a bundle is built) to the release id, so a pass over hundreds of unchanged
apps builds no bundle. It is a cache: a missing or unreadable file only costs the builds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import llmops
from llmops.manifests.incremental import tree_digest
from llmops.releases.bundle import BUNDLE_SCHEMA_VERSION


def app_key(repo_root: Path, app: str, tree: str | None = None) -> str:
    """A hash of every file under ``manifests/<app>/`` (names and bytes) and of the code
    that turns them into a bundle; ``tree`` is that directory's ``tree_digest`` when the
    load already computed it."""
    if tree is None:
        tree = tree_digest(os.path.join(repo_root, "manifests", app))
    text = f"{llmops.__version__}\0{BUNDLE_SCHEMA_VERSION}\0{tree}"
    return hashlib.sha256(text.encode()).hexdigest()


class HeadCache:
    """``app -> (key, release id)``, loaded from and saved to one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._apps: dict[str, tuple[str, str]] = {}
        self._dirty = False
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            raw = json.loads(path.read_bytes())
            self._apps = {str(app): (str(k), str(r)) for app, (k, r) in raw["apps"].items()}

    def get(self, app: str, key: str) -> str | None:
        found = self._apps.get(app)
        return found[1] if found is not None and found[0] == key else None

    def put(self, app: str, key: str, release: str) -> None:
        if self._apps.get(app) != (key, release):
            self._apps[app] = (key, release)
            self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.parent / f".{self.path.name}.{os.getpid()}.tmp"
        try:
            tmp.write_text(json.dumps({"apps": self._apps}, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
