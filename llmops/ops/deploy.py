"""Deploy use cases: the target of an environment, what should run there, plan and apply.

Called by the CLI (``llmops plan``, ``llmops apply``), by ``llmops.ops.reconcile`` (one
environment of a pass) and by ``llmops up``. The pieces are separate so the reconciler can
isolate apps: :func:`prepare_env` resolves every app's ``DesiredApp`` and collects per-app
problems instead of raising, :func:`make_verify` builds the post-deploy check from the
pipeline stage's ``verify.suites``, and :func:`record_apply` writes the ledger. The
whole-environment :func:`apply_env` refuses before changing anything when a pin lacks
gate evidence or is marked bad.

What should run: an environment's pins (``spec.releases``); for the pipeline's source
stage (``source: head``) the caller names the releases explicitly (the work tree's, see
:func:`head_releases`), and a pin there wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmops.archive.base import Archive, ObjectMissing
from llmops.deploy.target import Target, Verify, VerifyResult
from llmops.domain.archive import LedgerEntry
from llmops.domain.deploy import ENV_MODEL_URL, ApplyResult, Deployed, DeployPlan, DesiredApp
from llmops.domain.errors import InvalidInput, LlmopsError, Refused, UsageError
from llmops.domain.models.environment import Environment
from llmops.domain.models.environment import Target as TargetSpec
from llmops.domain.models.pipeline import Stage
from llmops.domain.repo import Repo
from llmops.ops.evidence import unevidenced_pins
from llmops.promote.checks import find_stage, short
from llmops.promote.ledger import marked_bad, missing_stages
from llmops.releases.bundle import Bundle, load_bundle

#: where deploy targets keep their state (the local target's processes), under the repo root
#: (``llmops.deploy.local.state_root_for``)
DEFAULT_STATE_ROOT = ".llmops/targets"


# --------------------------------------------------------------------------- lookup


def environment_of(repo: Repo, env: str) -> Environment:
    source = repo.environments.get(env)
    if source is None:
        known = ", ".join(sorted(repo.environments)) or "none"
        raise UsageError(f"no environment named {env!r} (environments: {known})")
    return source.environment


def stage_of(repo: Repo, env: str) -> tuple[Stage, tuple[Stage, ...]] | None:
    """The pipeline stage deploying into ``env`` and the stages up to it, if any."""
    found = find_stage(repo, env, required=False)
    if found is None:
        return None
    _, pipeline, k = found
    stages = tuple(pipeline.spec.stages)
    return stages[k], stages[: k + 1]


def state_root_for(repo: Repo, state_root: Path | None = None) -> Path:
    return state_root if state_root is not None else Path(repo.root) / DEFAULT_STATE_ROOT


def target_for(repo: Repo, env: str, archive: Archive, *, state_root: Path) -> Target:
    """The deploy target ``env`` names: local processes, a Kubernetes namespace, docker."""
    return target_from_spec(env, environment_of(repo, env).spec.target, archive, state_root)


def target_from_spec(env: str, spec: TargetSpec, archive: Archive, state_root: Path) -> Target:
    """The target for an environment's ``spec.target`` (the reconciler keeps these): local
    processes, containers on the local Docker Engine (connected on first use), or a
    namespace of the cluster the kubeconfig context names (in-cluster in a pod)."""
    if spec.kind == "local":
        from llmops.deploy.local import LocalTarget

        local: Target = LocalTarget(state_root, env, spec.base_port, archive)
        return local
    if spec.kind == "kubernetes":
        from llmops.adapters.kube import KubeClient
        from llmops.deploy.kubernetes import KubernetesTarget

        assert spec.namespace is not None  # the Environment model requires it
        client = KubeClient.from_config(context=spec.context)
        kube: Target = KubernetesTarget(client, spec.namespace, env)
        return kube
    if spec.kind == "docker":
        from llmops.deploy.docker import DockerTarget

        docker: Target = DockerTarget(env, spec.base_port, state_root)
        return docker
    raise UsageError(f"target kind {spec.kind}: not available yet")


# --------------------------------------------------------------------------- desired


def head_releases(repo: Repo) -> dict[str, Bundle]:
    """Every app's bundle as it is in the work tree, by app name."""
    from llmops.releases.bundle import build_bundle

    return {
        name: build_bundle(source, Path(repo.root)) for name, source in sorted(repo.apps.items())
    }


