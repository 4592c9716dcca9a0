"""Promotions racing on one remote: the loser's push is rejected, it fetches, fast-forwards,
re-checks the plan and retries (bounded); nothing is lost and nothing is recorded twice."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from promote_helpers import Remote, commit_pins, fake_release, git, give_evidence, make_world

from llmops.adapters.gitops import GitWorkTree, MemoryGit
from llmops.domain.errors import Retryable
from llmops.ops.promote import PromotionResult, promote
from llmops.promote.pins import read_pin


def _two_apps_ready(remote: Remote) -> dict[str, str]:
    archive = remote.archive
    releases = {}
    for app in ("support-bot", "summarizer"):
        release = fake_release(archive, app, "A")
        give_evidence(archive, release, "dev")
        give_evidence(archive, release, "test")
        releases[app] = release
    commit_pins(remote.seed, "dev", releases)
    return releases


def test_the_loser_rebases_and_retries(remote: Remote) -> None:
    releases = _two_apps_ready(remote)
    alice, bob = remote.clone("alice"), remote.clone("bob")  # both at the same tip
    first = promote(alice, "support-bot", "test", world=make_world(remote.archive))
    second = promote(bob, "summarizer", "test", world=make_world(remote.archive))

    assert first.attempts == 1 and second.attempts == 2
    test_yaml = remote.show("environments/test.yaml")
    assert read_pin(test_yaml, "support-bot") == releases["support-bot"]
    assert read_pin(test_yaml, "summarizer") == releases["summarizer"]
    # linear history: bob's commit sits on alice's, nothing was overwritten
    assert git(remote.bare, "rev-list", "--count", "--merges", "main") == "0"
    short = {app: release[: release.index(":") + 13] for app, release in releases.items()}
    assert remote.log()[:2] == [
        f"promote summarizer to test: {short['summarizer']}",
        f"promote support-bot to test: {short['support-bot']}",
    ]
    assert git(remote.bare, "rev-parse", "main~1") == first.commit
    promoted = [e for e in remote.archive.entries() if e.event == "promoted" and e.env == "test"]
    assert [(e.app, e.data["commit"]) for e in promoted] == [
        ("support-bot", first.commit),
        ("summarizer", second.commit),
    ]
    assert git(bob, "rev-parse", "HEAD") == second.commit


def test_concurrent_promotions_of_the_same_release_record_it_once(remote: Remote) -> None:
    releases = _two_apps_ready(remote)
    clones = [remote.clone(name) for name in ("ann", "ben", "cat")]
    results: list[PromotionResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(clones))

    def run(clone: Path) -> None:
        start.wait()
        try:
            results.append(promote(clone, "support-bot", "test", world=make_world(remote.archive)))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(clone,)) for clone in clones]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not errors, errors
    applied = [r for r in results if r.applied]
    assert len(applied) == 1, [r.notes for r in results]
    assert all(r.plan.noop or "first" in " ".join(r.notes) for r in results if not r.applied)
    assert read_pin(remote.show("environments/test.yaml"), "support-bot") == releases["support-bot"]
    promoted = [e for e in remote.archive.entries() if e.event == "promoted" and e.env == "test"]
    assert len(promoted) == 1 and promoted[0].data["commit"] == applied[0].commit
    assert git(remote.bare, "rev-parse", "main") == applied[0].commit
    assert remote.archive.verify().ok


def test_retries_are_bounded(remote: Remote) -> None:
    _two_apps_ready(remote)
    clone = remote.clone("gus")
    real = GitWorkTree(clone)
    files = {"environments/test.yaml": (clone / "environments/test.yaml").read_bytes()}
    fake = MemoryGit(files, top=real.toplevel(), reject_pushes=100)
    with pytest.raises(Retryable, match="gave up after 3 attempts"):
        promote(
            clone, "support-bot", "test", world=make_world(remote.archive, git=fake), max_attempts=3
        )
    assert fake.pushes == []
    assert not [e for e in remote.archive.entries() if e.event == "promoted" and e.env == "test"]


def test_memory_git_loses_one_race_then_wins(remote: Remote) -> None:
    releases = _two_apps_ready(remote)
    clone = remote.clone("hal")
    real = GitWorkTree(clone)
    files = {"environments/test.yaml": (clone / "environments/test.yaml").read_bytes()}
    fake = MemoryGit(files, top=real.toplevel())
    fake.advance_remote("environments/other.yaml", b"x: 1\n")  # someone pushed first
    result = promote(clone, "support-bot", "test", world=make_world(remote.archive, git=fake))
    assert result.attempts == 2
    tip = fake.remote["main"]
    assert (
        read_pin(fake.read_file(tip, "environments/test.yaml").decode(), "support-bot")
        == (releases["support-bot"])
    )
    assert fake.read_file(tip, "environments/other.yaml") == b"x: 1\n"
