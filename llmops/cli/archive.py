"""``llmops archive verify`` and ``llmops history``: read the ledger and check it."""

from __future__ import annotations

from pathlib import Path

import click

from llmops.cli.output import echo_json, output_option, short_release, table


@click.group()
def archive() -> None:
    """Inspect the archive of releases, evidence and the ledger."""


@archive.command("verify")
@click.option("--path", "path", default=".", type=click.Path(file_okay=False, path_type=Path), help="Repository root.")
@click.option("--archive", "archive_dir", type=click.Path(file_okay=False, path_type=Path), help="Archive directory.")
@output_option(("text", "json"))
def verify(path: Path, archive_dir: Path | None, output: str) -> None:
    """Check every ledger entry's hash and link and every object's digest.

    Finds any edit, truncation, reordering or missing object and names the entry.
    Exit 0 when intact, 1 otherwise.
    """
    from llmops import api
    from llmops.domain.errors import UsageError

    if archive_dir is not None and not any(
        (archive_dir / part).is_dir() for part in ("ledger", "objects")
    ):
        # A mistyped path must not verify as an intact, empty archive.
        raise UsageError(f"no archive at {archive_dir}: it has no ledger/ or objects/ directory")
    report = api.archive_verify(path, archive=archive_dir)
    if output == "json":
        echo_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "objects": report.objects,
                "findings": [{"where": f.where, "message": f.message} for f in report.findings],
            }
        )
    else:
        for finding in report.findings:
            click.echo(f"{finding.where}: {finding.message}")
        mark = "✓ intact" if report.ok else f"✗ {len(report.findings)} problem(s)"
        click.echo(f"{mark}: {report.entries} ledger entries, {report.objects} objects")
    raise SystemExit(0 if report.ok else 1)


@click.command()
@click.argument("app", required=False)
@click.option("--env", "env", help="Only events in this environment.")
@click.option("--path", "path", default=".", type=click.Path(file_okay=False, path_type=Path), help="Repository root.")
@click.option("--archive", "archive_dir", type=click.Path(file_okay=False, path_type=Path), help="Archive directory.")
@output_option(("text", "json"))
def history(app: str | None, env: str | None, path: Path, archive_dir: Path | None, output: str) -> None:
    """Show the ledger (of APP, in ENV): when, who, what, and the evidence."""
    from llmops import api

    entries = api.history(path, app, env, archive=archive_dir)
    if output == "json":
        echo_json([e.to_json() for e in entries])
        return
    if not entries:
        click.echo("no events yet")
        return
    table(
        "",
        ["#", "when", "who", "event", "app", "env", "release", "evidence"],
        (
            (
                e.seq,
                e.time[:19].replace("T", " "),
                e.actor,
                e.event,
                e.app,
                e.env or "-",
                short_release(e.release),
                ", ".join(f"{k}={v[:12]}" for k, v in sorted(e.evidence.items())) or "-",
            )
            for e in entries
        ),
    )