def source_releases(repo: Repo, env: str) -> tuple[dict[str, str], dict[str, Bundle]]:
    """For the pipeline's source stage (``source: head``), the work tree's release of every
    app and the bundles; nothing for other environments."""
    found = stage_of(repo, env)
    if found is None or found[0].source != "head":
        return {}, {}
    work = head_releases(repo)
    return {app: bundle.release_id for app, bundle in work.items()}, work


def desired_releases(
    repo: Repo, env: str, releases: Mapping[str, str] | None = None
) -> dict[str, str]:
    """What should run in ``env``: its pins, plus ``releases`` for apps not pinned there."""
    pins = dict(environment_of(repo, env).spec.releases)
    return dict(sorted({**dict(releases or {}), **pins}.items()))


@dataclass(frozen=True, slots=True)
class Prepared:
    """One environment's desired apps, their bundles, and the apps that could not be resolved."""

    env: str
    desired: tuple[DesiredApp, ...]
    bundles: Mapping[str, Bundle]
    problems: Mapping[str, str] = field(default_factory=dict)


def load_release(
    archive: Archive, release: str, work: Mapping[str, Bundle] | None = None
) -> Bundle:
    """The bundle of ``release``: from the archive, or the work tree's when it is that one."""
    app = release.split("@", 1)[0]
    candidate = (work or {}).get(app)
    if candidate is not None and candidate.release_id == release:
        return candidate
    digest = release.rsplit(":", 1)[-1]
    try:
        bundle = load_bundle(archive.get(digest))
    except ObjectMissing:
        raise UsageError(
            f"release {short(release)} is not in the archive; `llmops release create {app}` "
            "archives the work tree's release"
        ) from None
    if bundle.release_id != release:
        raise InvalidInput(f"archived object {digest[:12]} is not the bundle of {release}")
    return bundle


def with_model_url(desired: DesiredApp, model_url: str | None) -> DesiredApp:
    """``desired`` calling ``model_url`` unless the environment names an endpoint already."""
    if model_url is None or any(name == ENV_MODEL_URL for name, _ in desired.env_vars):
        return desired
    env_vars = tuple(sorted((*desired.env_vars, (ENV_MODEL_URL, model_url))))
    return dataclasses.replace(desired, env_vars=env_vars)


def image_for(
    environment: Environment, app: str, release: str, entries: Sequence[LedgerEntry]
) -> str | None:
    """The image a target runs: None for local processes, the built digest otherwise."""
    if environment.spec.target.kind == "local":
        return None
    from llmops.deploy.images import built_image, image_ref, image_repository

    built = built_image(entries, release, image_repository(environment, app))
    return built or image_ref(environment, release)


def prepare_env(
    repo: Repo,
    env: str,
    archive: Archive,
    *,
    releases: Mapping[str, str] | None = None,
    entries: Sequence[LedgerEntry] | None = None,
    work: Mapping[str, Bundle] | None = None,
    model_url: str | None = None,
) -> Prepared:
    """Every app that should run in ``env`` as a ``DesiredApp``; per-app problems collected."""
    from llmops.deploy.desired import desired_app

    environment = environment_of(repo, env)
    entries = archive.entries() if entries is None else entries
    desired: list[DesiredApp] = []
    bundles: dict[str, Bundle] = {}
    problems: dict[str, str] = {}
    for app, release in desired_releases(repo, env, releases).items():
        try:
            bundle = load_release(archive, release, work)
            image = image_for(environment, app, release, entries)
            desired.append(with_model_url(desired_app(bundle, environment, image), model_url))
            bundles[release] = bundle
        except LlmopsError as exc:
            problems[app] = exc.message
    return Prepared(env, tuple(desired), bundles, problems)


def desired_for(
    repo: Repo,
    env: str,
    archive: Archive,
    *,
    releases: Mapping[str, str] | None = None,
    model_url: str | None = None,
    work: Mapping[str, Bundle] | None = None,
) -> tuple[DesiredApp, ...]:
    """What should run in ``env`` (raises the first app's problem)."""
    return _prepared(repo, env, archive, releases, model_url, work).desired


def _prepared(
    repo: Repo,
    env: str,
    archive: Archive,
    releases: Mapping[str, str] | None,
    model_url: str | None,
    work: Mapping[str, Bundle] | None,
    entries: Sequence[LedgerEntry] | None = None,
) -> Prepared:
    prepared = prepare_env(
        repo, env, archive, releases=releases, entries=entries, work=work, model_url=model_url
    )
    for app, problem in prepared.problems.items():
        raise UsageError(f"{app} in {env}: {problem}")
    return prepared


