"""Deployment values shared by build, deploy targets, reconcile and the CLI. Pure, frozen.

``DesiredApp`` is what one app should look like in one environment (a release plus the
environment's overrides); a target compares it with what runs (``LiveApp``) into a
``DeployPlan`` of ``Change`` values, and applying the plan returns ``Deployed`` values.
The runtime contract of a deployed app (the environment variables a container or a
local process is started with) is named here once, so render, build and the runtime
agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from llmops.domain.archive import canonical_json, sha256_hex

# --- the runtime contract: environment variables `llmops serve --bundle` reads ----------

#: the environment name, a label in logs and metrics
ENV_ENVIRONMENT = "LLMOPS_ENVIRONMENT"
#: the model endpoint override (an OpenAI-compatible base URL)
ENV_MODEL_URL = "LLMOPS_MODEL_URL"
#: the model id override
ENV_MODEL_NAME = "LLMOPS_MODEL_NAME"
#: the *name* of the environment variable that holds the API key (never the key itself)
ENV_API_KEY_VAR = "LLMOPS_MODEL_API_KEY_ENV"
#: where the image keeps the release bundle
BUNDLE_PATH_IN_IMAGE = "/srv/llmops/release.json"

#: labels every object llmops owns carries (Kubernetes labels, Docker labels)
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "llmops"
APP_LABEL = "app.kubernetes.io/name"
ENV_LABEL = "llmops.dev/environment"
RELEASE_ANNOTATION = "llmops.dev/release"
COLOUR_LABEL = "llmops.dev/colour"
FINGERPRINT_ANNOTATION = "llmops.dev/fingerprint"

Colour = Literal["blue", "green"]
TargetKind = Literal["kubernetes", "docker", "local"]
ChangeKind = Literal["create", "update", "delete", "unchanged"]
Outcome = Literal["deployed", "unchanged", "rolled-back", "failed", "pruned"]


def other_colour(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"


@dataclass(frozen=True, slots=True)
class SecretEnv:
    """An environment variable filled from a secret reference at run time (never a value).

    Kubernetes: ``secret_name``/``secret_key`` of a Secret. Docker and local: ``from_env``,
    the variable of the deploying process that is passed through, or ``file``.
    """

    name: str
    secret_name: str | None = None
    secret_key: str | None = None
    from_env: str | None = None
    file: str | None = None


@dataclass(frozen=True, slots=True)
class DesiredApp:
    """One app as it should run in one environment."""

    app: str
    env: str
    release: str
    #: image reference, by digest where known (kubernetes, docker); None for local
    image: str | None
    replicas: int
    port: int
    cpu: str
    memory: str
    #: plain environment variables, sorted by name (the runtime contract plus spec/overrides)
    env_vars: tuple[tuple[str, str], ...] = ()
    secret_env: tuple[SecretEnv, ...] = ()
    #: (minReplicas, maxReplicas, targetCPUUtilization) when an HPA is wanted
    autoscaling: tuple[int, int, int] | None = None
    min_available: int | None = None

    @property
    def digest(self) -> str:
        """The release digest (hex), the part after ``sha256:``."""
        return self.release.rsplit(":", 1)[-1]

    @property
    def fingerprint(self) -> str:
        """A hash of everything above: equal fingerprints mean nothing to do."""
        body = {
            "app": self.app,
            "env": self.env,
            "release": self.release,
            "image": self.image,
            "replicas": self.replicas,
            "port": self.port,
            "cpu": self.cpu,
            "memory": self.memory,
            "env_vars": [list(p) for p in self.env_vars],
            "secret_env": [
                [s.name, s.secret_name, s.secret_key, s.from_env, s.file] for s in self.secret_env
            ],
            "autoscaling": list(self.autoscaling) if self.autoscaling else None,
            "min_available": self.min_available,
        }
        return sha256_hex(canonical_json(body))[:32]


@dataclass(frozen=True, slots=True)
class LiveApp:
    """What runs now for one app in one environment, as the target reports it."""

    app: str
    env: str
    release: str | None
    fingerprint: str | None
    colour: Colour | None
    ready: bool
    endpoint: str | None = None
    #: fields changed by hand since llmops applied them ("field: live != desired")
    drift: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """One object (or process) to create, update, delete, or leave alone."""

    kind: ChangeKind
    app: str
    #: what the target calls it, e.g. ``Deployment/support-bot-blue`` or ``process support-bot``
    object: str
    #: human-readable diff lines (``- old`` / ``+ new``); empty for unchanged
    diff: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeployPlan:
    """Desired vs live for one environment; computed without side effects."""

    env: str
    target: TargetKind
    desired: tuple[DesiredApp, ...]
    changes: tuple[Change, ...]

    @property
    def noop(self) -> bool:
        return all(c.kind == "unchanged" for c in self.changes)

    def for_app(self, app: str) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.app == app)


@dataclass(frozen=True, slots=True)
class Deployed:
    """What applying a plan did for one app."""

    app: str
    env: str
    release: str | None
    outcome: Outcome
    colour: Colour | None = None
    endpoint: str | None = None
    message: str = ""
    #: the release serving before, for the ledger and for rollback
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """Every app's outcome of one apply, in plan order."""

    env: str
    target: TargetKind
    results: tuple[Deployed, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(r.outcome in ("deployed", "unchanged", "pruned") for r in self.results)
