"""``llmops up``: the whole pipeline on this machine, nothing else installed; ``--down`` stops it.

Called by ``llmops.cli.main`` (lazily). Prints progress as it goes, then a table of
environments, apps, releases and endpoints, what waits (a soak, an approval) and how to
stop everything. Exit 0 when every app is Ready or Waiting on a policy; 1 when one is
Degraded or Failed; 2 when ``up`` could not run (no git repository, …).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from llmops.cli.options import rollout_timeout
from llmops.cli.output import echo_json, short_release

if TYPE_CHECKING:
    from llmops.reconcile.result import PassResult


@click.command("up")
@click.argument(
    "path", default=".", required=False, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--approve",
    is_flag=True,
    help="Approve promotions into approval-required stages on this machine (merged locally).",
)
@click.option(
    "--skip-soak",
    is_flag=True,
    help="Waive soak waits on this machine so the demo reaches prod in one run "
    "(recorded in the ledger as soakWaivedBy).",
)
@click.option(
    "--model-url",
    help="Use this OpenAI-compatible base URL instead of the apps' own endpoints or the stub.",
)
@click.option(
    "--stub-rules",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Rules for the stub model (default: stub-rules.yaml or demo/stub-rules.yaml in PATH, if present).",
)
@rollout_timeout
@click.option("--down", is_flag=True, help="Stop every process llmops up started for PATH.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines.",
)
def up(
    path: Path,
    approve: bool,
    skip_soak: bool,
    model_url: str | None,
    stub_rules: Path | None,
    timeout: float,
    down: bool,
    output: str,
) -> None:
    """Run the pipeline of the repository at PATH on this machine: validate, release,
    gate, deploy dev, promote to test and prod as the pipeline allows. Processes keep
    running; stop them with `llmops up --down`."""
    from llmops.domain.errors import UsageError
    from llmops.ops import up as ops

    where = "" if str(path) == "." else f" {path}"
    if down:
        stopped = ops.down(path)
        if output == "json":
            echo_json({"stopped": list(stopped.stopped)})
        elif stopped.stopped:
            for item in stopped.stopped:
                click.echo(f"stopped {item}")
        else:
            click.echo("nothing was running")
        return
    if model_url is not None and not model_url.startswith(("http://", "https://")):
        raise UsageError(f"--model-url must be an http(s) URL (got {model_url!r})")
    text = output == "text"

    def progress(line: str) -> None:
        if text:
            click.echo(f"  {line}")
            sys.stdout.flush()

    if text:
        click.echo(f"llmops up{where}: the pipeline on this machine")
    result = ops.up(
        path,
        approve=approve,
        skip_soak=skip_soak,
        model_url=model_url,
        stub_rules=stub_rules,
        timeout=timeout,
        progress=progress,
    )
    passed = result.result
    if output == "json":
        echo_json(ops.describe(result))
        sys.exit(1 if passed.phase in ("Degraded", "Failed") else 0)
    for note in result.notes:
        click.echo(f"  note: {note}")
    if passed.noop:
        how = " (decided by content hashes)" if passed.shortcut else ""
        click.echo(f"  nothing to do: everything runs what git says{how}")
    click.echo("")
    _table(passed)
    waiting = _waiting(passed)
    if waiting:
        click.echo("")
        click.echo("waiting or failed:")
        for line in waiting:
            click.echo(f"  {line}")
    click.echo("")
    click.echo(result.model_short)
    click.echo(f"everything keeps running; stop it with: llmops up{where} --down")
    sys.exit(1 if passed.phase in ("Degraded", "Failed") else 0)


def _table(passed: PassResult) -> None:
    rows = [("ENVIRONMENT", "APP", "PHASE", "RELEASE", "ENDPOINT")]
    for stage in passed.stages:
        if stage.error:
            rows.append((stage.env, "-", "Failed", "-", stage.error))
        for app in stage.apps:
            rows.append(
                (stage.env, app.app, app.phase, short_release(app.live), app.endpoint or "-")
            )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _waiting(passed: PassResult) -> list[str]:
    lines: list[str] = []
    for stage in passed.stages:
        for app in stage.apps:
            for step in app.steps:
                if step.status in ("waiting", "refused", "failed"):
                    first = step.message.splitlines()[0] if step.message else ""
                    lines.append(f"{stage.env} {app.app}: {step.step} {step.reason}: {first}")
    if passed.wake_at:
        lines.append(
            f"a soak ends at {passed.wake_at}: run llmops up again after that "
            "(or waive it on this machine with --skip-soak)"
        )
    return lines
