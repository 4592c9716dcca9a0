"""Promotion, rollback, hold and unhold: gather the facts, plan, then apply the plan once.

Called by ``llmops.api``. Each use case builds a pure plan (``llmops.promote.plan``) from
the loaded repository, the ledger, the work tree's release and what the remote says is
in flight; ``dry_run`` returns it untouched. Applying (``llmops.promote.apply``) goes
through git so the reconciler never undoes it:

* ``commit`` mode rewrites ``environments/ENV.yaml`` in a new commit on top of the
  checked-out branch (the work tree and index are not used to build it), pushes it,
  then fast-forwards the branch. A rejected push (someone pushed first) means: fetch,
  fast-forward to the remote, reload, re-check the plan, and try again, a bounded
  number of times.
* ``pull-request`` mode builds the same commit on the remote branch's tip, pushes it to
  ``llmops/promote/<env>/<app>`` (create-only: one proposal in flight) and opens a pull
  request whose body is the gate report; without ``GITHUB_TOKEN`` the body is written to
  ``.llmops/pr/<env>-<app>.md`` and the user is told to open the PR by hand.

The ledger gets ``promoted`` (``data.state`` ``committed`` or ``proposed``),
``rolled-back`` + ``held``, ``held``, ``unheld``, and ``evaluated`` when the target's
gate had to be run first.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmops.archive.base import Archive
from llmops.domain.archive import LedgerEntry
from llmops.domain.diagnostics import Diagnostic
from llmops.domain.errors import (
    LlmopsError,
    UsageError,
)
from llmops.domain.evals import GateResult
from llmops.domain.models.pipeline import Stage
from llmops.domain.repo import Repo
from llmops.ops.evidence import record_gate_evidence
from llmops.ops.release import archive_for, create_release, work_bundle
from llmops.promote.apply import MAX_ATTEMPTS, Applied, Workspace, apply_plan, refuse_if_needed
from llmops.promote.ledger import active_hold
from llmops.promote.plan import (
    InFlight,
    Mode,
    PromotionPlan,
    find_stage,
    plan_promotion,
    plan_rollback,
    promotion_branch,
    short,
)

if TYPE_CHECKING:
    from llmops.adapters.github import PullRequests
    from llmops.adapters.gitops import GitOps


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class PromotionResult:
    """What a promotion or rollback did (or, with ``dry_run``, would do)."""

    plan: PromotionPlan
    dry_run: bool
    applied: bool
    commit: str | None = None
    branch: str | None = None
    pull_request: str | None = None
    body_file: str | None = None
    attempts: int = 0
    entries: tuple[LedgerEntry, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HoldResult:
    """What ``hold``/``unhold`` did: the state after, and the entry appended (if any)."""

    app: str
    env: str
    held: bool
    changed: bool
    dry_run: bool
    entry: LedgerEntry | None = None
    since: LedgerEntry | None = None


@dataclass(frozen=True, slots=True)
class GateRun:
    """A gate decided on a fresh eval run, with the JSON report to archive as evidence."""

    result: GateResult
    report: bytes
    baseline: str | None = None


class GateRunner(Protocol):
    """Runs ``stage``'s gate on ``release`` (``baseline``: the release there now)."""

    def __call__(
        self,
        repo: Repo,
        archive: Archive,
        app: str,
        release: str,
        stage: Stage,
        baseline: str | None,
    ) -> GateRun: ...


def engine_gate_runner(
    repo: Repo, archive: Archive, app: str, release: str, stage: Stage, baseline: str | None
) -> GateRun:
    """The eval engine (``llmops.evals``) as a gate runner. It evaluates the work tree,
    so ``release`` must be the work tree's release."""
    from llmops.evals.api import EvalSettings, run_eval
    from llmops.evals.baseline import archived_run
    from llmops.evals.gates import evaluate_gate
    from llmops.evals.reports import render_json

    head = work_bundle(repo, app).release_id
    if head != release:
        raise UsageError(
            f"the {stage.env} gate of {short(release)} has not been run, and the eval engine "
            f"evaluates the work tree, which is {short(head)}; check out the commit of "
            f"{short(release)} and run `llmops eval {app} --gate {stage.env}` there, then "
            "promote again"
        )
    settings = EvalSettings(environment=stage.env, repeat=stage.gate.repeats)
    # the engine labels a work-tree run "dev"; the evidence names the release it proves
    run = dataclasses.replace(
        run_eval(repo, app, tuple(stage.gate.suites), settings), release=release
    )
    base_run = archived_run(archive, app, baseline, stage.env) if baseline else None
    result = evaluate_gate(stage.env, stage.gate, run, base_run)
    return GateRun(result, render_json(run, result, base_run).encode("utf-8"), baseline)


