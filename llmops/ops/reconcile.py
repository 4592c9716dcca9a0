"""The reconcile use case: one pass over the pipeline's stages, and the loop that repeats it.

Called by ``llmops reconcile``, ``llmops up`` and the controller. A pass walks each
pipeline's stages in order. For stage k it first promotes into k what runs in k-1 when
k's policy allows (gate evidence, no hold, soak elapsed, approval: ``llmops.promote``
decides; ``llmops.reconcile.promotion`` commits or opens the pull request with the
manifests this pass holds; a repository without a remote commits locally, and a pull
request there needs ``approve``), then makes k's
target run what k's pins say (the work tree's releases for the ``source: head`` stage).
Per app the steps are small and run in order until one stops (``llmops.reconcile.steps``
through ``llmops.reconcile.runner``):

    release (archive the work tree's bundle) → gate (run it unless the archive already
    holds the evidence) → build (docker/kubernetes only, once per release) → desire

then, per environment, one plan and one apply (blue/green, post-deploy verify of the
stage's ``verify.suites``) and the ledger: ``deployed``; on a failed rollout or verify the
target keeps the last good release, the release is ``marked-bad``, and the pin goes back
through git with a hold (``llmops.ops.promote.rollback``), so git and the target agree.

Nothing changed means nothing done: every step is skipped by content (a release id is a
digest; evidence, images and deploys are found in the ledger; a plan compares
fingerprints), and a pass whose commit, ledger tip and live fingerprints match the last
settled pass's memo returns before loading anything (``llmops.reconcile.memo``).
One app's failure is recorded on that app and never stops the others.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from llmops.archive.base import Archive
from llmops.deploy.target import Target
from llmops.domain.archive import LedgerEntry
from llmops.domain.deploy import ApplyResult, DeployPlan, DesiredApp, LiveApp
from llmops.domain.errors import Interrupted, LlmopsError, PromotionInFlight, Refused, UsageError
from llmops.domain.evals import GateResult
from llmops.domain.models.environment import Environment
from llmops.domain.models.environment import Target as TargetSpec
from llmops.domain.models.pipeline import Stage
from llmops.domain.repo import Repo
from llmops.manifests.incremental import LoadCache
from llmops.ops import deploy as dep
from llmops.ops.evidence import record_gate_evidence
from llmops.ops.promote import World as PromoteWorld
from llmops.ops.promote import hold, rollback
from llmops.ops.release import archive_for, create_release
from llmops.promote.checks import PromotionPlan, short
from llmops.promote.ledger import active_hold, marked_bad
from llmops.promote.plan import plan_promotion
from llmops.reconcile import conditions as c
from llmops.reconcile import memo as m
from llmops.reconcile.compare import (
    apply_drift_policy,
    changed_apps,
    iso,
    ledger_behind,
    soak_ready_at,
    without_apps,
)
from llmops.reconcile.gate import run_gate
from llmops.reconcile.heads import HeadCache, app_key
from llmops.reconcile.localgit import LocalGit, has_remote
from llmops.reconcile.promotion import Promoted, promote_now, soak_waived
from llmops.reconcile.result import AppResult, Condition, PassResult, StageResult, StepOutcome
from llmops.reconcile.runner import AppWork
from llmops.reconcile.steps import PREPARE, StageCtx
from llmops.releases.bundle import Bundle, build_bundle

if TYPE_CHECKING:
    from llmops.adapters.github import PullRequests
    from llmops.adapters.gitops import GitOps

#: the memo of the last settled pass, under the repository root
MEMO_DIR = ".llmops/reconcile"
#: the work tree's release of each app by the content of its directory
HEADS_PATH = ".llmops/reconcile/heads.json"

GateFn = Callable[[Repo, Archive, Bundle, Stage, "str | None"], tuple[GateResult, bytes]]
TargetFactory = Callable[[str, TargetSpec, Archive, Path], Target]


#: the ``llmops up`` option that waives soak waits on this machine
SOAK_WAIVER = "--skip-soak"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _quiet(line: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    """What a pass may do. ``model_url`` points gates, deploys and verifies at one endpoint
    (``llmops up``: the stub); ``approve`` approves approval-required promotions of a
    repository without a remote; ``local_only`` never pushes; ``skip_soak`` waives soak
    waits (only ``llmops up --skip-soak`` sets it: never ``reconcile``, ``promote`` or the
    controller) and the ``promoted`` entry records the waiver."""

    env: str | None = None
    dry_run: bool = False
    model_url: str | None = None
    approve: bool = False
    skip_soak: bool = False
    local_only: bool = False
    verify: bool = True
    timeout: float = 120.0
    grace: float = 0.0
    remote: str = "origin"
    #: only these apps (None: every app), and never these (the controller's backoff):
    #: an app left out keeps what runs and its pins; a pass that left one out settles
    #: nothing (no memo)
    apps: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()

    def wants(self, app: str) -> bool:
        return app not in self.exclude and (self.apps is None or app in self.apps)

    def key(self) -> str:
        """What the memo must match: options that change the desired state."""
        return json.dumps(
            [self.env, self.model_url, self.approve, self.local_only, self.verify, self.skip_soak],
            separators=(",", ":"),
        )


@dataclass
class ReconcileWorld:
    """The outside world of a pass; kept between passes of a loop (targets are reused)."""

    archive: Archive | None = None
    state_root: Path | None = None
    memo_path: Path | None = None
    target_factory: TargetFactory = dep.target_from_spec
    gate: GateFn | None = None
    now: Callable[[], datetime] = _utcnow
    progress: Callable[[str], None] = _quiet
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    use_memo: bool = True
    targets: dict[str, Target] = field(default_factory=dict)
    #: true when the pass must end early (a lost lease, a shutdown): checked before each
    #: app's steps and each promotion; the pass then raises ``Interrupted``
    should_stop: Callable[[], bool] = lambda: False
    #: the checks of unchanged apps, reused by every load of this world's passes
    load_cache: LoadCache = field(default_factory=LoadCache)
    #: the archive each configuration names, kept so its ledger is read incrementally
    archives: dict[str, Archive] = field(default_factory=dict)
    #: (env, app) -> (inputs key, conditions, DesiredApp) of an app that ran as desired
    #: at the end of its prepare steps: the same inputs give the same answer
    steady: dict[tuple[str, str], tuple[str, dict[str, Condition], DesiredApp]] = field(
        default_factory=dict
    )

    def archive_of(self, repo: Repo) -> Archive:
        """The archive ``repo``'s pipelines name, the same object pass after pass."""
        key = json.dumps(
            [repo.root, *(p.pipeline.spec.archive.model_dump_json() for p in repo.pipelines.values())]
        )
        found = self.archives.get(key)
        if found is None:
            found = self.archives[key] = archive_for(repo)
        return found

    def target(self, env: str, spec: TargetSpec, archive: Archive, state_root: Path) -> Target:
        key = f"{env} {spec.model_dump_json()}"
        found = self.targets.get(key)
        if found is None:
            found = self.targets[key] = self.target_factory(env, spec, archive, state_root)
        return found


