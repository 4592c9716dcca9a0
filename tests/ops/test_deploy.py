"""Deploy use cases on real git copies of the example, the real dir archive, the local
target and the stub model: plan shows per-object changes and touches nothing; apply
refuses releases without gate evidence (nothing started, nothing appended), deploys
and records ``deployed``, and a second apply is a no-op; outcomes become ledger entries
(a failed rollout marks the release bad; a settings-only failure does not)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reconcile"))
from recon_helpers import (
    archive_of,
    events,
    make_repo,
    pin,
    processes,
    start_stub,
    stop_targets,
)

from llmops.archive import DirArchive
from llmops.domain.deploy import Deployed, DesiredApp
from llmops.domain.errors import Refused, UsageError
from llmops.manifests.repository import load_repo
from llmops.ops import deploy as dep
from llmops.ops.evidence import record_gate_evidence
from llmops.ops.release import create_release
from llmops.promote.checks import find_stage
from llmops.promote.pins import set_pin
from llmops.reconcile.gate import run_gate
from llmops.stub.runner import StubServer


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    server = start_stub()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    path = make_repo(tmp_path / "repo")
    try:
        yield path
    finally:
        stop_targets(path)


def _gate_dev(repo: Path, stub: StubServer) -> dict[str, str]:
    """Archive every app's work-tree release and record its passing dev gate."""
    loaded = load_repo(repo, prefix="")
    archive = archive_of(repo)
    found = find_stage(loaded, "dev")
    assert found is not None
    stage = found[1].spec.stages[found[2]]
    releases = {}
    for app in sorted(loaded.apps):
        created = create_release(loaded, app, archive)
        bundle = dep.load_release(archive, created.release_id)
        result, report = run_gate(loaded, archive, bundle, stage, None, model_url=stub.url)
        assert result.passed
        record_gate_evidence(archive, app, created.release_id, stage, result, report)
        releases[app] = created.release_id
    return releases


def test_plan_shows_what_would_change_and_touches_nothing(repo: Path) -> None:
    loaded = load_repo(repo, prefix="")
    plan = dep.plan_env(loaded, "dev", archive_of(repo))
    assert plan.env == "dev" and plan.target == "local" and not plan.noop
    assert sorted((c.kind, c.app) for c in plan.changes) == [
        ("create", "summarizer"),
        ("create", "support-bot"),
    ]
    assert all(any(line.startswith("+ release: ") for line in c.diff) for c in plan.changes)
    # test pins nothing: nothing should run there
    assert dep.plan_env(loaded, "test", archive_of(repo)).changes == ()
    assert processes(repo) == {}
    assert not (repo / ".llmops" / "archive").exists()


def test_apply_refuses_releases_without_gate_evidence(repo: Path) -> None:
    loaded = load_repo(repo, prefix="")
    with pytest.raises(Refused, match="no passing gate evidence for stage dev") as caught:
        dep.apply_env(loaded, "dev", archive_of(repo), model_url="http://127.0.0.1:9/v1")
    assert set(caught.value.detail) == {"support-bot", "summarizer"}  # type: ignore[arg-type]
    assert processes(repo) == {} and archive_of(repo).entries() == []


def test_apply_refuses_a_pin_without_evidence_for_its_stage(repo: Path, stub: StubServer) -> None:
    releases = _gate_dev(repo, stub)
    env_file = repo / "environments" / "test.yaml"
    env_file.write_text(set_pin(env_file.read_text(), "support-bot", releases["support-bot"]))
    loaded = load_repo(repo, prefix="")
    before = len(archive_of(repo).entries())
    with pytest.raises(Refused) as caught:
        dep.apply_env(loaded, "test", archive_of(repo), model_url=stub.url)
    # the pin is named where it is written, with what to do about it
    assert caught.value.message.startswith("refusing to apply test: environments/test.yaml:")
    assert "spec.releases.support-bot: release support-bot@sha256:" in caught.value.message
    assert "no passing gate evidence for stage 'test'" in caught.value.message
    assert "`llmops promote support-bot --to test`" in caught.value.message
    assert processes(repo) == {} and len(archive_of(repo).entries()) == before
    assert pin(repo, "test", "support-bot") == releases["support-bot"]


