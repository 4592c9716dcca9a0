"""Validate a whole repository: discover manifests, load each, check apps, then
environments and pipelines against them; every problem is reported, not only the first.

Called by ``llmops.api.validate`` and every use case that needs the manifests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.domain.errors import SourceError
from llmops.domain.models import Environment, LLMApp, Pipeline
from llmops.domain.repo import AppSource, EnvironmentSource, PipelineSource, Repo, ValidationReport
from llmops.manifests.appcheck import check_app
from llmops.manifests.loader import Context, Parsed, yaml_files
from llmops.manifests.xref import (
    check_app_env,
    check_environment,
    check_pipelines,
    scan_secrets,
)

LAYOUT = "manifests/<app>/app.yaml, environments/<env>.yaml and pipelines/<name>.yaml"


def validate_repo(root: Path, prefix: str = "") -> ValidationReport:
    """Load and check every manifest under ``root``.

    Raises ``SourceError`` only when ``root`` itself cannot be read; everything wrong
    inside it is a diagnostic in the report.
    """
    if not root.exists():
        raise SourceError(f"{root}: no such directory")
    if not root.is_dir():
        raise SourceError(f"{root}: not a directory; pass the repository's root directory")
    ctx = Context(root=root.resolve(), prefix=prefix)
    manifests_dir = ctx.root / "manifests"
    env_dir = ctx.root / "environments"
    pipe_dir = ctx.root / "pipelines"
    if not any(d.is_dir() for d in (manifests_dir, env_dir, pipe_dir)):
        ctx.report(
            prefix or ".",
            None,
            "",
            f"not an llmops repository: expected {LAYOUT}; create one with `llmops init DIR`",
        )
        return _report(ctx, None)

    parsed_all: list[Parsed[Any]] = []
    apps: dict[str, AppSource] = {}
    app_names: set[str] = set()
    suite_index: dict[str, set[str]] = {}
    unloaded_suites: list[str] = []
    every_app_loaded = True
    for app_dir in _app_dirs(ctx, manifests_dir):
        candidates = [app_dir / "app.yaml", app_dir / "app.yml"]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            ctx.report(
                ctx.display(app_dir), None, "", "no app.yaml in this app directory; add one or remove it"
            )
            # Still an app by its directory: references to it are not reported as unknown.
            app_names.add(app_dir.name)
            every_app_loaded = False
            continue
        parsed: Parsed[LLMApp] = ctx.load(existing[0], "LLMApp")
        parsed_all.append(parsed)
        app_names.add(app_dir.name)
        if parsed.model is None:
            every_app_loaded = False
            continue
        name = parsed.model.metadata.name
        source = check_app(ctx, parsed, app_dir, suite_index, unloaded_suites)
        if source is not None and name not in apps:
            apps[name] = source
    for stray in yaml_files(manifests_dir):
        ctx.report(
            ctx.display(stray),
            None,
            "",
            "ignored: apps live in manifests/<app>/app.yaml",
            "warning",
        )

    environments: dict[str, EnvironmentSource] = {}
    env_names: set[str] = set()
    for path in yaml_files(env_dir):
        env: Parsed[Environment] = ctx.load(path, "Environment")
        parsed_all.append(env)
        env_names.add(path.stem)
        if env.model is None:
            continue
        errors_before = _errors(ctx)
        check_environment(ctx, env, apps, app_names)
        if _errors(ctx) == errors_before:
            environments[env.model.metadata.name] = EnvironmentSource(env.model, env.file)

    pipelines: list[Parsed[Pipeline]] = []
    every_pipeline_loaded = True
    for path in yaml_files(pipe_dir):
        pipe: Parsed[Pipeline] = ctx.load(path, "Pipeline")
        parsed_all.append(pipe)
        every_pipeline_loaded = every_pipeline_loaded and pipe.model is not None
        if pipe.model is not None:
            if any(p.model and p.model.metadata.name == pipe.model.metadata.name for p in pipelines):
                assert pipe.doc is not None
                ctx.report(
                    pipe.file,
                    pipe.doc.mark_for(("metadata", "name")),
                    "metadata.name",
                    f"pipeline name {pipe.model.metadata.name!r} is used twice",
                )
            pipelines.append(pipe)
    check_pipelines(
        ctx,
        pipelines,
        env_names,
        suite_index if every_app_loaded and not unloaded_suites else None,
        every_pipeline_loaded=every_pipeline_loaded,
    )

    for parsed_file in parsed_all:
        check_app_env(ctx, parsed_file)
        scan_secrets(ctx, parsed_file)

    if _errors(ctx):
        return _report(ctx, None)
    repo = Repo(
        root=str(ctx.root),
        apps=dict(sorted(apps.items())),
        environments=dict(sorted(environments.items())),
        pipelines={
            p.model.metadata.name: PipelineSource(p.model, p.file) for p in pipelines if p.model
        },
    )
    return _report(ctx, repo)


def _errors(ctx: Context) -> int:
    return sum(1 for d in ctx.diagnostics if d.severity == "error")


def _app_dirs(ctx: Context, manifests_dir: Path) -> list[Path]:
    if not manifests_dir.is_dir():
        return []
    found = []
    for child in sorted(manifests_dir.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        if not ctx.inside(child):
            ctx.report(ctx.display(child), None, "", "app directory is a symlink out of the repository")
            continue
        found.append(child)
    return found


def _report(ctx: Context, repo: Repo | None) -> ValidationReport:
    unique = sorted(set(ctx.diagnostics), key=lambda d: (d.file, d.line, d.column, d.path, d.message))
    return ValidationReport(str(ctx.root), tuple(unique), repo, ctx.files)
