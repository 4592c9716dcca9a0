"""A world kept between passes (the controller, a reconcile loop) reloads and re-prepares
only what changed, and every pass still answers what a fresh world would answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmops.archive import DirArchive
from llmops.deploy.target import Target
from llmops.domain.models.environment import Target as TargetSpec
from llmops.ops import deploy as dep
from llmops.ops.reconcile import ReconcileOptions, ReconcileWorld, reconcile_pass
from llmops.reconcile.result import PassResult
from tests.reconcile.recon_helpers import archive_of, commit_all, git, make_repo
from tests.support.recording import RecordingTarget, recorded_gate

OPTIONS = ReconcileOptions(model_url="http://127.0.0.1:9/v1", approve=True)


class Worlds:
    """One recording target per environment, shared by a warm world and fresh ones."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.targets: dict[str, RecordingTarget] = {}
        self.warm = self.make()

    def factory(self, env: str, spec: TargetSpec, archive: Any, state_root: Path) -> Target:
        return self.targets.setdefault(env, RecordingTarget(env))

    def make(self, memo: bool = False) -> ReconcileWorld:
        return ReconcileWorld(target_factory=self.factory, gate=recorded_gate, use_memo=memo)


def _answers(result: PassResult) -> list[tuple[str, str, str | None, str, tuple[Any, ...]]]:
    return [
        (
            a.env,
            a.app,
            a.desired,
            a.phase,
            tuple((c.type, c.status, c.reason) for c in a.conditions),
        )
        for s in result.stages
        for a in s.apps
    ]


@pytest.fixture()
def worlds(tmp_path: Path) -> Worlds:
    root = make_repo(tmp_path / "repo")
    found = Worlds(root)
    first = reconcile_pass(root, OPTIONS, found.warm)
    assert first.ok, first.to_json()
    return found


