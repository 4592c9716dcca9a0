"""The llmops library API: one function per use case, shared by the CLI and the controller.

Called by ``llmops.cli`` (and later the controller). Functions return frozen results or
raise ``llmops.domain.errors`` exceptions; they never print and never exit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmops.domain.errors import ManifestInvalid
from llmops.domain.repo import Repo, ValidationReport


def display_prefix(root: Path) -> str:
    """How to name files under ``root`` so a person (or GitHub) finds them from the cwd."""
    resolved = root.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd:
        return ""
    if resolved.is_relative_to(cwd):
        return resolved.relative_to(cwd).as_posix()
    return os.path.relpath(resolved, cwd) if resolved.anchor == cwd.anchor else str(resolved)


def validate(path: str | Path = ".", prefix: str | None = None) -> ValidationReport:
    """Validate every manifest under ``path``; diagnostics are returned, not raised."""
    from llmops.manifests.repository import validate_repo

    root = Path(path)
    return validate_repo(root, display_prefix(root) if prefix is None else prefix)


def load(path: str | Path = ".") -> Repo:
    """The validated repository, or ``ManifestInvalid`` carrying every diagnostic."""
    report = validate(path)
    if report.repo is None:
        count = len(report.errors)
        raise ManifestInvalid(
            f"{count} error{'s' if count != 1 else ''} in the manifests; "
            "run `llmops validate` for details",
            report.diagnostics,
        )
    return report.repo


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one manifest kind."""
    from llmops.manifests.schemas import json_schema

    return json_schema(kind)


def init(directory: str | Path, app: str = "my-app", force: bool = False) -> list[str]:
    """Scaffold a new llmops repository; returns the files written (repo-relative)."""
    from llmops.scaffold import scaffold

    return scaffold(Path(directory), app, force=force)
