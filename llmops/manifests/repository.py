"""Validate a whole repository: discover manifests, load each, check apps, then
environments and pipelines against them; every problem is reported, not only the first.

Called by ``llmops.api.validate`` and every use case that needs the manifests.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from llmops.domain.diagnostics import Diagnostic
from llmops.domain.errors import ManifestInvalid, SourceError
from llmops.domain.models import Environment, EvalSuite, LLMApp, Pipeline
from llmops.domain.repo import (
    AppSource,
    EnvironmentSource,
    PipelineSource,
    Repo,
    SuiteSource,
    ValidationReport,
)
from llmops.manifests.appcheck import check_app
from llmops.manifests.forked import can_fork, forked_map
from llmops.manifests.incremental import LoadCache
from llmops.manifests.loader import Context, Parsed, yaml_files
from llmops.manifests.xref import (
    check_app_env,
    check_environment,
    check_pipelines,
    scan_secrets,
)

LAYOUT = "manifests/<app>/app.yaml, environments/<env>.yaml and pipelines/<name>.yaml"


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while documents are held.

    Every loaded document keeps its YAML node tree (for positions) until the run ends;
    with thousands of them the collector rescans them over and over, for nothing: they
    hold no garbage cycles. Pausing it makes a 500-app repository validate ~30% faster.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def validate_repo(
    root: Path, prefix: str = "", *, parallel: bool = False, cache: LoadCache | None = None
) -> ValidationReport:
    """Load and check every manifest under ``root``.

    Raises ``SourceError`` only when ``root`` itself cannot be read; everything wrong
    inside it is a diagnostic in the report. With ``parallel``, a repository of
    ``PARALLEL_MIN_APPS`` apps or more has its apps checked in forked worker processes:
    for the CLI, not for a long-running process with threads.
    """
    with _collector_paused():
        return _validate_repo(root, prefix, parallel, cache)


def _validate_repo(
    root: Path, prefix: str, parallel: bool, cache: LoadCache | None
) -> ValidationReport:
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
    every_app_loaded = True
    any_suite_unloaded = False
    for outcome in _outcomes(ctx, _app_dirs(ctx, manifests_dir), parallel, cache):
        ctx.diagnostics.extend(outcome.diagnostics)
        ctx.files += outcome.files
        # An app by its directory, even when broken: references to it are not "unknown".
        app_names.add(outcome.dir_name)
        every_app_loaded = every_app_loaded and outcome.loaded
        any_suite_unloaded = any_suite_unloaded or outcome.suite_unloaded
        for suite, cases in outcome.suites.items():
            suite_index.setdefault(suite, set()).update(cases)
        if outcome.source is not None and outcome.source.name not in apps:
            apps[outcome.source.name] = outcome.source
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
        suite_index if every_app_loaded and not any_suite_unloaded else None,
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


@dataclass(frozen=True, slots=True)
class AppOutcome:
    """Everything checking one app directory found; picklable, so workers can return it."""

    dir_name: str
    source: AppSource | None
    diagnostics: tuple[Diagnostic, ...]
    suites: dict[str, frozenset[str]]
    files: int
    loaded: bool
    suite_unloaded: bool
    #: ``source`` as plain data, for the trip from a worker process (see ``_pack``).
    packed: tuple[Any, ...] | None = None
    #: every file the check read or looked for (``llmops.manifests.incremental``)
    touched: tuple[str, ...] = ()


def check_app_dir(root: Path, prefix: str, app_dir: Path, *, pack: bool = False) -> AppOutcome:
    """Load ``app_dir/app.yaml`` and check everything the app references.

    With ``pack`` the outcome carries the manifests' YAML data instead of the models,
    for the trip back from a worker process (``_unpack`` validates it again).
    """
    ctx = Context(root=root, prefix=prefix)
    candidates = (app_dir / "app.yaml", app_dir / "app.yml")
    existing = next((c for c in candidates if c.is_file()), None)
    if existing is None:
        ctx.report(
            ctx.display(app_dir), None, "", "no app.yaml in this app directory; add one or remove it"
        )
        return AppOutcome(app_dir.name, None, tuple(ctx.diagnostics), {}, 0, False, False)
    parsed: Parsed[LLMApp] = ctx.load(existing, "LLMApp")
    source = None
    index: dict[str, set[str]] = {}
    unloaded: list[str] = []
    raw_suites: list[tuple[Any, str]] = []
    if parsed.model is not None:
        source = check_app(ctx, parsed, app_dir, index, unloaded, raw_suites)
    check_app_env(ctx, parsed)
    scan_secrets(ctx, parsed)
    packed = None
    if pack and source is not None and parsed.doc is not None:
        packed = (parsed.doc.data, source.dir, source.file, tuple(raw_suites))
        source = None
    return AppOutcome(
        dir_name=app_dir.name,
        source=source,
        diagnostics=tuple(ctx.diagnostics),
        suites={name: frozenset(cases) for name, cases in index.items()},
        files=ctx.files,
        loaded=parsed.model is not None,
        suite_unloaded=bool(unloaded),
        packed=packed,
        touched=tuple(sorted(ctx.touched)),
    )


#: Below this many apps everything runs in-process: forking would cost more than it saves.
PARALLEL_MIN_APPS = 100


def _outcomes(
    ctx: Context, app_dirs: list[Path], parallel: bool, cache: LoadCache | None = None
) -> Iterator[AppOutcome]:
    """Check each app directory, in order; in forked workers for a large repository;
    with a ``cache``, in-process, reusing the outcome of every unchanged app.

    Forked children send their findings back as plain data: the manifests' YAML data,
    validated again here, which costs a fraction of pickling pydantic models.
    """
    if cache is not None:
        cache.forget(app_dirs)
        for app_dir in app_dirs:
            yield cache.outcome(
                ctx.root,
                ctx.prefix,
                app_dir,
                lambda d=app_dir: check_app_dir(ctx.root, ctx.prefix, d),  # type: ignore[misc]
                lambda outcome: outcome.touched,
            )
        return
    workers = min(_usable_cpus(), 8)
    if not (parallel and can_fork() and workers > 1 and len(app_dirs) >= PARALLEL_MIN_APPS):
        for app_dir in app_dirs:
            yield check_app_dir(ctx.root, ctx.prefix, app_dir)
        return
    # Build the validators once, here: the forked children inherit them.
    LLMApp.model_rebuild()
    EvalSuite.model_rebuild()
    root, prefix = ctx.root, ctx.prefix
    yield from forked_map(
        app_dirs,
        lambda app_dir: check_app_dir(root, prefix, app_dir),
        lambda app_dir: check_app_dir(root, prefix, app_dir, pack=True),
        _unpack,
        processes=workers,
    )


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _unpack(outcome: AppOutcome) -> AppOutcome:
    if outcome.packed is None:
        return outcome
    app, app_dir, file, suites = outcome.packed
    source = AppSource(
        app=LLMApp.model_validate(app),
        dir=app_dir,
        file=file,
        suites=tuple(SuiteSource(EvalSuite.model_validate(data), name) for data, name in suites),
    )
    return replace(outcome, source=source, packed=None)


def _errors(ctx: Context) -> int:
    return sum(1 for d in ctx.diagnostics if d.severity == "error")


def _app_dirs(ctx: Context, manifests_dir: Path) -> list[Path]:
    if not manifests_dir.is_dir():
        return []
    found = []
    # scandir: each entry's type comes with the listing, with no stat per app directory.
    with os.scandir(manifests_dir) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        child = manifests_dir / entry.name
        try:
            is_link: bool | None = entry.is_symlink()
        except OSError:
            is_link = None
        if not ctx.inside(child, is_link=is_link):
            ctx.report(ctx.display(child), None, "", "app directory is a symlink out of the repository")
            continue
        found.append(child)
    return found


def _report(ctx: Context, repo: Repo | None) -> ValidationReport:
    unique = sorted(set(ctx.diagnostics), key=lambda d: (d.file, d.line, d.column, d.path, d.message))
    return ValidationReport(str(ctx.root), tuple(unique), repo, ctx.files)


def display_prefix(root: Path) -> str:
    """How to name files under ``root`` so a person (or GitHub) finds them from the cwd."""
    resolved = root.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd:
        return ""
    if resolved.is_relative_to(cwd):
        return resolved.relative_to(cwd).as_posix()
    return os.path.relpath(resolved, cwd) if resolved.anchor == cwd.anchor else str(resolved)


def load_repo(root: Path, prefix: str | None = None, *, cache: LoadCache | None = None) -> Repo:
    """The validated repository at ``root``; ``ManifestInvalid`` carries every diagnostic.
    A ``cache`` kept between loads rechecks only the apps whose files changed."""
    report = validate_repo(root, display_prefix(root) if prefix is None else prefix, cache=cache)
    if report.repo is None:
        count = len(report.errors)
        raise ManifestInvalid(
            f"{count} error{'s' if count != 1 else ''} in the manifests; "
            "run `llmops validate` for details",
            report.diagnostics,
        )
    return report.repo
