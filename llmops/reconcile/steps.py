"""The steps that prepare one app in one stage: release → gate → build → desire.

Called by ``llmops.ops.reconcile`` through ``PREPARE`` (``llmops.reconcile.runner``), one
app at a time, before the stage's one plan and apply. Each step decides from content
(release ids are digests; evidence, bad marks and images are found in the app's ledger
entries) whether there is anything to do, and reaches the world only through the
``PassPort`` the pass implements (archive a release, run and record a gate, build an
image, make the ``DesiredApp``), so a pass with nothing changed does nothing here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from llmops.archive.base import Archive
from llmops.domain.archive import LedgerEntry
from llmops.domain.deploy import DesiredApp, LiveApp
from llmops.domain.evals import GateResult
from llmops.domain.models.environment import Environment
from llmops.domain.models.pipeline import Stage
from llmops.promote.checks import short
from llmops.promote.ledger import marked_bad, missing_stages
from llmops.reconcile import conditions as c
from llmops.reconcile.result import StepOutcome
from llmops.reconcile.runner import AppWork, Steps
from llmops.releases.bundle import Bundle


class PassPort(Protocol):
    """What the steps need from the pass (``llmops.ops.reconcile`` implements it)."""

    archive: Archive

    @property
    def dry_run(self) -> bool: ...

    def of(self, app: str) -> list[LedgerEntry]:
        """The app's ledger entries."""
        ...

    def head_release(self, app: str) -> str | None:
        """The work tree's release id of ``app``."""
        ...

    def head(self, app: str) -> Bundle: ...

    def load_release(self, release: str) -> Bundle: ...

    def wrote(self, what: str, *entries: LedgerEntry) -> None:
        """Record an effect and the entries it appended."""
        ...

    def say(self, env: str, app: str, text: str) -> None: ...

    def archive_release(self, app: str) -> LedgerEntry | None:
        """Archive the work tree's release of ``app``; the ``released`` entry if new."""
        ...

    def gate(
        self, app: str, release: str, stage: Stage, bundle: Bundle, baseline: str | None
    ) -> tuple[GateResult, LedgerEntry]:
        """Run ``stage``'s gate on ``bundle`` and record the evidence."""
        ...

    def build(self, app: str, release: str, env: str) -> None:
        """Build (and push where needed) the image of ``release``."""
        ...

    def desired_app(self, bundle: Bundle, environment: Environment) -> DesiredApp: ...


@dataclass
class StageCtx:
    """What the steps of one stage share."""

    run: PassPort
    stages: list[Stage]
    k: int
    environment: Environment
    live: Mapping[str, LiveApp]
    bundles: dict[str, Bundle] = field(default_factory=dict)

    @property
    def stage(self) -> Stage:
        return self.stages[self.k]


# --------------------------------------------------------------------------- the steps


def step_release(ctx: StageCtx, work: AppWork) -> StepOutcome | None:
    """Archive the work tree's release (source stage); a pinned release must be archived."""
    run, release = ctx.run, work.desired
    assert release is not None
    head = run.head_release(work.app)
    digest = release.rsplit(":", 1)[-1]
    if release == head:
        ctx.bundles[work.app] = run.head(work.app)
        released = any(e.event == "released" and e.release == release for e in run.of(work.app))
        if released and run.archive.has(digest):
            work.set(c.RELEASED, c.TRUE, c.ALREADY_ARCHIVED, short(release))
            return None
        if run.dry_run:
            work.set(c.RELEASED, c.UNKNOWN, c.ARCHIVED, f"would archive {short(release)}")
            return StepOutcome("release", "skipped", c.ARCHIVED, f"would archive {short(release)}")
        entry = run.archive_release(work.app)
        if entry is not None:
            run.wrote(f"archived {short(release)}", entry)
            run.say(work.env, work.app, f"released {short(release)}")
        work.set(c.RELEASED, c.TRUE, c.ARCHIVED, short(release))
        return StepOutcome("release", "done", c.ARCHIVED, short(release))
    if not run.archive.has(digest):
        text = f"{short(release)} is pinned but not in the archive; check `llmops archive verify`"
        work.set(c.RELEASED, c.FALSE, c.RELEASE_FAILED, text)
        return StepOutcome("release", "refused", c.RELEASE_FAILED, text)
    ctx.bundles[work.app] = run.load_release(release)
    work.set(c.RELEASED, c.TRUE, c.PINNED, short(release))
    return None


