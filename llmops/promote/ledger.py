"""What the ledger says about promotion: gate evidence, holds, bad marks, and which release
ran in an environment since when. Pure functions over ``LedgerEntry`` lists.

Called by ``llmops.promote.plan`` and re-exported by ``llmops.ops.evidence`` (the evidence
model other use cases import). The rules:

* **Evidence.** Release R has passing evidence for stage S when the *latest* ``evaluated``
  entry with ``release=R, env=S`` has ``data.gate.passed == true`` and
  ``evidence.report`` names an archived object. The latest decides: a later failing run
  revokes an earlier pass, so re-running until green proves nothing. When the entry
  lists ``data.gate.suites``, they must cover the stage's current gate suites
  (otherwise the evidence is stale: the gate grew since).
* **Pins in time.** ``deployed``, ``promoted`` and ``rolled-back`` entries move an
  environment's release; a ``promoted``/``rolled-back`` entry whose ``data.state`` is
  ``proposed`` (a pull request not merged yet) does not.
* **Holds.** A ``held`` entry for (app, env) is active until an ``unheld`` entry after it.
* **Bad marks.** A ``marked-bad`` entry marks a release bad everywhere, for good.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from llmops.domain.archive import LedgerEntry
from llmops.domain.models.pipeline import Stage

EvidenceState = Literal["present", "missing", "failed", "report-missing", "stale"]
PIN_EVENTS = frozenset({"deployed", "promoted", "rolled-back"})
PROPOSED = "proposed"


def parse_time(text: str) -> datetime:
    """A ledger time (``2024-05-01T12:00:00.000Z``) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _gate(entry: LedgerEntry) -> dict[str, Any]:
    gate = entry.data.get("gate")
    return gate if isinstance(gate, dict) else {}


def _pct(value: Any) -> str | None:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else None


def gate_summary(entry: LedgerEntry) -> str:
    """``passed: pass rate 97.0% (min 95.0%)`` from an ``evaluated`` entry's data."""
    gate = _gate(entry)
    verdict = "passed" if gate.get("passed") is True else "failed"
    rate, minimum = _pct(gate.get("passRate")), _pct(gate.get("minPassRate"))
    if rate is None:
        return verdict
    text = f"{verdict}: pass rate {rate}"
    bound = _pct(gate.get("passRateLowerBound"))
    if bound is not None and gate.get("passRateLowerBound") != gate.get("passRate"):
        text += f" (95% lower bound {bound})"
    if minimum is not None:
        text += f", min {minimum}"
    return text


@dataclass(frozen=True, slots=True)
class Evidence:
    """The latest gate verdict on one release for one stage."""

    stage: str
    release: str
    passed: bool
    report: str | None
    seq: int
    time: str
    summary: str
    suites: tuple[str, ...] | None


def latest_evidence(entries: Iterable[LedgerEntry], release: str, stage: str) -> Evidence | None:
    """The latest ``evaluated`` entry for ``release`` in ``stage``, as evidence."""
    found: LedgerEntry | None = None
    for entry in entries:
        if entry.event == "evaluated" and entry.release == release and entry.env == stage:
            found = entry
    if found is None:
        return None
    gate = _gate(found)
    suites = gate.get("suites")
    return Evidence(
        stage=stage,
        release=release,
        passed=gate.get("passed") is True,
        report=found.evidence.get("report"),
        seq=found.seq,
        time=found.time,
        summary=gate_summary(found),
        suites=tuple(str(s) for s in suites) if isinstance(suites, list) else None,
    )


def evidence_state(
    entries: Iterable[LedgerEntry],
    release: str,
    stage: Stage,
    has_object: Callable[[str], bool],
) -> tuple[EvidenceState, Evidence | None]:
    """Whether ``release`` may be in ``stage`` by the evidence, and the evidence itself."""
    evidence = latest_evidence(entries, release, stage.env)
    if evidence is None:
        return "missing", None
    if not evidence.passed:
        return "failed", evidence
    if not evidence.report or not has_object(evidence.report):
        return "report-missing", evidence
    if evidence.suites is not None and not set(stage.gate.suites) <= set(evidence.suites):
        return "stale", evidence
    return "present", evidence