# --------------------------------------------------------------------------- the pass


def reconcile_pass(
    root: Path, options: ReconcileOptions | None = None, world: ReconcileWorld | None = None
) -> PassResult:
    """One pass over every stage (or ``options.env``). Raises only for what stops the whole
    pass (no git repository, invalid manifests, an unknown environment); every app's
    problem is in the result."""
    options = options or ReconcileOptions()
    world = world or ReconcileWorld()
    started, clock = world.now(), time.perf_counter()
    root = Path(root)
    git, notes = _source(root, options)
    commit = _clean_commit(root)
    memo_path = world.memo_path or memo_file(root, options)
    use_memo = world.use_memo and not options.dry_run
    if use_memo:
        quick = _shortcut(root, options, world, memo_path, commit, started)
        if quick is not None:
            return _finish(quick, clock)
    from llmops.manifests.repository import load_repo

    repo = load_repo(root, prefix="", cache=world.load_cache)
    archive = world.archive or world.archive_of(repo)
    run = _Pass(root, repo, archive, options, world, git)
    try:
        run.run()
    finally:
        run.close()
        if not options.dry_run:
            run.head_cache.save()
    settled = run.settled()
    # a pass with no effect committed nothing: HEAD and the work tree are as they were
    final = _clean_commit(root) if run.work else commit
    result = PassResult(
        root=str(root),
        commit=final or commit,
        dry_run=options.dry_run,
        started=iso(started),
        duration_s=0.0,
        stages=tuple(run.stage_results),
        work=tuple(run.work),
        wake_at=iso(run.wake_at) if run.wake_at else None,
        notes=(*notes, *run.notes),
    )
    if use_memo:
        if settled:
            run.save_memo(memo_path, options, final)
        else:
            m.forget(memo_path)
    return _finish(result, clock)


def memo_file(root: Path, options: ReconcileOptions) -> Path:
    """The memo of passes run with ``options`` (one per option set: a controller that
    reconciles one environment at a time keeps one memo per environment)."""
    import hashlib

    tag = hashlib.sha256(options.key().encode()).hexdigest()[:12]
    return root / MEMO_DIR / f"memo-{tag}.json"


def _finish(result: PassResult, clock: float) -> PassResult:
    return replace(result, duration_s=time.perf_counter() - clock)


def _source(root: Path, options: ReconcileOptions) -> tuple[LocalGit | None, list[str]]:
    """Bring the work tree up to its remote (fetch + fast-forward) when one is configured;
    the git used for promotions: None means the real remote, else local commits."""
    from llmops.adapters.gitops import GitWorkTree

    work_tree = GitWorkTree(root)  # raises UsageError outside a git repository
    if options.local_only or not has_remote(root, options.remote):
        return LocalGit(root), []
    if options.dry_run:
        return None, []
    branch = work_tree.current_branch()
    if branch is None:
        raise UsageError("HEAD is detached: check out the branch the environments live on")
    tip = work_tree.fetch(options.remote, branch)
    if tip != work_tree.head():
        work_tree.fast_forward(tip)
        return None, [f"fast-forwarded {branch} to {options.remote}/{branch} {tip[:12]}"]
    return None, []


def _clean_commit(root: Path) -> str | None:
    """HEAD's commit when the work tree holds nothing uncommitted (the memo's key)."""
    from llmops.adapters.gitrepo import revision

    rev = revision(root)
    return rev.commit if rev is not None and not rev.dirty else None


# --------------------------------------------------------------------------- shortcut


