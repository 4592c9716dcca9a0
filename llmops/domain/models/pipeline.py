"""The Pipeline kind: ordered stages, the gate into each, and how promotion happens.

Loaded by ``llmops.manifests``; read by evals (gates), promote and reconcile.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from llmops.domain.models.base import DnsLabel, Duration, Metadata, RelPath, Strict, empty_list


class Archive(Strict):
    """Where releases, evidence and the ledger are stored."""

    type: Literal["dir", "git"] = Field(default="dir", description="dir (a directory) or git.")
    path: RelPath = Field(
        default=".llmops/archive", description="Directory for type dir, relative to the repo."
    )
    branch: str = Field(default="llmops/archive", description="Orphan branch for type git.")
    remote: str = Field(default="origin", description="Remote the git archive is pushed to.")


class Gate(Strict):
    """What a release must show to enter a stage."""

    suites: list[str] = Field(default_factory=empty_list, description="EvalSuite names to run.")
    min_pass_rate: float = Field(
        default=1.0, ge=0, le=1, description="Weighted pass rate needed (Wilson lower bound with repeats)."
    )
    max_regression: float | None = Field(
        default=None, ge=0, le=1, description="Largest drop in pass rate vs the release now in the stage."
    )
    repeats: int = Field(default=1, ge=1, le=50, description="Samples per case.")
    required_cases: list[str] = Field(
        default_factory=empty_list, description="Cases ('suite/case') that must pass, besides required: true."
    )
    max_cost_usd: float | None = Field(default=None, ge=0, description="Ceiling on the eval's cost.")


class Verify(Strict):
    """A post-deploy smoke eval against the deployed release."""

    suites: list[str] = Field(min_length=1, description="EvalSuite names to run after deploy.")
    min_pass_rate: float = Field(default=1.0, ge=0, le=1, description="Pass rate needed.")


class Stage(Strict):
    """One environment in the pipeline."""

    env: DnsLabel = Field(description="Environment name.")
    source: Literal["head"] | None = Field(
        default=None, description="'head' for the first stage: it deploys what is on the branch."
    )
    promotion: Literal["commit", "pull-request"] = Field(
        default="commit", description="How a release is promoted into this stage."
    )
    approval: Literal["none", "required"] = Field(
        default="none", description="Whether a person must approve promotion into this stage."
    )
    soak: Duration = Field(
        default="0s", description="How long the release must have run in the previous stage."
    )
    gate: Gate = Field(default_factory=Gate, description="Evidence needed to enter.")
    verify: Verify | None = Field(default=None, description="Smoke eval after deploying here.")


class PipelineSpec(Strict):
    """The stages and the archive."""

    archive: Archive = Field(default_factory=Archive, description="Archive store.")
    stages: list[Stage] = Field(min_length=1, description="Stages in promotion order.")

    @model_validator(mode="after")
    def _order(self) -> PipelineSpec:
        seen: set[str] = set()
        for index, stage in enumerate(self.stages):
            if stage.env in seen:
                raise PydanticCustomError(
                    "duplicate_stage",
                    "environment {env} appears in more than one stage; remove one of them",
                    {"env": repr(stage.env), "at": ("stages", index, "env")},
                )
            seen.add(stage.env)
            if index > 0 and stage.source is not None:
                raise PydanticCustomError(
                    "stage_source",
                    "only the first stage takes source: head; stage {env} receives promotions, "
                    "so remove source here",
                    {"env": repr(stage.env), "at": ("stages", index, "source")},
                )
        return self


class Pipeline(Strict):
    """A pipeline: pipelines/<name>.yaml."""

    api_version: Literal["llmops.dev/v1"] = Field(description="Always llmops.dev/v1.")
    kind: Literal["Pipeline"] = Field(description="Always Pipeline.")
    metadata: Metadata = Field(description="Pipeline name.")
    spec: PipelineSpec = Field(description="The pipeline.")
