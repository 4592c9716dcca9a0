"""``llmops build``: build (and push) the container image of a release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from llmops.cli.output import echo_json, output_option


@click.command()
@click.argument("app", required=False)
@click.option(
    "--controller", is_flag=True,
    help="Build the image of `llmops controller` instead of an app's (needs a base image with git).",
)
@click.option(
    "--tag", "tag", metavar="REPO[:TAG]",
    help="With --controller: the image's repository (and tag) [default: <env spec.registry "
    "or llmops>/llmops-controller:<llmops version>-<hash of the wheels>].",
)  # fmt: skip
@click.option(
    "--path", default=".", show_default=True,
    type=click.Path(file_okay=False, path_type=Path), help="Repository root.",
)  # fmt: skip
@click.option("--env", "env", help="Environment whose spec.registry names the image repository.")
@click.option(
    "--release", "release_ref",
    help="Build this archived release (id or unique digest prefix) [default: the env's pin, "
    "else the work tree's release, archived first].",
)  # fmt: skip
@click.option("--push", is_flag=True, help="Push the image to the environment's registry.")
@click.option("--dry-run", is_flag=True, help="Print the plan (Dockerfile, tag, build, push); do nothing.")
@click.option(
    "--base-image", help="Base image with python3 (default python:3.12-slim); never pulled if present."
)
@click.option(
    "--python", "python",
    help="Python version of the base image, for the wheels (default: from the base image tag, else 3.12).",
)  # fmt: skip
@click.option(
    "--archive", "archive", type=click.Path(file_okay=False, path_type=Path),
    help="Archive directory (default: the pipeline's archive).",
)  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="Do not stream the build's progress.")
@output_option(("text", "json"))
def build(
    app: str | None,
    controller: bool,
    tag: str | None,
    path: Path,
    env: str | None,
    release_ref: str | None,
    push: bool,
    dry_run: bool,
    base_image: str | None,
    python: str | None,
    archive: Path | None,
    quiet: bool,
    output: str,
) -> None:
    """Build the container image of APP's release, tagged <repository>:<release digest>.

    The repository is <env spec.registry>/APP, or llmops/APP without --env. Layers go
    base → dependency wheels → llmops → release bundle, so a prompt-only change rebuilds
    one small layer. The wheels are downloaded on this machine for the image's Python
    (cached in ~/.cache/llmops); the build itself needs no network.

    Nothing is rebuilt or pushed when the engine or registry has the tag already. Each
    image is recorded once in the archive ledger (event built, with its digest when
    pushed). Needs a Docker Engine (DOCKER_HOST or /var/run/docker.sock).

    With --controller (and no APP) it builds the image of `llmops controller` from the same
    wheel layers, with no release; the base image must have git (make one with
    EXTRA_PACKAGES='git ca-certificates' scripts/make-base-image.sh TAG).
    """
    from llmops import api

    if controller:
        if app is not None or release_ref is not None or archive is not None:
            raise click.UsageError("--controller builds no app: drop APP, --release and --archive")
        _controller(path, env, tag, push, dry_run, base_image, python, quiet, output)
        return
    if app is None:
        raise click.UsageError("missing argument APP (or give --controller)")
    if tag is not None:
        raise click.UsageError("--tag is for --controller; app images are tagged by release")
    from llmops.ops.build import build_release
    from llmops.ops.release import archive_for

    repo = api.load(path)
    store = archive_for(repo, archive)
    stream = None if quiet or output == "json" or dry_run else _progress
    result = build_release(
        repo,
        app,
        store,
        env=env,
        release_ref=release_ref,
        push=push,
        dry_run=dry_run,
        base_image=base_image,
        python=python,
        on_line=stream,
    )
    if output == "json":
        echo_json(_json(result))
        return
    plan = result.plan
    if dry_run:
        click.echo(plan.dockerfile.rstrip("\n"))
        click.echo("")
        click.echo(f"release  {plan.release} (from the {plan.release_source})")
        click.echo(f"tag      {plan.reference}")
        click.echo(f"build    {plan.build}: {plan.build_reason}")
        click.echo(f"push     {plan.push}: {plan.push_reason}")
        click.echo("(dry run: nothing built, pushed or recorded)")
        return
    if result.release_created:
        click.echo(f"released {plan.release}")
    what = []
    if result.built:
        what.append(f"built in {result.seconds.get('build', 0):.1f}s "
                    f"({result.cached_steps}/{result.steps} steps cached)")  # fmt: skip
    else:
        what.append(f"build skipped: {plan.build_reason}")
    if result.pushed:
        what.append(f"pushed {result.digest}")
    elif plan.push == "skip":
        what.append(f"push skipped: {plan.push_reason}")
    click.echo(f"{result.image}  ({'; '.join(what)})")
    if result.recorded is not None:
        click.echo(f"recorded: built #{result.recorded.seq} in the ledger")


def _controller(
    path: Path,
    env: str | None,
    tag: str | None,
    push: bool,
    dry_run: bool,
    base_image: str | None,
    python: str | None,
    quiet: bool,
    output: str,
) -> None:
    from llmops.ops.build import build_controller

    environment = None
    if env is not None:
        from llmops import api
        from llmops.domain.errors import UsageError

        source = api.load(path).environments.get(env)
        if source is None:
            raise UsageError(f"no environment named {env!r} under {path}")
        environment = source.environment
    result = build_controller(
        environment=environment,
        tag=tag,
        push=push,
        dry_run=dry_run,
        base_image=base_image,
        python=python,
        on_line=None if quiet or output == "json" or dry_run else _progress,
    )
    plan = result.plan
    if output == "json":
        echo_json(
            {
                "repository": plan.repository,
                "tag": plan.reference,
                "baseImage": plan.base_image,
                "python": plan.python,
                "build": plan.build,
                "buildReason": plan.build_reason,
                "push": plan.push,
                "pushReason": plan.push_reason,
                "dryRun": result.dry_run,
                "built": result.built,
                "pushed": result.pushed,
                "image": result.image,
                "imageId": result.image_id,
                "digest": result.digest,
                "steps": result.steps,
                "cachedSteps": result.cached_steps,
                "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
                "labels": plan.labels,
                "dockerfile": plan.dockerfile,
            }
        )
        return
    if dry_run:
        click.echo(plan.dockerfile.rstrip("\n"))
        click.echo("")
        click.echo(f"tag      {plan.reference}")
        click.echo(f"build    {plan.build}: {plan.build_reason}")
        click.echo(f"push     {plan.push}: {plan.push_reason}")
        click.echo("(dry run: nothing built or pushed)")
        return
    what = []
    if result.built:
        what.append(f"built in {result.seconds.get('build', 0):.1f}s "
                    f"({result.cached_steps}/{result.steps} steps cached)")  # fmt: skip
    else:
        what.append(f"build skipped: {plan.build_reason}")
    if result.pushed:
        what.append(f"pushed {result.digest}")
    elif plan.push == "skip":
        what.append(f"push skipped: {plan.push_reason}")
    click.echo(f"{result.image}  ({'; '.join(what)})")
    click.echo(f"install: llmops controller manifests --repo URL --image {result.image} | kubectl apply -f -")


def _progress(line: str) -> None:
    click.echo(line, err=True)


def _json(result: Any) -> dict[str, Any]:
    plan = result.plan
    return {
        "app": plan.app,
        "release": plan.release,
        "releaseSource": plan.release_source,
        "releaseCreated": result.release_created,
        "repository": plan.repository,
        "tag": plan.reference,
        "baseImage": plan.base_image,
        "python": plan.python,
        "build": plan.build,
        "buildReason": plan.build_reason,
        "push": plan.push,
        "pushReason": plan.push_reason,
        "dryRun": result.dry_run,
        "built": result.built,
        "pushed": result.pushed,
        "builds": result.builds,
        "pushes": result.pushes,
        "image": result.image,
        "imageId": result.image_id,
        "digest": result.digest,
        "steps": result.steps,
        "cachedSteps": result.cached_steps,
        "recorded": result.recorded is not None,
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        "labels": plan.labels,
        "dockerfile": plan.dockerfile,
    }
