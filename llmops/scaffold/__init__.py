"""Scaffold a new llmops repository from the files shipped in ``files/``.

Called by ``llmops.api.init``. ``__APP__`` in paths and contents becomes the app name;
``github/`` is written as ``.github/``; the JSON Schemas are generated from the models.
"""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from llmops.domain.errors import SourceError, UsageError
from llmops.domain.ids import dns_label_problem

PLACEHOLDER = "__APP__"


def _walk(node: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            found.extend(_walk(child, rel + "/"))
        elif not child.name.endswith((".pyc",)):
            found.append((rel, child))
    return found


def _target_name(rel: str, app: str) -> str:
    rel = rel.replace(PLACEHOLDER, app)
    if rel.startswith("github/"):
        rel = "." + rel
    if rel.endswith(".tmpl"):
        rel = rel.removesuffix(".tmpl")
    if rel == "gitignore":
        rel = ".gitignore"
    return rel


def scaffold(directory: Path, app: str, force: bool = False) -> list[str]:
    """Write the scaffold into ``directory``; return the written paths, repo-relative."""
    from llmops.domain.models import KINDS
    from llmops.manifests.schemas import dumps, json_schema, schema_file_name

    problem = dns_label_problem(app)
    if problem:
        raise UsageError(f"--app: {problem}")
    if directory.exists() and not directory.is_dir():
        raise SourceError(f"{directory}: exists and is not a directory")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise UsageError(
            f"{directory} is not empty; pick an empty directory or pass --force to add the scaffold"
        )
    files: dict[str, str] = {}
    root = resources.files("llmops.scaffold") / "files"
    for rel, node in _walk(root):
        files[_target_name(rel, app)] = node.read_text(encoding="utf-8").replace(PLACEHOLDER, app)
    for kind in KINDS:
        files[f"schemas/{schema_file_name(kind)}"] = dumps(json_schema(kind))
    try:
        for rel, text in sorted(files.items()):
            target = directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SourceError(f"cannot write the scaffold into {directory}: {exc.strerror or exc}") from exc
    return sorted(files)