def test_a_commit_that_changes_no_app_rechecks_and_reprepares_nothing(
    worlds: Worlds, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, warm = worlds.root, worlds.warm
    settled = reconcile_pass(root, OPTIONS, warm)
    assert settled.noop
    git(root, "commit", "--quiet", "--allow-empty", "-m", "nothing for the apps")
    loads: list[str] = []
    real = dep.load_release
    monkeypatch.setattr(dep, "load_release", lambda *a, **k: loads.append(a[1]) or real(*a, **k))
    misses = warm.load_cache.misses
    again = reconcile_pass(root, OPTIONS, warm)
    assert again.noop and not again.shortcut
    assert warm.load_cache.misses == misses  # no app checked again
    assert loads == []  # no release read back from the archive: every app was steady
    assert _answers(again) == _answers(reconcile_pass(root, OPTIONS, worlds.make()))


def test_a_changed_app_flows_and_the_others_stay_as_they_are(worlds: Worlds) -> None:
    root, warm = worlds.root, worlds.warm
    reconcile_pass(root, OPTIONS, warm)
    user = root / "manifests" / "summarizer" / "prompts" / "user.j2"
    user.write_text(user.read_text() + "\nBe brief.\n")
    commit_all(root, "summarizer: be brief")
    misses = warm.load_cache.misses
    result = reconcile_pass(root, OPTIONS, warm)
    assert result.ok, result.to_json()
    assert warm.load_cache.misses - misses == 1  # only summarizer's directory
    deployed = [w for w in result.work if w.startswith("deployed")]
    assert len(deployed) == 3 and all("summarizer@" in w for w in deployed)
    fresh = reconcile_pass(root, OPTIONS, worlds.make())
    assert fresh.noop
    assert _answers(reconcile_pass(root, OPTIONS, warm)) == _answers(fresh)


def test_a_release_marked_bad_by_hand_is_not_hidden_by_the_steady_answer(worlds: Worlds) -> None:
    root, warm = worlds.root, worlds.warm
    reconcile_pass(root, OPTIONS, warm)
    archive: DirArchive = archive_of(root)
    # dev runs the work tree's release (no pin): only the prepare steps can refuse it
    running = worlds.targets["dev"].running["summarizer"].release
    archive.append(
        "marked-bad", "summarizer", release=running, env="dev", data={"reason": "a person said so"}
    )
    warm_result = reconcile_pass(root, OPTIONS, warm)
    dev = warm_result.stage("dev")
    assert dev is not None
    app = next(a for a in dev.apps if a.app == "summarizer")
    assert app.phase == "Degraded"
    assert [s.reason for s in app.steps] == ["MarkedBad"], app.steps
    assert _answers(warm_result) == _answers(reconcile_pass(root, OPTIONS, worlds.make()))


def test_an_environment_override_redeploys_that_app_there(worlds: Worlds) -> None:
    root, warm = worlds.root, worlds.warm
    reconcile_pass(root, OPTIONS, warm)
    before = {app: one.fingerprint for app, one in worlds.targets["dev"].running.items()}
    dev = root / "environments" / "dev.yaml"
    old = "    summarizer:\n      replicas: 1\n"
    assert old in dev.read_text()
    dev.write_text(dev.read_text().replace(old, old + "      env: {SUMMARY_STYLE: brief}\n"))
    commit_all(root, "dev: brief summaries")
    result = reconcile_pass(root, OPTIONS, warm)
    assert result.ok, result.to_json()
    after = {app: one.fingerprint for app, one in worlds.targets["dev"].running.items()}
    assert after["summarizer"] != before["summarizer"]
    assert after["support-bot"] == before["support-bot"]
    assert (
        [w for w in result.work if w.startswith("deployed")]
        == [w for w in result.work if w.startswith("deployed") and "summarizer@" in w]
        != []
    )
    assert _answers(reconcile_pass(root, OPTIONS, warm)) == _answers(
        reconcile_pass(root, OPTIONS, worlds.make())
    )


def test_an_excluded_app_keeps_what_runs_while_the_others_flow(worlds: Worlds) -> None:
    from dataclasses import replace

    root, warm = worlds.root, worlds.warm
    reconcile_pass(root, OPTIONS, warm)
    before = {env: dict(t.running) for env, t in worlds.targets.items()}
    for app in ("summarizer", "support-bot"):
        user = root / "manifests" / app / "prompts" / "user.j2"
        user.write_text(user.read_text() + "\nBe brief.\n")
    commit_all(root, "both apps: be brief")

    backing_off = replace(OPTIONS, exclude=frozenset({"summarizer"}))
    result = reconcile_pass(root, backing_off, warm)
    assert result.ok, result.to_json()
    assert {a.app for s in result.stages for a in s.apps} == {"support-bot"}
    for env, target in worlds.targets.items():
        assert target.running["summarizer"] == before[env]["summarizer"]  # not pruned, not moved
        assert target.running["support-bot"] != before[env]["support-bot"]
    assert not reconcile_pass(root, backing_off, warm).shortcut  # a partial pass settles nothing

    alone = reconcile_pass(root, replace(OPTIONS, apps=frozenset({"summarizer"})), warm)
    assert alone.ok, alone.to_json()
    assert {a.app for s in alone.stages for a in s.apps} == {"summarizer"}
    assert all(
        t.running["summarizer"] != before[e]["summarizer"] for e, t in worlds.targets.items()
    )
    assert reconcile_pass(root, OPTIONS, warm).noop


def test_a_stop_request_ends_the_pass_between_apps_and_the_next_pass_goes_on(
    worlds: Worlds,
) -> None:
    from llmops.domain.errors import Interrupted

    root, warm = worlds.root, worlds.warm
    user = root / "manifests" / "summarizer" / "prompts" / "user.j2"
    user.write_text(user.read_text() + "\nBe brief.\n")
    commit_all(root, "summarizer: be brief")
    asked: list[int] = []
    warm.should_stop = lambda: bool(asked.append(1)) or len(asked) > 1
    with pytest.raises(Interrupted):
        reconcile_pass(root, OPTIONS, warm)
    assert len(asked) == 2  # it ran one app's steps, then stopped at the next check
    warm.should_stop = lambda: False
    result = reconcile_pass(root, OPTIONS, warm)
    assert result.ok, result.to_json()
    assert reconcile_pass(root, OPTIONS, warm).noop
