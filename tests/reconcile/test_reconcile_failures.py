"""Failures stay with the app that has them: a broken model endpoint stops one app at its
gate while the other reaches prod; a failed post-deploy verify keeps the last good
release serving, marks the bad one, and puts the pin back through git with a hold; drift
is corrected or only reported, per the environment's driftPolicy."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from recon_helpers import archive_of, events, git, pin, processes, stub_rules

from llmops.domain.archive import LedgerEntry
from llmops.ops.reconcile import ReconcileOptions, ReconcileWorld, reconcile_pass
from llmops.reconcile import conditions as c
from llmops.reconcile.gate import run_gate
from llmops.stub.config import StubConfig
from llmops.stub.rules import Rule
from llmops.stub.runner import StubServer


def _options(url: str) -> ReconcileOptions:
    return ReconcileOptions(model_url=url, approve=True, timeout=60)


def _release_served(endpoint: str, app: str) -> str:
    request = urllib.request.Request(
        f"{endpoint}/v1/apps/{app}/invoke",
        data=json.dumps({"inputs": {"question": "hi"}}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["release"])


def test_a_broken_model_endpoint_stops_only_that_app(
    repo: Path, stub: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a key is set, so the endpoint itself is what fails (connection refused)
    monkeypatch.setenv("OPENAI_API_KEY", "not-a-real-key")
    dev = repo / "environments" / "dev.yaml"
    dev.write_text(
        dev.read_text().replace(
            "  summarizer:\n      replicas: 1",
            "  summarizer:\n      replicas: 1\n      model: {baseUrl: 'http://127.0.0.1:9/v1'}",
        )
    )
    assert "127.0.0.1:9/v1" in dev.read_text()
    git(repo, "commit", "--quiet", "-am", "summarizer: a model endpoint that is down")

    result = reconcile_pass(repo, _options(stub.url), ReconcileWorld())

    summarizer = result.stage("dev").app("summarizer")  # type: ignore[union-attr]
    assert summarizer is not None and summarizer.phase in ("Degraded", "Failed")
    gate = summarizer.condition(c.GATE_PASSED)
    assert gate is not None and gate.reason == c.GATE_FAILED, summarizer
    assert "127.0.0.1:9" in gate.message or "errored" in gate.message
    assert summarizer.live is None
    for env in ("dev", "test", "prod"):
        bot = result.stage(env).app("support-bot")  # type: ignore[union-attr]
        assert bot is not None and bot.phase == "Ready" and bot.live, (env, bot)
    assert pin(repo, "prod", "support-bot") is not None
    assert pin(repo, "test", "summarizer") is None
    assert not [e for e in events(repo, "deployed") if e.app == "summarizer"]


def _by(entries: list[LedgerEntry], event: str, app: str) -> list[LedgerEntry]:
    return [e for e in entries if e.event == event and e.app == app]


def test_a_failed_verify_restores_the_last_good_release_through_git(
    repo: Path, stub: StubServer
) -> None:
    first = reconcile_pass(repo, _options(stub.url), ReconcileWorld())
    assert first.ok
    good = pin(repo, "test", "support-bot")
    assert good is not None

    prompt = repo / "manifests" / "support-bot" / "prompts" / "system.j2"
    prompt.write_text(prompt.read_text() + "\nBe brief.\n")
    git(repo, "commit", "--quiet", "-am", "support-bot: be brief")
    # the gates ask the good stub; the deployed apps reach a second stub that breaks the
    # JSON contract only for the new release (its system prompt says "Be brief"), so
    # test's post-deploy verify of that release fails, and every other app passes
    breaking = (Rule.of("Be brief", "Sure! Here is a short answer.", "conversation"), *stub_rules())
    picky = StubServer(StubConfig(rules=breaking)).start()
    try:
        _verify_failure(repo, stub, picky, good)
    finally:
        picky.stop()


def _verify_failure(repo: Path, stub: StubServer, picky: StubServer, good: str) -> None:
    def gate(repo_, archive, bundle, stage, baseline):  # type: ignore[no-untyped-def]
        return run_gate(repo_, archive, bundle, stage, baseline, model_url=stub.url)

    result = reconcile_pass(repo, _options(picky.url), ReconcileWorld(gate=gate))
    test = result.stage("test")
    assert test is not None
    bot = test.app("support-bot")
    assert bot is not None and bot.phase == "Degraded", bot
    deployed = bot.condition(c.DEPLOYED)
    assert deployed is not None and deployed.reason == c.ROLLED_BACK
    assert "verify failed" in deployed.message
    assert [s.step for s in bot.steps if s.status == "done"][-1] == "rollback"

    entries = archive_of(repo).entries()
    bad = _by(entries, "marked-bad", "support-bot")
    assert len(bad) == 1 and bad[0].env == "test" and bad[0].release != good
    # the pin went back to the good release in a commit, with a hold, and the target
    # serves the good release (it kept it: nothing rebuilt or restarted for it)
    assert pin(repo, "test", "support-bot") == good
    rolled = _by(entries, "rolled-back", "support-bot")
    assert rolled[-1].release == good and rolled[-1].data["from"] == bad[0].release
    assert rolled[-1].data["state"] == "committed"
    assert _by(entries, "held", "support-bot")[-1].env == "test"
    assert git(repo, "log", "-1", "--format=%s").startswith("rollback support-bot in test to ")
    assert _release_served(bot.endpoint or "", "support-bot") == good
    # prod never saw the bad release
    assert pin(repo, "prod", "support-bot") == good
    assert archive_of(repo).verify().ok

    assert not [e for e in entries if e.event == "marked-bad" and e.app == "summarizer"]
    assert pin(repo, "prod", "summarizer") == pin(repo, "test", "summarizer")

    # git and the target agree now: the next pass changes nothing for support-bot
    ledger = len(entries)
    again = reconcile_pass(repo, _options(picky.url), ReconcileWorld(gate=gate))
    again_bot = again.stage("test").app("support-bot")  # type: ignore[union-attr]
    assert again_bot is not None and again_bot.live == good
    assert not [w for w in again.work if "support-bot" in w and "test" in w], again.work
    assert len([e for e in archive_of(repo).entries() if e.app == "support-bot"]) == len(
        [e for e in entries if e.app == "support-bot"]
    ), ledger


def _release_file(repo: Path, env: str, release: str) -> Path:
    digest = release.rsplit(":", 1)[-1]
    return repo / ".llmops" / "targets" / env / "releases" / f"{digest}.json"


def test_drift_is_corrected_or_reported_per_policy(repo: Path, stub: StubServer) -> None:
    test_env = repo / "environments" / "test.yaml"
    test_env.write_text(
        test_env.read_text().replace("  target:\n", "  driftPolicy: report\n  target:\n")
    )
    git(repo, "commit", "--quiet", "-am", "test reports drift")
    first = reconcile_pass(repo, _options(stub.url), ReconcileWorld())
    assert first.ok
    release = pin(repo, "prod", "support-bot")
    assert release is not None

    # by hand: the bundle files the processes were started from are removed
    _release_file(repo, "prod", release).unlink()
    _release_file(repo, "test", release).unlink()
    deployed_before = len(events(repo, "deployed", "prod"))
    result = reconcile_pass(repo, _options(stub.url), ReconcileWorld())

    prod_bot = result.stage("prod").app("support-bot")  # type: ignore[union-attr]
    assert prod_bot is not None
    sync = prod_bot.condition(c.IN_SYNC)
    assert sync is not None and sync.reason == c.DRIFT_CORRECTED, prod_bot
    assert prod_bot.phase == "Ready"
    assert _release_file(repo, "prod", release).is_file()
    assert len(events(repo, "deployed", "prod")) == deployed_before + 1

    test_bot = result.stage("test").app("support-bot")  # type: ignore[union-attr]
    assert test_bot is not None
    sync = test_bot.condition(c.IN_SYNC)
    assert sync is not None and sync.status == "False" and sync.reason == c.DRIFT_REPORTED
    assert "release file" in sync.message
    assert not _release_file(repo, "test", release).exists()
    assert not [e for e in result.work if "to test" in e]


def test_rules_give_support_bot_json() -> None:
    # the fixture's premise: the stub's one rule answers support-bot's prompt with JSON
    rule = stub_rules()[0]
    assert rule.pattern.search("Customer message:\n<<<\nhi\n>>>")
    assert json.loads(rule.reply)["category"] == "other"


def test_a_deploy_the_ledger_missed_is_recorded_not_redone(repo: Path, stub: StubServer) -> None:
    # as if the reconciler died between apply and its ledger write: dev runs the gated
    # work-tree releases, and the ledger has no `deployed` entry for them
    from llmops.manifests.repository import load_repo
    from llmops.ops import deploy as dep
    from llmops.ops.evidence import record_gate_evidence
    from llmops.ops.release import create_release

    loaded = load_repo(repo, prefix="")
    archive = archive_of(repo)
    stage = loaded.pipelines["default"].pipeline.spec.stages[0]
    releases = {}
    for app in loaded.apps:
        releases[app] = create_release(loaded, app, archive).release_id
        bundle = dep.load_release(archive, releases[app])
        result, report = run_gate(loaded, archive, bundle, stage, None, model_url=stub.url)
        record_gate_evidence(archive, app, releases[app], stage, result, report)
    target = dep.target_for(loaded, "dev", archive, state_root=repo / ".llmops" / "targets")
    prepared = dep.prepare_env(loaded, "dev", archive, releases=releases, model_url=stub.url)
    applied = target.apply(target.plan(prepared.desired, target.live()), timeout=60)
    assert applied.ok
    running, ledger = processes(repo), len(archive.entries())
    assert not [e for e in archive.entries() if e.event == "deployed"]

    result = reconcile_pass(
        repo, ReconcileOptions(model_url=stub.url, env="dev", timeout=60), ReconcileWorld()
    )

    assert result.ok and result.stage("dev").phase == "Ready"  # type: ignore[union-attr]
    recorded = [e for e in archive.entries() if e.event == "deployed"]
    assert {e.app: e.release for e in recorded} == releases
    assert all(e.data["recovered"] is True for e in recorded)
    assert len(archive.entries()) == ledger + 2
    assert processes(repo) == running  # recorded, not redeployed
    for app in result.stage("dev").apps:  # type: ignore[union-attr]
        cond = app.condition(c.DEPLOYED)
        assert cond is not None and cond.reason == c.LEDGER_REPAIRED
