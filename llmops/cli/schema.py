"""``llmops schema``: print the JSON Schema of a manifest kind, or write them all."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("kind", required=False)
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write every kind's schema as <kind>.schema.json into this directory.",
)
def schema(kind: str | None, write_dir: Path | None) -> None:
    """Print the JSON Schema of KIND (LLMApp, EvalSuite, Environment, Pipeline).

    Without KIND, print all four as one JSON object keyed by kind. Editors use these
    through the `# yaml-language-server: $schema=...` line at the top of a manifest.
    """
    from llmops import api
    from llmops.domain.models import KINDS
    from llmops.manifests.schemas import dumps, resolve_kind, schema_file_name

    if write_dir is not None:
        write_dir.mkdir(parents=True, exist_ok=True)
        kinds = [resolve_kind(kind)] if kind else list(KINDS)
        for name in kinds:
            target = write_dir / schema_file_name(name)
            target.write_text(dumps(api.schema(name)), encoding="utf-8")
            click.echo(f"wrote {target}")
        return
    if kind:
        click.echo(dumps(api.schema(kind)), nl=False)
    else:
        click.echo(dumps({name: api.schema(name) for name in KINDS}), nl=False)
