"""``llmops serve``: run one app locally as an HTTP server (the same runtime the image runs)."""

from __future__ import annotations

from pathlib import Path

import click

from llmops.domain.deploy import ENV_ENVIRONMENT, ENV_MODEL_NAME, ENV_MODEL_URL


@click.command()
@click.argument("app")
@click.option(
    "--path",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The repository root.",
)
@click.option(
    "--env",
    "environment",
    envvar=ENV_ENVIRONMENT,
    help=f"Apply this environment's overrides (model endpoint, key); with --bundle and no "
    f"environments/ directory, only its name (a label)  [env: {ENV_ENVIRONMENT}]",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port to listen on  [default: the app's spec.serving.port, 8080]",
)
@click.option(
    "--reload",
    is_flag=True,
    help="Reload when the app's files change; keep the last good version on errors.",
)
@click.option(
    "--model-url",
    envvar=ENV_MODEL_URL,
    help="Call this OpenAI-compatible base URL instead (e.g. a stub: http://127.0.0.1:9000/v1)"
    f"  [env: {ENV_MODEL_URL}]",
)
@click.option(
    "--model-name",
    envvar=ENV_MODEL_NAME,
    help=f"Call this model id instead of the app's spec.model.name  [env: {ENV_MODEL_NAME}]",
)
@click.option(
    "--bundle",
    "bundle_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve this release bundle file (what the image runs) instead of the work tree.",
)
@click.option(
    "--release",
    "release_ref",
    help="Serve this archived release (id or unique digest prefix) instead of the work tree.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Least severe JSON log line written to stderr.",
)
def serve(
    app: str,
    path: Path,
    environment: str | None,
    host: str,
    port: int | None,
    reload: bool,
    model_url: str | None,
    model_name: str | None,
    bundle_path: Path | None,
    release_ref: str | None,
    log_level: str,
) -> None:
    """Serve APP from the work tree: POST /v1/apps/APP/invoke, an OpenAI-compatible
    POST /v1/chat/completions (model = APP), /healthz, /readyz and /metrics.

    From the work tree the release is 'dev' and --reload follows edits. With --bundle or
    --release the archived release is served, byte for byte what was gated, under its id.
    Stop with Ctrl-C or SIGTERM: requests in flight are finished first.

    In an image (what `llmops build` makes) the settings come from the environment:
    LLMOPS_ENVIRONMENT, LLMOPS_MODEL_URL, LLMOPS_MODEL_NAME and LLMOPS_MODEL_API_KEY_ENV,
    the name of the variable holding the API key.
    """
    from llmops import api
    from llmops.domain.errors import UsageError
    from llmops.runtime.loaded import LoadedApp, load_app
    from llmops.runtime.serving import serve as run

    if model_url is not None and not model_url.startswith(("http://", "https://")):
        raise UsageError(
            f"--model-url must be an http(s) URL, e.g. http://127.0.0.1:9000/v1 (got {model_url!r})"
        )

    if bundle_path is not None or release_ref is not None:
        if reload:
            raise UsageError("--reload follows a work tree; a release never changes")
        if bundle_path is not None and release_ref is not None:
            raise UsageError("give --bundle or --release, not both")
        return _serve_release(
            app,
            path,
            bundle_path,
            release_ref,
            environment,
            host,
            port,
            model_url,
            model_name,
            log_level,
        )

    def load() -> LoadedApp:
        return load_app(
            api.load(path),
            app,
            environment=environment,
            model_url=model_url,
            model_name=model_name,
        )

    loaded = load()
    run(
        loaded,
        load,
        host=host,
        port=port or loaded.app.spec.serving.port,
        reload=reload,
        log_level=log_level,
    )


def _serve_release(
    app: str,
    path: Path,
    bundle_path: Path | None,
    release_ref: str | None,
    environment: str | None,
    host: str,
    port: int | None,
    model_url: str | None,
    model_name: str | None,
    log_level: str,
) -> None:
    import tempfile

    from llmops import api
    from llmops.domain.errors import InvalidInput, SourceError, UsageError
    from llmops.releases.bundle import load_bundle
    from llmops.runtime.bundled import materialize
    from llmops.runtime.loaded import LoadedApp, load_app
    from llmops.runtime.serving import serve as run

    if bundle_path is not None:
        try:
            bundle = load_bundle(bundle_path.read_bytes())
        except OSError as exc:
            raise SourceError(f"{bundle_path}: {exc.strerror or exc}") from None
        except InvalidInput as exc:
            raise InvalidInput(f"{bundle_path}: {exc.message}") from None
    else:
        assert release_ref is not None
        bundle, _ = api.release_show(path, release_ref)
    if bundle.app != app:
        raise UsageError(f"the release is of app {bundle.app!r}, not {app!r}")
    # an environment's overrides apply when the repository has its environments/; without
    # one (in an image) the name is only a label and the deployer's LLMOPS_* variables rule
    with_overrides = environment is not None and (path / "environments").is_dir()
    env_repo = api.load(path) if with_overrides else None
    with tempfile.TemporaryDirectory(prefix="llmops-release-") as tmp:
        root = materialize(bundle, Path(tmp))
        if env_repo is not None:
            import shutil

            shutil.copytree(Path(env_repo.root) / "environments", root / "environments")

        def load() -> LoadedApp:
            return load_app(
                api.load(root),
                app,
                environment=environment if with_overrides else None,
                environment_label=environment,
                model_url=model_url,
                model_name=model_name,
                release=bundle.release_id,
            )

        loaded = load()
        run(
            loaded,
            load,
            host=host,
            port=port or loaded.app.spec.serving.port,
            reload=False,
            log_level=log_level,
        )
