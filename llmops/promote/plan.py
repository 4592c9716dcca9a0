"""Promotion plans: every check, named, and the pin change. Pure.

Called by ``llmops.ops.promote``, which gathers the facts (the loaded repository, the
ledger, the work tree's release, what is in flight on the remote), prints the plan for
``--dry-run`` and applies exactly this plan otherwise. Nothing here touches git, the
archive or the network.

Promotion of APP into stage k: the candidate is the release pinned in the stage before
(``--from`` names another earlier stage), or the work tree's release for the first stage
(and for a ``source: head`` stage before it that pins nothing). It may move only if it
has passing evidence for every stage 1..k-1, passing evidence for k (or apply runs the
gate first), ran in the previous stage for k's ``soak``, is not marked bad, meets k's
approval policy (``approval: required`` means a pull request), and no hold or other
proposal for (APP, k) stands.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from llmops.domain.archive import LedgerEntry
from llmops.domain.errors import UsageError
from llmops.domain.models.base import parse_duration
from llmops.domain.models.pipeline import Stage
from llmops.domain.repo import Repo
from llmops.promote import conditions as c
from llmops.promote.checks import (
    Check,
    InFlight,
    Kind,
    Mode,
    PromotionPlan,
    StageEvidence,
    approval_check,
    archived_check,
    check_names,
    default_mode,
    find_stage,
    in_flight_check,
    pin_change_check,
    promotion_branch,
    short,
)
from llmops.promote.ledger import (
    active_hold,
    describe_evidence_gap,
    entered_at,
    evidence_state,
    marked_bad,
    parse_time,
)
from llmops.promote.rollback import plan_rollback

__all__ = [
    "Check",
    "InFlight",
    "Kind",
    "Mode",
    "PromotionPlan",
    "StageEvidence",
    "find_stage",
    "plan_promotion",
    "plan_rollback",
    "promotion_branch",
    "short",
]


# --------------------------------------------------------------------------- promotion


def plan_promotion(
    repo: Repo,
    entries: Sequence[LedgerEntry],
    app: str,
    to_env: str,
    from_env: str | None = None,
    *,
    now: datetime,
    head_release: str | None = None,
    mode: Mode | None = None,
    no_run: bool = False,
    pipeline: str | None = None,
    in_flight: InFlight | None = None,
    has_object: Callable[[str], bool] = lambda digest: True,
    waive_soak: bool = False,
) -> PromotionPlan:
    """Every check on promoting ``app`` into ``to_env``; raises only for unknown names.

    ``waive_soak`` (only ``llmops up --skip-soak`` sets it) turns a soak that has not
    elapsed into a passing ``SoakWaived`` check; every other check still applies."""
    check_names(repo, app, to_env)
    found = find_stage(repo, to_env, pipeline)
    assert found is not None
    pipeline_name, pipe, k = found
    stages = pipe.spec.stages
    stage = stages[k]
    source_index = _source_index(stages, k, from_env)
    env_file = repo.environments[to_env].file
    current = repo.environments[to_env].environment.spec.releases.get(app)
    chosen = default_mode(stage, mode)
    branch = promotion_branch("promote", to_env, app)
    checks: list[Check] = []

    candidate, source, from_head, resolved = _candidate(
        repo, stages, k, source_index, app, head_release
    )
    checks.append(resolved)
    evidence: list[StageEvidence] = []
    run_evals = False
    if candidate is not None:
        checks.append(archived_check(candidate, has_object, from_head))
        bad = marked_bad(entries, candidate)
        checks.append(
            Check(
                c.CANDIDATE_NOT_BAD,
                c.FALSE,
                c.MARKED_BAD,
                f"{short(candidate)} was marked bad by {bad.actor} at {bad.time}; "
                "it is never promoted",
            )
            if bad
            else Check(c.CANDIDATE_NOT_BAD, c.TRUE, c.NOT_MARKED_BAD, "not marked bad")
        )
        checks.append(_earlier_gates(entries, app, candidate, stages[:k], has_object, evidence))
        target, run_evals = _target_gate(entries, candidate, stage, has_object, no_run, evidence)
        checks.append(target)
        soak = _soak(entries, app, candidate, stage, stages, source_index, now)
        if waive_soak and soak.status == c.FALSE:
            soak = Check(
                c.SOAK_ELAPSED,
                c.TRUE,
                c.SOAK_WAIVED,
                f"the {stage.soak} soak of {stage.env} is waived (--skip-soak, this machine "
                f"only); without it: {soak.message}",
            )
        checks.append(soak)
    checks.append(approval_check(stage, chosen))
    hold = active_hold(entries, app, to_env)
    checks.append(
        Check(
            c.NOT_HELD,
            c.FALSE,
            c.HOLD_ACTIVE,
            f"{app} is held in {to_env} since {hold.time} by {hold.actor}"
            f" ({hold.data.get('reason') or 'no reason given'}); "
            f"holds are lifted only by `llmops unhold {app} --env {to_env}`",
        )
        if hold
        else Check(c.NOT_HELD, c.TRUE, c.NO_HOLD, f"no hold on {app} in {to_env}")
    )
    checks.append(in_flight_check(in_flight, branch))
    if candidate is not None:
        checks.append(pin_change_check(env_file, app, current, candidate))
    return PromotionPlan(
        kind="promote",
        app=app,
        env=to_env,
        env_file=env_file,
        pipeline=pipeline_name,
        mode=chosen,
        source=source,
        candidate=candidate,
        current=current,
        checks=tuple(checks),
        evidence=tuple(evidence),
        run_evals=run_evals,
        branch=branch,
        candidate_from_work_tree=from_head,
    )


def _source_index(stages: Sequence[Stage], k: int, from_env: str | None) -> int | None:
    if from_env is None:
        return k - 1 if k > 0 else None
    names = [s.env for s in stages]
    if from_env not in names[:k]:
        earlier = ", ".join(names[:k]) or "none: it is the first stage"
        raise UsageError(
            f"--from {from_env}: promotion comes from an earlier stage of the pipeline "
            f"(before {stages[k].env}: {earlier})"
        )
    return names.index(from_env)


def _candidate(
    repo: Repo,
    stages: Sequence[Stage],
    k: int,
    source_index: int | None,
    app: str,
    head_release: str | None,
) -> tuple[str | None, str | None, bool, Check]:
    """(candidate, where it comes from, whether it is the work tree's, the check)."""
    if source_index is None or (
        stages[source_index].source == "head"
        and app not in repo.environments[stages[source_index].env].environment.spec.releases
    ):
        why = (
            "the first stage takes the work tree's release"
            if source_index is None
            else f"{stages[source_index].env} deploys the branch head and pins nothing"
        )
        if head_release is None:
            return (
                None,
                None,
                False,
                Check(
                    c.CANDIDATE_RESOLVED,
                    c.FALSE,
                    c.NOTHING_PINNED,
                    f"{why}, but the work tree's release of {app} could not be computed",
                ),
            )
        return (
            head_release,
            "work tree",
            True,
            Check(
                c.CANDIDATE_RESOLVED, c.TRUE, c.WORK_TREE_RELEASE, f"{why}: {short(head_release)}"
            ),
        )
    source_env = stages[source_index].env
    pinned = repo.environments[source_env].environment.spec.releases.get(app)
    if pinned is None:
        return (
            None,
            source_env,
            False,
            Check(
                c.CANDIDATE_RESOLVED,
                c.FALSE,
                c.NOTHING_PINNED,
                f"nothing of {app} is pinned in {source_env}; promote it there first "
                f"(`llmops promote {app} --to {source_env}`)",
            ),
        )
    return (
        pinned,
        source_env,
        False,
        Check(
            c.CANDIDATE_RESOLVED,
            c.TRUE,
            c.PINNED_IN_PREVIOUS_STAGE,
            f"{short(pinned)} is pinned in {source_env}",
        ),
    )


def _earlier_gates(
    entries: Sequence[LedgerEntry],
    app: str,
    candidate: str,
    earlier: Sequence[Stage],
    has_object: Callable[[str], bool],
    evidence: list[StageEvidence],
) -> Check:
    if not earlier:
        return Check(c.EARLIER_GATES_PASSED, c.TRUE, c.FIRST_STAGE, "first stage: no earlier gate")
    gaps = []
    for stage in earlier:
        state, found = evidence_state(entries, candidate, stage, has_object)
        if state == "present" and found is not None and found.report:
            evidence.append(StageEvidence(stage.env, found.report, found.summary))
        else:
            gaps.append(
                f"{describe_evidence_gap(state, found, short(candidate), stage.env)}; "
                f"promote it with `llmops promote {app} --to {stage.env}`"
            )
    if gaps:
        reason = c.EVIDENCE_MISSING
        return Check(c.EARLIER_GATES_PASSED, c.FALSE, reason, "; ".join(gaps))
    return Check(
        c.EARLIER_GATES_PASSED,
        c.TRUE,
        c.EVIDENCE_PRESENT,
        ", ".join(f"{e.stage}: {e.summary} (report {e.report[:12]})" for e in evidence),
    )


def _target_gate(
    entries: Sequence[LedgerEntry],
    candidate: str,
    stage: Stage,
    has_object: Callable[[str], bool],
    no_run: bool,
    evidence: list[StageEvidence],
) -> tuple[Check, bool]:
    state, found = evidence_state(entries, candidate, stage, has_object)
    if state == "present" and found is not None and found.report:
        evidence.append(StageEvidence(stage.env, found.report, found.summary))
        return Check(
            c.TARGET_GATE_PASSED,
            c.TRUE,
            c.EVIDENCE_PRESENT,
            f"{stage.env}: {found.summary} (report {found.report[:12]})",
        ), False
    if state == "failed":
        return Check(
            c.TARGET_GATE_PASSED,
            c.FALSE,
            c.GATE_FAILED,
            f"{describe_evidence_gap(state, found, short(candidate), stage.env)}; fix the "
            "failures and release again (the latest gate run of a release decides)",
        ), False
    gap = describe_evidence_gap(state, found, short(candidate), stage.env)
    reason = {"report-missing": c.REPORT_MISSING, "stale": c.EVIDENCE_STALE}.get(
        state, c.EVIDENCE_MISSING
    )
    if no_run:
        return Check(
            c.TARGET_GATE_PASSED,
            c.FALSE,
            reason,
            f"{gap}; --no-run was given, so the gate's suites are not run now",
        ), False
    suites = ", ".join(stage.gate.suites) or "no suites"
    return Check(
        c.TARGET_GATE_PASSED,
        c.UNKNOWN,
        c.EVALS_WILL_RUN,
        f"{gap} yet: apply runs the {stage.env} gate ({suites}) and continues only if it passes",
    ), True


def _soak(
    entries: Sequence[LedgerEntry],
    app: str,
    candidate: str,
    stage: Stage,
    stages: Sequence[Stage],
    source_index: int | None,
    now: datetime,
) -> Check:
    seconds = parse_duration(stage.soak) or 0.0
    if seconds <= 0 or source_index is None:
        return Check(c.SOAK_ELAPSED, c.TRUE, c.NO_SOAK_REQUIRED, f"stage {stage.env} needs no soak")
    source = stages[source_index].env
    since = entered_at(entries, app, source, candidate)
    if since is None:
        return Check(
            c.SOAK_ELAPSED,
            c.FALSE,
            c.SOAK_UNMEASURABLE,
            f"stage {stage.env} needs {stage.soak} of soak in {source}, but the ledger has no "
            f"record of {short(candidate)} being deployed or promoted there",
        )
    start = parse_time(since)
    elapsed = now - start
    needed = timedelta(seconds=seconds)
    if elapsed >= needed:
        return Check(
            c.SOAK_ELAPSED,
            c.TRUE,
            c.SOAK_DONE,
            f"ran in {source} since {since} ({_span(elapsed)} ≥ {stage.soak})",
        )
    ready = (start + needed).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Check(
        c.SOAK_ELAPSED,
        c.FALSE,
        c.SOAK_PENDING,
        f"{short(candidate)} has run in {source} for {_span(elapsed)} of the {stage.soak} "
        f"soak; promote again after {ready} (in {_span(needed - elapsed)})",
    )


def _span(delta: timedelta) -> str:
    total = max(0, int(delta.total_seconds()))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    text = "".join(parts)
    return text if text else f"{seconds}s"