def _releases(
    repo: Repo, env: str, releases: Mapping[str, str] | None
) -> tuple[Mapping[str, str], dict[str, Bundle]]:
    """``releases`` as given, or the work tree's for the source stage."""
    if releases is not None:
        return releases, {}
    return source_releases(repo, env)


# --------------------------------------------------------------------------- checks


def evidence_problems(
    repo: Repo,
    env: str,
    entries: Sequence[LedgerEntry],
    releases: Mapping[str, str],
    has_object: Callable[[str], bool],
) -> dict[str, str]:
    """Per app, why ``releases`` may not run in ``env``: missing gate evidence for a stage
    up to ``env``, or a bad mark. Environments that are no pipeline's stage are not checked."""
    found = stage_of(repo, env)
    problems: dict[str, str] = {}
    for app, release in releases.items():
        bad = marked_bad(entries, release)
        if bad is not None:
            problems[app] = (
                f"{short(release)} was marked bad at {bad.time} "
                f"({bad.data.get('reason') or 'no reason given'}); roll back with "
                f"`llmops rollback {app} --env {env}`"
            )
            continue
        if found is None:
            continue
        gaps = missing_stages(entries, release, found[1], has_object)
        if gaps:
            names = ", ".join(stage.env for stage, _, _ in gaps)
            problems[app] = (
                f"{short(release)} has no passing gate evidence for stage {names}; "
                f"gate it first (`llmops promote {app} --to {gaps[0][0].env}`)"
            )
    return problems


def missing_images(environment: Environment, desired: Sequence[DesiredApp]) -> dict[str, str]:
    """Apps whose image was never pushed (kubernetes pulls by digest; docker runs a local
    tag, and its apply says so if the engine lacks it)."""
    if environment.spec.target.kind != "kubernetes":
        return {}
    return {
        d.app: f"no image of {short(d.release)} was built; run `llmops build {d.app}` first"
        for d in desired
        if d.image is None or "@sha256:" not in d.image
    }


# --------------------------------------------------------------------------- verify, ledger


def make_verify(stage: Stage | None, bundles: Mapping[str, Bundle]) -> Verify | None:
    """The post-deploy smoke eval of ``stage`` (its ``verify.suites`` of each release's own
    bundle, against the new colour), or None when the stage names no verify."""
    if stage is None or stage.verify is None:
        return None
    spec = stage.verify
    env = stage.env
    from llmops.evals.verify import verify_release

    def check(desired: DesiredApp, base_url: str) -> VerifyResult:
        bundle = bundles.get(desired.release)
        if bundle is None:
            return VerifyResult(False, f"no bundle of {short(desired.release)} to verify with")
        run = verify_release(
            bundle, tuple(spec.suites), stage=env, min_pass_rate=spec.min_pass_rate
        )
        return run(desired, base_url)

    return check


def record_apply(
    archive: Archive, plan: DeployPlan, result: ApplyResult, reason: str = "post-deploy check"
) -> list[LedgerEntry]:
    """The ledger entries of one apply, app by app (:func:`record_outcome`)."""
    desired = {d.app: d for d in plan.desired}
    written: list[LedgerEntry] = []
    for done in result.results:
        written.extend(record_outcome(archive, done, desired.get(done.app), reason))
    return written


def record_outcome(
    archive: Archive,
    done: Deployed,
    desired: DesiredApp | None,
    reason: str = "post-deploy check",
    *,
    restored_entry: bool = True,
) -> list[LedgerEntry]:
    """The ledger entries of one app's outcome: ``deployed`` (colour, endpoint,
    fingerprint); for a failed rollout or verify (``rolled-back``: the old colour kept
    serving; ``failed``: nothing served before) ``marked-bad`` for the release that
    failed, and ``rolled-back`` to the release that kept serving. When only the
    environment's settings changed (the same release was serving), nothing is marked:
    the outcome is reported and the next apply tries again. ``restored_entry``
    False leaves that entry to the git rollback that follows (the reconciler's)."""
    written: list[LedgerEntry] = []
    if done.outcome == "deployed" and done.release is not None:
        data = {
            "colour": done.colour,
            "endpoint": done.endpoint,
            "fingerprint": desired.fingerprint if desired is not None else None,
            "previous": done.previous,
        }
        entry = archive.append("deployed", done.app, release=done.release, env=done.env, data=data)
        written.append(entry)
        return written
    if done.outcome not in ("rolled-back", "failed") or desired is None:
        return written
    bad = desired.release
    if done.previous == bad:
        return written  # only settings changed: the release itself is not to blame
    why = _first_line(done.message) or f"the {reason} failed"
    if marked_bad(archive.entries(), bad) is None:
        data = {"reason": why, "outcome": done.outcome, "message": done.message[:4000]}
        written.append(archive.append("marked-bad", done.app, release=bad, env=done.env, data=data))
    kept = done.release if done.outcome == "rolled-back" else None
    if restored_entry and kept and kept != bad:
        data = {"from": bad, "reason": why, "state": "restored", "by": "target"}
        written.append(
            archive.append("rolled-back", done.app, release=kept, env=done.env, data=data)
        )
    return written


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


