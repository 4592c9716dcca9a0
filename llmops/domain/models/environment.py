"""The Environment kind: a deployment target, per-app overrides and the release pins.

Loaded by ``llmops.manifests``; read by deploy, promote, rollback and reconcile.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from llmops.domain.models.app import Resources
from llmops.domain.models.base import DnsLabel, Metadata, ReleaseId, Strict
from llmops.domain.models.secrets import SecretRef


class Target(Strict):
    """Where an environment runs."""

    kind: Literal["kubernetes", "docker", "local"] = Field(
        description="kubernetes (a cluster), docker (the local engine) or local (processes)."
    )
    namespace: DnsLabel | None = Field(
        default=None, description="Kubernetes namespace; required for kind kubernetes."
    )
    context: str | None = Field(
        default=None, description="kubeconfig context; default: the current one, or in-cluster."
    )
    base_port: int = Field(
        default=18080, ge=1024, le=65000, description="First host port for docker and local targets."
    )

    @model_validator(mode="after")
    def _namespace(self) -> Target:
        if self.kind == "kubernetes" and self.namespace is None:
            raise PydanticCustomError(
                "namespace_required",
                "target kind kubernetes needs namespace: the Kubernetes namespace to deploy into",
            )
        if self.kind != "kubernetes" and (self.namespace or self.context):
            raise PydanticCustomError(
                "namespace_unused",
                "namespace and context apply only to target kind kubernetes (got {kind})",
                {"kind": self.kind},
            )
        return self


class ModelOverride(Strict):
    """Per-environment model endpoint; not part of the release."""

    base_url: str | None = Field(default=None, description="Endpoint for this environment.")
    name: str | None = Field(default=None, min_length=1, description="Model id for this environment.")
    api_key: SecretRef | None = Field(default=None, description="API key reference for this environment.")


class AppOverride(Strict):
    """What differs for one app in this environment."""

    replicas: int | None = Field(default=None, ge=0, le=1000, description="Replica count.")
    resources: Resources | None = Field(default=None, description="Resource requests.")
    model: ModelOverride | None = Field(default=None, description="Model endpoint and key.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra plain environment variables.")


class EnvironmentSpec(Strict):
    """A deployment target and what runs there."""

    target: Target = Field(description="Where the apps run.")
    registry: str | None = Field(
        default=None, description="Image repository prefix, e.g. 127.0.0.1:5000/llm-apps."
    )
    drift_policy: Literal["correct", "report"] = Field(
        default="correct", description="What the reconciler does with hand-made changes."
    )
    overrides: dict[str, AppOverride] = Field(
        default_factory=dict, description="Per-app overrides, keyed by app name."
    )
    releases: dict[str, ReleaseId] = Field(
        default_factory=dict,
        description="The pins: which release of each app runs here. Promotion and rollback write them.",
    )


class Environment(Strict):
    """An environment: environments/<env>.yaml."""

    api_version: Literal["llmops.dev/v1"] = Field(description="Always llmops.dev/v1.")
    kind: Literal["Environment"] = Field(description="Always Environment.")
    metadata: Metadata = Field(description="Environment name (matches the file name).")
    spec: EnvironmentSpec = Field(description="The environment.")
