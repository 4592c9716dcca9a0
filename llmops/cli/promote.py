"""``llmops promote``, ``rollback``, ``hold`` and ``unhold``: move pins through git.

Called by ``llmops.cli.main`` (lazily). Each command calls ``llmops.api`` and prints the
plan: every check with its condition, status and reason, then what was done. A refusal
prints the plan and exits 1; ``--dry-run`` prints the same plan and changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from llmops.cli.output import echo_json, github_annotation

_ICON = {"True": "✓", "False": "✗", "Unknown": "?"}

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
_remote = click.option(
    "--remote", default="origin", show_default=True, help="Git remote to push to."
)
_mode = click.option(
    "--mode",
    type=click.Choice(["pr", "pull-request", "commit"]),
    help="pr: push a branch and open a pull request; commit: push to the branch "
    "(default: the stage's promotion setting).",
)
_dry_run = click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
_output = click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines.",
)


def _plan_json(plan: Any) -> dict[str, Any]:
    return {
        "kind": plan.kind,
        "app": plan.app,
        "env": plan.env,
        "envFile": plan.env_file,
        "pipeline": plan.pipeline,
        "mode": plan.mode,
        "source": plan.source,
        "candidate": plan.candidate,
        "current": plan.current,
        "allowed": plan.allowed,
        "noop": plan.noop,
        "runEvals": plan.run_evals,
        "branch": plan.branch,
        "checks": [
            {
                "condition": ch.condition,
                "status": ch.status,
                "reason": ch.reason,
                "message": ch.message,
            }
            for ch in plan.checks
        ],
        "evidence": [
            {"stage": e.stage, "report": e.report, "summary": e.summary} for e in plan.evidence
        ],
    }


def _result_json(result: Any) -> dict[str, Any]:
    return {
        **_plan_json(result.plan),
        "dryRun": result.dry_run,
        "applied": result.applied,
        "commit": result.commit,
        "pullRequest": result.pull_request,
        "bodyFile": result.body_file,
        "attempts": result.attempts,
        "ledger": [e.to_json() for e in result.entries],
        "notes": list(result.notes),
    }


def _echo_plan(plan: Any) -> None:
    from llmops.promote.plan import short

    title = (
        f"promote {plan.app} into {plan.env}"
        if plan.kind == "promote"
        else f"roll back {plan.app} in {plan.env}"
    )
    mode = "pull request" if plan.mode == "pull-request" else "commit"
    pipeline = f"pipeline {plan.pipeline}, " if plan.pipeline else ""
    click.echo(f"{title} ({pipeline}mode {mode})")
    origin = f" (from {plan.source})" if plan.source else ""
    click.echo(f"  candidate  {short(plan.candidate)}{origin}")
    click.echo(f"  current    {short(plan.current)}")
    width = max(len(ch.condition) for ch in plan.checks)
    rwidth = max(len(ch.reason) for ch in plan.checks)
    for ch in plan.checks:
        click.echo(
            f"  {_ICON[ch.status]} {ch.condition:<{width}}  {ch.reason:<{rwidth}}  {ch.message}"
        )


def _run(call: Any, output: str) -> None:
    """Call the use case; print the plan and result, or the plan and the refusal."""
    from llmops.domain.errors import Refused

    try:
        result = call()
    except Refused as exc:
        if exc.detail is None:
            raise
        if output == "json":
            echo_json({**_plan_json(exc.detail), "refused": exc.message})
        else:
            _echo_plan(exc.detail)
            click.echo(f"error: {exc.message}", err=True)
        raise SystemExit(exc.exit_code) from None
    if output == "json":
        echo_json(_result_json(result))
    else:
        _echo_plan(result.plan)
        for note in result.notes:
            click.echo(f"  note: {note}")
        _echo_outcome(result)
    if result.dry_run and not result.plan.allowed and not result.plan.noop:
        raise SystemExit(1)  # the same verdict as without --dry-run


def _echo_outcome(result: Any) -> None:
    from llmops.promote.plan import short

    plan = result.plan
    if result.dry_run:
        verdict = "would be refused" if not plan.allowed else "would apply"
        click.echo(f"dry run: nothing changed ({verdict})")
        return
    if not result.applied:
        click.echo("nothing to do")
        return
    done = "promoted" if plan.kind == "promote" else "rolled back"
    if result.pull_request:
        click.echo(
            f"✓ proposed: {plan.app} {short(plan.candidate)} → {plan.env}: {result.pull_request}"
        )
    elif plan.mode == "pull-request":
        click.echo(f"✓ proposed on branch {result.branch} (open the pull request by hand)")
    else:
        attempts = f" after {result.attempts} attempts" if result.attempts > 1 else ""
        click.echo(
            f"✓ {done} {plan.app} in {plan.env} to {short(plan.candidate)}: commit "
            f"{(result.commit or '')[:12]} pushed to {result.branch}{attempts}"
        )


@click.command()
@click.argument("app", required=False)
@click.option("--to", "to_env", help="Stage (environment) to promote into.")
@click.option("--from", "from_env", help="Earlier stage to take the candidate from.")
@_mode
@click.option("--pipeline", help="Pipeline, when the environment is a stage of several.")
@click.option("--no-run", is_flag=True, help="Refuse instead of running a missing target gate.")
@_dry_run
@click.option(
    "--check",
    is_flag=True,
    help="Check that every pin has the gate evidence its stage demands; change nothing.",
)
@_remote
@_path
@_archive
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text, json, or github (workflow annotations; with --check).",
)
def promote(
    app: str | None,
    to_env: str | None,
    from_env: str | None,
    mode: str | None,
    pipeline: str | None,
    no_run: bool,
    dry_run: bool,
    check: bool,
    remote: str,
    path: Path,
    archive: Path | None,
    output: str,
) -> None:
    """Promote APP's release from the previous stage into --to ENV, through git.

    The candidate is the release pinned in the previous stage (the work tree's release
    for the first stage). It moves only with passing gate evidence for every stage up to
    ENV (a missing ENV gate is run first unless --no-run), after the soak time, with no
    hold in ENV, and by pull request where the stage requires approval. Commit mode
    pushes the pin change to the branch (rebasing and re-checking if someone pushed
    first); pr mode pushes llmops/promote/ENV/APP and opens a pull request (GITHUB_TOKEN).

    With --check: report every pin (of APP, or all) lacking that evidence; exit 1 if any.

    Exit 0 when promoted (or already pinned), 1 when a check refuses (--dry-run too).
    """
    from llmops import api
    from llmops.domain.errors import UsageError

    if check:
        _check(api.unevidenced_pins(path, app, archive=archive), output)
        return
    if not app or not to_env:
        raise UsageError("promote needs APP and --to ENV (or --check)")
    if output == "github":
        raise UsageError("-o github is for --check; use text or json")
    _run(
        lambda: api.promote(
            path,
            app,
            to_env,
            from_env=from_env,
            mode=mode,
            pipeline=pipeline,
            no_run=no_run,
            dry_run=dry_run,
            archive=archive,
            remote=remote,
        ),
        output,
    )


def _check(diagnostics: list[Any], output: str) -> None:
    if output == "json":
        echo_json([d.as_dict() for d in diagnostics])
    elif output == "github":
        for d in diagnostics:
            click.echo(github_annotation(d, "release pinned without gate evidence"))
    else:
        for d in diagnostics:
            click.echo(d.render())
        count = len(diagnostics)
        click.echo(
            "✓ every pin has passing gate evidence for its stage and every stage before"
            if not count
            else f"✗ {count} missing piece{'s' if count != 1 else ''} of gate evidence"
        )
    if diagnostics:
        raise SystemExit(1)


@click.command()
@click.argument("app")
@click.option("--env", "env", required=True, help="Environment to roll back.")
@click.option("--to", "to", help="Release (id or digest prefix); default: the last good one.")
@click.option("--force", is_flag=True, help="With --to: roll back to a release marked bad.")
@click.option("--reason", help="Why; recorded in the ledger, the commit and the hold.")
@_mode
@click.option("--pipeline", help="Pipeline, when the environment is a stage of several.")
@_dry_run
@_remote
@_path
@_archive
@_output
def rollback(
    app: str,
    env: str,
    to: str | None,
    force: bool,
    reason: str | None,
    mode: str | None,
    pipeline: str | None,
    dry_run: bool,
    remote: str,
    path: Path,
    archive: Path | None,
    output: str,
) -> None:
    """Pin ENV back to the last good release of APP, through git, and hold promotion.

    The default target is the newest release that ran in ENV before the current one and
    was neither marked bad nor rolled back from. The pin changes by commit or pull
    request like a promotion, so the reconciler does not undo it; automatic promotion of
    APP into ENV is then held until `llmops unhold APP --env ENV`. Exit 1 when refused.
    """
    from llmops import api

    _run(
        lambda: api.rollback(
            path,
            app,
            env,
            to=to,
            force=force,
            mode=mode,
            pipeline=pipeline,
            reason=reason,
            dry_run=dry_run,
            archive=archive,
            remote=remote,
        ),
        output,
    )


def _echo_hold(result: Any, output: str) -> None:
    if output == "json":
        echo_json(
            {
                "app": result.app,
                "env": result.env,
                "held": result.held,
                "changed": result.changed,
                "dryRun": result.dry_run,
                "entry": result.entry.to_json() if result.entry else None,
            }
        )
        return
    since = result.since
    if result.dry_run:
        click.echo(
            f"dry run: would {'change' if result.changed else 'leave'} the hold on "
            f"{result.app} in {result.env}; nothing changed"
        )
    elif result.held and not result.changed and since is not None:
        click.echo(
            f"{result.app} is already held in {result.env} since {since.time} by "
            f"{since.actor}: {since.data.get('reason', '')}"
        )
    elif result.held:
        click.echo(
            f"✓ held: automatic promotion of {result.app} into {result.env} stops "
            f"until `llmops unhold {result.app} --env {result.env}`"
        )
    elif result.changed:
        click.echo(f"✓ unheld: {result.app} may be promoted into {result.env} again")
    else:
        click.echo(f"{result.app} is not held in {result.env}")


@click.command()
@click.argument("app")
@click.option("--env", "env", required=True, help="Environment to hold promotion into.")
@click.option("--reason", required=True, help="Why; shown to whoever tries to promote.")
@_dry_run
@_path
@_archive
@_output
def hold(
    app: str, env: str, reason: str, dry_run: bool, path: Path, archive: Path | None, output: str
) -> None:
    """Hold automatic promotion of APP into ENV until `llmops unhold`."""
    from llmops import api

    _echo_hold(api.hold(path, app, env, reason, dry_run=dry_run, archive=archive), output)


@click.command()
@click.argument("app")
@click.option("--env", "env", required=True, help="Environment to lift the hold on.")
@click.option("--reason", help="Why the hold can go; recorded in the ledger.")
@_dry_run
@_path
@_archive
@_output
def unhold(
    app: str,
    env: str,
    reason: str | None,
    dry_run: bool,
    path: Path,
    archive: Path | None,
    output: str,
) -> None:
    """Lift the hold on promoting APP into ENV."""
    from llmops import api

    _echo_hold(api.unhold(path, app, env, reason, dry_run=dry_run, archive=archive), output)
