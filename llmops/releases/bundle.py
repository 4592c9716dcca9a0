"""Build the canonical release bundle of an app and its id ``<app>@sha256:<digest>``.

Called by ``llmops.ops.release`` (and later build and deploy). The bundle holds the
app's resolved manifest (defaults filled in), every file it references (templates and
what they include, eval suites resolved, datasets, JSON Schemas) with newlines
normalised, and nothing else: no timestamps, no paths outside the app, no environment
overrides. Its canonical JSON (sorted keys, no spaces, UTF-8) is hashed, so the same
content gives the same id on any machine, and the archive stores those exact bytes
under that same digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.domain.archive import canonical_json, sha256_hex
from llmops.domain.errors import InvalidInput
from llmops.domain.repo import AppSource
from llmops.manifests.templates import TemplateInfo, analyse

BUNDLE_SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Bundle:
    """A release bundle: its document, the exact bytes hashed, and the digest."""

    app: str
    document: dict[str, Any]
    data: bytes
    digest: str

    @property
    def release_id(self) -> str:
        return f"{self.app}@sha256:{self.digest}"

    @property
    def files(self) -> dict[str, str]:
        files: dict[str, str] = self.document["files"]
        return files


def normalise_text(text: str) -> str:
    """LF newlines, no BOM, one trailing newline at most as written."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _referenced_files(source: AppSource, app_dir: Path) -> list[str]:
    """Every file the app references, relative to its directory, includes followed."""
    spec = source.app.spec
    wanted: list[str] = [p for p in (spec.prompt.system, spec.prompt.user) if p]
    seen: set[str] = set()
    queue = list(wanted)
    while queue:
        rel = queue.pop()
        if rel in seen:
            continue
        seen.add(rel)
        info = analyse((app_dir / rel).read_text(encoding="utf-8"))
        if isinstance(info, TemplateInfo):
            queue.extend(ref for ref in info.references if ref)
    files = set(seen)
    if isinstance(spec.guardrails.output.json_schema, str):
        files.add(spec.guardrails.output.json_schema)
    for suite in source.suites:
        suite_rel = _rel_to_app(source, suite.file)
        suite_dir = Path(suite_rel).parent
        if suite.suite.spec.dataset:
            files.add((suite_dir / suite.suite.spec.dataset).as_posix())
        for case_asserts in [suite.suite.spec.defaults.assert_] + [c.assert_ for c in suite.suite.spec.cases]:
            for assertion in case_asserts:
                if assertion.base_type == "json-schema" and isinstance(assertion.value, str):
                    files.add(assertion.value)
    return sorted(files)


def _rel_to_app(source: AppSource, file: str) -> str:
    prefix = source.dir.rstrip("/") + "/"
    return file[len(prefix):] if file.startswith(prefix) else file


def app_dir_of(repo_root: Path, app: str) -> Path:
    """Where an app's files live: the layout is fixed, manifests/<app>/."""
    return repo_root / "manifests" / app


def build_bundle(source: AppSource, repo_root: Path) -> Bundle:
    """The bundle of ``source`` as it is in the work tree under ``repo_root``."""
    app_dir = app_dir_of(repo_root, source.name)
    files: dict[str, str] = {}
    try:
        for rel in _referenced_files(source, app_dir):
            path = app_dir / rel
            if path.is_file():
                files[rel] = normalise_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the files of app {source.name!r}: {exc}") from exc
    suites = {
        s.name: {
            "file": _rel_to_app(source, s.file),
            "manifest": s.suite.model_dump(mode="json", by_alias=True),
        }
        for s in source.suites
    }
    document: dict[str, Any] = {
        "schemaVersion": BUNDLE_SCHEMA_VERSION,
        "kind": "ReleaseBundle",
        "app": source.name,
        "manifest": source.app.model_dump(mode="json", by_alias=True),
        "files": files,
        "suites": suites,
    }
    data = canonical_json(document)
    return Bundle(source.name, document, data, sha256_hex(data))


def load_bundle(data: bytes) -> Bundle:
    """A bundle read back from the archive (or a file); ``InvalidInput`` if it is not one."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"not a release bundle: {exc}") from exc
    if not isinstance(document, dict) or document.get("kind") != "ReleaseBundle":
        raise InvalidInput("not a release bundle: kind is not ReleaseBundle")
    if document.get("schemaVersion") != BUNDLE_SCHEMA_VERSION:
        raise InvalidInput(
            f"release bundle schemaVersion {document.get('schemaVersion')!r} is not supported "
            f"(this llmops reads {BUNDLE_SCHEMA_VERSION})"
        )
    return Bundle(str(document["app"]), document, data, sha256_hex(data))
