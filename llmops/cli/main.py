"""The ``llmops`` command group; commands are imported only when run (fast ``--help``).

Called by the console script and ``python -m llmops``. Domain errors become a one-line
message and an exit code here; nothing below the CLI prints or exits.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from llmops import __version__

#: name -> (module:attribute, one-line help). The help is here so ``--help`` imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("llmops.cli.validate:validate", "Check every manifest; report all problems."),
    "schema": ("llmops.cli.schema:schema", "Print or write the JSON Schema of the manifest kinds."),
    "init": ("llmops.cli.init:init", "Scaffold a new llmops repository that validates clean."),
    "eval": ("llmops.cli.eval:eval_", "Run an app's eval suites against its model; gate a stage."),
    "prompt": ("llmops.cli.prompt:prompt", "Render an app's prompt exactly as it would be sent."),
    "serve": ("llmops.cli.serve:serve", "Run an app as an HTTP server (invoke, chat, metrics)."),
    "release": ("llmops.cli.release:release", "Create, list, show and diff content-addressed releases."),
    "build": ("llmops.cli.build:build", "Build (and push) the container image of a release."),
    "archive": ("llmops.cli.archive:archive", "Verify the archive: ledger hash chain and objects."),
    "history": ("llmops.cli.archive:history", "Show the ledger: who released, promoted, rolled back."),
    "promote": ("llmops.cli.promote:promote", "Promote a gated release to the next stage via git."),
    "rollback": ("llmops.cli.promote:rollback", "Pin an env back to its last good release."),
    "hold": ("llmops.cli.promote:hold", "Hold automatic promotion of an app into an env."),
    "unhold": ("llmops.cli.promote:unhold", "Lift a hold on promoting an app into an env."),
    "render": ("llmops.cli.render:render", "Print an app's Kubernetes objects for an environment."),
    "controller": ("llmops.cli.controller:controller", "Reconcile continuously in a cluster (leader election, webhook, metrics)."),
    "plan": ("llmops.cli.deploy:plan", "Show what applying an environment would change, per object."),
    "apply": ("llmops.cli.deploy:apply", "Apply an environment's plan: blue/green, verify, keep the old on failure."),
    "reconcile": ("llmops.cli.reconcile:reconcile", "Make every environment match git: release, gate, deploy, promote."),
    "up": ("llmops.cli.up:up", "Run the whole pipeline on this machine (stop it with up --down)."),
    "stub-model": ("llmops.cli.stub:stub_model", "Run the OpenAI-compatible stub model (for tests and demos; not a real LLM)."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="llmops")
def cli() -> None:
    """llmops: a GitOps release pipeline for LLM applications.

    Declare apps, environments and pipelines as YAML in git; llmops validates them,
    turns each change into a content-addressed release, gates it on evals and
    promotes it dev → test → prod.
    """


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; map every llmops error to its exit code without a traceback."""
    from llmops.domain.errors import LlmopsError

    try:
        return cli.main(args=argv, prog_name="llmops", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except LlmopsError as exc:
        for diagnostic in getattr(exc, "diagnostics", ()):
            click.echo(diagnostic.render(), err=True)
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:
        if os.environ.get("LLMOPS_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in llmops; rerun with LLMOPS_DEBUG=1 for the traceback and report it.",
            err=True,
        )
        sys.exit(3)