@dataclass
class World:
    """The outside world a use case talks to; tests replace parts of it."""

    archive: Archive | None = None
    git: GitOps | None = None
    pulls: PullRequests | None = None
    gate_runner: GateRunner = engine_gate_runner
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    sleep: Callable[[float], None] = time.sleep
    use_github: bool = True


# --------------------------------------------------------------------------- loading


def load_repo(root: Path) -> Repo:
    """The validated repository (``ManifestInvalid`` with every diagnostic)."""
    from llmops.manifests.repository import load_repo as load

    return load(root, prefix="")


class _Session:
    """One use case's view of the world: the repo, archive, git and the code host."""

    def __init__(self, root: Path, archive: Path | None, remote: str, world: World) -> None:
        self.root = root
        self.remote = remote
        self.world = world
        self.repo = load_repo(root)
        self.archive: Archive = world.archive or archive_for(self.repo, archive)
        self._git = world.git
        self._pulls = world.pulls
        self._pulls_ready = world.pulls is not None or not world.use_github

    @property
    def git(self) -> GitOps:
        if self._git is None:
            from llmops.adapters.gitops import GitWorkTree

            self._git = GitWorkTree(self.root)
        return self._git

    @property
    def pulls(self) -> PullRequests | None:
        if not self._pulls_ready:
            self._pulls_ready = True
            if self.world.environ.get("GITHUB_TOKEN", "").strip():
                from llmops.adapters.github import client_from_env

                self._pulls = client_from_env(self.git.remote_url(self.remote), self.world.environ)
        return self._pulls

    def close(self) -> None:
        """Close the code host's client if this session opened one."""
        close = getattr(self._pulls, "close", None)
        if self._pulls is not None and self.world.pulls is None and callable(close):
            close()

    def workspace(self, plan: PromotionPlan) -> Workspace:
        return Workspace(
            git=self.git,
            remote=self.remote,
            pulls=self.pulls if plan.mode == "pull-request" else None,
            env_path=self.rel_path(plan.env_file),
            repo_root=Path(self.repo.root),
            sleep=self.world.sleep,
        )

    def replan(self, make_plan: Callable[[], PromotionPlan]) -> Callable[[], PromotionPlan]:
        """``make_plan`` after reloading the manifests (the ledger is read by the plan)."""

        def again() -> PromotionPlan:
            self.repo = load_repo(self.root)
            return make_plan()

        return again

    def rel_path(self, repo_file: str) -> str:
        """A repo-relative manifest path as a path inside the git work tree."""
        absolute = (Path(self.repo.root) / repo_file).resolve()
        return absolute.relative_to(self.git.toplevel().resolve()).as_posix()

    def in_flight(self, branch: str) -> InFlight:
        exists = self.git.remote_branch_exists(self.remote, branch)
        pulls = self.pulls
        pull = pulls.find_open(branch) if pulls is not None else None
        return InFlight(branch_exists=exists, pull_request=pull.url if pull else None)


def _head_release(repo: Repo, app: str) -> str | None:
    if app not in repo.apps:
        return None
    try:
        return work_bundle(repo, app).release_id
    except LlmopsError:
        return None


def _parse_mode(mode: str | None) -> Mode | None:
    if mode is None:
        return None
    if mode in ("pr", "pull-request"):
        return "pull-request"
    if mode == "commit":
        return "commit"
    raise UsageError(f"--mode {mode}: use pr (a pull request) or commit")


# --------------------------------------------------------------------------- promote


