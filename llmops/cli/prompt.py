"""``llmops prompt``: work with an app's prompt templates (``render`` prints the exact
messages a request would send to the model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from llmops.cli.output import echo_json


@click.group()
def prompt() -> None:
    """Work with an app's prompt templates."""


@prompt.command("render")
@click.argument("app")
@click.option(
    "-v",
    "--var",
    "variables",
    multiple=True,
    metavar="KEY=VALUE",
    help="An input value, read as the input's declared type; repeat for each input.",
)
@click.option("--env", "environment", help="Render as in this environment.")
@click.option(
    "--path",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The repository root.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text shows each message under a role header; json is for machines.",
)
def render(
    app: str, variables: tuple[str, ...], environment: str | None, path: Path, output: str
) -> None:
    """Render APP's prompt with the given inputs and print the messages exactly as they
    would be sent: the same sandbox, defaults, checks and built-ins as `llmops serve`.

    Exit 1 when an input is missing, unknown or of the wrong type, or a template fails.
    """
    from llmops import api
    from llmops.runtime.errors import InputProblem, InputRejected
    from llmops.runtime.guardrails import first_input_failure
    from llmops.runtime.inputs import coerce_text
    from llmops.runtime.loaded import load_app

    loaded = load_app(api.load(path), app, environment=environment)
    declared = loaded.app.spec.prompt.inputs
    given: dict[str, Any] = {}
    problems: list[InputProblem] = []
    for item in variables:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(InputProblem(item, "-v expects KEY=VALUE"))
            continue
        try:
            given[key] = coerce_text(declared.get(key), raw)
        except ValueError as exc:
            problems.append(InputProblem(key, str(exc)))
    if problems:
        raise InputRejected(problems)
    rendered = loaded.render(given)
    blocked = first_input_failure(rendered.inputs, loaded.app.spec.guardrails.input)
    if blocked is not None:
        click.echo(
            f"warning: guardrail {blocked.name} would block this request: {blocked.reason}",
            err=True,
        )
    if output == "json":
        echo_json(
            {
                "app": loaded.name,
                "release": loaded.release,
                "environment": loaded.environment,
                "model": {
                    "name": loaded.model.name,
                    "baseUrl": loaded.model.base_url,
                    "params": loaded.model.params,
                },
                "inputs": rendered.inputs,
                "messages": [{"role": m.role, "content": m.content} for m in rendered.messages],
            }
        )
        return
    for index, message in enumerate(rendered.messages):
        if index:
            click.echo()
        click.echo(f"--- {message.role} ---")
        click.echo(message.content)
