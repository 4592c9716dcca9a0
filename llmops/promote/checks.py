"""The vocabulary of promotion plans: the plan and check types, stage lookup, and the
checks promotion and rollback share. Pure.

Used by ``llmops.promote.plan`` (promotion) and ``llmops.promote.rollback``; the plan
types are re-exported by ``llmops.promote.plan``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from llmops.domain.errors import UsageError
from llmops.domain.models.pipeline import Pipeline, Stage
from llmops.domain.repo import Repo
from llmops.promote import conditions as c

Mode = Literal["commit", "pull-request"]
Kind = Literal["promote", "rollback"]


@dataclass(frozen=True, slots=True)
class Check:
    """One condition of a plan: ``status`` True, False (refused) or Unknown (apply decides)."""

    condition: str
    status: c.CheckStatus
    reason: str
    message: str

    @property
    def refused(self) -> bool:
        return self.status == c.FALSE


@dataclass(frozen=True, slots=True)
class StageEvidence:
    """The passing gate evidence of one stage that a promotion carries."""

    stage: str
    report: str
    summary: str


@dataclass(frozen=True, slots=True)
class InFlight:
    """What the remote says about an earlier proposal of the same change."""

    branch_exists: bool = False
    pull_request: str | None = None


@dataclass(frozen=True, slots=True)
class PromotionPlan:
    """What a promotion (or rollback) would do and every check on the way."""

    kind: Kind
    app: str
    env: str
    env_file: str
    pipeline: str | None
    mode: Mode
    source: str | None
    candidate: str | None
    current: str | None
    checks: tuple[Check, ...]
    evidence: tuple[StageEvidence, ...] = ()
    run_evals: bool = False
    branch: str = ""
    hold_after: bool = False
    candidate_from_work_tree: bool = False

    @property
    def refusals(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.refused)

    @property
    def allowed(self) -> bool:
        return not self.refusals

    @property
    def noop(self) -> bool:
        pin = self.check(c.PIN_CHANGE)
        return pin is not None and pin.reason == c.ALREADY_PINNED

    def check(self, condition: str) -> Check | None:
        return next((ch for ch in self.checks if ch.condition == condition), None)

    def refusal_message(self) -> str:
        verb = "promote" if self.kind == "promote" else "roll back"
        where = (
            f"{self.app} into {self.env}" if self.kind == "promote" else f"{self.app} in {self.env}"
        )
        reasons = "; ".join(f"{ch.condition}: {ch.message}" for ch in self.refusals)
        return f"cannot {verb} {where}: {reasons}"


def promotion_branch(kind: Kind, env: str, app: str) -> str:
    """The one branch a proposal of (app, env) lives on: at most one in flight."""
    return f"llmops/{'promote' if kind == 'promote' else 'rollback'}/{env}/{app}"


def short(release: str | None) -> str:
    if not release:
        return "(none)"
    app, _, digest = release.partition("@sha256:")
    return f"{app}@sha256:{digest[:12]}" if digest else release


# --------------------------------------------------------------------------- lookup


def find_stage(
    repo: Repo, env: str, pipeline: str | None = None, *, required: bool = True
) -> tuple[str, Pipeline, int] | None:
    """The pipeline that has a stage for ``env`` (or ``pipeline``), and the stage's index."""
    if pipeline is not None and pipeline not in repo.pipelines:
        known = ", ".join(sorted(repo.pipelines)) or "none"
        raise UsageError(f"no pipeline named {pipeline!r} (pipelines: {known})")
    found = []
    for name, source in sorted(repo.pipelines.items()):
        if pipeline is not None and name != pipeline:
            continue
        for index, stage in enumerate(source.pipeline.spec.stages):
            if stage.env == env:
                found.append((name, source.pipeline, index))
    if len(found) > 1:
        names = ", ".join(f[0] for f in found)
        raise UsageError(
            f"environment {env} is a stage of several pipelines ({names}); pass --pipeline"
        )
    if not found:
        if not required:
            return None
        raise UsageError(
            f"environment {env} is not a stage of any pipeline; add it to pipelines/<name>.yaml"
        )
    return found[0]