def promote(
    root: Path,
    app: str,
    to_env: str,
    *,
    from_env: str | None = None,
    mode: str | None = None,
    pipeline: str | None = None,
    no_run: bool = False,
    dry_run: bool = False,
    archive: Path | None = None,
    remote: str = "origin",
    world: World | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> PromotionResult:
    """Promote ``app`` into ``to_env``; ``dry_run`` only plans. Raises ``Refused`` (with the
    plan as ``detail``) when a check forbids it."""
    session = _Session(root, archive, remote, world or World())
    try:
        return _promote(
            session, app, to_env, from_env, mode, pipeline, no_run, dry_run, max_attempts
        )
    finally:
        session.close()


def _promote(
    session: _Session,
    app: str,
    to_env: str,
    from_env: str | None,
    mode: str | None,
    pipeline: str | None,
    no_run: bool,
    dry_run: bool,
    max_attempts: int,
) -> PromotionResult:
    chosen = _parse_mode(mode)
    branch = promotion_branch("promote", to_env, app)

    def make_plan(in_flight: InFlight | None, run_allowed: bool = not no_run) -> PromotionPlan:
        return plan_promotion(
            session.repo,
            session.archive.entries(),
            app,
            to_env,
            from_env,
            now=session.world.now(),
            head_release=_head_release(session.repo, app),
            mode=chosen,
            no_run=not run_allowed,
            pipeline=pipeline,
            in_flight=in_flight,
            has_object=session.archive.has,
        )

    in_flight, plan, notes, early = _first_plan(session, branch, dry_run, to_env, make_plan)
    if early is not None:
        return early
    entries: list[LedgerEntry] = []
    if plan.run_evals:
        entries.append(_run_target_gate(session, plan, pipeline))
        plan = make_plan(in_flight, run_allowed=False)
        refuse_if_needed(plan)
        notes.append(f"ran the {to_env} gate: {plan.evidence[-1].summary}")
    if plan.candidate_from_work_tree and plan.candidate is not None:
        created = create_release(session.repo, app, session.archive)
        if created.entry is not None:
            entries.append(created.entry)
            notes.append(f"archived {short(created.release_id)} from the work tree")
        plan = make_plan(in_flight, run_allowed=False)
        refuse_if_needed(plan)
    applied = apply_plan(
        plan,
        session.workspace(plan),
        session.replan(lambda: make_plan(in_flight, False)),
        None,
        max_attempts,
    )
    if applied.commit is not None:
        entries.append(
            session.archive.append(
                "promoted",
                app,
                release=applied.plan.candidate,
                env=to_env,
                evidence={f"gate-{e.stage}": e.report for e in applied.plan.evidence},
                data=_ledger_data(applied, source=applied.plan.source),
            )
        )
    return _result(applied, entries, (*notes, *applied.notes))


def _result(applied: Applied, entries: list[LedgerEntry], notes: tuple[str, ...]) -> PromotionResult:
    """What an applied promotion or rollback returns."""
    return PromotionResult(
        applied.plan,
        dry_run=False,
        applied=applied.commit is not None,
        commit=applied.commit,
        branch=applied.branch,
        pull_request=applied.pull_request,
        body_file=applied.body_file,
        attempts=applied.attempts,
        entries=tuple(entries),
        notes=notes,
    )


def _first_plan(
    session: _Session,
    branch: str,
    dry_run: bool,
    env: str,
    make_plan: Callable[[InFlight | None], PromotionPlan],
) -> tuple[InFlight | None, PromotionPlan, list[str], PromotionResult | None]:
    """Plan once offline (unknown names fail before the remote is asked anything), ask
    the remote what is in flight, plan again; a dry run or a no-op ends here (the last
    item), and a refusal raises."""
    make_plan(None)
    in_flight, notes = _ask_in_flight(session, branch, dry_run)
    plan = make_plan(in_flight)
    if dry_run:
        return in_flight, plan, notes, PromotionResult(
            plan, dry_run=True, applied=False, notes=tuple(notes)
        )
    if plan.noop:
        done = (f"{short(plan.candidate)} is already pinned in {env}",)
        return in_flight, plan, notes, PromotionResult(plan, False, False, notes=done)
    refuse_if_needed(plan)
    return in_flight, plan, notes, None


def _ask_in_flight(
    session: _Session, branch: str, dry_run: bool
) -> tuple[InFlight | None, list[str]]:
    """What the remote says about ``branch``; a dry run goes on without it when offline."""
    try:
        return session.in_flight(branch), []
    except LlmopsError as exc:
        if not dry_run:
            raise
        return None, [f"could not ask {session.remote} about proposals in flight: {exc.message}"]


def _run_target_gate(session: _Session, plan: PromotionPlan, pipeline: str | None) -> LedgerEntry:
    found = find_stage(session.repo, plan.env, pipeline)
    assert found is not None and plan.candidate is not None
    stage = found[1].spec.stages[found[2]]
    run = session.world.gate_runner(
        session.repo, session.archive, plan.app, plan.candidate, stage, plan.current
    )
    return record_gate_evidence(
        session.archive, plan.app, plan.candidate, stage, run.result, run.report, run.baseline
    )


def _ledger_data(applied: Applied, **extra: Any) -> dict[str, Any]:
    plan = applied.plan
    data: dict[str, Any] = {
        "mode": plan.mode,
        "state": "proposed" if plan.mode == "pull-request" else "committed",
        "commit": applied.commit,
        "branch": applied.branch,
        "pr_url": applied.pull_request,
        "previous": plan.current,
        "pipeline": plan.pipeline,
        "attempts": applied.attempts,
    }
    if applied.body_file:
        data["body_file"] = applied.body_file
    data.update({k: v for k, v in extra.items() if v is not None})
    return data


# --------------------------------------------------------------------------- rollback


def rollback(
    root: Path,
    app: str,
    env: str,
    *,
    to: str | None = None,
    force: bool = False,
    mode: str | None = None,
    pipeline: str | None = None,
    reason: str | None = None,
    dry_run: bool = False,
    archive: Path | None = None,
    remote: str = "origin",
    world: World | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> PromotionResult:
    """Pin ``env`` back to the last good release of ``app`` (or ``to``) through git, and hold
    automatic promotion of ``app`` into ``env`` until ``unhold``."""
    session = _Session(root, archive, remote, world or World())
    try:
        return _rollback(
            session, app, env, to, force, mode, pipeline, reason, dry_run, max_attempts
        )
    finally:
        session.close()


def _rollback(
    session: _Session,
    app: str,
    env: str,
    to: str | None,
    force: bool,
    mode: str | None,
    pipeline: str | None,
    reason: str | None,
    dry_run: bool,
    max_attempts: int,
) -> PromotionResult:
    chosen = _parse_mode(mode)
    branch = promotion_branch("rollback", env, app)

    def make_plan(in_flight: InFlight | None) -> PromotionPlan:
        return plan_rollback(
            session.repo,
            session.archive.entries(),
            app,
            env,
            to=to,
            force=force,
            mode=chosen,
            pipeline=pipeline,
            in_flight=in_flight,
            has_object=session.archive.has,
        )

    in_flight, plan, _notes, early = _first_plan(session, branch, dry_run, env, make_plan)
    if early is not None:
        return early
    applied = apply_plan(
        plan,
        session.workspace(plan),
        session.replan(lambda: make_plan(in_flight)),
        reason,
        max_attempts,
    )
    entries = []
    if applied.commit is not None:
        entries.append(
            session.archive.append(
                "rolled-back",
                app,
                release=applied.plan.candidate,
                env=env,
                data=_ledger_data(applied, **{"from": applied.plan.current, "reason": reason}),
            )
        )
    if active_hold(session.archive.entries(), app, env) is None:
        why = f"rolled back from {applied.plan.current} to {applied.plan.candidate}"
        entries.append(
            session.archive.append(
                "held",
                app,
                env=env,
                data={"reason": f"{why}: {reason}" if reason else why, "by": "rollback"},
            )
        )
    return _result(
        applied,
        entries,
        (
            *applied.notes,
            f"automatic promotion of {app} into {env} is held until "
            f"`llmops unhold {app} --env {env}`",
        ),
    )


# --------------------------------------------------------------------------- hold, unhold


def _check_app_env(repo: Repo, app: str, env: str) -> None:
    if app not in repo.apps:
        raise UsageError(f"no app named {app!r} (apps: {', '.join(sorted(repo.apps)) or 'none'})")
    if env not in repo.environments:
        known = ", ".join(sorted(repo.environments)) or "none"
        raise UsageError(f"no environment named {env!r} (environments: {known})")


def hold(
    root: Path,
    app: str,
    env: str,
    reason: str,
    *,
    dry_run: bool = False,
    archive: Path | None = None,
    world: World | None = None,
) -> HoldResult:
    """Hold automatic promotion of ``app`` into ``env`` (idempotent)."""
    if not reason.strip():
        raise UsageError("say why with --reason: the next person reads it in the plan")
    session = _Session(root, archive, "origin", world or World(use_github=False))
    _check_app_env(session.repo, app, env)
    current = active_hold(session.archive.entries(), app, env)
    if current is not None or dry_run:
        return HoldResult(app, env, True, current is None, dry_run, since=current)
    entry = session.archive.append("held", app, env=env, data={"reason": reason, "by": "hold"})
    return HoldResult(app, env, True, True, False, entry=entry, since=entry)


def unhold(
    root: Path,
    app: str,
    env: str,
    reason: str | None = None,
    *,
    dry_run: bool = False,
    archive: Path | None = None,
    world: World | None = None,
) -> HoldResult:
    """Lift the hold on ``app`` in ``env`` (idempotent)."""
    session = _Session(root, archive, "origin", world or World(use_github=False))
    _check_app_env(session.repo, app, env)
    current = active_hold(session.archive.entries(), app, env)
    if current is None or dry_run:
        return HoldResult(
            app, env, current is not None and dry_run, current is not None, dry_run, since=current
        )
    data = {"reason": reason} if reason else {}
    entry = session.archive.append(
        "unheld", app, env=env, data={**data, "held_since": current.time}
    )
    return HoldResult(app, env, False, True, False, entry=entry, since=current)


# --------------------------------------------------------------------------- evidence check


def check_pins(root: Path, archive: Path | None = None, app: str | None = None) -> list[Diagnostic]:
    """Diagnostics for pins without the evidence the pipeline demands (``--check``)."""
    from llmops.ops.evidence import unevidenced_pins

    repo = load_repo(root)
    found = unevidenced_pins(repo, archive_for(repo, archive))
    return [d for d in found if app is None or d.path == f"spec.releases.{app}"]


__all__ = [
    "GateRun",
    "GateRunner",
    "HoldResult",
    "PromotionResult",
    "World",
    "check_pins",
    "engine_gate_runner",
    "hold",
    "promote",
    "rollback",
    "unhold",
]
