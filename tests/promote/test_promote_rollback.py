"""Rollback through git (the last good release, skipping one marked bad), the hold it
places, and ``hold``/``unhold``: a hold blocks promotion, unhold lifts it."""

from __future__ import annotations

import pytest
from promote_helpers import Remote, commit_pins, fake_release, git, give_evidence, make_world

from llmops.domain.errors import Refused, UsageError
from llmops.ops.promote import hold, promote, rollback, unhold
from llmops.promote import conditions as c
from llmops.promote.pins import read_pin


def _history(remote: Remote) -> list[str]:
    """test ran A, then B, then C (pinned now); B was marked bad."""
    archive = remote.archive
    releases = [fake_release(archive, "support-bot", label) for label in "ABC"]
    for release in releases:
        archive.append(
            "promoted", "support-bot", release=release, env="test", data={"state": "committed"}
        )
        archive.append("deployed", "support-bot", release=release, env="test")
    archive.append("marked-bad", "support-bot", release=releases[1], data={"reason": "leaks"})
    commit_pins(remote.seed, "test", {"support-bot": releases[2]})
    return releases


def test_rollback_picks_the_last_good_release_and_holds(remote: Remote) -> None:
    a, _b, c_release = _history(remote)
    clone = remote.clone("alice")
    result = rollback(
        clone, "support-bot", "test", reason="latency", world=make_world(remote.archive)
    )

    assert result.plan.candidate == a and result.plan.current == c_release
    assert result.plan.check(c.CANDIDATE_RESOLVED).reason == c.LAST_GOOD_RELEASE
    assert result.applied and result.plan.mode == "commit"
    assert read_pin(remote.show("environments/test.yaml"), "support-bot") == a
    assert remote.log()[0].startswith("rollback support-bot in test to support-bot@sha256:")
    assert ("Llmops-Action", "rollback") in remote.trailers()
    assert ("Llmops-Previous-Release", c_release) in remote.trailers()

    rolled, held = remote.archive.entries()[-2:]
    assert (
        rolled.event == "rolled-back" and rolled.release == a and rolled.data["from"] == c_release
    )
    assert rolled.data["commit"] == result.commit and rolled.data["reason"] == "latency"
    assert held.event == "held" and held.env == "test" and "rolled back" in held.data["reason"]


def test_a_second_rollback_goes_further_back(remote: Remote) -> None:
    archive = remote.archive
    releases = [fake_release(archive, "support-bot", label) for label in "ABC"]
    for release in releases:
        archive.append(
            "promoted", "support-bot", release=release, env="test", data={"state": "committed"}
        )
    commit_pins(remote.seed, "test", {"support-bot": releases[2]})
    clone = remote.clone("bob")
    first = rollback(clone, "support-bot", "test", world=make_world(archive))
    second = rollback(clone, "support-bot", "test", world=make_world(archive))
    # C was rolled back from, so the second rollback does not return to it
    assert (first.plan.candidate, second.plan.candidate) == (releases[1], releases[0])


def test_rollback_refuses_a_release_marked_bad_unless_forced(remote: Remote) -> None:
    _a, b, _c = _history(remote)
    clone = remote.clone("carol")
    with pytest.raises(Refused) as info:
        rollback(
            clone, "support-bot", "test", to=b.split(":")[1][:10], world=make_world(remote.archive)
        )
    assert info.value.detail.check(c.CANDIDATE_NOT_BAD).reason == c.MARKED_BAD
    forced = rollback(
        clone, "support-bot", "test", to=b, force=True, world=make_world(remote.archive)
    )
    assert (
        forced.applied and forced.plan.check(c.CANDIDATE_NOT_BAD).reason == c.FORCED_PAST_MARKED_BAD
    )
    with pytest.raises(UsageError, match="--force applies only with --to"):
        rollback(clone, "support-bot", "test", force=True, world=make_world(remote.archive))


def test_rollback_to_a_release_that_never_ran_here_is_refused(remote: Remote) -> None:
    _history(remote)
    other = fake_release(remote.archive, "support-bot", "never-deployed")
    clone = remote.clone("dave")
    with pytest.raises(Refused) as info:
        rollback(clone, "support-bot", "test", to=other, world=make_world(remote.archive))
    assert info.value.detail.check(c.RAN_IN_ENVIRONMENT).reason == c.NEVER_RAN_HERE


