"""Pull-request promotion end to end: a branch pushed to a real bare remote and a pull
request opened on the fake GitHub API over real HTTP (with a token), or the body written
to a file (without one); one proposal in flight per app and environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_github import FakeGitHub
from promote_helpers import (
    Remote,
    commit_pins,
    fake_release,
    git,
    give_evidence,
    later,
    make_world,
)

from llmops.domain.errors import Permanent, PromotionInFlight, Refused
from llmops.ops.promote import World, promote
from llmops.promote import conditions as c
from llmops.promote.pins import read_pin

BRANCH = "llmops/promote/prod/support-bot"


def _ready_for_prod(remote: Remote) -> tuple[str, str]:
    """Release A ran in test (promoted there) with evidence for dev, test and prod."""
    archive = remote.archive
    release = fake_release(archive, "support-bot", "A")
    for env in ("dev", "test", "prod"):
        give_evidence(archive, release, env)
    commit_pins(remote.seed, "dev", {"support-bot": release})
    commit_pins(remote.seed, "test", {"support-bot": release})
    archive.append(
        "promoted", "support-bot", release=release, env="test", data={"state": "committed"}
    )
    return release, git(remote.bare, "rev-parse", "main")


def _world(remote: Remote, github: FakeGitHub | None, token: str | None = None) -> World:
    environ = {}
    if github is not None:
        environ = {"GITHUB_TOKEN": token or github.token, "GITHUB_API_URL": github.url}
    return make_world(remote.archive, environ=environ, now=later(2))


def test_pull_request_with_token(remote: Remote, github: FakeGitHub) -> None:
    release, main = _ready_for_prod(remote)
    clone = remote.clone("alice", github_url=True)
    result = promote(clone, "support-bot", "prod", world=_world(remote, github))

    assert result.applied and result.plan.mode == "pull-request"
    assert result.pull_request == "https://github.com/acme/llm-apps/pull/1"
    # main is untouched: the change waits on its branch for approval
    assert git(remote.bare, "rev-parse", "main") == main
    assert read_pin(remote.show("environments/prod.yaml", BRANCH), "support-bot") == release
    assert git(remote.bare, "rev-parse", f"{BRANCH}~1") == main

    posts = [r for r in github.requests if r.method == "POST"]
    assert len(posts) == 1 and posts[0].path == "/repos/acme/llm-apps/pulls"
    sent = posts[0].json
    assert sent["head"] == BRANCH and sent["base"] == "main"
    assert sent["title"].startswith("promote support-bot to prod: ")
    assert release in sent["body"] and "### Gate evidence" in sent["body"]
    assert "| prod | passed: pass rate 100.0%, min 95.0% |" in sent["body"]
    assert "ApprovalSatisfied" in sent["body"] and "PullRequestIsApproval" in sent["body"]
    assert posts[0].headers["authorization"] == f"Bearer {github.token}"
    assert posts[0].headers["x-github-api-version"] == "2022-11-28"

    entry = remote.archive.entries()[-1]
    assert entry.event == "promoted" and entry.env == "prod"
    assert entry.data["state"] == "proposed" and entry.data["mode"] == "pull-request"
    assert entry.data["pr_url"] == result.pull_request and entry.data["branch"] == BRANCH
    assert not (clone / ".llmops" / "pr").exists()


def test_pull_request_without_token_writes_the_body(remote: Remote) -> None:
    release, main = _ready_for_prod(remote)
    clone = remote.clone("bob", github_url=True)
    result = promote(clone, "support-bot", "prod", world=_world(remote, None))

    assert result.applied and result.pull_request is None
    assert result.body_file == ".llmops/pr/prod-support-bot.md"
    body = (clone / result.body_file).read_text()
    assert release in body and "### Checks" in body
    note = " ".join(result.notes)
    assert "GITHUB_TOKEN is not set" in note and BRANCH in note
    assert f"https://github.com/acme/llm-apps/compare/main...{BRANCH}?expand=1" in note
    assert read_pin(remote.show("environments/prod.yaml", BRANCH), "support-bot") == release
    assert git(remote.bare, "rev-parse", "main") == main
    entry = remote.archive.entries()[-1]
    assert entry.data["state"] == "proposed" and entry.data["pr_url"] is None


def test_second_promotion_in_flight_is_refused(remote: Remote, github: FakeGitHub) -> None:
    _ready_for_prod(remote)
    clone = remote.clone("carol", github_url=True)
    promote(clone, "support-bot", "prod", world=_world(remote, github))
    refs, entries = remote.refs(), len(remote.archive.entries())
    with pytest.raises(PromotionInFlight) as info:
        promote(clone, "support-bot", "prod", world=_world(remote, github))
    check = info.value.detail.check(c.NOT_IN_FLIGHT)
    assert check.reason == c.PULL_REQUEST_OPEN and "/pull/1" in check.message
    assert remote.refs() == refs and len(remote.archive.entries()) == entries
    assert len(github.pulls) == 1


def test_branch_in_flight_is_refused_without_token(remote: Remote) -> None:
    _ready_for_prod(remote)
    clone = remote.clone("dave", github_url=True)
    promote(clone, "support-bot", "prod", world=_world(remote, None))
    with pytest.raises(PromotionInFlight) as info:
        promote(clone, "support-bot", "prod", world=_world(remote, None))
    assert info.value.detail.check(c.NOT_IN_FLIGHT).reason == c.BRANCH_EXISTS


def test_commit_mode_into_an_approval_stage_is_refused(remote: Remote) -> None:
    _ready_for_prod(remote)
    clone = remote.clone("erin", github_url=True)
    with pytest.raises(Refused) as info:
        promote(clone, "support-bot", "prod", mode="commit", world=_world(remote, None))
    check = info.value.detail.check(c.APPROVAL_SATISFIED)
    assert check.reason == c.APPROVAL_REQUIRES_PULL_REQUEST and "--mode pr" in check.message


def test_a_rejected_token_leaves_no_branch_behind(remote: Remote, github: FakeGitHub) -> None:
    _ready_for_prod(remote)
    clone = remote.clone("frank", github_url=True)
    refs = remote.refs()
    with pytest.raises(Permanent) as info:
        promote(clone, "support-bot", "prod", world=_world(remote, github, token="wrong-token"))
    assert "401" in info.value.message and "wrong-token" not in info.value.message
    assert remote.refs() == refs  # the branch pushed for the PR was deleted again
    assert not [e for e in remote.archive.entries() if e.event == "promoted" and e.env == "prod"]


def test_soak_not_elapsed_refuses(remote: Remote) -> None:
    _ready_for_prod(remote)
    clone = remote.clone("gina", github_url=True)
    world = make_world(remote.archive, now=later(0.25))
    with pytest.raises(Refused) as info:
        promote(clone, "support-bot", "prod", world=world)
    check = info.value.detail.check(c.SOAK_ELAPSED)
    assert check.reason == c.SOAK_PENDING and "of the 1h soak" in check.message


def test_pr_mode_on_a_commit_stage(remote: Remote, github: FakeGitHub, tmp_path: Path) -> None:
    archive = remote.archive
    release = fake_release(archive, "summarizer", "A")
    give_evidence(archive, release, "dev")
    give_evidence(archive, release, "test")
    commit_pins(remote.seed, "dev", {"summarizer": release})
    clone = remote.clone("hank", github_url=True)
    result = promote(clone, "summarizer", "test", mode="pr", world=_world(remote, github))
    assert result.pull_request and result.branch == "llmops/promote/test/summarizer"
    check = result.plan.check(c.APPROVAL_SATISFIED)
    assert check.reason == c.APPROVAL_NOT_REQUIRED