def has_passing_evidence(
    entries: Iterable[LedgerEntry], release: str, stage: Stage, has_object: Callable[[str], bool]
) -> bool:
    return evidence_state(entries, release, stage, has_object)[0] == "present"


def describe_evidence_gap(
    state: EvidenceState, evidence: Evidence | None, release: str, stage: str
) -> str:
    """Why ``release`` has no passing evidence for ``stage``, for people."""
    if state == "failed" and evidence is not None:
        return f"the latest gate run of {release} for stage {stage!r} {evidence.summary}"
    if state == "report-missing" and evidence is not None:
        return (
            f"the gate evidence of {release} for stage {stage!r} names report "
            f"{evidence.report or '(none)'}, which is not in the archive"
        )
    if state == "stale":
        return (
            f"the gate evidence of {release} for stage {stage!r} predates the gate's current "
            "suites; run the gate again"
        )
    return f"release {release} has no passing gate evidence for stage {stage!r}"


def missing_stages(
    entries: Sequence[LedgerEntry],
    release: str,
    stages: Sequence[Stage],
    has_object: Callable[[str], bool],
) -> list[tuple[Stage, EvidenceState, Evidence | None]]:
    """The stages among ``stages`` whose gate ``release`` has no passing evidence for."""
    gaps: list[tuple[Stage, EvidenceState, Evidence | None]] = []
    for stage in stages:
        state, evidence = evidence_state(entries, release, stage, has_object)
        if state != "present":
            gaps.append((stage, state, evidence))
    return gaps


# --------------------------------------------------------------------------- marks, holds


def marked_bad(entries: Iterable[LedgerEntry], release: str) -> LedgerEntry | None:
    """The first ``marked-bad`` entry for ``release``, if any."""
    return next((e for e in entries if e.event == "marked-bad" and e.release == release), None)


def active_hold(entries: Iterable[LedgerEntry], app: str, env: str) -> LedgerEntry | None:
    """The ``held`` entry in force for (app, env): not followed by an ``unheld``."""
    hold: LedgerEntry | None = None
    for entry in entries:
        if entry.app != app or entry.env != env:
            continue
        if entry.event == "held":
            hold = hold or entry
        elif entry.event == "unheld":
            hold = None
    return hold


# --------------------------------------------------------------------------- pins in time


def is_pin_event(entry: LedgerEntry) -> bool:
    """Did this entry move its environment's release (a proposal does not)?"""
    return (
        entry.event in PIN_EVENTS
        and entry.release is not None
        and entry.data.get("state") != PROPOSED
    )


@dataclass(frozen=True, slots=True)
class Residency:
    """A release ran (was pinned) in an environment from ``since``, per ``entry``."""

    release: str
    since: str
    entry: LedgerEntry


def timeline(entries: Iterable[LedgerEntry], app: str, env: str) -> list[Residency]:
    """Each change of (app, env)'s release, oldest first; repeats of one release collapse."""
    changes: list[Residency] = []
    for entry in entries:
        if entry.app != app or entry.env != env or not is_pin_event(entry):
            continue
        assert entry.release is not None
        if not changes or changes[-1].release != entry.release:
            changes.append(Residency(entry.release, entry.time, entry))
    return changes


def entered_at(entries: Iterable[LedgerEntry], app: str, env: str, release: str) -> str | None:
    """Since when ``release`` has run in ``env`` without interruption; None if it does not."""
    changes = timeline(entries, app, env)
    if changes and changes[-1].release == release:
        return changes[-1].since
    return None


def ran_in(entries: Iterable[LedgerEntry], app: str, env: str, release: str) -> bool:
    return any(r.release == release for r in timeline(entries, app, env))


def last_good_release(
    entries: Sequence[LedgerEntry], app: str, env: str, current: str | None
) -> str | None:
    """The release to roll ``env`` back to: walking its pins newest first, the first that
    is not ``current``, not marked bad, and was not rolled back *from* after it ran."""
    bad = {e.release for e in entries if e.event == "marked-bad"}
    abandoned: set[str] = set()
    for entry in reversed(entries):
        if entry.app != app or entry.env != env or not is_pin_event(entry):
            continue
        release = entry.release
        assert release is not None
        if release != current and release not in bad and release not in abandoned:
            return release
        if entry.event == "rolled-back" and isinstance(entry.data.get("from"), str):
            abandoned.add(entry.data["from"])
    return None