def _shortcut(
    root: Path,
    options: ReconcileOptions,
    world: ReconcileWorld,
    memo_path: Path,
    commit: str | None,
    now: datetime,
) -> PassResult | None:
    """The pass's answer from content hashes alone, when the memo still holds."""
    memo = m.load_memo(memo_path)
    if memo is None or commit is None:
        return None
    if world.archive is not None:
        archive: Archive = world.archive
    elif memo.archive is not None:
        from llmops.archive import DirArchive

        archive = DirArchive(Path(memo.archive))
    else:
        return None
    if not m.memo_holds(
        memo, source=commit, tip=m.ledger_tip(archive), now=now, options=options.key()
    ):
        return None
    stages: list[StageResult] = []
    state_root = world.state_root or root / dep.DEFAULT_STATE_ROOT
    for env, expected in memo.envs.items():
        try:
            spec = TargetSpec.model_validate(memo.targets[env])
            live = world.target(env, spec, archive, state_root).live()
        except (LlmopsError, KeyError, ValueError):
            return None
        if not m.live_matches(expected, live):
            return None
        found = {
            app: AppResult(app, env, one.release, one.release, "Ready", endpoint=one.endpoint)
            for app, one in live.items()
        }
        for raw in memo.unsettled:
            try:
                kept = AppResult.from_json(raw)
            except (KeyError, TypeError, ValueError):
                return None
            if kept.env == env:
                found[kept.app] = kept
        stages.append(StageResult(env, spec.kind, tuple(found[a] for a in sorted(found))))
    return PassResult(
        root=str(root),
        commit=commit,
        dry_run=False,
        started=iso(now),
        duration_s=0.0,
        stages=tuple(stages),
        shortcut=True,
        wake_at=memo.wake_at,
    )


# --------------------------------------------------------------------------- one pass


