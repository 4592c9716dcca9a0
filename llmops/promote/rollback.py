"""Rollback plans: back to the last good release of an environment, or a named one. Pure.

Called by ``llmops.ops.promote.rollback``. The default target is the newest release that
ran in the environment before the current one and was neither marked bad nor rolled
back *from*; ``--to`` names one (refused if it never ran there, or is marked bad
without ``--force``). A rollback needs no gate evidence: the release was good here.
Approval and in-flight rules are a promotion's; the plan asks for a hold afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llmops.domain.archive import LedgerEntry
from llmops.domain.errors import UsageError
from llmops.domain.ids import RELEASE_ID_RE
from llmops.domain.repo import Repo
from llmops.promote import conditions as c
from llmops.promote.checks import (
    Check,
    InFlight,
    Mode,
    PromotionPlan,
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
from llmops.promote.ledger import last_good_release, marked_bad, ran_in


def resolve_release(entries: Sequence[LedgerEntry], app: str, ref: str) -> str:
    """A release of ``app`` named by full id or a unique digest prefix (4+ hex digits)."""
    if RELEASE_ID_RE.match(ref):
        if not ref.startswith(f"{app}@"):
            raise UsageError(f"{ref} is a release of another app, not {app}")
        return ref
    prefix = ref.rpartition("@")[2].removeprefix("sha256:")
    if len(prefix) < 4:
        raise UsageError(f"{ref!r}: give a release id or at least 4 hex digits of its digest")
    known = sorted(
        {
            e.release
            for e in entries
            if e.app == app and e.release and e.release.split("@sha256:", 1)[-1].startswith(prefix)
        }
    )
    if not known:
        raise UsageError(
            f"no release of {app} matches {ref!r}; `llmops release list {app}` shows them"
        )
    if len(known) > 1:
        raise UsageError(f"{ref!r} is ambiguous: {', '.join(known)}")
    return known[0]


def plan_rollback(
    repo: Repo,
    entries: Sequence[LedgerEntry],
    app: str,
    env: str,
    *,
    to: str | None = None,
    force: bool = False,
    mode: Mode | None = None,
    pipeline: str | None = None,
    in_flight: InFlight | None = None,
    has_object: Callable[[str], bool] = lambda digest: True,
) -> PromotionPlan:
    """Every check on pinning ``env`` back to an earlier release of ``app``."""
    check_names(repo, app, env)
    if force and to is None:
        raise UsageError("--force applies only with --to RELEASE: name the release you mean")
    found = find_stage(repo, env, pipeline, required=False)
    stage = found[1].spec.stages[found[2]] if found else None
    env_file = repo.environments[env].file
    current = repo.environments[env].environment.spec.releases.get(app)
    chosen = default_mode(stage, mode)
    branch = promotion_branch("rollback", env, app)
    checks: list[Check] = []
    candidate: str | None
    if to is not None:
        candidate = resolve_release(entries, app, to)
        checks.append(
            Check(c.CANDIDATE_RESOLVED, c.TRUE, c.EXPLICIT_RELEASE, f"--to {short(candidate)}")
        )
    else:
        candidate = last_good_release(entries, app, env, current)
        checks.append(
            Check(
                c.CANDIDATE_RESOLVED,
                c.TRUE,
                c.LAST_GOOD_RELEASE,
                f"{short(candidate)} is the last good release that ran in {env} before "
                f"{short(current)}",
            )
            if candidate
            else Check(
                c.CANDIDATE_RESOLVED,
                c.FALSE,
                c.NO_EARLIER_RELEASE,
                f"the ledger has no earlier good release of {app} in {env} to roll back "
                "to; name one with --to RELEASE",
            )
        )
    if candidate is not None:
        checks.append(archived_check(candidate, has_object, False))
        bad = marked_bad(entries, candidate)
        if bad is None:
            checks.append(Check(c.CANDIDATE_NOT_BAD, c.TRUE, c.NOT_MARKED_BAD, "not marked bad"))
        elif force:
            checks.append(
                Check(
                    c.CANDIDATE_NOT_BAD,
                    c.TRUE,
                    c.FORCED_PAST_MARKED_BAD,
                    f"{short(candidate)} was marked bad at {bad.time}; rolling back to it "
                    "anyway because --force was given",
                )
            )
        else:
            checks.append(
                Check(
                    c.CANDIDATE_NOT_BAD,
                    c.FALSE,
                    c.MARKED_BAD,
                    f"{short(candidate)} was marked bad by {bad.actor} at {bad.time}; name it "
                    "with --to and add --force to roll back to it anyway",
                )
            )
        if ran_in(entries, app, env, candidate):
            checks.append(
                Check(c.RAN_IN_ENVIRONMENT, c.TRUE, c.RAN_HERE, f"it ran in {env} before")
            )
        else:
            checks.append(
                Check(
                    c.RAN_IN_ENVIRONMENT,
                    c.FALSE,
                    c.NEVER_RAN_HERE,
                    f"{short(candidate)} never ran in {env}, so it carries no proof of being "
                    f"good here; promote it instead (`llmops promote {app} --to {env}`)",
                )
            )
    checks.append(approval_check(stage, chosen))
    checks.append(in_flight_check(in_flight, branch))
    if candidate is not None:
        checks.append(pin_change_check(env_file, app, current, candidate))
    return PromotionPlan(
        kind="rollback",
        app=app,
        env=env,
        env_file=env_file,
        pipeline=found[0] if found else None,
        mode=chosen,
        source=None,
        candidate=candidate,
        current=current,
        checks=tuple(checks),
        branch=branch,
        hold_after=True,
    )