def check_names(repo: Repo, app: str, env: str) -> None:
    if app not in repo.apps:
        known = ", ".join(sorted(repo.apps)) or "none"
        raise UsageError(f"no app named {app!r} (apps: {known})")
    if env not in repo.environments:
        known = ", ".join(sorted(repo.environments)) or "none"
        raise UsageError(f"no environment named {env!r} (environments: {known})")


def default_mode(stage: Stage | None, mode: Mode | None) -> Mode:
    if mode is not None:
        return mode
    if stage is not None and (stage.promotion == "pull-request" or stage.approval == "required"):
        return "pull-request"
    return "commit"


# --------------------------------------------------------------------------- shared checks


def approval_check(stage: Stage | None, mode: Mode) -> Check:
    if stage is None or stage.approval != "required":
        return Check(c.APPROVAL_SATISFIED, c.TRUE, c.APPROVAL_NOT_REQUIRED, "no approval required")
    if mode == "pull-request":
        return Check(
            c.APPROVAL_SATISFIED,
            c.TRUE,
            c.PULL_REQUEST_IS_APPROVAL,
            f"stage {stage.env} requires approval: the pull request is the approval",
        )
    return Check(
        c.APPROVAL_SATISFIED,
        c.FALSE,
        c.APPROVAL_REQUIRES_PULL_REQUEST,
        f"stage {stage.env} has approval: required, so it changes only through a pull "
        "request a person approves; use --mode pr",
    )


def in_flight_check(in_flight: InFlight | None, branch: str) -> Check:
    if in_flight is None:
        return Check(
            c.NOT_IN_FLIGHT, c.UNKNOWN, c.NOT_CHECKED, f"the remote was not asked about {branch}"
        )
    if in_flight.pull_request:
        return Check(
            c.NOT_IN_FLIGHT,
            c.FALSE,
            c.PULL_REQUEST_OPEN,
            f"pull request {in_flight.pull_request} already proposes this change; merge or "
            "close it first",
        )
    if in_flight.branch_exists:
        return Check(
            c.NOT_IN_FLIGHT,
            c.FALSE,
            c.BRANCH_EXISTS,
            f"branch {branch} already exists on the remote: a proposal is in flight; merge or "
            f"close its pull request, then delete the branch (git push origin --delete {branch})",
        )
    return Check(c.NOT_IN_FLIGHT, c.TRUE, c.NOTHING_IN_FLIGHT, "no other proposal in flight")


def archived_check(
    candidate: str, has_object: Callable[[str], bool], from_work_tree: bool
) -> Check:
    digest = candidate.split("@sha256:", 1)[-1]
    if has_object(digest):
        return Check(c.CANDIDATE_ARCHIVED, c.TRUE, c.BUNDLE_ARCHIVED, "bundle archived")
    if from_work_tree:
        return Check(
            c.CANDIDATE_ARCHIVED,
            c.UNKNOWN,
            c.WORK_TREE_WILL_BE_ARCHIVED,
            "the work tree's release is not archived yet: apply archives it first",
        )
    return Check(
        c.CANDIDATE_ARCHIVED,
        c.FALSE,
        c.BUNDLE_MISSING,
        f"{candidate} is not in the archive, so no stage could deploy it; "
        "check the archive (`llmops archive verify`)",
    )


def pin_change_check(env_file: str, app: str, current: str | None, candidate: str) -> Check:
    if current == candidate:
        return Check(
            c.PIN_CHANGE,
            c.TRUE,
            c.ALREADY_PINNED,
            f"{short(candidate)} is already pinned; nothing to do",
        )
    return Check(
        c.PIN_CHANGE,
        c.TRUE,
        c.PIN_WILL_CHANGE,
        f"{env_file} spec.releases.{app}: {short(current)} → {short(candidate)}",
    )
