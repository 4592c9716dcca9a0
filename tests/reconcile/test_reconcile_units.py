"""The pure parts of a pass: plan filtering and drift policy, ledger lag, soak time, the
memo that lets a no-op pass return early, and the step runner's isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmops.archive import DirArchive
from llmops.domain.archive import GENESIS, LedgerEntry
from llmops.domain.deploy import Change, DeployPlan, DesiredApp, LiveApp
from llmops.domain.errors import UsageError
from llmops.reconcile import conditions as c
from llmops.reconcile import memo as m
from llmops.reconcile.compare import (
    apply_drift_policy,
    changed_apps,
    ledger_behind,
    soak_ready_at,
    without_apps,
)
from llmops.reconcile.result import StepOutcome
from llmops.reconcile.runner import AppWork, Steps

R1 = "bot@sha256:" + "1" * 64
R2 = "bot@sha256:" + "2" * 64


def _desired(release: str = R1, app: str = "bot") -> DesiredApp:
    return DesiredApp(app, "dev", release, None, 1, 8080, "250m", "256Mi")


def _live(desired: DesiredApp, drift: tuple[str, ...] = (), ready: bool = True) -> LiveApp:
    return LiveApp(
        desired.app, "dev", desired.release, desired.fingerprint, "blue", ready, "http://x", drift
    )


def _plan(*changes: Change) -> DeployPlan:
    return DeployPlan("dev", "local", (_desired(),), changes)


def _entry(
    seq: int, event: str, app: str, env: str | None, release: str | None, time: str
) -> LedgerEntry:
    return LedgerEntry(seq, GENESIS, time, "t", event, app, release, env)  # type: ignore[arg-type]


def test_without_apps_keeps_what_runs() -> None:
    plan = _plan(
        Change("update", "bot", "process bot", ("- a", "+ b")), Change("create", "sum", "p")
    )
    kept = without_apps(plan, {"bot"})
    assert [ch.kind for ch in kept.changes] == ["unchanged", "create"]
    assert changed_apps(kept) == ("sum",)
    assert without_apps(plan, ()) is plan


def test_drift_policy_report_drops_the_change_and_correct_keeps_or_adds_it() -> None:
    desired = _desired()
    live = {"bot": _live(desired, drift=("the blue backend is not running",))}
    plan = _plan(Change("update", "bot", "process bot", ("! drift: x",)))
    reported, corrected, names = apply_drift_policy(plan, live, {"bot": desired}, "report")
    assert reported.noop and corrected == () and names == ("bot",)
    fixed, corrected, names = apply_drift_policy(plan, live, {"bot": desired}, "correct")
    assert fixed == plan and corrected == ("bot",) and names == ()
    # a target that does not itself plan drift corrections gets an update added
    quiet = _plan(Change("unchanged", "bot", "process bot"))
    fixed, corrected, _ = apply_drift_policy(quiet, live, {"bot": desired}, "correct")
    assert fixed.changes[0].kind == "update" and fixed.changes[0].diff == (
        "~ the blue backend is not running",
    )
    # a release change is never "only drift"
    moved = {"bot": _live(_desired(R2), drift=("x",))}
    assert apply_drift_policy(plan, moved, {"bot": desired}, "report")[0] == plan


def test_ledger_behind_and_soak_ready_at() -> None:
    entries = [
        _entry(1, "deployed", "bot", "dev", R1, "2024-05-01T10:00:00.000Z"),
        _entry(2, "promoted", "bot", "test", R1, "2024-05-01T10:05:00.000Z"),
    ]
    assert not ledger_behind(entries, "bot", "dev", R1)
    assert ledger_behind(entries, "bot", "dev", R2)
    assert ledger_behind(entries, "bot", "prod", R1)
    ready = soak_ready_at(entries, "bot", "test", R1, "1h")
    assert ready == datetime(2024, 5, 1, 11, 5, tzinfo=UTC)
    assert soak_ready_at(entries, "bot", "test", R2, "1h") is None
    assert soak_ready_at(entries, "bot", "test", R1, "0s") is None


def test_memo_round_trip_and_what_invalidates_it(tmp_path: Path) -> None:
    archive = DirArchive(tmp_path / "archive")
    assert m.ledger_tip(archive) == m.LedgerTip(0, "")
    entry = archive.append("held", "bot", env="dev", data={"reason": "x"})
    tip = m.ledger_tip(archive)
    assert tip == m.LedgerTip(entry.seq, entry.hash)
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    memo = m.Memo(
        "c0ffee",
        tip,
        {"dev": {"bot": "fp"}},
        (now + timedelta(hours=1)).isoformat(),
        "k",
        {"dev": {"kind": "local"}},
        str(archive.root),
    )
    path = tmp_path / "memo.json"
    m.save_memo(path, memo)
    loaded = m.load_memo(path)
    assert loaded == memo
    assert m.memo_holds(loaded, source="c0ffee", tip=tip, now=now, options="k")
    assert not m.memo_holds(loaded, source="beef", tip=tip, now=now, options="k")
    assert not m.memo_holds(loaded, source=None, tip=tip, now=now, options="k")
    assert not m.memo_holds(loaded, source="c0ffee", tip=m.LedgerTip(9, "h"), now=now, options="k")
    assert not m.memo_holds(loaded, source="c0ffee", tip=tip, now=now, options="other")
    assert not m.memo_holds(
        loaded, source="c0ffee", tip=tip, now=now + timedelta(hours=2), options="k"
    )
    path.write_text("{not json")
    assert m.load_memo(path) is None
    m.forget(path)
    m.forget(path)
    assert not path.exists()


def test_live_matches_needs_every_app_ready_undrifted_and_nothing_extra() -> None:
    desired = _desired()
    live = {"bot": _live(desired)}
    assert m.live_matches({"bot": desired.fingerprint}, live)
    assert not m.live_matches({"bot": "other"}, live)
    assert not m.live_matches({}, live)
    assert not m.live_matches({"bot": desired.fingerprint}, {"bot": _live(desired, ready=False)})
    assert not m.live_matches({"bot": desired.fingerprint}, {"bot": _live(desired, drift=("x",))})


def test_steps_stop_at_the_first_stop_and_errors_stay_with_the_app() -> None:
    calls: list[str] = []

    def ok(ctx: None, work: AppWork) -> StepOutcome | None:
        calls.append("ok")
        return StepOutcome("ok", "done", "Did")

    def wait(ctx: None, work: AppWork) -> StepOutcome | None:
        calls.append("wait")
        return StepOutcome("wait", "waiting", "SoakPending", "later")

    def boom(ctx: None, work: AppWork) -> StepOutcome | None:
        calls.append("boom")
        raise UsageError("no such thing")

    steps: Steps[None] = Steps((("ok", ok), ("wait", wait), ("boom", boom)))
    waiting = AppWork("bot", "dev", desired=R1)
    steps.run(None, waiting)
    assert calls == ["ok", "wait"] and waiting.phase() == "Waiting"

    failing = AppWork("sum", "dev", desired=R1)
    Steps((("boom", boom), ("ok", ok))).run(None, failing)
    assert failing.error == "no such thing" and failing.phase() == "Failed"
    assert failing.steps[-1] == StepOutcome("boom", "failed", c.ERROR, "no such thing")
    failing.live_ready = True
    assert failing.phase() == "Degraded"  # the old release still serves


def test_an_unexpected_exception_is_recorded_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMOPS_DEBUG", raising=False)

    def bug(ctx: None, work: AppWork) -> StepOutcome | None:
        raise KeyError("x")

    work = AppWork("bot", "dev", desired=R1)
    Steps((("bug", bug),)).run(None, work)
    assert work.error is not None and work.error.startswith("internal error: KeyError")


def test_phases_roll_up_worst_of() -> None:
    assert c.worst([]) == "Ready"
    assert c.worst(["Ready", "Waiting", "Progressing"]) == "Waiting"
    assert c.worst(["Degraded", "Failed", "Ready"]) == "Failed"
    assert list(c.PHASE_ORDER) == ["Ready", "Progressing", "Waiting", "Degraded", "Failed"]
    ready = AppWork("bot", "dev", desired=R1, live=R1, live_ready=True)
    assert ready.phase() == "Ready" and ready.freeze().phase == "Ready"
    assert AppWork("bot", "dev", desired=R2, live=R1, live_ready=True).phase() == "Progressing"


def test_app_results_round_trip_through_json() -> None:
    work = AppWork("bot", "prod", desired=R1)
    work.set(c.PROMOTED, c.FALSE, "SoakPending", "after 12:00Z")
    work.steps.append(StepOutcome("promote", "waiting", "SoakPending", "after 12:00Z"))
    result = work.freeze()
    assert result.phase == "Waiting"
    assert type(result).from_json(result.to_json()) == result