def test_rollback_dry_run_changes_nothing(remote: Remote) -> None:
    a, _b, _c = _history(remote)
    clone = remote.clone("erin")
    refs, entries = remote.refs(), len(remote.archive.entries())
    result = rollback(clone, "support-bot", "test", dry_run=True, world=make_world(remote.archive))
    assert result.dry_run and result.plan.candidate == a and result.plan.hold_after
    assert remote.refs() == refs and len(remote.archive.entries()) == entries
    assert git(clone, "status", "--porcelain") == ""


def test_hold_blocks_promotion_and_unhold_lifts_it(remote: Remote) -> None:
    archive = remote.archive
    release = fake_release(archive, "summarizer", "A")
    give_evidence(archive, release, "dev")
    give_evidence(archive, release, "test")
    commit_pins(remote.seed, "dev", {"summarizer": release})
    clone = remote.clone("frank")
    world = make_world(archive)

    held = hold(clone, "summarizer", "test", "freeze for the launch", world=world)
    assert held.held and held.changed and held.entry is not None
    again = hold(clone, "summarizer", "test", "again", world=world)
    assert again.held and not again.changed  # idempotent: one held entry

    with pytest.raises(Refused) as info:
        promote(clone, "summarizer", "test", world=world)
    check = info.value.detail.check(c.NOT_HELD)
    assert check.reason == c.HOLD_ACTIVE and "freeze for the launch" in check.message
    assert "llmops unhold summarizer --env test" in check.message

    dry = unhold(clone, "summarizer", "test", dry_run=True, world=world)
    assert dry.dry_run and archive.entries()[-1].event == "held"
    lifted = unhold(clone, "summarizer", "test", "launch done", world=world)
    assert not lifted.held and lifted.changed and lifted.entry.event == "unheld"
    assert not unhold(clone, "summarizer", "test", world=world).changed

    result = promote(clone, "summarizer", "test", world=world)
    assert result.applied and result.plan.check(c.NOT_HELD).reason == c.NO_HOLD
    assert [e.event for e in archive.entries()].count("held") == 1


def test_rollback_hold_blocks_the_next_promotion(remote: Remote) -> None:
    a, _b, c_release = _history(remote)
    for env in ("dev", "test"):
        give_evidence(remote.archive, c_release, env)
    commit_pins(remote.seed, "dev", {"support-bot": c_release})
    clone = remote.clone("gina")
    rollback(clone, "support-bot", "test", world=make_world(remote.archive))
    with pytest.raises(Refused) as info:
        promote(clone, "support-bot", "test", world=make_world(remote.archive))
    assert info.value.detail.check(c.NOT_HELD).reason == c.HOLD_ACTIVE
    assert read_pin(remote.show("environments/test.yaml"), "support-bot") == a


def test_hold_needs_a_reason_and_known_names(remote: Remote) -> None:
    clone = remote.clone("hank")
    with pytest.raises(UsageError, match="--reason"):
        hold(clone, "summarizer", "test", "  ", world=make_world(remote.archive))
    with pytest.raises(UsageError, match="no environment named 'staging'"):
        hold(clone, "summarizer", "staging", "x", world=make_world(remote.archive))


def test_rollback_by_pull_request_proposes_and_holds(remote: Remote) -> None:
    a, _b, c_release = _history(remote)
    clone = remote.clone("ivy")
    main = git(remote.bare, "rev-parse", "main")
    result = rollback(
        clone, "support-bot", "test", mode="pr", reason="errors", world=make_world(remote.archive)
    )
    assert result.applied and result.branch == "llmops/rollback/test/support-bot"
    assert result.body_file == ".llmops/pr/rollback-test-support-bot.md"
    assert "Roll back `support-bot` in **test**" in (clone / result.body_file).read_text()
    assert git(remote.bare, "rev-parse", "main") == main  # waits for the merge
    branch_yaml = remote.show("environments/test.yaml", "llmops/rollback/test/support-bot")
    assert read_pin(branch_yaml, "support-bot") == a
    rolled, held = remote.archive.entries()[-2:]
    assert rolled.event == "rolled-back" and rolled.data["state"] == "proposed"
    assert rolled.data["from"] == c_release and held.event == "held"