class _Pass:
    """The state of one pass: the loaded repository, the ledger, every app's work."""

    def __init__(
        self,
        root: Path,
        repo: Repo,
        archive: Archive,
        options: ReconcileOptions,
        world: ReconcileWorld,
        git: LocalGit | None,
    ) -> None:
        self.root = root
        self.repo = repo
        self.archive = archive
        self.options = options
        self.world = world
        self.git = git
        self.state_root = world.state_root or Path(repo.root) / dep.DEFAULT_STATE_ROOT
        self.gate_fn: GateFn = world.gate or _default_gate(options.model_url)
        self._entries: list[LedgerEntry] | None = None
        self._heads: dict[str, Bundle | LlmopsError] | None = None
        self.works: dict[str, dict[str, AppWork]] = {}
        self.stage_results: list[StageResult] = []
        self.work: list[str] = []
        self.notes: list[str] = []
        self.wake_at: datetime | None = None
        self.targets: dict[str, tuple[TargetSpec, Target]] = {}
        self.failed = False
        self._desired: dict[str, dict[str, str]] = {}
        self._head_ids: dict[str, str | None] = {}
        self._remote_git: GitOps | None = None
        self._pulls: PullRequests | None = None
        self._by_app: dict[str, list[LedgerEntry]] | None = None
        self.head_cache = HeadCache(root / HEADS_PATH)
        #: apps this pass left alone (``ReconcileOptions.apps``/``exclude``)
        self.skipped: set[str] = set()

    # facts -------------------------------------------------------------------
    @property
    def entries(self) -> list[LedgerEntry]:
        if self._entries is None:
            self._entries = self.archive.entries()
        return self._entries

    def of(self, app: str) -> list[LedgerEntry]:
        """The ledger entries of ``app`` (every query of a pass is about one app)."""
        if self._by_app is None:
            self._by_app = {}
            for entry in self.entries:
                self._by_app.setdefault(entry.app, []).append(entry)
        return self._by_app.get(app, [])

    def wrote(self, what: str, *entries: LedgerEntry) -> None:
        """An effect happened: remember it; ``entries`` are what it appended to the ledger
        (kept in step here, so a pass reads the ledger once)."""
        self.work.append(what)
        if self._entries is not None:
            self._entries.extend(entries)
        if self._by_app is not None:
            for entry in entries:
                self._by_app.setdefault(entry.app, []).append(entry)

    def stale(self) -> None:
        """Something appended entries this pass does not know: read the ledger again."""
        self._entries = None
        self._by_app = None

    def say(self, env: str, app: str, text: str) -> None:
        first = text.strip().splitlines()[0] if text.strip() else ""
        self.world.progress(f"{env:<6} {app:<20} {first}")

    def head(self, app: str) -> Bundle:
        """The work tree's bundle of ``app``: built once per pass, or read back from the
        archive when the head cache knows its release (no template is analysed then)."""
        if self._heads is None:
            self._heads = {}
        found = self._heads.get(app)
        if found is None:
            known = self.head_release(app)
            digest = known.rsplit(":", 1)[-1] if known else None
            if digest and self.archive.has(digest):
                found = dep.load_release(self.archive, known or "")
            else:
                found = self._build(app)
            self._heads[app] = found
        if isinstance(found, LlmopsError):
            raise found
        return found

    def _build(self, app: str) -> Bundle | LlmopsError:
        try:
            return build_bundle(self.repo.apps[app], Path(self.repo.root))
        except LlmopsError as exc:
            return exc

    def heads(self) -> dict[str, Bundle]:
        return {
            app: found for app, found in (self._heads or {}).items() if isinstance(found, Bundle)
        }

    def head_release(self, app: str) -> str | None:
        """The work tree's release id of ``app`` (the head cache answers unchanged apps)."""
        if app in self._head_ids:
            return self._head_ids[app]
        self._head_ids[app] = found = self._head_release(app)
        return found

    def _head_release(self, app: str) -> str | None:
        key = app_key(Path(self.repo.root), app, self.world.load_cache.digests.get(app))
        known = self.head_cache.get(app, key)
        if known is not None:
            return known
        if self._heads is None:
            self._heads = {}
        built = self._heads.get(app)
        if built is None:
            built = self._heads[app] = self._build(app)
        if isinstance(built, LlmopsError):
            return None
        self.head_cache.put(app, key, built.release_id)
        return built.release_id

    def desired(self, stage: Stage) -> dict[str, str]:
        """What should run in ``stage``: its pins; for the source stage, every app's work
        tree release where no pin says otherwise (computed once per pin change)."""
        found = self._desired.get(stage.env)
        if found is None:
            found = self._desired[stage.env] = self._compute_desired(stage)
        return found

    def _compute_desired(self, stage: Stage) -> dict[str, str]:
        pins = dict(self.repo.environments[stage.env].environment.spec.releases)
        if stage.source != "head":
            return pins
        found: dict[str, str] = {}
        for app in sorted(self.repo.apps):
            release = pins.get(app) or self.head_release(app)
            if release is not None:
                found[app] = release
        return found

    def work_for(self, env: str, app: str) -> AppWork:
        works = self.works.setdefault(env, {})
        found = works.get(app)
        if found is None:
            found = works[app] = AppWork(app, env)
        return found

    def settled(self) -> bool:
        return (
            not self.failed
            and not self.skipped
            and not self.options.dry_run
            and all(
                s.error is None
                and all(
                    a.error is None
                    and not any(x.status == "failed" and x.reason == c.ERROR for x in a.steps)
                    for a in s.apps
                )
                for s in self.stage_results
            )
        )

    # the port the steps use ----------------------------------------------------------
    @property
    def dry_run(self) -> bool:
        return self.options.dry_run

    def load_release(self, release: str) -> Bundle:
        return dep.load_release(self.archive, release, self.heads())

    def archive_release(self, app: str) -> LedgerEntry | None:
        return create_release(self.repo, app, self.archive).entry

    def gate(
        self, app: str, release: str, stage: Stage, bundle: Bundle, baseline: str | None
    ) -> tuple[GateResult, LedgerEntry]:
        result, report = self.gate_fn(self.repo, self.archive, bundle, stage, baseline)
        entry = record_gate_evidence(self.archive, app, release, stage, result, report, baseline)
        return result, entry

    def build(self, app: str, release: str, env: str) -> None:
        from llmops.ops.build import build_release

        environment = self.repo.environments[env].environment
        kind = environment.spec.target.kind
        push = kind == "kubernetes" or bool(environment.spec.registry)
        try:
            build_release(self.repo, app, self.archive, env=env, release_ref=release, push=push)
        finally:
            self.stale()  # the build appended what it built (and perhaps a release)

    def desired_app(self, bundle: Bundle, environment: Environment) -> DesiredApp:
        from llmops.deploy.desired import desired_app

        image = dep.image_for(environment, bundle.app, bundle.release_id, self.of(bundle.app))
        return dep.with_model_url(desired_app(bundle, environment, image), self.options.model_url)

    def target_gate(
        self, app: str, release: str, stage: Stage, baseline: str | None
    ) -> tuple[GateResult, LedgerEntry]:
        bundle = self.load_release(release)
        result, entry = self.gate(app, release, stage, bundle, baseline)
        self.wrote(f"gate {stage.env} of {short(release)}", entry)
        verdict = "passed" if result.passed else "FAILED"
        self.say(stage.env, app, f"gate {stage.env} {verdict} for {short(release)}")
        return result, entry

    def reload(self) -> None:
        from llmops.manifests.repository import load_repo

        self.repo = load_repo(self.root, prefix="", cache=self.world.load_cache)
        self._desired.clear()

    @property
    def remote_git(self) -> GitOps:
        from llmops.adapters.gitops import GitWorkTree

        if self._remote_git is None:
            self._remote_git = GitWorkTree(self.root)
        return self._remote_git

    def close(self) -> None:
        """Close the code host's client this pass opened (its pooled connections)."""
        close = getattr(self._pulls, "close", None)
        if callable(close):
            close()
        self._pulls = None

    def pulls(self) -> PullRequests | None:
        """The code host's client for pull requests (GitHub, with GITHUB_TOKEN), if any."""
        if self.git is not None or not self.world.environ.get("GITHUB_TOKEN", "").strip():
            return None
        if self._pulls is None:
            from llmops.adapters.github import client_from_env

            url = self.remote_git.remote_url(self.options.remote)
            self._pulls = client_from_env(url, self.world.environ)
        return self._pulls

    # the walk ------------------------------------------------------------------
    def run(self) -> None:
        pipelines = sorted(self.repo.pipelines.items())
        if not pipelines:
            raise UsageError("no pipeline: add pipelines/<name>.yaml with the stages to reconcile")
        envs = [s.env for _, p in pipelines for s in p.pipeline.spec.stages]
        if self.options.env is not None and self.options.env not in envs:
            raise UsageError(
                f"environment {self.options.env} is no stage of a pipeline (stages: {', '.join(envs)})"
            )
        for _, source in pipelines:
            stages = source.pipeline.spec.stages
            for k, stage in enumerate(stages):
                if self.options.env not in (None, stage.env):
                    continue
                if k > 0:
                    self.promote_into(stages[k - 1], stage)
                self.deploy(stages, k)

    # promotion into a stage ------------------------------------------------------
    def promote_into(self, previous: Stage, stage: Stage) -> None:
        for app in sorted(self.repo.apps):
            if self.desired(previous).get(app) is None or not self._wanted(app):
                continue
            self._check_stop()
            work = self.work_for(stage.env, app)
            try:
                self._promote_one(previous, stage, app, work)
            except Refused as exc:
                plan = exc.detail if isinstance(exc.detail, PromotionPlan) else None
                reason = (
                    plan.refusals[0].reason
                    if plan is not None and plan.refusals
                    else c.PROMOTION_FAILED
                )
                self._promotion(work, "refused", reason, exc.message, c.FALSE)
            except LlmopsError as exc:
                self._promotion(work, "failed", c.PROMOTION_FAILED, exc.message, c.FALSE)
                self.failed = True

    def _promotion(
        self, work: AppWork, status: c.StepStatus, reason: str, message: str, cond: c.Status
    ) -> None:
        work.set(c.PROMOTED, cond, reason, message)
        outcome = StepOutcome("promote", status, reason, message)
        work.steps.append(outcome)  # never stops the stage's own deploy steps
        if status in ("waiting", "refused", "failed"):
            verb = {"waiting": "waits", "refused": "refused", "failed": "failed"}[status]
            self.say(work.env, work.app, f"promotion {verb}: {message}")

    def _promote_one(self, previous: Stage, stage: Stage, app: str, work: AppWork) -> None:
        candidate = self.desired(previous).get(app)
        if candidate is None:
            return
        pin = self.repo.environments[stage.env].environment.spec.releases.get(app)
        if pin == candidate:
            work.set(c.PROMOTED, c.TRUE, c.ALREADY_PROMOTED, f"{short(candidate)} is pinned here")
            return
        if ledger_behind(self.of(app), app, previous.env, candidate):
            self._promotion(
                work,
                "waiting",
                c.NOT_RUNNING,
                f"{short(candidate)} does not run in {previous.env} yet",
                c.FALSE,
            )
            return
        plan = plan_promotion(
            self.repo,
            self.of(app),
            app,
            stage.env,
            now=self.world.now(),
            head_release=self.head_release(app),
            has_object=self.archive.has,
            waive_soak=self.options.skip_soak,
        )
        if not plan.allowed:
            refusal = plan.refusals[0]
            ready = soak_ready_at(self.of(app), app, previous.env, candidate, stage.soak)
            if ready is not None and refusal.reason == "SoakPending":
                self.wake_at = min(ready, self.wake_at) if self.wake_at else ready
            text = "; ".join(f"{r.condition}: {r.message}" for r in plan.refusals)
            self._promotion(work, "waiting", refusal.reason, text, c.FALSE)
            return
        local = self.git is not None
        if plan.mode == "pull-request" and local and not self.options.approve:
            why = "requires approval" if stage.approval == "required" else "is by pull request"
            self._promotion(
                work,
                "waiting",
                "ApprovalRequired",
                f"promotion into {stage.env} {why}, and this repository has no remote to open "
                f"one on: approve it locally with `llmops up --approve` (or `llmops promote {app} "
                f"--to {stage.env}` after adding a remote)",
                c.FALSE,
            )
            return
        if self.options.dry_run:
            self._promotion(
                work, "skipped", c.WOULD_PROMOTE, f"would promote {short(candidate)}", c.UNKNOWN
            )
            return
        if soak_waived(plan):
            self.say(
                stage.env, app, f"soak of {stage.soak} waived ({SOAK_WAIVER}, this machine only)"
            )
        result = promote_now(
            self,
            app,
            stage.env,
            git=self.git or self.remote_git,
            pulls=self.pulls(),
            remote=self.options.remote,
            now=self.world.now,
            soak_waived_by=f"llmops up {SOAK_WAIVER}" if self.options.skip_soak else None,
        )
        self._promoted(stage, app, work, result)

    def _promoted(self, stage: Stage, app: str, work: AppWork, result: Promoted) -> None:
        release = result.plan.candidate
        if not result.applied:
            work.set(c.PROMOTED, c.TRUE, c.ALREADY_PROMOTED, "; ".join(result.notes))
            return
        if result.plan.mode == "pull-request" and self.git is not None:
            assert result.branch is not None
            commit = self.git.merge_proposal(result.branch)
            merged = self.archive.append(
                "promoted",
                app,
                release=release,
                env=stage.env,
                data={
                    "mode": "pull-request",
                    "state": "committed",
                    "commit": commit,
                    "branch": result.branch,
                    "approvedBy": "llmops up --approve",
                    "previous": result.plan.current,
                    **(
                        {"soakWaivedBy": f"llmops up {SOAK_WAIVER}"}
                        if soak_waived(result.plan)
                        else {}
                    ),
                },
            )
            self.wrote(
                f"approved and merged the promotion of {short(release)} into {stage.env}", merged
            )
            self._promotion(
                work,
                "done",
                c.APPROVED_LOCALLY,
                f"{short(release)} approved locally ({commit[:12]})",
                c.TRUE,
            )
            self.say(stage.env, app, f"promoted {short(release)} (approved locally)")
            self.set_pin(stage.env, app, release)
        elif result.plan.mode == "pull-request":
            self.work.append(
                f"proposed {short(release)} for {stage.env}: {result.pull_request or result.branch}"
            )
            self._promotion(
                work,
                "done",
                c.PROPOSED,
                "; ".join(result.notes) or f"pull request {result.pull_request}",
                c.UNKNOWN,
            )
            self.say(
                stage.env, app, f"proposed {short(release)}: {result.pull_request or result.branch}"
            )
        else:
            self.work.append(
                f"promoted {short(release)} into {stage.env} ({(result.commit or '')[:12]})"
            )
            self._promotion(
                work,
                "done",
                c.COMMITTED,
                f"{short(release)} committed ({(result.commit or '')[:12]})",
                c.TRUE,
            )
            self.say(
                stage.env, app, f"promoted {short(release)} (commit {(result.commit or '')[:12]})"
            )
            self.set_pin(stage.env, app, release)

    def set_pin(self, env: str, app: str, release: str | None) -> None:
        """The manifests as the commit that moved a pin left them (only that pin changed),
        without reading the repository again."""
        if release is None:
            return
        source = self.repo.environments[env]
        spec = source.environment.spec
        spec = spec.model_copy(update={"releases": {**spec.releases, app: release}})
        environment = source.environment.model_copy(update={"spec": spec})
        environments = {**self.repo.environments, env: replace(source, environment=environment)}
        self.repo = replace(self.repo, environments=environments)
        self._desired.pop(env, None)

    def _promote_world(self) -> PromoteWorld:
        """The world ``llmops rollback`` and ``hold`` see: this pass's archive and git
        (they run no gate)."""
        return PromoteWorld(
            archive=self.archive,
            git=self.git,
            now=self.world.now,
            environ=self.world.environ,
            use_github=self.git is None,
        )

    # deploying a stage ----------------------------------------------------------
    def deploy(self, stages: list[Stage], k: int) -> None:
        stage = stages[k]
        env = stage.env
        environment = self.repo.environments[env].environment
        spec = environment.spec.target
        try:
            target = self.world.target(env, spec, self.archive, self.state_root)
            live = dict(target.live())
        except LlmopsError as exc:
            self.failed = True
            self.stage_results.append(StageResult(env, spec.kind, error=exc.message))
            self.say(env, "-", f"target unavailable: {exc.message}")
            return
        self.targets[env] = (spec, target)
        desired = self.desired(stage)
        ctx = StageCtx(self, stages, k, environment, live)
        inputs = self._stage_inputs(stages, k, environment)
        every = set(desired) | set(live) | set(self.works.get(env, {}))
        for gone in [s for s in self.world.steady if s[0] == env and s[1] not in every]:
            del self.world.steady[gone]
        left_alone = {app for app in every if not self._wanted(app)}
        for app in sorted(every - left_alone):
            self._check_stop()
            work = self.work_for(env, app)
            work.desired = desired.get(app)
            one = live.get(app)
            if one is not None:
                work.live, work.live_ready, work.endpoint = one.release, one.ready, one.endpoint
                work.facts["live"] = one
            if work.desired is not None:
                self._prepare(ctx, work, inputs)
        works = list(self.works.get(env, {}).values())
        ready = {w.app: w.facts["desired"] for w in works if "desired" in w.facts}
        blocked = {w.app for w in works if w.desired is not None and "desired" not in w.facts}
        blocked |= left_alone  # what runs for an app left alone stays as it is
        plan = without_apps(target.plan(list(ready.values()), live), blocked)
        plan, corrected, reported = apply_drift_policy(
            plan, live, ready, environment.spec.drift_policy
        )
        for app in reported:
            self.works[env][app].set(
                c.IN_SYNC, c.FALSE, c.DRIFT_REPORTED, "; ".join(live[app].drift)
            )
        for app in corrected:
            self.works[env][app].set(
                c.IN_SYNC, c.TRUE, c.DRIFT_CORRECTED, "; ".join(live[app].drift)
            )
        changed = changed_apps(plan)
        if changed:
            self._apply(ctx, target, plan, ready)
        for work in works:
            self._after(ctx, work)
        self.stage_results.append(
            StageResult(
                env,
                spec.kind,
                tuple(w.freeze() for w in sorted(works, key=lambda w: w.app)),
                len(changed),
            )
        )

    def _wanted(self, app: str) -> bool:
        if self.options.wants(app):
            return True
        self.skipped.add(app)
        return False

    def _check_stop(self) -> None:
        if self.world.should_stop():
            raise Interrupted("the pass was stopped before it ended; the next pass goes on")

    def _stage_inputs(self, stages: list[Stage], k: int, environment: Environment) -> str:
        """Everything of a stage an app's prepare steps read, but the pins."""
        return json.dumps(
            [
                self.options.key(),
                [s.model_dump_json() for s in stages[: k + 1]],
                environment.model_dump_json(exclude={"spec": {"releases"}}),
            ]
        )

    def _prepare(self, ctx: StageCtx, work: AppWork, inputs: str) -> None:
        """The prepare steps of one app, or their answer of an earlier pass when nothing
        they read changed: the stage, the release, the work tree's release, the app's
        ledger entries and what runs. Only an app that runs as desired, ready and
        undrifted, is remembered, so a remembered answer never hides work."""
        import hashlib

        one: LiveApp | None = work.facts.get("live")
        entries = self.of(work.app)
        head = self.head_release(work.app) if ctx.stage.source == "head" else None
        key = hashlib.sha256(
            json.dumps(
                [
                    inputs,
                    work.desired,
                    head,
                    len(entries),
                    entries[-1].hash if entries else "",
                    [one.release, one.fingerprint, one.ready, one.drift, one.endpoint, one.colour]
                    if one is not None
                    else None,
                ]
            ).encode()
        ).hexdigest()
        slot = (work.env, work.app)
        known = self.world.steady.get(slot)
        if known is not None and known[0] == key:
            work.conditions.update(known[1])
            work.facts["desired"] = known[2]
            return
        self.world.steady.pop(slot, None)
        PREPARE.run(ctx, work)
        wanted: DesiredApp | None = work.facts.get("desired")
        if (
            not self.options.dry_run
            and not work.steps
            and not work.stopped
            and wanted is not None
            and one is not None
            and one.ready
            and not one.drift
            and one.fingerprint == wanted.fingerprint
        ):
            self.world.steady[slot] = (key, dict(work.conditions), wanted)

    def _apply(
        self, ctx: StageCtx, target: Target, plan: DeployPlan, ready: Mapping[str, DesiredApp]
    ) -> None:
        env = ctx.stage.env
        changed = changed_apps(plan)
        if self.options.dry_run:
            for app in changed:
                lines = [
                    f"{ch.kind} {ch.object}" for ch in plan.for_app(app) if ch.kind != "unchanged"
                ]
                self.work_for(env, app).record(
                    StepOutcome("apply", "skipped", c.WOULD_APPLY, "; ".join(lines))
                )
            return
        self.world.progress(f"{env:<6} applying {len(changed)} change(s): {', '.join(changed)}")
        bundles = {
            d.release: b for d in ready.values() if (b := ctx.bundles.get(d.app)) is not None
        }
        check = dep.make_verify(ctx.stage, bundles) if self.options.verify else None
        try:
            result = target.apply(
                plan, verify=check, timeout=self.options.timeout, grace=self.options.grace
            )
        except LlmopsError as exc:
            self.failed = True
            for app in changed:
                self.work_for(env, app).record(StepOutcome("apply", "failed", c.ERROR, exc.message))
            return
        self._outcomes(ctx, plan, result)

    def _outcomes(self, ctx: StageCtx, plan: DeployPlan, result: ApplyResult) -> None:
        env = ctx.stage.env
        pins = self.repo.environments[env].environment.spec.releases
        wanted = {d.app: d for d in plan.desired}
        for done in result.results:
            work = self.work_for(env, done.app)
            target = wanted.get(done.app)
            pinned = target is not None and pins.get(done.app) == target.release
            reason = f"{env} rollout/verify"
            for entry in dep.record_outcome(
                self.archive, done, target, reason, restored_entry=not pinned
            ):
                self.wrote(f"ledger: {entry.event} {entry.app} {env}", entry)
            if done.outcome == "deployed":
                work.live, work.live_ready, work.endpoint = done.release, True, done.endpoint
                work.set(
                    c.DEPLOYED,
                    c.TRUE,
                    c.APPLIED,
                    f"{done.colour or ''} {done.endpoint or ''}".strip(),
                )
                work.record(StepOutcome("apply", "done", c.APPLIED, done.message))
                self.work.append(f"deployed {short(done.release)} to {env}")
                self.say(
                    env,
                    done.app,
                    f"deployed {short(done.release)} ({done.colour}) at {done.endpoint}",
                )
            elif done.outcome == "pruned":
                work.live, work.live_ready, work.endpoint = None, False, None
                work.record(StepOutcome("apply", "done", c.PRUNED, done.message))
                self.work.append(f"removed {done.app} from {env}")
                self.say(env, done.app, "removed (no longer desired)")
            elif done.outcome in ("rolled-back", "failed"):
                work.live = done.release if done.outcome == "rolled-back" else None
                work.live_ready = done.outcome == "rolled-back" and done.release is not None
                work.set(
                    c.DEPLOYED,
                    c.FALSE,
                    c.ROLLED_BACK if done.outcome == "rolled-back" else c.APPLY_FAILED,
                    done.message,
                )
                work.record(
                    StepOutcome(
                        "apply",
                        "failed",
                        c.ROLLED_BACK if done.outcome == "rolled-back" else c.APPLY_FAILED,
                        done.message,
                    )
                )
                self.say(env, done.app, f"{done.outcome}: {done.message}")

    def _after(self, ctx: StageCtx, work: AppWork) -> None:
        """After apply: the pin of a bad release goes back through git; the ledger learns
        of a release that runs without a record (a crash between apply and ledger)."""
        if self.options.dry_run or work.desired is None:
            return
        env = ctx.stage.env
        pins = self.repo.environments[env].environment.spec.releases
        try:
            if pins.get(work.app) == work.desired and marked_bad(self.of(work.app), work.desired):
                self._rollback_pin(ctx, work)
                return
            one: LiveApp | None = work.facts.get("live")
            wanted: DesiredApp | None = work.facts.get("desired")
            if (
                wanted is not None
                and one is not None
                and one.ready
                and one.fingerprint == wanted.fingerprint
                and ledger_behind(self.of(work.app), work.app, env, wanted.release)
            ):
                entry = self.archive.append(
                    "deployed",
                    work.app,
                    release=wanted.release,
                    env=env,
                    data={
                        "endpoint": one.endpoint,
                        "fingerprint": wanted.fingerprint,
                        "colour": one.colour,
                        "recovered": True,
                    },
                )
                self.wrote(f"ledger: {entry.event} {work.app} {env} (recorded what runs)", entry)
                work.set(
                    c.DEPLOYED, c.TRUE, c.LEDGER_REPAIRED, "running; recorded in the ledger now"
                )
        except LlmopsError as exc:
            self.failed = True
            work.record(StepOutcome("record", "failed", c.ERROR, exc.message))

    def _rollback_pin(self, ctx: StageCtx, work: AppWork) -> None:
        """The pin of a release marked bad goes back to the last good one through git
        (commit, or a proposal: merged here with ``approve`` on a repository without a
        remote), with a hold; with nothing to go back to, only the hold."""
        env, app = ctx.stage.env, work.app
        bad = marked_bad(self.of(app), work.desired or "")
        reason = str(bad.data.get("reason") or "marked bad") if bad else "marked bad"
        try:
            result = rollback(
                self.root,
                app,
                env,
                reason=reason,
                world=self._promote_world(),
                remote=self.options.remote,
            )
        except PromotionInFlight as exc:
            work.record(StepOutcome("rollback", "waiting", "RollbackProposed", exc.message))
            return
        except Refused as exc:
            if active_hold(self.of(app), app, env) is None:
                why = (
                    f"{short(work.desired)} failed in {env} and nothing earlier ran there: {reason}"
                )
                held = hold(self.root, app, env, why, world=self._promote_world())
                self.wrote(f"held {app} in {env}", *([held.entry] if held.entry else []))
            work.record(StepOutcome("rollback", "refused", "NoEarlierRelease", exc.message))
            return
        for entry in result.entries:
            self.wrote(f"ledger: {entry.event} {app} {env}", entry)
        target = result.plan.candidate
        merged = result.plan.mode == "commit"
        if result.applied and result.plan.mode == "pull-request":
            if self.git is not None and self.options.approve:
                assert result.branch is not None
                commit = self.git.merge_proposal(result.branch)
                entry = self.archive.append(
                    "rolled-back",
                    app,
                    release=target,
                    env=env,
                    data={
                        "mode": "pull-request",
                        "state": "committed",
                        "commit": commit,
                        "from": result.plan.current,
                        "reason": reason,
                        "approvedBy": "llmops up --approve",
                    },
                )
                self.wrote(f"approved and merged the rollback of {app} in {env}", entry)
                merged = True
            else:
                text = f"rollback of {app} in {env} to {short(target)} proposed: {result.pull_request or result.branch}"
                work.record(StepOutcome("rollback", "waiting", "RollbackProposed", text))
                self.say(env, app, text)
                return
        work.record(
            StepOutcome(
                "rollback",
                "done",
                "PinRolledBack",
                f"pin of {app} in {env} back to {short(target)}; held",
            )
        )
        self.say(
            env, app, f"pin rolled back to {short(target)} through git; automatic promotion held"
        )
        if result.applied and merged:
            self.set_pin(env, app, target)

    # memo ------------------------------------------------------------------------
    def save_memo(self, path: Path, options: ReconcileOptions, commit: str | None) -> None:
        if commit is None:
            m.forget(path)
            return
        envs: dict[str, dict[str, str]] = {}
        targets: dict[str, dict[str, object]] = {}
        for env, (spec, target) in self.targets.items():
            live = target.live()
            if any(one.fingerprint is None or not one.ready or one.drift for one in live.values()):
                m.forget(path)
                return
            envs[env] = {app: str(one.fingerprint) for app, one in live.items()}
            targets[env] = spec.model_dump(mode="json", by_alias=True)
        root = getattr(self.archive, "root", None)
        unsettled = tuple(
            a.to_json() for s in self.stage_results for a in s.apps if a.phase != "Ready"
        )
        memo = m.Memo(
            source=commit,
            tip=m.ledger_tip(self.archive),
            envs=envs,
            wake_at=iso(self.wake_at) if self.wake_at else None,
            options=options.key(),
            targets=targets,
            archive=str(root) if isinstance(root, Path) else None,
            unsettled=unsettled,
        )
        m.save_memo(path, memo)


def _default_gate(model_url: str | None) -> GateFn:
    def gate(
        repo: Repo, archive: Archive, bundle: Bundle, stage: Stage, baseline: str | None
    ) -> tuple[GateResult, bytes]:
        return run_gate(repo, archive, bundle, stage, baseline, model_url=model_url)

    return gate


# --------------------------------------------------------------------------- the loop


def reconcile_loop(
    root: Path,
    options: ReconcileOptions,
    world: ReconcileWorld,
    *,
    interval: float,
    stop: threading.Event,
    on_pass: Callable[[PassResult], None],
    on_error: Callable[[LlmopsError], None],
) -> int:
    """Pass after pass until ``stop`` is set; returns the number of passes. A pass that
    cannot run (invalid manifests, git unreachable) is reported and retried next time."""
    passes = 0
    while not stop.is_set():
        try:
            result = reconcile_pass(root, options, world)
        except LlmopsError as exc:
            on_error(exc)
        else:
            on_pass(result)
        passes += 1
        stop.wait(interval)
    return passes


__all__ = [
    "MEMO_DIR",
    "ReconcileOptions",
    "ReconcileWorld",
    "memo_file",
    "reconcile_loop",
    "reconcile_pass",
]