def test_apply_deploys_records_and_a_second_apply_does_nothing(
    repo: Path, stub: StubServer
) -> None:
    releases = _gate_dev(repo, stub)
    loaded = load_repo(repo, prefix="")
    outcome = dep.apply_env(loaded, "dev", archive_of(repo), model_url=stub.url, timeout=60)

    assert outcome.ok and outcome.result is not None
    assert {r.app: r.outcome for r in outcome.result.results} == {
        "support-bot": "deployed",
        "summarizer": "deployed",
    }
    deployed = events(repo, "deployed", "dev")
    assert {e.app: e.release for e in deployed} == releases
    fingerprints = {d.app: d.fingerprint for d in outcome.plan.desired}
    for entry in deployed:
        assert entry.data["colour"] == "blue" and entry.data["endpoint"].startswith(
            "http://127.0.0.1:"
        )
        assert entry.data["fingerprint"] == fingerprints[entry.app]
    # every desired app calls the endpoint it was given
    assert all(("LLMOPS_MODEL_URL", stub.url) in d.env_vars for d in outcome.plan.desired)

    running, ledger = processes(repo), len(archive_of(repo).entries())
    again = dep.apply_env(loaded, "dev", archive_of(repo), model_url=stub.url)
    assert again.plan.noop and again.result is None and again.entries == ()
    assert processes(repo) == running and len(archive_of(repo).entries()) == ledger
    # dry run: the plan, nothing else
    dry = dep.apply_env(
        loaded, "dev", archive_of(repo), model_url="http://127.0.0.1:9/v1", dry_run=True
    )
    assert dry.dry_run and not dry.plan.noop and dry.result is None
    assert processes(repo) == running and len(archive_of(repo).entries()) == ledger


def test_the_environment_names_its_target(repo: Path) -> None:
    env_file = repo / "environments" / "dev.yaml"
    env_file.write_text(env_file.read_text().replace("kind: local", "kind: docker"))
    loaded = load_repo(repo, prefix="")
    state_root = repo / ".llmops" / "targets"
    docker = dep.target_for(loaded, "dev", archive_of(repo), state_root=state_root)
    assert docker.kind == "docker"  # the engine is asked only on first use
    local = dep.target_for(loaded, "test", archive_of(repo), state_root=state_root)
    assert local.kind == "local"
    with pytest.raises(UsageError, match="no environment named 'qa'"):
        dep.target_for(loaded, "qa", archive_of(repo), state_root=state_root)


def _desired(release: str) -> DesiredApp:
    return DesiredApp("bot", "test", release, None, 1, 8080, "250m", "256Mi")


def test_outcomes_become_ledger_entries(tmp_path: Path) -> None:
    archive = DirArchive(tmp_path / "archive")
    good, bad = "bot@sha256:" + "1" * 64, "bot@sha256:" + "2" * 64

    written = dep.record_outcome(
        archive,
        Deployed("bot", "test", bad, "deployed", "green", "http://127.0.0.1:1", previous=good),
        _desired(bad),
    )
    assert [e.event for e in written] == ["deployed"]
    assert written[0].data == {
        "colour": "green",
        "endpoint": "http://127.0.0.1:1",
        "fingerprint": _desired(bad).fingerprint,
        "previous": good,
    }
    # a failed verify: the old release kept serving
    rolled = Deployed(
        "bot", "test", good, "rolled-back", "blue", message="verify failed: x\nlog", previous=good
    )
    written = dep.record_outcome(archive, rolled, _desired(bad))
    assert [(e.event, e.release) for e in written] == [("marked-bad", bad), ("rolled-back", good)]
    assert written[0].data["reason"] == "verify failed: x" and written[1].data["from"] == bad
    # marked once; the git rollback may write the rolled-back entry instead
    assert dep.record_outcome(archive, rolled, _desired(bad), restored_entry=False) == []
    # nothing served before: the release is marked bad, nothing is restored
    other = "bot@sha256:" + "3" * 64
    failed = Deployed("bot", "test", None, "failed", message="exited with code 1")
    assert [e.event for e in dep.record_outcome(archive, failed, _desired(other))] == ["marked-bad"]
    # only the settings changed: the release is not to blame
    same = Deployed(
        "bot", "test", good, "rolled-back", "blue", message="verify failed", previous=good
    )
    assert dep.record_outcome(archive, same, _desired(good)) == []
    assert archive.verify().ok
