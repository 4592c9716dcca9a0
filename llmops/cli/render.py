"""``llmops render``: print the Kubernetes objects of one app in one environment."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click


@click.command()
@click.argument("app")
@click.option("--env", "env", required=True, help="The environment whose overrides and pin apply.")
@click.option(
    "--path",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Repository root.",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="A multi-document YAML stream, or a JSON List.",
)
@click.option(
    "--release",
    "release",
    help="Render this release (id, unique digest prefix, or APP@work)  "
    "[default: the environment's pin, else the work tree]",
)
@click.option(
    "--colour",
    "colour",
    type=click.Choice(["blue", "green"]),
    default="blue",
    show_default=True,
    help="The active colour: the one the Service <app>, HPA and PDB point at.",
)
@click.option(
    "--archive",
    "archive",
    type=click.Path(file_okay=False, path_type=Path),
    help="Archive directory (default: the pipeline's archive).",
)
def render(
    app: str,
    env: str,
    path: Path,
    output: str,
    release: str | None,
    colour: str,
    archive: Path | None,
) -> None:
    """Print the Kubernetes objects of APP in ENV, exactly as a deploy applies them.

    Per colour a ConfigMap, Deployment and Service <app>-<colour>; the Service <app>
    selecting the active colour; an HPA and a PodDisruptionBudget <app> when configured.
    Secrets appear only as secretKeyRef references. Nothing is applied or written.
    """
    import json

    from llmops import api
    from llmops.ops.render import render as run

    rendered = run(
        api.load(path),
        app,
        env,
        release=release,
        colour="green" if colour == "green" else "blue",
        archive=archive,
    )
    for note in rendered.notes:
        click.echo(f"note: {note}", err=True)
    if output == "json":
        items = list(rendered.objects)
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
        return
    click.echo(yaml_stream(rendered.objects), nl=False)


#: plain scalars Kubernetes' YAML reader (YAML 1.1 rules) takes for a number or a boolean
#: although PyYAML writes them unquoted: ``1e5``, ``y``, ``N``
_AMBIGUOUS = re.compile(r"^(?:[yYnN]|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)$")


def yaml_stream(objects: Sequence[dict[str, Any]]) -> str:
    """A multi-document YAML stream Kubernetes reads back exactly (strings stay strings)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        if _AMBIGUOUS.match(value):
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
        return dumper.represent_str(value)

    Dumper.add_representer(str, represent_str)
    return yaml.dump_all(
        objects,
        Dumper=Dumper,
        sort_keys=False,
        default_flow_style=False,
        explicit_start=True,
        allow_unicode=True,
        width=1000,
    )