def step_gate(ctx: StageCtx, work: AppWork) -> StepOutcome | None:
    """Evidence for every stage up to this one; the source stage runs its own gate."""
    run, release, stage = ctx.run, work.desired, ctx.stage
    assert release is not None
    bad = marked_bad(run.of(work.app), release)
    if bad is not None:
        text = f"{short(release)} was marked bad ({bad.data.get('reason') or 'no reason'})"
        work.set(c.GATE_PASSED, c.FALSE, c.MARKED_BAD, text)
        return StepOutcome("gate", "refused", c.MARKED_BAD, text)
    gaps = missing_stages(run.of(work.app), release, ctx.stages[: ctx.k + 1], run.archive.has)
    if not gaps:
        work.set(c.GATE_PASSED, c.TRUE, c.EVIDENCE_PRESENT, f"evidence up to {stage.env}")
        return None
    own = [g for g in gaps if g[0].env == stage.env]
    if stage.source != "head" or len(gaps) > len(own) or release != run.head_release(work.app):
        names = ", ".join(g[0].env for g in gaps)
        text = f"{short(release)} has no passing gate evidence for {names}"
        work.set(c.GATE_PASSED, c.FALSE, c.EVIDENCE_MISSING, text)
        return StepOutcome("gate", "refused", c.EVIDENCE_MISSING, text)
    state = own[0][1]
    if state == "failed":
        text = f"the {stage.env} gate of {short(release)} failed: {own[0][2].summary if own[0][2] else ''}"
        work.set(c.GATE_PASSED, c.FALSE, c.GATE_FAILED, text)
        return StepOutcome("gate", "refused", c.GATE_FAILED, text)
    if run.dry_run:
        work.set(c.GATE_PASSED, c.UNKNOWN, c.GATE_RAN, f"would run the {stage.env} gate")
        return StepOutcome("gate", "skipped", c.GATE_RAN, f"would run the {stage.env} gate")
    baseline = work.live if work.live and work.live != release else None
    run.say(
        work.env,
        work.app,
        f"gate {stage.env}: running {', '.join(stage.gate.suites) or 'no suites'}",
    )
    result, entry = run.gate(work.app, release, stage, ctx.bundles[work.app], baseline)
    summary = f"pass rate {result.pass_rate * 100:.1f}% (min {result.min_pass_rate * 100:.1f}%)"
    run.wrote(
        f"gate {stage.env} of {short(release)}: {'passed' if result.passed else 'failed'}", entry
    )
    run.say(
        work.env, work.app, f"gate {stage.env} {'passed' if result.passed else 'FAILED'}: {summary}"
    )
    if not result.passed:
        why = "; ".join(r.message for r in result.reasons if r.blocking)[:400]
        text = f"the {stage.env} gate of {short(release)} failed: {summary}; {why}"
        work.set(c.GATE_PASSED, c.FALSE, c.GATE_FAILED, text)
        return StepOutcome("gate", "refused", c.GATE_FAILED, text)
    work.set(c.GATE_PASSED, c.TRUE, c.GATE_RAN, summary)
    return StepOutcome("gate", "done", c.GATE_RAN, summary)


def step_build(ctx: StageCtx, work: AppWork) -> StepOutcome | None:
    """The release's image, once (docker and kubernetes targets)."""
    run, release = ctx.run, work.desired
    assert release is not None
    environment = ctx.environment
    if environment.spec.target.kind == "local":
        work.set(c.IMAGE_BUILT, c.TRUE, c.NOT_NEEDED, "local processes run the bundle")
        return None
    from llmops.deploy.images import image_repository

    repository = image_repository(environment, work.app)
    if _built(run.of(work.app), environment, release):
        work.set(c.IMAGE_BUILT, c.TRUE, c.ALREADY_BUILT, repository)
        return None
    if run.dry_run:
        work.set(c.IMAGE_BUILT, c.UNKNOWN, c.BUILT, f"would build {repository}")
        return StepOutcome("build", "skipped", c.BUILT, f"would build {repository}")
    run.say(work.env, work.app, f"building {repository}")
    run.build(work.app, release, work.env)
    run.wrote(f"built {short(release)} for {work.env}")
    if not _built(run.of(work.app), environment, release):
        text = f"no image of {short(release)} was recorded (kubernetes needs one pushed by digest)"
        work.set(c.IMAGE_BUILT, c.FALSE, c.NOT_BUILT, text)
        return StepOutcome("build", "refused", c.NOT_BUILT, text)
    work.set(c.IMAGE_BUILT, c.TRUE, c.BUILT, repository)
    return StepOutcome("build", "done", c.BUILT, repository)


def _built(entries: list[LedgerEntry], environment: Environment, release: str) -> bool:
    """An image of ``release`` the target can run: pushed by digest (kubernetes), or
    any image the build recorded for it (docker: a local tag)."""
    from llmops.deploy.images import built_image, image_ref, image_repository

    if built_image(entries, release, image_repository(environment, release.split("@", 1)[0])):
        return True
    if environment.spec.target.kind == "kubernetes":
        return False
    tag = image_ref(environment, release)
    return any(
        e.event == "built" and e.release == release and e.data.get("tag") == tag for e in entries
    )


def step_desire(ctx: StageCtx, work: AppWork) -> StepOutcome | None:
    """The ``DesiredApp``: the release with this environment's overrides."""
    run, release = ctx.run, work.desired
    assert release is not None
    wanted = run.desired_app(ctx.bundles[work.app], ctx.environment)
    work.facts["desired"] = wanted
    one: LiveApp | None = work.facts.get("live")
    if one is not None and one.fingerprint == wanted.fingerprint and one.ready:
        work.set(c.DEPLOYED, c.TRUE, c.UP_TO_DATE, one.endpoint or "")
        if not one.drift:
            work.set(c.IN_SYNC, c.TRUE, c.NO_DRIFT, "")
    return None


PREPARE: Steps[StageCtx] = Steps(
    (("release", step_release), ("gate", step_gate), ("build", step_build), ("desire", step_desire))
)
