"""``llmops release create|list|show|diff``: content-addressed releases in the archive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from llmops.cli.output import echo_json, output_option, short_release, table

_repo = click.option(
    "--path", "path", default=".", show_default=True, type=click.Path(file_okay=False, path_type=Path),
    help="Repository root.",
)
_archive = click.option(
    "--archive", "archive", type=click.Path(file_okay=False, path_type=Path),
    help="Archive directory (default: the pipeline's archive).",
)


@click.group()
def release() -> None:
    """Create, list, inspect and compare releases."""


@release.command("create")
@click.argument("app")
@_repo
@_archive
@click.option("--dry-run", is_flag=True, help="Compute the release id; archive nothing.")
@output_option(("text", "json"))
def create(app: str, path: Path, archive: Path | None, dry_run: bool, output: str) -> None:
    """Archive the release of APP as it is in the work tree.

    The id is the sha256 of the app's canonical bundle (resolved manifest, templates,
    suites, schemas); unchanged content gives the same id and archives nothing new.
    """
    from llmops import api

    result = api.release_create(path, app, dry_run=dry_run, archive=archive)
    if output == "json":
        echo_json(
            {
                "release": result.release_id,
                "created": result.created,
                "dryRun": result.dry_run,
                "bytes": result.bytes,
                "files": list(result.files),
            }
        )
        return
    if result.dry_run:
        click.echo(f"{result.release_id} (dry run: nothing archived)")
    elif result.created:
        click.echo(f"released {result.release_id} ({result.bytes:,} bytes, {len(result.files)} files)")
    else:
        click.echo(f"unchanged: {result.release_id} is already archived")


@release.command("list")
@click.argument("app", required=False)
@_repo
@_archive
@output_option(("text", "json"))
def list_(app: str | None, path: Path, archive: Path | None, output: str) -> None:
    """List archived releases (of APP, or all), oldest first."""
    from llmops import api

    releases = api.release_list(path, app, archive=archive)
    if output == "json":
        echo_json(
            [
                {
                    "release": r.release_id,
                    "app": r.app,
                    "time": r.time,
                    "actor": r.actor,
                    "commit": r.commit,
                    "pinnedIn": list(r.pinned_in),
                    "markedBad": r.marked_bad,
                }
                for r in releases
            ]
        )
        return
    if not releases:
        click.echo("no releases archived yet; create one with `llmops release create APP`")
        return
    table(
        "",
        ["release", "created", "by", "commit", "pinned in", "status"],
        (
            (
                short_release(r.release_id),
                r.time[:19].replace("T", " "),
                r.actor,
                (r.commit or "-")[:12],
                ", ".join(r.pinned_in) or "-",
                "bad" if r.marked_bad else "ok",
            )
            for r in releases
        ),
    )


@release.command("show")
@click.argument("ref")
@_repo
@_archive
@output_option(("text", "json"))
def show(ref: str, path: Path, archive: Path | None, output: str) -> None:
    """Show a release: model, files, suites and its ledger events.

    REF is a release id, a unique prefix of its digest, or APP@work for the work tree.
    """
    from llmops import api

    bundle, entries = api.release_show(path, ref, archive=archive)
    manifest: dict[str, Any] = bundle.document["manifest"]
    model = manifest["spec"]["model"]
    if output == "json":
        echo_json(
            {
                "release": bundle.release_id,
                "manifest": manifest,
                "files": {k: len(v) for k, v in bundle.files.items()},
                "suites": {
                    name: len(s["manifest"]["spec"]["cases"]) for name, s in bundle.document["suites"].items()
                },
                "events": [e.to_json() for e in entries],
            }
        )
        return
    click.echo(f"release  {bundle.release_id}")
    click.echo(f"model    {model['provider']}/{model['name']}  params {_params(model['params'])}")
    click.echo("files    " + ", ".join(f"{k} ({len(v):,} B)" for k, v in sorted(bundle.files.items())))
    click.echo(
        "suites   "
        + ", ".join(
            f"{name} ({len(s['manifest']['spec']['cases'])} cases)"
            for name, s in sorted(bundle.document["suites"].items())
        )
    )
    for entry in entries:
        where = f" {entry.env}" if entry.env else ""
        click.echo(f"  {entry.time}  {entry.event}{where}  by {entry.actor}")


def _params(params: dict[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if v not in (None, [], {})}
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "-"


@release.command("diff")
@click.argument("old")
@click.argument("new")
@_repo
@_archive
@output_option(("text", "json"))
def diff(old: str, new: str, path: Path, archive: Path | None, output: str) -> None:
    """Show what changed from release OLD to release NEW (prompts, parameters, suites).

    Either may be APP@work for the work tree. Exit 0 when identical, 1 when they differ.
    """
    from llmops import api

    result = api.release_diff(path, old, new, archive=archive)
    if output == "json":
        echo_json(
            {
                "old": result.old,
                "new": result.new,
                "identical": result.identical,
                "fields": [
                    {"path": f.path, "old": f.old, "new": f.new, "change": f.change} for f in result.fields
                ],
                "files": [{"path": f.path, "change": f.change, "diff": f.unified} for f in result.files],
                "suites": [
                    {
                        "suite": s.suite,
                        "change": s.change,
                        "added": list(s.added),
                        "removed": list(s.removed),
                        "changed": list(s.changed),
                    }
                    for s in result.suites
                ],
            }
        )
        raise SystemExit(0 if result.identical else 1)
    click.echo(f"--- {result.old}\n+++ {result.new}")
    if result.identical:
        click.echo("identical")
        raise SystemExit(0)
    for change in result.fields:
        if change.change == "changed":
            click.echo(f"~ {change.path}: {change.old!r} → {change.new!r}")
        elif change.change == "added":
            click.echo(f"+ {change.path}: {change.new!r}")
        else:
            click.echo(f"- {change.path}: {change.old!r}")
    for file in result.files:
        click.echo(f"\n{file.change} {file.path}")
        click.echo(file.unified.rstrip("\n"))
    for suite in result.suites:
        parts = [
            f"{label} {', '.join(ids)}"
            for label, ids in (("+", suite.added), ("-", suite.removed), ("~", suite.changed))
            if ids
        ]
        click.echo(f"\nsuite {suite.suite} {suite.change}: " + "; ".join(parts))
    raise SystemExit(1)
