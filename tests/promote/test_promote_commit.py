"""Commit-mode promotion end to end, on real git with a bare repository as the remote:
the pin changes on the remote, the commit carries the trailers, the ledger records it;
--dry-run changes nothing; a missing target gate is run first (and a failing one stops)."""

from __future__ import annotations

from pathlib import Path

import pytest
from promote_helpers import (
    Remote,
    commit_pins,
    fake_release,
    gate_run,
    git,
    give_evidence,
    make_world,
)

from llmops.domain.errors import Refused
from llmops.ops.promote import promote
from llmops.promote import conditions as c
from llmops.promote.pins import read_pin


def _ready(remote: Remote) -> tuple[Path, str]:
    """support-bot release A pinned in dev with dev and test evidence; a fresh clone."""
    archive = remote.archive
    release = fake_release(archive, "support-bot", "A")
    give_evidence(archive, release, "dev")
    give_evidence(archive, release, "test")
    commit_pins(remote.seed, "dev", {"support-bot": release})
    archive.append(
        "promoted", "support-bot", release=release, env="dev", data={"state": "committed"}
    )
    return remote.clone("alice"), release


def test_commit_mode_pins_the_release_on_the_remote(remote: Remote) -> None:
    clone, release = _ready(remote)
    before = remote.show("environments/test.yaml")
    result = promote(clone, "support-bot", "test", world=make_world(remote.archive))

    assert result.applied and result.commit and result.attempts == 1
    after = remote.show("environments/test.yaml")
    assert read_pin(after, "support-bot") == release
    # only the pin line changed: comments and layout stay
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert changed == [f'  releases: {{support-bot: "{release}"}}']
    assert git(remote.bare, "rev-parse", "main") == result.commit
    # the local branch and work tree followed
    assert git(clone, "rev-parse", "HEAD") == result.commit
    assert git(clone, "status", "--porcelain") == ""

    trailers = remote.trailers()
    assert ("Llmops-Release", release) in trailers
    assert ("Llmops-Environment", "test") in trailers
    reports = [v for k, v in trailers if k == "Llmops-Evidence-Report"]
    assert [r.split()[0] for r in reports] == ["dev", "test"]
    assert all(remote.archive.has(r.split("sha256:")[1]) for r in reports)
    assert any(k == "Llmops-Gate" and v.startswith("test passed") for k, v in trailers)
    assert remote.log()[0].startswith("promote support-bot to test: support-bot@sha256:")
    assert (
        git(remote.bare, "log", "-1", "--format=%an <%ae>") == "Alice Promoter <alice@example.com>"
    )

    entry = remote.archive.entries()[-1]
    assert entry.event == "promoted" and entry.release == release and entry.env == "test"
    assert entry.data["mode"] == "commit" and entry.data["state"] == "committed"
    assert entry.data["commit"] == result.commit and entry.data["pr_url"] is None
    assert set(entry.evidence) == {"gate-dev", "gate-test"}
    assert remote.archive.verify().ok


def test_promoting_again_is_a_noop(remote: Remote) -> None:
    clone, _ = _ready(remote)
    promote(clone, "support-bot", "test", world=make_world(remote.archive))
    refs, count = remote.refs(), len(remote.archive.entries())
    again = promote(clone, "support-bot", "test", world=make_world(remote.archive))
    assert again.plan.noop and not again.applied
    assert remote.refs() == refs and len(remote.archive.entries()) == count


def test_dry_run_changes_nothing(remote: Remote) -> None:
    clone, release = _ready(remote)
    refs, entries = remote.refs(), len(remote.archive.entries())
    head, status = git(clone, "rev-parse", "HEAD"), git(clone, "status", "--porcelain")
    result = promote(clone, "support-bot", "test", dry_run=True, world=make_world(remote.archive))
    assert result.dry_run and not result.applied and result.plan.allowed
    assert result.plan.candidate == release
    assert remote.refs() == refs
    assert len(remote.archive.entries()) == entries
    assert git(clone, "rev-parse", "HEAD") == head and git(clone, "status", "--porcelain") == status


def test_refusal_changes_nothing(remote: Remote) -> None:
    archive = remote.archive
    release = fake_release(archive, "support-bot", "A")
    give_evidence(archive, release, "test")  # but none for dev
    commit_pins(remote.seed, "dev", {"support-bot": release})
    clone = remote.clone("bob")
    refs, entries = remote.refs(), len(archive.entries())
    with pytest.raises(Refused) as info:
        promote(clone, "support-bot", "test", world=make_world(archive))
    plan = info.value.detail
    assert plan.check(c.EARLIER_GATES_PASSED).reason == c.EVIDENCE_MISSING
    assert "no passing gate evidence for stage 'dev'" in info.value.message
    assert remote.refs() == refs and len(archive.entries()) == entries


