"""What one app should look like in one environment: a release plus the environment's overrides.

Pure. Called by ``llmops.ops`` (render, plan, apply) and the deploy targets. The serving
settings (replicas, port, resources, autoscaling, minAvailable, env) come from the
*release bundle*, because they are part of the release; the environment (read at HEAD)
contributes only its ``spec.overrides[<app>]``: replicas, resources, model endpoint, name
and API key reference, and extra plain environment variables.

The runtime contract (``llmops.domain.deploy``): ``LLMOPS_ENVIRONMENT`` always,
``LLMOPS_MODEL_URL`` / ``LLMOPS_MODEL_NAME`` when the environment overrides them, and
``LLMOPS_MODEL_API_KEY_ENV`` (the *name* of the variable holding the key) when the
environment's key reference differs from the release's. These contract variables win
over any variable of the same name in ``serving.env`` or ``overrides.env``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from llmops.domain.deploy import (
    ENV_API_KEY_VAR,
    ENV_ENVIRONMENT,
    ENV_MODEL_NAME,
    ENV_MODEL_URL,
    DesiredApp,
    SecretEnv,
)
from llmops.domain.errors import InvalidInput
from llmops.domain.models.app import Resources, Serving
from llmops.domain.models.environment import AppOverride, Environment
from llmops.domain.models.secrets import SecretRef, secret_env_name
from llmops.releases.bundle import Bundle


def secret_env(ref: SecretRef) -> SecretEnv:
    """How a secret reference reaches the process: a Kubernetes Secret key mounted as
    ``LLMOPS_SECRET_<NAME>_<KEY>``, a variable passed through from the deploying process,
    or a file (``name`` empty: nothing is set, the runtime reads the file)."""
    if ref.secret is not None:
        return SecretEnv(
            name=secret_env_name(ref.secret.name, ref.secret.key),
            secret_name=ref.secret.name,
            secret_key=ref.secret.key,
        )
    if ref.env is not None:
        return SecretEnv(name=ref.env, from_env=ref.env)
    assert ref.file is not None  # SecretRef holds exactly one of env, file, secret
    return SecretEnv(name="", file=ref.file)


def _release_parts(bundle: Bundle) -> tuple[Serving, SecretRef | None]:
    """The release's serving settings and API key reference, validated back from the bundle."""
    try:
        spec: dict[str, Any] = bundle.document["manifest"]["spec"]
        serving = Serving.model_validate(spec.get("serving") or {})
        raw_key = (spec.get("model") or {}).get("apiKey")
        key = None if raw_key is None else SecretRef.model_validate(raw_key)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(
            f"release bundle {bundle.release_id} has no readable manifest spec ({exc})"
        ) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(
            f"release bundle {bundle.release_id}: spec.serving/model.apiKey {where}: {first['msg']}"
        ) from exc
    return serving, key


def _resources(base: Resources, override: Resources | None) -> Resources:
    """The release's resources with only the fields the override sets replaced."""
    if override is None:
        return base
    changed = {name: getattr(override, name) for name in override.model_fields_set}
    return base.model_copy(update=changed)


def desired_app(bundle: Bundle, environment: Environment, image: str | None) -> DesiredApp:
    """The app of ``bundle`` as it should run in ``environment``, from ``image``.

    ``image`` is a reference by digest where one is known (kubernetes, docker), a tag
    reference otherwise, or None (local processes). Raises ``InvalidInput`` when the
    bundle's serving settings cannot be read back.
    """
    serving, release_key = _release_parts(bundle)
    env_name = environment.metadata.name
    override = environment.spec.overrides.get(bundle.app) or AppOverride()
    model = override.model

    plain: dict[str, str] = {**serving.env, **override.env}
    plain[ENV_ENVIRONMENT] = env_name
    if model is not None and model.base_url is not None:
        plain[ENV_MODEL_URL] = model.base_url
    if model is not None and model.name is not None:
        plain[ENV_MODEL_NAME] = model.name

    key_ref = (model.api_key if model is not None else None) or release_key
    secrets: tuple[SecretEnv, ...] = ()
    if key_ref is not None:
        secret = secret_env(key_ref)
        secrets = (secret,)
        if key_ref != release_key and secret.name:
            # the bundle names another key; tell the runtime which variable holds this one
            plain[ENV_API_KEY_VAR] = secret.name
    resources = _resources(serving.resources, override.resources)
    scaling = serving.autoscaling
    return DesiredApp(
        app=bundle.app,
        env=env_name,
        release=bundle.release_id,
        image=image,
        replicas=override.replicas if override.replicas is not None else serving.replicas,
        port=serving.port,
        cpu=resources.cpu,
        memory=resources.memory,
        env_vars=tuple(sorted(plain.items())),
        secret_env=secrets,
        autoscaling=(
            (scaling.min_replicas, scaling.max_replicas, scaling.target_cpu_utilization)
            if scaling is not None
            else None
        ),
        min_available=serving.min_available,
    )
