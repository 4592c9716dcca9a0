"""The evidence model over ledger entries: holds, residency in time, the last good release,
and the shape `record_gate_evidence` archives (what the plan then reads back)."""

from __future__ import annotations

from pathlib import Path

from promote_helpers import gate_run

from llmops import api
from llmops.archive import DirArchive
from llmops.ops.evidence import (
    active_hold,
    entered_at,
    evidence_state,
    has_passing_evidence,
    last_good_release,
    record_gate_evidence,
    timeline,
)

ROOT = Path(__file__).resolve().parents[2]
A, B, C = (f"support-bot@sha256:{ch * 64}" for ch in "abc")


def _archive(tmp_path: Path) -> DirArchive:
    return DirArchive(tmp_path / "archive")


def test_holds_stack_and_lift(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    first = archive.append("held", "support-bot", env="prod", data={"reason": "one"})
    archive.append("held", "support-bot", env="prod", data={"reason": "two"})
    assert active_hold(archive.entries(), "support-bot", "prod") == first  # the oldest in force
    assert active_hold(archive.entries(), "support-bot", "test") is None
    archive.append("unheld", "support-bot", env="prod")
    assert active_hold(archive.entries(), "support-bot", "prod") is None
    again = archive.append("held", "support-bot", env="prod")
    assert active_hold(archive.entries(), "support-bot", "prod") == again


def test_timeline_and_residency(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    archive.append("promoted", "support-bot", release=A, env="test", data={"state": "committed"})
    archive.append("deployed", "support-bot", release=A, env="test")
    archive.append("promoted", "support-bot", release=B, env="test", data={"state": "proposed"})
    archive.append("promoted", "support-bot", release=C, env="test", data={"state": "committed"})
    entries = archive.entries()
    assert [r.release for r in timeline(entries, "support-bot", "test")] == [A, C]
    assert entered_at(entries, "support-bot", "test", C) == entries[-1].time
    assert entered_at(entries, "support-bot", "test", A) is None  # not running any more
    assert last_good_release(entries, "support-bot", "test", C) == A


def test_a_release_promoted_again_after_a_rollback_is_good_again(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    for release in (A, B):
        archive.append(
            "promoted", "support-bot", release=release, env="test", data={"state": "committed"}
        )
    archive.append("rolled-back", "support-bot", release=A, env="test", data={"from": B})
    archive.append("promoted", "support-bot", release=B, env="test", data={"state": "committed"})
    archive.append("promoted", "support-bot", release=C, env="test", data={"state": "committed"})
    assert last_good_release(archive.entries(), "support-bot", "test", C) == B


def test_recorded_gate_evidence_is_read_back(tmp_path: Path) -> None:
    archive = _archive(tmp_path)
    stage = api.load(ROOT).pipelines["default"].pipeline.spec.stages[1]
    run = gate_run("test", True)
    entry = record_gate_evidence(archive, "support-bot", A, stage, run.result, run.report, B)
    assert entry.event == "evaluated" and entry.env == "test" and entry.release == A
    assert archive.get(entry.evidence["report"]) == run.report
    gate = entry.data["gate"]
    assert (
        gate["passed"] is True and gate["suites"] == ["smoke", "security"] and gate["repeats"] == 3
    )
    assert gate["reasons"][0]["code"] == "Passed" and entry.data["baseline"] == B
    assert has_passing_evidence(archive.entries(), A, stage, archive.has)
    state, evidence = evidence_state(archive.entries(), A, stage, archive.has)
    assert state == "present" and evidence is not None
    assert evidence.summary == "passed: pass rate 100.0%, min 95.0%"
