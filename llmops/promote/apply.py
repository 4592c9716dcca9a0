"""Apply a promotion or rollback plan through git, once.

Called by ``llmops.ops.promote``. Commit mode builds the pin change as a new commit on
top of the checked-out branch (``GitOps.commit_file``: the work tree and index are not
used), pushes it and fast-forwards; a rejected push (someone pushed first) means fetch,
fast-forward, re-plan and retry, at most ``max_attempts`` times, refusing if the
re-check refuses or the candidate changed. Pull-request mode builds the same commit on
the remote branch's tip, pushes it create-only to the plan's branch (one proposal in
flight) and opens a pull request whose body is the gate report; without a code host it
writes the body to ``.llmops/pr/`` and says how to open the PR by hand.

The world is reached only through the ports in ``Workspace`` (``GitOps``,
``PullRequests``), so this runs unchanged against real git and GitHub or their fakes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmops.domain.errors import (
    GitPushRejected,
    LlmopsError,
    PromotionInFlight,
    PullRequestExists,
    Refused,
    Retryable,
    UsageError,
)
from llmops.promote import conditions as c
from llmops.promote.checks import PromotionPlan, short
from llmops.promote.message import commit_message, pull_request_body, subject
from llmops.promote.pins import read_pin, set_pin

if TYPE_CHECKING:
    from llmops.adapters.github import PullRequests
    from llmops.adapters.gitops import GitOps

#: Push attempts in commit mode before giving up (each after fetch + re-check).
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Workspace:
    """Where a plan is applied: the work tree's git, its remote, the code host (or None),
    the environment file's path inside the git work tree, and the repository root."""

    git: GitOps
    remote: str
    pulls: PullRequests | None
    env_path: str
    repo_root: Path
    sleep: Callable[[float], None]


def refuse_if_needed(plan: PromotionPlan) -> None:
    """Raise ``Refused`` (``PromotionInFlight`` when that is the only reason) unless allowed."""
    if plan.allowed:
        return
    if any(ch.condition == c.NOT_IN_FLIGHT for ch in plan.refusals) and len(plan.refusals) == 1:
        raise PromotionInFlight(plan.refusal_message(), plan)
    raise Refused(plan.refusal_message(), plan)


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying did: the commit (None: nothing to do after all), branch, PR, notes."""

    plan: PromotionPlan
    commit: str | None
    branch: str | None
    pull_request: str | None = None
    body_file: str | None = None
    attempts: int = 1
    notes: tuple[str, ...] = ()


def apply_plan(
    plan: PromotionPlan,
    space: Workspace,
    replan: Callable[[], PromotionPlan],
    reason: str | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> Applied:
    """Apply ``plan`` once. ``replan`` reloads the manifests and the ledger and plans again
    (after a rejected push). Raises ``Refused`` when the re-check refuses."""
    git = space.git
    branch = git.current_branch()
    if branch is None:
        raise UsageError(
            "HEAD is detached: check out the branch the environments live on (e.g. git checkout "
            "main) and run again"
        )
    if plan.mode == "pull-request":
        return _propose(space, plan, branch, reason)
    return _commit(space, plan, branch, replan, reason, max_attempts)


def _rewrite(git: GitOps, rev: str, path: str, plan: PromotionPlan, env_file: str) -> bytes | None:
    """The env file at ``rev`` with the plan's pin; None when it is already pinned there."""
    assert plan.candidate is not None
    old = git.read_file(rev, path)
    if old is None:
        raise UsageError(f"{env_file} is not committed at {rev[:12]}; commit it first")
    try:
        text = old.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{env_file} is not UTF-8 text") from None
    if read_pin(text, plan.app) == plan.candidate:
        return None
    return set_pin(text, plan.app, plan.candidate).encode("utf-8")


