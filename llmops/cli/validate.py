"""``llmops validate``: check every manifest of a repository and report all problems."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import click

from llmops.cli.output import echo_json, github_annotation, output_option, plural, table


@click.command()
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
@output_option()
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("-q", "--quiet", is_flag=True, help="Print problems only, no summary.")
def validate(path: Path, output: str, strict: bool, quiet: bool) -> None:
    """Validate the manifests under PATH (default: the current directory).

    Exit 0 when valid, 1 when a manifest is invalid, 2 when PATH cannot be read.
    """
    with _one_shot_process():
        _validate(path, output, strict, quiet)


@contextlib.contextmanager
def _one_shot_process() -> Iterator[None]:
    """Settings for a process that validates once and exits.

    - The cyclic garbage collector stays off, and when this process is the ``llmops``
      command every object is frozen at the end: the interpreter's final collection then
      skips them (for 500 apps that final collection alone took ~0.3 s).
    - Pydantic plugins are off, as ``PYDANTIC_DISABLE_PLUGINS=__all__`` turns them off
      (unless that variable is set already): the manifest models need none, and looking
      for them scans every installed distribution's entry points (~25 ms) after importing
      ``importlib.metadata`` (~20 ms). The module that looks is stood in for by one that
      finds none, and only for this command.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    plugins = os.environ.get(_NO_PLUGINS)
    stub = None
    if plugins is None:
        os.environ[_NO_PLUGINS] = "__all__"
        if _PLUGIN_LOADER not in sys.modules and _loader_shape_known():
            stub = types.ModuleType(_PLUGIN_LOADER)
            stub.get_plugins = lambda: ()  # type: ignore[attr-defined]
            sys.modules[_PLUGIN_LOADER] = stub
    try:
        yield
    finally:
        if stub is not None and sys.modules.get(_PLUGIN_LOADER) is stub:
            del sys.modules[_PLUGIN_LOADER]
        if plugins is None:
            os.environ.pop(_NO_PLUGINS, None)
        if _process_is_the_cli():
            gc.freeze()
        if gc_was_enabled:
            gc.enable()


def _loader_shape_known() -> bool:
    """Whether this pydantic's plugin loader is the one the stand-in replaces: pydantic 2
    asks it only for ``get_plugins()``. Another major version keeps its own loader."""
    from pydantic.version import VERSION

    return VERSION.startswith("2.")


def _process_is_the_cli() -> bool:
    """Whether this process is ``llmops`` itself (it ends after the command), rather than
    one that calls the command and goes on (a test runner, say)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None:
        return bool(spec.name == "llmops.__main__")
    return os.path.basename(sys.argv[0]) == "llmops"


_NO_PLUGINS = "PYDANTIC_DISABLE_PLUGINS"
#: pydantic's plugin discovery, imported when a model's validator is built
_PLUGIN_LOADER = "pydantic.plugin._loader"


def _validate(path: Path, output: str, strict: bool, quiet: bool) -> None:
    from llmops import api

    report = api.validate(path, parallel=True)
    failed = bool(report.errors) or (strict and bool(report.warnings))
    repo = report.repo
    summary = {
        "apps": len(repo.apps) if repo else 0,
        "environments": len(repo.environments) if repo else 0,
        "pipelines": len(repo.pipelines) if repo else 0,
        "suites": sum(len(a.suites) for a in repo.apps.values()) if repo else 0,
        "cases": repo.case_count if repo else 0,
    }
    if output == "json":
        echo_json(
            {
                "valid": not failed,
                "root": report.root,
                "files": report.files,
                "errors": len(report.errors),
                "warnings": len(report.warnings),
                "summary": summary,
                "apps": sorted(repo.apps) if repo else [],
                "pipelines": {
                    name: [stage.env for stage in source.pipeline.spec.stages]
                    for name, source in (repo.pipelines.items() if repo else ())
                },
                "diagnostics": [d.as_dict() for d in report.diagnostics],
            }
        )
    elif output == "github":
        for diagnostic in report.diagnostics:
            click.echo(github_annotation(diagnostic, "llmops validate"))
        if not quiet:
            click.echo(_summary_line(failed, len(report.errors), len(report.warnings), summary))
    else:
        for diagnostic in report.diagnostics:
            click.echo(diagnostic.render())
        if not quiet:
            if repo is not None and repo.apps and not failed:
                table(
                    "",
                    ["app", "model", "suites", "cases", "pinned in"],
                    (
                        (
                            name,
                            f"{a.app.spec.model.provider}/{a.app.spec.model.name}",
                            ", ".join(s.name for s in a.suites) or "-",
                            sum(len(s.suite.spec.cases) for s in a.suites),
                            ", ".join(
                                e for e, src in repo.environments.items()
                                if name in src.environment.spec.releases
                            )
                            or "-",
                        )
                        for name, a in repo.apps.items()
                    ),
                )
            click.echo(_summary_line(failed, len(report.errors), len(report.warnings), summary))
    raise SystemExit(1 if failed else 0)


def _summary_line(failed: bool, errors: int, warnings: int, summary: dict[str, int]) -> str:
    if failed:
        text = f"✗ invalid: {plural(errors, 'error')}"
        return text + (f", {plural(warnings, 'warning')}" if warnings else "")
    parts = [
        plural(summary["apps"], "app"),
        plural(summary["environments"], "environment"),
        plural(summary["pipelines"], "pipeline"),
        f"{plural(summary['suites'], 'suite')} with {plural(summary['cases'], 'case')}",
    ]
    text = "✓ valid: " + ", ".join(parts)
    return text + (f" ({plural(warnings, 'warning')})" if warnings else "")
