"""An app ready to serve: its manifest, compiled templates, output schema, model endpoint
and canary; built by ``llmops serve`` and ``llmops prompt render`` from a loaded Repo.

The release id is ``dev`` when the app comes from a work tree; ``llmops.runtime.bundled``
lays an archived release out as a one-app repository and passes its real id.

Model settings are resolved in this order, last wins: the app's ``spec.model``, the
environment's ``spec.overrides[<app>].model`` (``baseUrl``, ``name``, ``apiKey``), then an
explicit ``model_url`` / ``model_name`` (``--model-url``, ``--model-name``, or in an image
``LLMOPS_MODEL_URL`` / ``LLMOPS_MODEL_NAME``) and, for the key, ``LLMOPS_MODEL_API_KEY_ENV``:
the *name* of the variable that holds it. An API key that cannot be resolved does not stop
loading: the problem is kept in ``ModelTarget.api_key_problem`` for the server to report.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.domain.deploy import ENV_API_KEY_VAR
from llmops.domain.diagnostics import Diagnostic
from llmops.domain.errors import ManifestInvalid, Permanent, UsageError
from llmops.domain.ids import IDENTIFIER_RE
from llmops.domain.models.app import DEFAULT_BASE_URLS, InputSpec, LLMApp, Pricing
from llmops.domain.models.secrets import SecretRef
from llmops.domain.repo import AppSource, Repo
from llmops.runtime.canary import canary_token
from llmops.runtime.guardrails import InputPolicy, OutputPolicy
from llmops.runtime.inputs import bind_inputs
from llmops.runtime.params import openai_params
from llmops.runtime.render import CompiledPrompt, RenderedPrompt, compile_prompt
from llmops.runtime.sandbox import RenderLimits
from llmops.runtime.secrets import read_secret_file, resolve_api_key

DEV_RELEASE = "dev"
LOCAL_ENVIRONMENT = "local"
_MAX_SCHEMA_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """Where and how the model is called; the key itself is never printed."""

    provider: str
    name: str
    base_url: str
    params: dict[str, Any]
    timeout_seconds: float
    max_retries: int
    pricing: Pricing | None = None
    api_key_ref: SecretRef | None = None
    api_key: str | None = field(default=None, repr=False)
    api_key_problem: str | None = None


@dataclass(frozen=True, slots=True)
class LoadedApp:
    """Everything needed to render and answer one app's requests; immutable, swapped whole
    on reload."""

    name: str
    app: LLMApp
    release: str
    environment: str
    prompt: CompiledPrompt
    model: ModelTarget
    output: OutputPolicy
    output_schema: dict[str, Any] | None
    app_dir: Path
    watch: tuple[Path, ...]
    #: Derived once here rather than per request (the app is swapped whole on reload, so
    #: they never outlive it): the declared inputs, the prepared input guardrails and
    #: the template built-ins (shared by every request: never changed; a caller that
    #: wants its own takes :meth:`builtins`).
    declared: Mapping[str, InputSpec] = field(init=False, repr=False, compare=False)
    input_policy: InputPolicy = field(init=False, repr=False, compare=False)
    builtin_values: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = self.app.spec
        object.__setattr__(self, "declared", spec.prompt.inputs)
        object.__setattr__(self, "input_policy", InputPolicy(spec.guardrails.input))
        object.__setattr__(self, "builtin_values", self.builtins())

    @property
    def canary(self) -> str:
        return self.output.canary

    def builtins(self) -> dict[str, Any]:
        """The template built-ins besides ``inputs``."""
        return {
            "app": self.name,
            "release": self.release,
            "environment": self.environment,
            "canary": self.output.canary,
        }

    def bind(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Validate ``given`` against the declared inputs (``InputRejected``) with defaults."""
        return bind_inputs(self.declared, given)

    def render(self, given: Mapping[str, Any]) -> RenderedPrompt:
        """Bind ``given`` and render the messages (``InputRejected``, ``RenderFailed``)."""
        return self.prompt.render(self.bind(given), self.builtin_values)


def find_app(repo: Repo, name: str) -> AppSource:
    """The app called ``name``; ``UsageError`` with a did-you-mean otherwise."""
    source = repo.apps.get(name)
    if source is None:
        known = sorted(repo.apps)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(known) if known else "none"
        raise UsageError(f"no app named {name!r} in {repo.root}{hint} (apps: {listing})")
    return source


