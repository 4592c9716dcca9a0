"""``llmops init``: scaffold a new repository (one app, dev/test/prod, a pipeline, a workflow)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--app", "app", default="my-app", show_default=True, help="Name of the first app.")
@click.option("--force", is_flag=True, help="Write into a non-empty directory, replacing scaffold files.")
def init(directory: Path, app: str, force: bool) -> None:
    """Create a new llmops repository in DIRECTORY that validates clean."""
    from llmops import api

    written = api.init(directory, app=app, force=force)
    for name in written:
        click.echo(f"  created {name}")
    report = api.validate(directory)
    status = "valid" if report.ok else "INVALID (this is a bug in llmops init)"
    click.echo(f"✓ scaffolded {len(written)} files in {directory} ({status})")
    click.echo("next: cd into it, `git init`, then `llmops validate`")
    if not report.ok:
        raise SystemExit(1)
