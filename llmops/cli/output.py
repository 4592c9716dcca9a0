"""Rendering helpers shared by commands: JSON, GitHub workflow commands, rich tables.

Called by the modules of ``llmops.cli``; rich is imported only when a table is drawn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

from llmops.domain.diagnostics import Diagnostic

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("text", "json", "github")


def output_option(formats: Sequence[str] = FORMATS) -> Callable[[F], F]:
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(list(formats)),
        default="text",
        show_default=True,
        help="text for people, json for machines, github for workflow annotations.",
    )


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False))


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(diagnostic: Diagnostic, title: str) -> str:
    """A GitHub Actions workflow command that shows ``diagnostic`` on the pull request."""
    level = "error" if diagnostic.severity == "error" else "warning"
    props = [f"file={_escape_property(diagnostic.file)}"]
    if diagnostic.line > 0:
        props += [f"line={diagnostic.line}", f"col={diagnostic.column}"]
    props.append(f"title={_escape_property(title)}")
    body = f"{diagnostic.path}: {diagnostic.message}" if diagnostic.path else diagnostic.message
    return f"::{level} {','.join(props)}::{_escape_data(body)}"


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table for people (rich, imported lazily)."""
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*(str(cell) for cell in row))
    import sys

    width = None if sys.stdout.isatty() else 200
    Console(soft_wrap=True, width=width).print(grid)


def short_release(release: str | None) -> str:
    """``app@sha256:4a698de4…`` shortened to ``app@4a698de4a0f3`` for tables."""
    if not release:
        return "-"
    app, _, digest = release.partition("@sha256:")
    return f"{app}@{digest[:12]}" if digest else release


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