def load_app(
    repo: Repo,
    name: str,
    *,
    environment: str | None = None,
    model_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    read_file: Callable[[str], str] = read_secret_file,
    limits: RenderLimits | None = None,
    release: str = DEV_RELEASE,
    model_name: str | None = None,
    environment_label: str | None = None,
) -> LoadedApp:
    """Build the :class:`LoadedApp` for ``name`` in ``repo`` (templates compiled, schema read).

    ``environment`` applies that Environment's overrides (it must exist in ``repo``);
    ``environment_label`` only names the environment (a deployed image: the deployer has
    resolved the overrides into ``model_url``, ``model_name`` and the key variable).

    Raises ``UsageError`` for an unknown app or environment and ``ManifestInvalid`` when a
    template or the schema file cannot be used.
    """
    source = find_app(repo, name)
    app = source.app
    root = Path(repo.root)
    app_dir = root / "manifests" / name
    override = None
    env_file: Path | None = None
    if environment is not None:
        env_source = repo.environments.get(environment)
        if env_source is None:
            known = ", ".join(sorted(repo.environments)) or "none"
            raise UsageError(f"no environment named {environment!r} (environments: {known})")
        app_override = env_source.environment.spec.overrides.get(name)
        override = app_override.model if app_override else None
        env_file = root / "environments" / f"{environment}.yaml"
        if not env_file.exists():
            env_file = env_file.with_suffix(".yml")
    prompt = compile_prompt(
        app_dir, source.dir, app.spec.prompt.system, app.spec.prompt.user, limits
    )
    schema = _output_schema(app, app_dir, source.dir)
    spec = app.spec.model
    base_url = model_url or (override.base_url if override else None) or spec.base_url
    base_url = base_url or DEFAULT_BASE_URLS.get(spec.provider)
    if base_url is None:
        raise UsageError(
            f"app {name!r}: provider {spec.provider!r} has no default endpoint; "
            "set spec.model.baseUrl or pass --model-url"
        )
    key_ref = (override.api_key if override else None) or spec.api_key
    env = os.environ if environ is None else environ
    api_key, problem = None, None
    key_var = env.get(ENV_API_KEY_VAR)
    if key_var:
        if IDENTIFIER_RE.match(key_var):
            key_ref = SecretRef(env=key_var)
        else:
            # the value is not shown: it may be the key itself, set by mistake
            problem = (
                f"{ENV_API_KEY_VAR} must be the name of the variable holding the API key "
                "(letters, digits and _), not the key"
            )
    try:
        if problem is None:
            api_key = resolve_api_key(key_ref, env, read_file)
    except Permanent as exc:
        problem = exc.message
    model = ModelTarget(
        provider=spec.provider,
        name=model_name or (override.name if override else None) or spec.name,
        base_url=base_url,
        params=openai_params(spec.params),
        timeout_seconds=spec.timeout_seconds,
        max_retries=spec.max_retries,
        pricing=spec.pricing,
        api_key_ref=key_ref,
        api_key=api_key,
        api_key_problem=problem,
    )
    guard = app.spec.guardrails.output
    output = OutputPolicy(
        canary=canary_token(release),
        block_canary=guard.block_canary,
        max_length=guard.max_length,
        validator=_validator(schema) if schema is not None else None,
        redact=tuple(guard.redact_pii),
        repair_retries=guard.repair_retries,
    )
    watch = (app_dir, *([env_file] if env_file is not None else []))
    return LoadedApp(
        name=name,
        app=app,
        release=release,
        environment=environment or environment_label or LOCAL_ENVIRONMENT,
        prompt=prompt,
        model=model,
        output=output,
        output_schema=schema,
        app_dir=app_dir,
        watch=watch,
    )


def _output_schema(app: LLMApp, app_dir: Path, display_dir: str) -> dict[str, Any] | None:
    value = app.spec.guardrails.output.json_schema
    if value is None or isinstance(value, dict):
        return value
    display = f"{display_dir}/{value}"
    path = (app_dir / value).resolve()
    try:
        if not path.is_relative_to(app_dir.resolve()):
            raise _invalid(display, "the output schema must be inside the app directory")
        if path.stat().st_size > _MAX_SCHEMA_BYTES:
            raise _invalid(display, f"the output schema is over {_MAX_SCHEMA_BYTES:,} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _invalid(display, f"cannot read the output schema: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise _invalid(display, f"the output schema is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _invalid(display, "the output schema must be a JSON object")
    return data


def _validator(schema: dict[str, Any]) -> Any:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise _invalid("output schema", f"not a valid JSON Schema: {exc.message}") from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _invalid(file: str, message: str) -> ManifestInvalid:
    diagnostic = Diagnostic(file, 0, 0, "", message)
    return ManifestInvalid(diagnostic.render(), [diagnostic])
