"""The promotion and rollback plans, pure: every check, each refusal reason, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from llmops import api
from llmops.domain.archive import LedgerEntry
from llmops.domain.errors import UsageError
from llmops.domain.repo import Repo
from llmops.promote import conditions as c
from llmops.promote.plan import InFlight, PromotionPlan, plan_promotion, plan_rollback

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
A = "support-bot@sha256:" + "a" * 64
B = "support-bot@sha256:" + "b" * 64
C = "support-bot@sha256:" + "c" * 64
HEAD = "support-bot@sha256:" + "f" * 64


@pytest.fixture(scope="module")
def example() -> Repo:
    return api.load(ROOT)


def with_pins(repo: Repo, env: str, pins: dict[str, str]) -> Repo:
    source = repo.environments[env]
    spec = source.environment.spec.model_copy(update={"releases": pins})
    environment = source.environment.model_copy(update={"spec": spec})
    return replace(
        repo, environments={**repo.environments, env: replace(source, environment=environment)}
    )


class Ledger:
    """Entries written by hand, ``minutes`` before NOW."""

    def __init__(self) -> None:
        self.entries: list[LedgerEntry] = []
        self._seq = count(1)

    def add(
        self,
        event: Any,
        release: str | None = None,
        env: str | None = None,
        *,
        minutes: float = 600,
        app: str = "support-bot",
        **data: Any,
    ) -> Ledger:
        time = (NOW - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
        evidence = data.pop("evidence", {})
        self.entries.append(
            LedgerEntry(
                next(self._seq), "", time, "tester", event, app, release, env, evidence, data
            )
        )
        return self

    def passed(self, release: str, *envs: str, **gate: Any) -> Ledger:
        for env in envs:
            self.add(
                "evaluated",
                release,
                env,
                evidence={"report": "r" * 64},
                gate={"passed": True, "passRate": 1.0, "minPassRate": 0.95, **gate},
            )
        return self

    def failed(self, release: str, env: str) -> Ledger:
        return self.add(
            "evaluated",
            release,
            env,
            evidence={"report": "e" * 64},
            gate={"passed": False, "passRate": 0.5, "minPassRate": 0.95},
        )


def plan(repo: Repo, ledger: Ledger, to: str, **kw: Any) -> PromotionPlan:
    kw.setdefault("in_flight", InFlight())
    kw.setdefault("head_release", HEAD)
    return plan_promotion(repo, ledger.entries, "support-bot", to, now=NOW, **kw)


def reason(p: PromotionPlan, condition: str) -> str:
    check = p.check(condition)
    assert check is not None, condition
    return check.reason


def test_a_clean_promotion_lists_every_check(example: Repo) -> None:
    repo = with_pins(example, "dev", {"support-bot": A})
    ledger = Ledger().passed(A, "dev", "test")
    p = plan(repo, ledger, "test")
    assert p.allowed and not p.noop and not p.run_evals
    assert (p.candidate, p.source, p.mode, p.pipeline) == (A, "dev", "commit", "default")
    assert [ch.condition for ch in p.checks] == [
        c.CANDIDATE_RESOLVED,
        c.CANDIDATE_ARCHIVED,
        c.CANDIDATE_NOT_BAD,
        c.EARLIER_GATES_PASSED,
        c.TARGET_GATE_PASSED,
        c.SOAK_ELAPSED,
        c.APPROVAL_SATISFIED,
        c.NOT_HELD,
        c.NOT_IN_FLIGHT,
        c.PIN_CHANGE,
    ]
    assert [ch.reason for ch in p.checks] == [
        c.PINNED_IN_PREVIOUS_STAGE,
        c.BUNDLE_ARCHIVED,
        c.NOT_MARKED_BAD,
        c.EVIDENCE_PRESENT,
        c.EVIDENCE_PRESENT,
        c.NO_SOAK_REQUIRED,
        c.APPROVAL_NOT_REQUIRED,
        c.NO_HOLD,
        c.NOTHING_IN_FLIGHT,
        c.PIN_WILL_CHANGE,
    ]
    assert [e.stage for e in p.evidence] == ["dev", "test"]
    assert all(ch.condition in c.CONDITIONS for ch in p.checks)


def test_first_stage_takes_the_work_tree_release(example: Repo) -> None:
    p = plan(example, Ledger(), "dev", has_object=lambda d: False)
    assert p.candidate == HEAD and p.candidate_from_work_tree and p.source == "work tree"
    assert reason(p, c.CANDIDATE_RESOLVED) == c.WORK_TREE_RELEASE
    assert reason(p, c.CANDIDATE_ARCHIVED) == c.WORK_TREE_WILL_BE_ARCHIVED
    assert reason(p, c.EARLIER_GATES_PASSED) == c.FIRST_STAGE
    assert reason(p, c.TARGET_GATE_PASSED) == c.EVALS_WILL_RUN and p.run_evals
    assert p.check(c.TARGET_GATE_PASSED).status == c.UNKNOWN  # type: ignore[union-attr]
    assert p.allowed  # Unknown is not a refusal: apply finds out


def test_head_stage_pinning_nothing_hands_on_the_work_tree(example: Repo) -> None:
    p = plan(example, Ledger().passed(HEAD, "dev", "test"), "test")
    assert p.candidate == HEAD and reason(p, c.CANDIDATE_RESOLVED) == c.WORK_TREE_RELEASE


def test_nothing_pinned_in_the_previous_stage(example: Repo) -> None:
    p = plan(example, Ledger(), "prod")
    assert not p.allowed and p.candidate is None
    assert reason(p, c.CANDIDATE_RESOLVED) == c.NOTHING_PINNED
    assert "promote it there first (`llmops promote support-bot --to test`)" in p.refusal_message()


def test_bundle_missing(example: Repo) -> None:
    repo = with_pins(example, "dev", {"support-bot": A})
    p = plan(repo, Ledger().passed(A, "dev", "test"), "test", has_object=lambda d: d == "r" * 64)
    assert reason(p, c.CANDIDATE_ARCHIVED) == c.BUNDLE_MISSING and not p.allowed


def test_marked_bad_is_never_promoted(example: Repo) -> None:
    repo = with_pins(example, "dev", {"support-bot": A})
    ledger = Ledger().passed(A, "dev", "test").add("marked-bad", A)
    assert reason(plan(repo, ledger, "test"), c.CANDIDATE_NOT_BAD) == c.MARKED_BAD


@pytest.mark.parametrize(
    ("ledger", "has", "expected", "words"),
    [
        (
            Ledger().passed(A, "test"),
            None,
            c.EVIDENCE_MISSING,
            "no passing gate evidence for stage 'dev'",
        ),
        (
            Ledger().passed(A, "test").failed(A, "dev"),
            None,
            c.EVIDENCE_MISSING,
            "failed: pass rate 50.0%",
        ),
        (Ledger().passed(A, "dev", "test"), lambda d: d != "r" * 64, None, "not in the archive"),
        (Ledger().passed(A, "test").passed(A, "dev", suites=["other"]), None, None, "predates"),
    ],
    ids=["missing", "failed", "report-missing", "stale"],
)
def test_earlier_gates_must_have_passed(
    example: Repo, ledger: Ledger, has: Any, expected: str | None, words: str
) -> None:
    repo = with_pins(example, "dev", {"support-bot": A})
    p = plan(repo, ledger, "test", has_object=has or (lambda d: True))
    check = p.check(c.EARLIER_GATES_PASSED)
    assert check is not None and check.status == c.FALSE and not p.allowed
    assert words in check.message
    assert "promote it with `llmops promote support-bot --to dev`" in check.message


def test_target_gate(example: Repo) -> None:
    repo = with_pins(example, "dev", {"support-bot": A})
    missing = plan(repo, Ledger().passed(A, "dev"), "test")
    assert reason(missing, c.TARGET_GATE_PASSED) == c.EVALS_WILL_RUN and missing.run_evals
    refused = plan(repo, Ledger().passed(A, "dev"), "test", no_run=True)
    assert reason(refused, c.TARGET_GATE_PASSED) == c.EVIDENCE_MISSING and not refused.allowed
    assert "--no-run" in refused.check(c.TARGET_GATE_PASSED).message  # type: ignore[union-attr]
    failed = plan(repo, Ledger().passed(A, "dev").failed(A, "test"), "test")
    assert reason(failed, c.TARGET_GATE_PASSED) == c.GATE_FAILED and not failed.allowed


def test_the_latest_gate_run_decides(example: Repo) -> None:
    repo = with_pins(example, "dev", {"support-bot": A})
    revoked = Ledger().passed(A, "dev", "test").failed(A, "test")
    assert reason(plan(repo, revoked, "test"), c.TARGET_GATE_PASSED) == c.GATE_FAILED
    fixed = Ledger().passed(A, "dev").failed(A, "test").passed(A, "test")
    assert reason(plan(repo, fixed, "test"), c.TARGET_GATE_PASSED) == c.EVIDENCE_PRESENT


def _prod_ready(example: Repo) -> Repo:
    return with_pins(with_pins(example, "dev", {"support-bot": A}), "test", {"support-bot": A})


@pytest.mark.parametrize(
    ("minutes", "state", "expected"),
    [
        (90, "committed", c.SOAK_DONE),
        (20, "committed", c.SOAK_PENDING),
        (90, "proposed", c.SOAK_UNMEASURABLE),
    ],
)
def test_soak_in_the_previous_stage(
    example: Repo, minutes: float, state: str, expected: str
) -> None:
    ledger = Ledger().passed(A, "dev", "test", "prod")
    ledger.add("promoted", A, "test", minutes=minutes, state=state)
    p = plan(_prod_ready(example), ledger, "prod")
    assert reason(p, c.SOAK_ELAPSED) == expected
    assert p.allowed == (expected == c.SOAK_DONE)


def test_soak_counts_from_when_the_release_last_entered(example: Repo) -> None:
    ledger = Ledger().passed(A, "dev", "test", "prod")
    ledger.add("deployed", A, "test", minutes=300).add("deployed", B, "test", minutes=200)
    ledger.add("rolled-back", A, "test", minutes=30)
    p = plan(_prod_ready(example), ledger, "prod")
    assert reason(p, c.SOAK_ELAPSED) == c.SOAK_PENDING
    assert "for 30m of the 1h soak" in p.check(c.SOAK_ELAPSED).message  # type: ignore[union-attr]


def test_approval(example: Repo) -> None:
    ledger = Ledger().passed(A, "dev", "test", "prod").add("deployed", A, "test", minutes=120)
    repo = _prod_ready(example)
    proposed = plan(repo, ledger, "prod")
    assert proposed.mode == "pull-request" and proposed.branch == "llmops/promote/prod/support-bot"
    assert reason(proposed, c.APPROVAL_SATISFIED) == c.PULL_REQUEST_IS_APPROVAL
    committed = plan(repo, ledger, "prod", mode="commit")
    assert reason(committed, c.APPROVAL_SATISFIED) == c.APPROVAL_REQUIRES_PULL_REQUEST
    assert not committed.allowed


def test_holds(example: Repo) -> None:
    repo = with_pins(example, "dev", {"support-bot": A})
    ledger = Ledger().passed(A, "dev", "test").add("held", None, "test", reason="incident 42")
    held = plan(repo, ledger, "test")
    assert reason(held, c.NOT_HELD) == c.HOLD_ACTIVE and "incident 42" in held.refusal_message()
    ledger.add("unheld", None, "test")
    assert reason(plan(repo, ledger, "test"), c.NOT_HELD) == c.NO_HOLD
    other = Ledger().passed(A, "dev", "test").add("held", None, "prod")
    assert reason(plan(repo, other, "test"), c.NOT_HELD) == c.NO_HOLD


@pytest.mark.parametrize(
    ("in_flight", "expected", "refused"),
    [
        (None, c.NOT_CHECKED, False),
        (InFlight(), c.NOTHING_IN_FLIGHT, False),
        (InFlight(branch_exists=True), c.BRANCH_EXISTS, True),
        (InFlight(True, "https://github.com/acme/x/pull/7"), c.PULL_REQUEST_OPEN, True),
    ],
)
def test_in_flight(example: Repo, in_flight: InFlight | None, expected: str, refused: bool) -> None:
    repo = with_pins(example, "dev", {"support-bot": A})
    p = plan(repo, Ledger().passed(A, "dev", "test"), "test", in_flight=in_flight)
    assert reason(p, c.NOT_IN_FLIGHT) == expected and p.allowed != refused


def test_already_pinned_is_a_noop(example: Repo) -> None:
    repo = with_pins(with_pins(example, "dev", {"support-bot": A}), "test", {"support-bot": A})
    p = plan(repo, Ledger().passed(A, "dev", "test"), "test")
    assert p.noop and reason(p, c.PIN_CHANGE) == c.ALREADY_PINNED


def test_from_an_earlier_stage(example: Repo) -> None:
    repo = with_pins(with_pins(example, "dev", {"support-bot": B}), "test", {"support-bot": A})
    ledger = Ledger().passed(B, "dev", "test", "prod").add("deployed", B, "dev", minutes=120)
    p = plan(repo, ledger, "prod", from_env="dev")
    assert p.candidate == B and p.source == "dev"
    with pytest.raises(UsageError, match="earlier stage"):
        plan(repo, ledger, "test", from_env="prod")


def test_unknown_names(example: Repo) -> None:
    with pytest.raises(UsageError, match="no app named 'nope'"):
        plan_promotion(example, [], "nope", "test", now=NOW)
    with pytest.raises(UsageError, match="no environment named 'staging'"):
        plan_promotion(example, [], "support-bot", "staging", now=NOW)
    with pytest.raises(UsageError, match="no pipeline named 'fast'"):
        plan_promotion(example, [], "support-bot", "test", now=NOW, pipeline="fast")


# --------------------------------------------------------------------------- rollback


def rollback_plan(repo: Repo, ledger: Ledger, **kw: Any) -> PromotionPlan:
    kw.setdefault("in_flight", InFlight())
    return plan_rollback(repo, ledger.entries, "support-bot", "test", **kw)


def _three(example: Repo) -> tuple[Repo, Ledger]:
    ledger = Ledger()
    for release, minutes in ((A, 300), (B, 200), (C, 100)):
        ledger.add("promoted", release, "test", minutes=minutes, state="committed")
    return with_pins(example, "test", {"support-bot": C}), ledger


def test_rollback_to_the_previous_release(example: Repo) -> None:
    repo, ledger = _three(example)
    p = rollback_plan(repo, ledger)
    assert p.kind == "rollback" and p.candidate == B and p.current == C and p.allowed
    assert p.hold_after and p.branch == "llmops/rollback/test/support-bot"
    assert reason(p, c.CANDIDATE_RESOLVED) == c.LAST_GOOD_RELEASE
    assert p.check(c.TARGET_GATE_PASSED) is None  # a rollback needs no gate evidence


def test_rollback_skips_bad_and_proposed(example: Repo) -> None:
    repo, ledger = _three(example)
    ledger.add("marked-bad", B)
    ledger.add("promoted", "support-bot@sha256:" + "d" * 64, "test", minutes=50, state="proposed")
    assert rollback_plan(repo, ledger).candidate == A


def test_rollback_with_nothing_earlier(example: Repo) -> None:
    repo = with_pins(example, "test", {"support-bot": C})
    p = rollback_plan(repo, Ledger().add("promoted", C, "test", state="committed"))
    assert reason(p, c.CANDIDATE_RESOLVED) == c.NO_EARLIER_RELEASE and not p.allowed


def test_rollback_to_a_named_release(example: Repo) -> None:
    repo, ledger = _three(example)
    p = rollback_plan(repo, ledger, to="aaaaaa")
    assert p.candidate == A and reason(p, c.CANDIDATE_RESOLVED) == c.EXPLICIT_RELEASE
    with pytest.raises(UsageError, match="at least 4 hex digits"):
        rollback_plan(repo, ledger, to="aa")
    with pytest.raises(UsageError, match="no release of support-bot matches"):
        rollback_plan(repo, ledger, to="9999")


def test_rollback_into_an_approval_stage_goes_by_pull_request(example: Repo) -> None:
    repo = with_pins(example, "prod", {"support-bot": B})
    ledger = Ledger().add("promoted", A, "prod", state="committed")
    ledger.add("promoted", B, "prod", minutes=10, state="committed")
    p = plan_rollback(repo, ledger.entries, "support-bot", "prod", in_flight=InFlight())
    assert (
        p.mode == "pull-request" and reason(p, c.APPROVAL_SATISFIED) == c.PULL_REQUEST_IS_APPROVAL
    )