def test_missing_target_gate_is_run_then_promoted(remote: Remote) -> None:
    archive = remote.archive
    release = fake_release(archive, "support-bot", "A")
    give_evidence(archive, release, "dev")
    commit_pins(remote.seed, "dev", {"support-bot": release})
    clone = remote.clone("carol")
    calls = []

    def runner(repo, store, app, rel, stage, baseline):  # type: ignore[no-untyped-def]
        calls.append((app, rel, stage.env, baseline))
        return gate_run(stage.env, True)

    result = promote(clone, "support-bot", "test", world=make_world(archive, gate_runner=runner))
    assert calls == [("support-bot", release, "test", None)]
    assert result.applied
    evaluated = [e for e in result.entries if e.event == "evaluated"]
    assert len(evaluated) == 1 and evaluated[0].data["gate"]["passed"] is True
    assert evaluated[0].data["gate"]["suites"] == ["smoke", "security"]
    assert archive.has(evaluated[0].evidence["report"])
    assert read_pin(remote.show("environments/test.yaml"), "support-bot") == release


def test_failing_target_gate_is_archived_and_stops(remote: Remote) -> None:
    archive = remote.archive
    release = fake_release(archive, "support-bot", "A")
    give_evidence(archive, release, "dev")
    commit_pins(remote.seed, "dev", {"support-bot": release})
    clone = remote.clone("dave")
    refs = remote.refs()
    world = make_world(archive, gate_runner=lambda *a: gate_run("test", False))
    with pytest.raises(Refused) as info:
        promote(clone, "support-bot", "test", world=world)
    assert info.value.detail.check(c.TARGET_GATE_PASSED).reason == c.GATE_FAILED
    assert archive.entries()[-1].event == "evaluated"  # the failure is evidence too
    assert remote.refs() == refs


def test_no_run_refuses_instead_of_running(remote: Remote) -> None:
    archive = remote.archive
    release = fake_release(archive, "support-bot", "A")
    give_evidence(archive, release, "dev")
    commit_pins(remote.seed, "dev", {"support-bot": release})
    clone = remote.clone("erin")
    with pytest.raises(Refused) as info:
        promote(clone, "support-bot", "test", no_run=True, world=make_world(archive))
    check = info.value.detail.check(c.TARGET_GATE_PASSED)
    assert check.status == c.FALSE and check.reason == c.EVIDENCE_MISSING


def test_first_stage_archives_the_work_tree_release(remote: Remote) -> None:
    clone = remote.clone("frank")
    archive = remote.archive
    world = make_world(archive, gate_runner=lambda *a: gate_run("dev", True))
    result = promote(clone, "support-bot", "dev", world=world)
    release = result.plan.candidate
    assert result.applied and result.plan.source == "work tree"
    assert any(e.event == "released" and e.release == release for e in archive.entries())
    assert archive.has(release.split(":", 1)[1])
    assert read_pin(remote.show("environments/dev.yaml"), "support-bot") == release


def test_uncommitted_env_file_is_refused(remote: Remote) -> None:
    clone, _ = _ready(remote)
    env = clone / "environments" / "test.yaml"
    env.write_text(env.read_text() + "# edited\n")
    with pytest.raises(Exception, match="uncommitted changes"):
        promote(clone, "support-bot", "test", world=make_world(remote.archive))


def test_unpushed_local_commits_are_refused(remote: Remote) -> None:
    clone, _ = _ready(remote)
    (clone / "notes.txt").write_text("local work\n")
    git(clone, "add", "notes.txt")
    git(clone, "commit", "--quiet", "-m", "local work")
    refs = remote.refs()
    with pytest.raises(Exception, match="not on origin"):
        promote(clone, "support-bot", "test", world=make_world(remote.archive))
    assert remote.refs() == refs


def test_protected_branch_is_a_permanent_error(remote: Remote) -> None:
    clone, _ = _ready(remote)
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    from llmops.domain.errors import Permanent

    with pytest.raises(Permanent, match="refused the push"):
        promote(clone, "support-bot", "test", world=make_world(remote.archive))
    assert not [e for e in remote.archive.entries() if e.event == "promoted" and e.env == "test"]
