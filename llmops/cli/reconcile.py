"""``llmops reconcile``: make every environment match git, once or until stopped.

Called by ``llmops.cli.main`` (lazily). Each pass walks the pipeline's stages (release,
gate, build, apply, verify, ledger, promotion; ``llmops.ops.reconcile``); with ``--once``
it runs one pass, otherwise it repeats every ``--interval`` seconds until SIGINT or
SIGTERM (the pass in progress finishes first). ``--dry-run`` prints what a pass would do.
Exit (``--once``): 0 when every app is Ready, Progressing or Waiting on a policy; 1 when
one is Degraded or Failed (a gate failed, a rollback happened); 2 when the pass could
not run.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from llmops.cli.options import rollout_grace, rollout_timeout
from llmops.cli.output import echo_json, short_release

_ATTENTION = ("Waiting", "Degraded", "Failed")


def _note(app: Any) -> str:
    """The one condition or step a person should read first for this app."""
    if app.error:
        return str(app.error).splitlines()[0]
    for step in reversed(app.steps):
        if step.status in ("waiting", "refused", "failed"):
            return f"{step.step}: {step.reason}: {step.message.splitlines()[0] if step.message else ''}"
    for cond in app.conditions:
        if cond.status == "False":
            return f"{cond.type}: {cond.reason}: {cond.message}"
    return ""


def echo_pass(result: Any, *, verbose: bool = False) -> None:
    """A pass for people: a headline, then one row per environment and app."""
    commit = (result.commit or "uncommitted")[:12]
    if result.error:
        click.echo(f"pass failed: {result.error}")
        return
    if result.noop:
        how = " (decided by content hashes)" if result.shortcut else ""
        head = f"no changes{how}"
    else:
        head = f"{len(result.work)} change{'s' if len(result.work) != 1 else ''}"
    dry = " [dry run]" if result.dry_run else ""
    click.echo(
        f"pass at {result.started} on commit {commit}: {head}{dry}, {result.duration_s:.2f} s"
    )
    for note in result.notes:
        click.echo(f"  note: {note}")
    rows = [
        (s.env, a.app, a.phase, short_release(a.live), a.endpoint or "-", _note(a))
        for s in result.stages
        for a in s.apps
    ]
    for stage in result.stages:
        if stage.error:
            rows.append((stage.env, "-", "Failed", "-", "-", stage.error))
    if not rows:
        click.echo("  (no apps)")
        return
    widths = [
        max(len(str(r[i])) for r in [("ENV", "APP", "PHASE", "RUNNING", "ENDPOINT", ""), *rows])
        for i in range(5)
    ]
    header = ("ENV", "APP", "PHASE", "RUNNING", "ENDPOINT")
    click.echo("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  NOTE")
    for row in rows:
        cells = "  ".join(str(v).ljust(w) for v, w in zip(row[:5], widths, strict=True))
        note = row[5] if (verbose or row[2] in _ATTENTION) else ""
        click.echo(f"  {cells}  {note}".rstrip())
    if result.wake_at:
        click.echo(f"  next: a soak ends at {result.wake_at}; a pass after that may promote")


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        click.echo(f"{signal.Signals(signum).name}: stopping after this pass", err=True)
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def exit_code(result: Any) -> int:
    return 1 if result.phase in ("Degraded", "Failed") else 0


@click.command("reconcile")
@click.argument(
    "path", default=".", required=False, type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option("--env", "env", help="Only this environment (and the promotion into it).")
@click.option(
    "--app",
    "apps",
    multiple=True,
    metavar="NAME",
    help="Only this app (repeatable); the others keep what runs and their pins.",
)
@click.option("--dry-run", is_flag=True, help="Print what a pass would do; change nothing.")
@click.option(
    "--interval",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between passes (without --once).",
)
@click.option(
    "--model-url",
    help="Point gates, deployed apps and verifies at this OpenAI-compatible base URL "
    "(e.g. the stub model) unless an environment names an endpoint.",
)
@rollout_timeout
@rollout_grace
@click.option(
    "-v", "--verbose", is_flag=True, help="A note for every app, not only those waiting or failing."
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines (one object per pass).",
)
def reconcile(
    path: Path,
    once: bool,
    env: str | None,
    apps: tuple[str, ...],
    dry_run: bool,
    interval: float,
    model_url: str | None,
    timeout: float,
    grace: float,
    verbose: bool,
    output: str,
) -> None:
    """Make every environment run what git says: release, gate, build, deploy, verify,
    record, and promote where the pipeline allows. Without --once, repeat until stopped."""
    from llmops.domain.errors import LlmopsError, UsageError
    from llmops.ops.reconcile import (
        ReconcileOptions,
        ReconcileWorld,
        reconcile_loop,
        reconcile_pass,
    )

    if model_url is not None and not model_url.startswith(("http://", "https://")):
        raise UsageError(f"--model-url must be an http(s) URL (got {model_url!r})")
    _check_apps(path, apps)
    options = ReconcileOptions(
        env=env,
        dry_run=dry_run,
        model_url=model_url,
        timeout=timeout,
        grace=grace,
        apps=frozenset(apps) if apps else None,
    )
    progress = (lambda line: click.echo(f"  {line}")) if output == "text" else (lambda line: None)
    world = ReconcileWorld(progress=progress)

    def show(result: Any) -> None:
        if output == "json":
            if once:
                echo_json(result.to_json())
            else:
                import json

                click.echo(json.dumps(result.to_json(), ensure_ascii=False))
        else:
            echo_pass(result, verbose=verbose)
        sys.stdout.flush()

    if once:
        result = reconcile_pass(path, options, world)
        show(result)
        sys.exit(exit_code(result))

    def failed(exc: LlmopsError) -> None:
        for diagnostic in getattr(exc, "diagnostics", ()):
            click.echo(diagnostic.render(), err=True)
        click.echo(f"pass failed: {exc.message}", err=True)

    with stop_on_signals() as stop:
        passes = reconcile_loop(
            path, options, world, interval=interval, stop=stop, on_pass=show, on_error=failed
        )
    click.echo(f"stopped after {passes} pass{'es' if passes != 1 else ''}", err=True)


def _check_apps(root: Path, apps: tuple[str, ...]) -> None:
    """Every ``--app`` names an app directory of the repository (manifests/<app>/app.yaml)."""
    from llmops.domain.errors import UsageError

    manifests = root / "manifests"
    unknown = [a for a in apps if not (manifests / a / "app.yaml").is_file()]
    if unknown:
        known = (
            sorted(d.name for d in manifests.iterdir() if (d / "app.yaml").is_file())
            if manifests.is_dir()
            else []
        )
        raise UsageError(
            f"--app {unknown[0]}: no such app in {manifests} (apps: {', '.join(known) or 'none'})"
        )
