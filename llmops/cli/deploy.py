"""``llmops plan`` and ``llmops apply``: what one environment's target would change, and doing it.

Called by ``llmops.cli.main`` (lazily). ``plan`` prints per object what differs between
what should run (the pins; the work tree's releases for the source stage) and what runs;
``--exit-code`` ends 1 when there are changes (like ``terraform plan
-detailed-exitcode``). ``apply`` refuses (exit 1, nothing changed) when a release lacks
gate evidence, applies the plan once, and ends 1 when an app was rolled back.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from llmops.cli.options import rollout_grace, rollout_timeout
from llmops.cli.output import echo_json, short_release

_path = click.option(
    "--path",
    "path",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Repository root.",
)
_archive = click.option(
    "--archive",
    "archive",
    type=click.Path(file_okay=False, path_type=Path),
    help="Archive directory (default: the pipeline's archive).",
)
_env = click.option("--env", "env", required=True, help="The environment to plan or apply.")
_output = click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines.",
)
_model_url = click.option(
    "--model-url",
    help="Point every app at this OpenAI-compatible base URL unless the environment names "
    "one (what `llmops up` and `llmops reconcile --model-url` deploy with).",
)
_SIGN = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}


def _open(path: Path, archive: Path | None) -> tuple[Any, Any]:
    from llmops import api
    from llmops.ops.release import archive_for

    repo = api.load(path)
    return repo, archive_for(repo, archive)


def _url(model_url: str | None) -> str | None:
    from llmops.domain.errors import UsageError

    if model_url is not None and not model_url.startswith(("http://", "https://")):
        raise UsageError(f"--model-url must be an http(s) URL (got {model_url!r})")
    return model_url


def plan_json(plan: Any) -> dict[str, Any]:
    return {
        "env": plan.env,
        "target": plan.target,
        "noop": plan.noop,
        "desired": [
            {
                "app": d.app,
                "release": d.release,
                "image": d.image,
                "replicas": d.replicas,
                "fingerprint": d.fingerprint,
            }
            for d in plan.desired
        ],
        "changes": [
            {"kind": ch.kind, "app": ch.app, "object": ch.object, "diff": list(ch.diff)}
            for ch in plan.changes
        ],
    }


def echo_plan(plan: Any) -> None:
    counts = {kind: sum(1 for ch in plan.changes if ch.kind == kind) for kind in _SIGN}
    click.echo(
        f"plan for {plan.env} (target {plan.target}): {counts['create']} to create, "
        f"{counts['update']} to update, {counts['delete']} to delete, "
        f"{counts['unchanged']} unchanged"
    )
    for ch in plan.changes:
        click.echo(f"  {_SIGN[ch.kind]} {ch.kind:<9} {ch.app:<20} {ch.object}")
        for line in ch.diff:
            click.echo(f"      {line}")
    if plan.noop:
        click.echo("no changes: what runs is what should run")


@click.command("plan")
@_env
@_path
@_archive
@_output
@_model_url
@click.option(
    "--exit-code",
    "exit_code",
    is_flag=True,
    help="End 1 when there are changes, 0 when there are none (for CI).",
)
def plan(
    env: str, path: Path, archive: Path | None, output: str, model_url: str | None, exit_code: bool
) -> None:
    """Show what applying ENV would change, object by object; change nothing."""
    from llmops.ops.deploy import plan_env

    repo, store = _open(path, archive)
    found = plan_env(repo, env, store, model_url=_url(model_url))
    if output == "json":
        echo_json(plan_json(found))
    else:
        echo_plan(found)
    if exit_code and not found.noop:
        sys.exit(1)


@click.command("apply")
@_env
@_path
@_archive
@_output
@_model_url
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@rollout_timeout
@rollout_grace
@click.option("--no-verify", is_flag=True, help="Skip the stage's post-deploy smoke eval.")
def apply(
    env: str,
    path: Path,
    archive: Path | None,
    output: str,
    model_url: str | None,
    dry_run: bool,
    timeout: float,
    grace: float,
    no_verify: bool,
) -> None:
    """Apply ENV's plan once: blue/green per app, verify, switch; a failure keeps the old."""
    from llmops.ops.deploy import apply_env

    repo, store = _open(path, archive)
    outcome = apply_env(
        repo,
        env,
        store,
        dry_run=dry_run,
        timeout=timeout,
        grace=grace,
        verify=not no_verify,
        model_url=_url(model_url),
    )
    results = outcome.result.results if outcome.result is not None else ()
    if output == "json":
        echo_json(
            {
                **plan_json(outcome.plan),
                "dryRun": outcome.dry_run,
                "ok": outcome.ok,
                "results": [
                    {
                        "app": r.app,
                        "outcome": r.outcome,
                        "release": r.release,
                        "colour": r.colour,
                        "endpoint": r.endpoint,
                        "previous": r.previous,
                        "message": r.message,
                    }
                    for r in results
                ],
                "ledger": [e.to_json() for e in outcome.entries],
            }
        )
    else:
        echo_plan(outcome.plan)
        if dry_run:
            click.echo("dry run: nothing applied")
        for r in results:
            if r.outcome == "unchanged":
                continue
            where = f" ({r.colour}) at {r.endpoint}" if r.endpoint else ""
            click.echo(f"{r.outcome:<11} {r.app:<20} {short_release(r.release)}{where}")
            if r.outcome in ("rolled-back", "failed") and r.message:
                for line in r.message.splitlines():
                    click.echo(f"      {line}")
        if outcome.entries:
            count = len(outcome.entries)
            click.echo(f"ledger: {count} {'entry' if count == 1 else 'entries'} appended")
    if not outcome.ok:
        sys.exit(1)