def _commit(
    space: Workspace,
    plan: PromotionPlan,
    branch: str,
    replan: Callable[[], PromotionPlan],
    reason: str | None,
    max_attempts: int,
) -> Applied:
    git, remote, path = space.git, space.remote, space.env_path
    if git.is_dirty(path):
        raise UsageError(
            f"{plan.env_file} has uncommitted changes; commit or stash them first "
            "(a promotion commits only its own change)"
        )
    git.fetch(remote, branch)
    ahead = git.commits_ahead(f"refs/remotes/{remote}/{branch}")
    if ahead:
        raise UsageError(
            f"{branch} has {ahead} commit{'s' if ahead != 1 else ''} not on {remote}; push "
            "them first: a promotion pushes only its own commit"
        )
    rng = random.Random()
    attempt = 0
    while True:
        attempt += 1
        parent = git.head()
        data = _rewrite(git, parent, path, plan, plan.env_file)
        if data is None:
            return Applied(
                plan,
                None,
                branch,
                attempts=attempt,
                notes=(f"{short(plan.candidate)} is already pinned on {branch}",),
            )
        sha = git.commit_file(parent, path, data, commit_message(plan, reason))
        try:
            git.push(remote, sha, branch)
        except GitPushRejected as exc:
            if attempt >= max_attempts:
                raise Retryable(
                    f"gave up after {attempt} attempts: {remote}/{branch} kept moving under the "
                    f"promotion ({exc.message}); run it again",
                    delay=5.0,
                ) from exc
        else:
            git.fast_forward(sha)
            return Applied(plan, sha, branch, attempts=attempt)
        # someone pushed first: fetch, fast-forward (our commit was never on the branch),
        # reload the manifests and the ledger, and re-check before trying again
        git.fast_forward(git.fetch(remote, branch))
        fresh = replan()
        if fresh.noop:
            note = f"someone else pinned {short(fresh.candidate)} first"
            return Applied(fresh, None, branch, attempts=attempt, notes=(note,))
        refuse_if_needed(fresh)
        if fresh.candidate != plan.candidate or fresh.run_evals:
            what = (
                f"promotes {short(fresh.candidate)} instead"
                if fresh.candidate != plan.candidate
                else "needs a gate run first"
            )
            raise Refused(
                f"the plan changed while promoting: after {remote}/{branch} moved, it {what}; "
                "review it with --dry-run and run again",
                fresh,
            )
        plan = fresh
        space.sleep(rng.uniform(0.0, 0.05 * attempt))


def _propose(space: Workspace, plan: PromotionPlan, base: str, reason: str | None) -> Applied:
    git, remote, path = space.git, space.remote, space.env_path
    tip = git.fetch(remote, base)
    data = _rewrite(git, tip, path, plan, plan.env_file)
    if data is None:
        return Applied(
            plan,
            None,
            None,
            notes=(f"{short(plan.candidate)} is already pinned on {remote}/{base}",),
        )
    sha = git.commit_file(tip, path, data, commit_message(plan, reason))
    try:
        git.push(remote, sha, plan.branch, create_only=True)
    except GitPushRejected as exc:
        raise PromotionInFlight(
            f"branch {plan.branch} already exists on {remote}: a proposal is in flight; merge or "
            f"close its pull request, then delete the branch ({exc.message})",
            plan,
        ) from exc
    body = pull_request_body(plan, reason)
    pulls = space.pulls
    if pulls is None:
        return _write_body(space, plan, sha, base, body)
    try:
        pull = pulls.open(head=plan.branch, base=base, title=subject(plan), body=body)
    except LlmopsError as exc:
        cleaned = _delete_branch(space, plan.branch, sha)
        if isinstance(exc, PullRequestExists):
            raise PromotionInFlight(f"{exc.message}; {cleaned}", plan) from exc
        exc.message = f"{exc.message}; {cleaned}"
        raise
    return Applied(
        plan, sha, plan.branch, pull_request=pull.url, notes=(f"opened pull request {pull.url}",)
    )


def _delete_branch(space: Workspace, branch: str, sha: str) -> str:
    try:
        space.git.delete_remote_branch(space.remote, branch, sha)
    except LlmopsError as exc:
        return f"branch {branch} stays on {space.remote} (deleting it failed: {exc.message})"
    return f"branch {branch} was deleted again so the promotion can be retried"


def _write_body(space: Workspace, plan: PromotionPlan, sha: str, base: str, body: str) -> Applied:
    from llmops.adapters.github import parse_github_remote

    prefix = "" if plan.kind == "promote" else "rollback-"
    target = space.repo_root / ".llmops" / "pr" / f"{prefix}{plan.env}-{plan.app}.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    shown = target.relative_to(space.repo_root).as_posix()
    github = parse_github_remote(space.git.remote_url(space.remote))
    where = f" at {github.compare_url(base, plan.branch)}" if github else ""
    note = (
        f"GITHUB_TOKEN is not set, so no pull request was opened: pushed branch {plan.branch}; "
        f"open the pull request by hand{where} with the body in {shown}"
    )
    return Applied(plan, sha, plan.branch, body_file=shown, notes=(note,))
