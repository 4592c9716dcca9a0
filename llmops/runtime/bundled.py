"""Serve an archived release: lay its bundle out as a one-app repository and load it
through the same validation and loading path as a work tree.

Called by ``llmops serve --bundle PATH`` and ``llmops serve --release ID`` (what the image
runs). The bundle's bytes are the release: their sha256 is the release digest, so what
is served is exactly what was gated.
"""

from __future__ import annotations

import json
from pathlib import Path

from llmops.domain.errors import InvalidInput
from llmops.domain.models.base import rel_path_problem
from llmops.releases.bundle import Bundle


def materialize(bundle: Bundle, directory: Path) -> Path:
    """Write ``bundle`` as ``directory/manifests/<app>/…``; return ``directory``.

    The manifest and suites are written as JSON (which is YAML), the templates and other
    files as they were released. Paths are checked again: a bundle is input too.
    """
    app_dir = directory / "manifests" / bundle.app
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "app.yaml").write_text(json.dumps(bundle.document["manifest"], indent=1) + "\n")
    suites: dict[str, dict[str, object]] = bundle.document.get("suites", {})
    files = dict(bundle.files)
    for suite in suites.values():
        files[str(suite["file"])] = json.dumps(suite["manifest"], indent=1) + "\n"
    for rel, text in sorted(files.items()):
        problem = rel_path_problem(rel)
        if problem:
            raise InvalidInput(f"release bundle file {rel!r}: {problem}")
        target = app_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return directory
