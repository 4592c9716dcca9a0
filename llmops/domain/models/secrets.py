"""References to secrets (API keys, tokens): where to read them, never their value.

Used by ``app`` (model.apiKey) and ``environment`` (overrides). A literal key in a
manifest is a validation error, and its value is never echoed in the message.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from llmops.domain.models.base import Strict

LITERAL_SECRET_MESSAGE = (
    "secrets must never be written in a manifest (the value is not shown here); "
    "reference one instead: {env: OPENAI_API_KEY}, {file: /var/run/secrets/llm/api-key} "
    "or, on Kubernetes, {secret: {name: openai, key: api-key}}"
)

#: prefix of the environment variable a Kubernetes Secret key is mounted as
SECRET_ENV_PREFIX = "LLMOPS_SECRET_"


def secret_env_name(name: str, key: str) -> str:
    """The environment variable a Kubernetes Secret key is mounted as, e.g.
    ``secret_env_name("openai", "api-key") == "LLMOPS_SECRET_OPENAI_API_KEY"``.

    Shared by the runtime (which reads it) and deploy (which mounts it), so it lives here.
    """

    def snake(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9]", "_", text).upper()

    return f"{SECRET_ENV_PREFIX}{snake(name)}_{snake(key)}"


class SecretKeyRef(Strict):
    """A key of a Kubernetes Secret in the target namespace."""

    name: str = Field(min_length=1, description="Name of the Secret.")
    key: str = Field(min_length=1, description="Key inside the Secret.")


class SecretRef(Strict):
    """Where a secret comes from at run time. Exactly one of env, file or secret."""

    env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of an environment variable holding the secret.",
    )
    file: str | None = Field(
        default=None, min_length=1, description="Path of a mounted file holding the secret."
    )
    secret: SecretKeyRef | None = Field(
        default=None,
        description="A Kubernetes Secret key, mounted as an environment variable when deployed.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_literal(cls, data: Any) -> Any:
        if isinstance(data, str | int | float):
            raise PydanticCustomError("literal_secret", LITERAL_SECRET_MESSAGE)
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [n for n in ("env", "file", "secret") if getattr(self, n) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "secret_ref",
                "give exactly one of env, file or secret (got {given})",
                {"given": ", ".join(given) or "none"},
            )
        return self