# --------------------------------------------------------------------------- use cases


@dataclass(frozen=True, slots=True)
class DeployOutcome:
    """What ``apply`` did (``result`` None for a dry run or a no-op plan)."""

    plan: DeployPlan
    dry_run: bool
    result: ApplyResult | None = None
    entries: tuple[LedgerEntry, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result is None or self.result.ok


def plan_env(
    repo: Repo,
    env: str,
    archive: Archive,
    *,
    state_root: Path | None = None,
    releases: Mapping[str, str] | None = None,
    target: Target | None = None,
    model_url: str | None = None,
) -> DeployPlan:
    """Desired vs live for ``env``: computed, never applied. ``releases`` None means the
    pins, plus the work tree's releases when ``env`` is the pipeline's source stage."""
    environment_of(repo, env)  # an unknown environment is a UsageError naming the known ones
    _refuse_unevidenced(repo, env, archive, "plan")
    target = target or target_for(repo, env, archive, state_root=state_root_for(repo, state_root))
    chosen, work = _releases(repo, env, releases)
    desired = _prepared(repo, env, archive, chosen, model_url, work).desired
    return target.plan(desired, target.live())


def _refuse_unevidenced(repo: Repo, env: str, archive: Archive, verb: str) -> None:
    """``Refused`` naming each pin of ``env`` (file:line) without passing gate evidence:
    only gated releases move, and neither plan nor apply pretends otherwise."""
    env_file = repo.environments[env].file
    where = [d.render() for d in unevidenced_pins(repo, archive) if d.file == env_file]
    if where:
        raise Refused(f"refusing to {verb} {env}: " + "; ".join(where), where)


def apply_env(
    repo: Repo,
    env: str,
    archive: Archive,
    *,
    state_root: Path | None = None,
    releases: Mapping[str, str] | None = None,
    dry_run: bool = False,
    timeout: float = 120.0,
    grace: float = 0.0,
    verify: bool = True,
    target: Target | None = None,
    model_url: str | None = None,
) -> DeployOutcome:
    """Plan ``env`` and apply the plan once. Refuses (``Refused``, nothing changed) when a
    pin lacks gate evidence (``llmops.ops.evidence.unevidenced_pins``, each at its
    file:line), when a release that should run (the source stage's too) lacks evidence
    or is marked bad, or has no built image."""
    target = target or target_for(repo, env, archive, state_root=state_root_for(repo, state_root))
    entries = archive.entries()
    chosen, work = _releases(repo, env, releases)
    wanted = desired_releases(repo, env, chosen)
    _refuse_unevidenced(repo, env, archive, "apply")
    problems = evidence_problems(repo, env, entries, wanted, archive.has)
    if problems:
        lines = "; ".join(f"{app}: {text}" for app, text in sorted(problems.items()))
        raise Refused(f"refusing to apply {env}: {lines}", problems)
    prepared = _prepared(repo, env, archive, chosen, model_url, work, entries)
    desired = prepared.desired
    images = missing_images(environment_of(repo, env), desired)
    if images:
        lines = "; ".join(f"{app}: {text}" for app, text in sorted(images.items()))
        raise Refused(f"refusing to apply {env}: {lines}", images)
    plan = target.plan(desired, target.live())
    if dry_run or plan.noop:
        return DeployOutcome(plan, dry_run)
    found = stage_of(repo, env)
    check = make_verify(found[0] if found else None, prepared.bundles) if verify else None
    result = target.apply(plan, verify=check, timeout=timeout, grace=grace)
    return DeployOutcome(plan, False, result, tuple(record_apply(archive, plan, result)))


__all__ = [
    "DEFAULT_STATE_ROOT",
    "DeployOutcome",
    "Prepared",
    "apply_env",
    "desired_for",
    "desired_releases",
    "environment_of",
    "evidence_problems",
    "head_releases",
    "load_release",
    "make_verify",
    "plan_env",
    "prepare_env",
    "record_apply",
    "record_outcome",
    "source_releases",
    "stage_of",
    "target_for",
    "target_from_spec",
    "with_model_url",
]
