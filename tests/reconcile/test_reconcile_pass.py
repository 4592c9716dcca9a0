"""A reconcile pass end to end on real git, the real dir archive, the real local target and
the real stub model: every app flows dev → test → prod; a second pass does no work at
all (nothing appended, no process restarted), decided by content hashes or by the full
walk alike; --dry-run changes nothing; soak and approval stop promotion and say why."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from recon_helpers import archive_of, events, git, make_repo, pin, processes, stop_targets

from llmops.ops.reconcile import ReconcileOptions, ReconcileWorld, reconcile_pass
from llmops.reconcile import conditions as c
from llmops.stub.runner import StubServer


def _options(stub: StubServer, **extra: object) -> ReconcileOptions:
    return ReconcileOptions(model_url=stub.url, approve=True, timeout=60, **extra)  # type: ignore[arg-type]


def _invoke(endpoint: str, app: str, inputs: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(
        f"{endpoint}/v1/apps/{app}/invoke",
        data=json.dumps({"inputs": inputs}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        body: dict[str, object] = json.loads(answer.read())
        return body


def test_every_app_flows_to_prod_and_a_second_pass_does_nothing(
    repo: Path, stub: StubServer
) -> None:
    first = reconcile_pass(repo, _options(stub), ReconcileWorld())

    assert first.ok and first.phase == "Ready", first.to_json()
    for env in ("dev", "test", "prod"):
        stage = first.stage(env)
        assert stage is not None
        assert {a.app for a in stage.apps} == {"support-bot", "summarizer"}
        for app in stage.apps:
            assert app.phase == "Ready" and app.live and app.endpoint, app
    # one release per app moved unchanged through every stage; test and prod are pinned
    heads = {a.app: a.live for a in first.stage("dev").apps}  # type: ignore[union-attr]
    for app, release in heads.items():
        assert pin(repo, "test", app) == release and pin(repo, "prod", app) == release
        assert len([e for e in events(repo, "deployed") if e.app == app]) == 3
        assert {e.env for e in events(repo, "evaluated") if e.release == release} == {
            "dev",
            "test",
            "prod",
        }
    # the pins were committed to git (prod through a proposal merged locally)
    log = git(repo, "log", "--format=%s")
    assert "promote support-bot to test" in log and "promote support-bot to prod" in log
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "branch", "--list", "llmops/*") == ""
    # the deployed app answers through its stable endpoint with the release it was given
    prod_bot = first.stage("prod").app("support-bot")  # type: ignore[union-attr]
    answer = _invoke(prod_bot.endpoint, "support-bot", {"question": "hi"})  # type: ignore[arg-type]
    assert answer["release"] == heads["support-bot"]
    assert archive_of(repo).verify().ok

    ledger, running = len(archive_of(repo).entries()), processes(repo)
    head = git(repo, "rev-parse", "HEAD")
    second = reconcile_pass(repo, _options(stub), ReconcileWorld())
    assert second.noop and second.shortcut and second.ok
    assert len(archive_of(repo).entries()) == ledger
    assert processes(repo) == running
    assert git(repo, "rev-parse", "HEAD") == head

    # the full walk (no memo) reaches the same answer from content hashes: no work
    third = reconcile_pass(repo, _options(stub), ReconcileWorld(use_memo=False))
    assert third.noop and not third.shortcut and third.ok, third.work
    assert len(archive_of(repo).entries()) == ledger
    assert processes(repo) == running
    assert {a.phase for s in third.stages for a in s.apps} == {"Ready"}


def test_a_new_commit_moves_only_the_changed_app(repo: Path, stub: StubServer) -> None:
    reconcile_pass(repo, _options(stub), ReconcileWorld())
    before = processes(repo)
    prompt = repo / "manifests" / "summarizer" / "prompts" / "system.j2"
    prompt.write_text(prompt.read_text() + "\nKeep it short.\n")
    git(repo, "commit", "--quiet", "-am", "summarizer: shorter")

    result = reconcile_pass(repo, _options(stub), ReconcileWorld())

    assert result.ok and not result.shortcut, result.to_json()
    assert len([w for w in result.work if w.startswith("deployed")]) == 3, result.to_json()
    after = processes(repo)
    for env in ("dev", "test", "prod"):
        assert after[f"{env}/support-bot"] == before[f"{env}/support-bot"]
        assert after[f"{env}/summarizer"][1] != before[f"{env}/summarizer"][1]
    deployed = [e for e in result.work if e.startswith("deployed")]
    assert len(deployed) == 3 and all("summarizer" in e for e in deployed)


def test_dry_run_changes_nothing(repo: Path, stub: StubServer) -> None:
    head = git(repo, "rev-parse", "HEAD")
    result = reconcile_pass(repo, _options(stub, dry_run=True), ReconcileWorld())

    assert result.dry_run and result.noop
    assert not (repo / ".llmops" / "archive").exists()
    assert processes(repo) == {}
    assert git(repo, "rev-parse", "HEAD") == head
    dev = result.stage("dev")
    assert dev is not None
    steps = {(a.app, s.step, s.status) for a in dev.apps for s in a.steps}
    assert ("support-bot", "release", "skipped") in steps
    assert ("support-bot", "apply", "skipped") in steps


def test_soak_and_approval_stop_promotion_and_say_why(tmp_path: Path, stub: StubServer) -> None:
    repo = make_repo(tmp_path / "soaking", soak="1h")
    try:
        result = reconcile_pass(repo, _options(stub), ReconcileWorld())
        prod = result.stage("prod")
        assert prod is not None
        for app in prod.apps:
            assert app.phase == "Waiting" and app.live is None
            cond = app.condition(c.PROMOTED)
            assert cond is not None and cond.reason == "SoakPending", cond
        assert result.wake_at is not None
        assert result.stage("test").phase == "Ready"  # type: ignore[union-attr]
        # nothing changed: the next pass is a no-op, still waiting for the same time
        ledger = len(archive_of(repo).entries())
        again = reconcile_pass(repo, _options(stub), ReconcileWorld())
        assert again.noop and again.shortcut and again.wake_at == result.wake_at
        assert len(archive_of(repo).entries()) == ledger
        # answered from the memo, the result still says what waits and why
        waiting = again.stage("prod")
        assert waiting is not None and {a.phase for a in waiting.apps} == {"Waiting"}
        for app in waiting.apps:
            cond = app.condition(c.PROMOTED)
            assert cond is not None and cond.reason == "SoakPending"
    finally:
        stop_targets(repo)


def test_approval_required_without_approve_waits_locally(repo: Path, stub: StubServer) -> None:
    options = ReconcileOptions(model_url=stub.url, approve=False, timeout=60)
    result = reconcile_pass(repo, options, ReconcileWorld())

    prod = result.stage("prod")
    assert prod is not None and result.ok
    for app in prod.apps:
        cond = app.condition(c.PROMOTED)
        assert cond is not None and cond.reason == "ApprovalRequired"
        assert "llmops up --approve" in cond.message
    assert pin(repo, "prod", "support-bot") is None
    assert git(repo, "branch", "--list", "llmops/*") == ""
