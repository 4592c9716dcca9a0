"""Gate decisions: one test per reason code, the statistics, and monotonicity properties."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.domain.chat import Usage
from llmops.domain.evals import (
    AssertionResult,
    CaseResult,
    EvalRun,
    GateReasonCode,
    GateResult,
    Outcome,
    Sample,
    SuiteResult,
)
from llmops.domain.models.pipeline import Gate, Verify
from llmops.evals import gates
from llmops.evals.gates import (
    compare_cases,
    evaluate_gate,
    evaluate_verify,
    fisher_one_sided,
    weighted_pass_rate,
    wilson_lower_bound,
)

OUTCOMES: dict[str, Outcome] = {"p": "pass", "f": "fail", "e": "error"}


def sample(code: str, cost: float = 0.0) -> Sample:
    outcome = OUTCOMES[code]
    asserts = (
        ()
        if outcome == "pass"
        else (
            AssertionResult(
                type="contains", outcome=outcome, score=0.0, reason="no 'refund' in reply"
            ),
        )
    )
    return Sample(
        outcome=outcome,
        output="reply",
        assertions=asserts,
        usage=Usage(prompt_tokens=10, completion_tokens=5, cost_usd=cost),
        error="provider timed out" if outcome == "error" else None,
    )


def case(
    ref: str, samples: str = "p", *, weight: float = 1.0, required: bool = False, cost: float = 0.0
) -> CaseResult:
    suite, _, case_id = ref.partition("/")
    return CaseResult(
        suite=suite,
        case_id=case_id,
        samples=tuple(sample(c, cost) for c in samples),
        weight=weight,
        required=required,
    )


def run(*cases: CaseResult, suites: tuple[str, ...] = (), **kw: Any) -> EvalRun:
    names = list(dict.fromkeys([*suites, *(c.suite for c in cases)]))
    grouped = tuple(SuiteResult(n, tuple(c for c in cases if c.suite == n)) for n in names)
    return EvalRun(app="bot", release="bot@sha256:" + "a" * 64, suites=grouped, **kw)


def many(suite: str, n: int, samples: str = "p") -> list[CaseResult]:
    return [case(f"{suite}/c{i}", samples) for i in range(n)]


def gate(**spec: Any) -> Gate:
    spec.setdefault("suites", ["smoke"])
    return Gate.model_validate(spec)


def codes(result: GateResult, blocking: bool | None = None) -> list[str]:
    return [r.code for r in result.reasons if blocking is None or r.blocking == blocking]


def check(result: GateResult) -> None:
    """Invariants of every result: passed iff no blocking reason; each reason is actionable."""
    assert result.passed == (not any(r.blocking for r in result.reasons))
    assert result.reasons, "a result always says why"
    assert all(len(r.message) > 20 for r in result.reasons)
    order = [gates.REASON_ORDER.index(r.code) for r in result.reasons]
    assert order == sorted(order)


# --------------------------------------------------------------------------- one per reason


def test_passes_with_a_passed_reason() -> None:
    result = evaluate_gate("dev", gate(), run(*many("smoke", 5)), None)
    check(result)
    assert result.passed and codes(result) == ["Passed"]
    assert result.pass_rate == 1.0 == result.pass_rate_lower_bound
    assert not result.reasons[0].blocking


def test_min_pass_rate_plain_rate_with_one_sample() -> None:
    cases = [*many("smoke", 9), case("smoke/bad", "f")]
    ok = evaluate_gate("test", gate(minPassRate=0.9), run(*cases), None)
    assert ok.passed, ok.reasons  # 9/10 meets 0.9 exactly: the plain rate is compared
    low = evaluate_gate("test", gate(minPassRate=0.95), run(*cases), None)
    check(low)
    assert codes(low) == ["PassRateBelowMinimum"]
    assert "90.0%" in low.reasons[0].message and "95.0%" in low.reasons[0].message


def test_weights_shape_the_rate() -> None:
    cases = [case("smoke/heavy", "f", weight=3.0), case("smoke/light", "p")]
    assert weighted_pass_rate(cases) == 0.25
    partial = case("smoke/flaky", "ppf")
    assert weighted_pass_rate([partial]) == pytest.approx(2 / 3)


def test_wilson_bound_decides_with_repeats_where_the_plain_rate_would_pass() -> None:
    # 20 cases x 3 samples, 57 of 60 samples pass: plain rate 95% clears 90%...
    cases = [*many("smoke", 17, "ppp"), *(case(f"smoke/f{i}", "ppf") for i in range(3))]
    plain = evaluate_gate("test", gate(minPassRate=0.9, repeats=1), run(*cases), None)
    assert plain.passed and plain.pass_rate == pytest.approx(0.95)
    # ...but 60 samples are not enough evidence: the Wilson lower bound is ~86.3%.
    stat = evaluate_gate("test", gate(minPassRate=0.9, repeats=3), run(*cases), None)
    check(stat)
    assert not stat.passed and codes(stat) == ["PassRateBelowMinimum"]
    assert stat.pass_rate == pytest.approx(0.95)
    assert stat.pass_rate_lower_bound == pytest.approx(0.8625, abs=5e-4)
    assert "Wilson" in stat.reasons[0].message and "raise repeats" in stat.reasons[0].message
    # The same rate over 100 cases (300 samples) is strong enough.
    more = [*many("smoke", 85, "ppp"), *(case(f"smoke/f{i}", "ppf") for i in range(15))]
    assert evaluate_gate("test", gate(minPassRate=0.9, repeats=3), run(*more), None).passed


def test_a_bar_too_high_for_the_sample_count_needs_a_perfect_run() -> None:
    # 30 samples can show at most 30/(30+z^2) ~ 88.6%: a perfect run meets minPassRate 0.99...
    perfect = evaluate_gate(
        "test", gate(minPassRate=0.99, repeats=3), run(*many("smoke", 10, "ppp")), None
    )
    assert perfect.passed and perfect.pass_rate_lower_bound == pytest.approx(0.886, abs=1e-3)
    assert "every sample passing" in perfect.reasons[0].message
    # ...and one failed sample out of 30 does not.
    cases = [*many("smoke", 9, "ppp"), case("smoke/x", "ppf")]
    result = evaluate_gate("test", gate(minPassRate=0.99, repeats=3), run(*cases), None)
    assert codes(result) == ["PassRateBelowMinimum"]
    assert "every sample must pass" in result.reasons[0].message


def test_min_pass_rate_one_means_every_sample_with_repeats() -> None:
    result = evaluate_gate("prod", gate(repeats=3), run(*many("smoke", 4, "ppp")), None)
    assert result.passed and result.pass_rate_lower_bound < 1.0
    one_miss = [*many("smoke", 3, "ppp"), case("smoke/x", "ppf")]
    assert codes(evaluate_gate("prod", gate(repeats=3), run(*one_miss), None)) == [
        "PassRateBelowMinimum"
    ]


def test_required_cases_must_pass_every_sample_and_each_is_named() -> None:
    cases = [
        *many("smoke", 40, "ppp"),
        case("smoke/canary", "ppf", required=True),
        case("smoke/listed", "pfp"),
        case("smoke/fine", "ppp", required=True),
    ]
    spec = gate(minPassRate=0.5, repeats=3, requiredCases=["smoke/listed", "smoke/ghost"])
    result = evaluate_gate("test", spec, run(*cases), None)
    check(result)
    assert codes(result) == ["RequiredCaseFailed"] * 3
    messages = " ".join(r.message for r in result.reasons)
    assert "smoke/canary passed 2 of 3" in messages and "smoke/listed passed 2 of 3" in messages
    assert "smoke/ghost has no result" in messages and "no 'refund'" in messages
    assert "smoke/fine" not in messages


def test_an_errored_case_blocks_even_when_everything_else_passes() -> None:
    cases = [*many("smoke", 999), case("smoke/boom", "e")]
    result = evaluate_gate("dev", gate(minPassRate=0.0), run(*cases), None)
    check(result)
    assert not result.passed and codes(result) == ["CaseErrored"]
    assert "smoke/boom" in result.reasons[0].message
    assert "provider timed out" in result.reasons[0].message
    # An errored sample makes the whole case count as not passed.
    assert weighted_pass_rate([case("smoke/x", "ppe")]) == 0.0


def test_regression_by_pass_rate() -> None:
    # Every case went from 3/3 to 2/3: no single case is significant (Fisher P = 0.5),
    # but the pass rate fell by 33 points.
    before = run(*many("smoke", 10, "ppp"))
    after = run(*many("smoke", 10, "ppf"))
    spec = gate(minPassRate=0.0, repeats=3, maxRegression=0.05)
    result = evaluate_gate("test", spec, after, before)
    check(result)
    assert codes(result) == ["RegressionAboveMaximum"] and result.regressions == ()
    assert result.baseline_pass_rate == 1.0
    assert "100.0%" in result.reasons[0].message and "66.7%" in result.reasons[0].message
    loose = evaluate_gate(
        "test", gate(minPassRate=0.0, repeats=3, maxRegression=0.5), after, before
    )
    assert loose.passed


def test_regression_by_paired_case() -> None:
    before = run(*many("smoke", 99, "ppp"), case("smoke/key", "ppp"))
    after = run(*many("smoke", 99, "ppp"), case("smoke/key", "fff"))
    spec = gate(minPassRate=0.9, repeats=3, maxRegression=0.05)
    result = evaluate_gate("test", spec, after, before)
    check(result)
    assert result.pass_rate == pytest.approx(0.99)  # a 1-point drop: within maxRegression
    assert codes(result) == ["RegressionAboveMaximum"]
    assert result.regressions == ("smoke/key",)
    assert (
        "smoke/key regressed" in result.reasons[0].message and "0.05" in result.reasons[0].message
    )


def test_a_single_flaky_sample_is_not_a_regression() -> None:
    before = run(*many("smoke", 99, "ppp"), case("smoke/key", "ppp"))
    after = run(*many("smoke", 99, "ppp"), case("smoke/key", "pfp"))
    spec = gate(minPassRate=0.9, repeats=3, maxRegression=0.05)
    result = evaluate_gate("test", spec, after, before)
    assert result.passed and result.regressions == ()
    (change,) = [c for c in compare_cases(after.cases, before.cases, 3) if c.key == "smoke/key"]
    assert change.p_value == 0.5 and not change.regressed


def test_without_repeats_any_pass_to_fail_is_a_regression() -> None:
    before = run(*many("smoke", 99), case("smoke/key", "p"))
    after = run(*many("smoke", 99), case("smoke/key", "f"))
    result = evaluate_gate("test", gate(minPassRate=0.9, maxRegression=0.05), after, before)
    assert result.regressions == ("smoke/key",) and not result.passed


def test_a_case_failing_in_the_baseline_too_is_not_a_regression() -> None:
    before = run(*many("smoke", 9), case("smoke/old", "f"))
    after = run(*many("smoke", 9), case("smoke/old", "f"))
    result = evaluate_gate("test", gate(minPassRate=0.9, maxRegression=0.0), after, before)
    assert result.passed and result.regressions == ()


def test_missing_baseline_is_not_blocking() -> None:
    result = evaluate_gate("test", gate(maxRegression=0.02), run(*many("smoke", 3)), None)
    check(result)
    assert result.passed
    assert [(r.code, r.blocking) for r in result.reasons] == [
        ("BaselineMissing", False),
        ("Passed", False),
    ]
    assert result.baseline_pass_rate is None


def test_a_baseline_sharing_no_case_counts_as_missing() -> None:
    before = run(*many("other", 3))
    result = evaluate_gate("test", gate(maxRegression=0.02), run(*many("smoke", 3)), before)
    assert result.passed and codes(result, blocking=False) == ["BaselineMissing", "Passed"]


def test_missing_or_empty_suite_blocks() -> None:
    candidate = run(*many("smoke", 3), suites=("smoke", "empty"))
    result = evaluate_gate("test", gate(suites=["smoke", "security", "empty"]), candidate, None)
    check(result)
    assert codes(result) == ["SuiteMissing", "SuiteMissing"]
    assert "security" in result.reasons[0].message and "empty" in result.reasons[1].message
    nothing = evaluate_gate("test", gate(suites=["security"]), run(), None)
    assert codes(nothing) == ["SuiteMissing"] and nothing.pass_rate == 0.0


def test_cost_ceiling() -> None:
    cases = [case(f"smoke/c{i}", "p", cost=0.01) for i in range(5)]
    result = evaluate_gate("test", gate(maxCostUsd=0.04), run(*cases), None)
    check(result)
    assert codes(result) == ["CostAboveCeiling"]
    assert result.cost_usd == pytest.approx(0.05)
    assert evaluate_gate("test", gate(maxCostUsd=0.05), run(*cases), None).passed


def test_interrupted_run_blocks() -> None:
    result = evaluate_gate("test", gate(), run(*many("smoke", 3), interrupted=True), None)
    check(result)
    assert codes(result) == ["Interrupted"]


def test_every_reason_is_listed_not_only_the_first() -> None:
    before = run(*many("smoke", 5), case("smoke/key", "p"))
    after = run(
        *many("smoke", 5, "f"),
        case("smoke/key", "f", required=True, cost=1.0),
        case("smoke/boom", "e"),
        interrupted=True,
    )
    spec = gate(suites=["smoke", "security"], minPassRate=0.9, maxRegression=0.0, maxCostUsd=0.5)
    result = evaluate_gate("test", spec, after, before)
    check(result)
    assert codes(result) == [
        "Interrupted",
        "SuiteMissing",
        "CaseErrored",
        "RequiredCaseFailed",
        "PassRateBelowMinimum",
        "RegressionAboveMaximum",  # the rate
        "RegressionAboveMaximum",  # smoke/c0..c4 and smoke/key, one each
        "RegressionAboveMaximum",
        "RegressionAboveMaximum",
        "RegressionAboveMaximum",
        "RegressionAboveMaximum",
        "RegressionAboveMaximum",
        "CostAboveCeiling",
    ]
    assert len(result.regressions) == 6


def test_suites_outside_the_gate_are_ignored() -> None:
    candidate = run(*many("smoke", 3), case("full/broken", "e"))
    assert evaluate_gate("dev", gate(), candidate, None).passed


def test_a_gate_without_suites_passes_and_says_so() -> None:
    result = evaluate_gate("dev", gate(suites=[]), run(case("smoke/x", "f")), None)
    assert result.passed and "names no suite" in result.reasons[0].message


def test_verify_uses_the_plain_rate_and_required_cases() -> None:
    verify = Verify.model_validate({"suites": ["smoke"], "minPassRate": 0.5})
    ok = evaluate_verify("prod", verify, run(*many("smoke", 3, "ppp"), case("smoke/x", "fff")))
    assert ok.passed and ok.pass_rate == 0.75 and ok.pass_rate_lower_bound == 0.75
    assert "verify into prod passed" in ok.reasons[0].message
    bad = evaluate_verify(
        "prod", verify, run(*many("smoke", 3), case("smoke/x", "f", required=True))
    )
    assert codes(bad) == ["RequiredCaseFailed"]


# --------------------------------------------------------------------------- closed enum

SCENARIOS: dict[str, Callable[[], GateResult]] = {
    "Passed": lambda: evaluate_gate("t", gate(), run(*many("smoke", 2)), None),
    "PassRateBelowMinimum": lambda: evaluate_gate(
        "t", gate(minPassRate=0.9), run(case("smoke/a", "f")), None
    ),
    "RequiredCaseFailed": lambda: evaluate_gate(
        "t", gate(minPassRate=0.0), run(case("smoke/a", "f", required=True)), None
    ),
    "CaseErrored": lambda: evaluate_gate(
        "t", gate(minPassRate=0.0), run(case("smoke/a", "e")), None
    ),
    "RegressionAboveMaximum": lambda: evaluate_gate(
        "t",
        gate(minPassRate=0.0, maxRegression=0.1),
        run(case("smoke/a", "f")),
        run(case("smoke/a")),
    ),
    "CostAboveCeiling": lambda: evaluate_gate(
        "t", gate(maxCostUsd=0.0), run(case("smoke/a", cost=0.1)), None
    ),
    "BaselineMissing": lambda: evaluate_gate(
        "t", gate(maxRegression=0.1), run(case("smoke/a")), None
    ),
    "SuiteMissing": lambda: evaluate_gate("t", gate(), run(), None),
    "Interrupted": lambda: evaluate_gate("t", gate(), run(case("smoke/a"), interrupted=True), None),
}


def test_reason_codes_are_a_closed_ordered_set() -> None:
    assert set(gates.REASON_ORDER) == set(get_args(GateReasonCode))
    assert len(gates.REASON_ORDER) == len(set(gates.REASON_ORDER))
    assert set(SCENARIOS) == set(get_args(GateReasonCode)), "every code needs a scenario"
    constants = {v for k, v in vars(gates).items() if k.isupper() and isinstance(v, str)}
    assert set(get_args(GateReasonCode)) <= constants


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_each_code_has_a_scenario_that_produces_it(code: str) -> None:
    result = SCENARIOS[code]()
    check(result)
    assert code in codes(result)


# --------------------------------------------------------------------------- statistics


def test_wilson_known_values() -> None:
    assert wilson_lower_bound(0.0, 10) == 0.0
    assert wilson_lower_bound(1.0, 30) == pytest.approx(30 / (30 + 1.96**2))
    assert wilson_lower_bound(0.5, 100) == pytest.approx(0.4038, abs=1e-4)
    assert wilson_lower_bound(0.9, 0) == 0.0


def test_fisher_known_values() -> None:
    assert fisher_one_sided(3, 0, 0, 3) == Fraction(1, 20)
    assert fisher_one_sided(3, 0, 1, 2) == Fraction(1, 5)
    assert fisher_one_sided(3, 1, 1, 3) == Fraction(17, 70)  # the lady tasting tea
    assert fisher_one_sided(5, 0, 1, 4) == Fraction(5, 210)
    assert fisher_one_sided(3, 0, 3, 0) == 1


@given(st.floats(0, 1), st.integers(1, 5000))
def test_wilson_bound_never_exceeds_the_plain_rate(p: float, n: int) -> None:
    bound = wilson_lower_bound(p, n)
    assert 0.0 <= bound <= p
    assert wilson_lower_bound(p, n + 1) >= bound - 1e-12  # more samples, never less sure


@given(st.integers(0, 8), st.integers(0, 8), st.integers(0, 8), st.integers(0, 7))
def test_fisher_is_a_probability_and_falls_with_more_candidate_failures(
    bp: int, bf: int, cp: int, cf: int
) -> None:
    p = fisher_one_sided(bp, bf, cp, cf)
    assert 0 <= p <= 1
    assert fisher_one_sided(bp, bf, cp, cf + 1) <= fisher_one_sided(bp, bf, cp + 1, cf)


# --------------------------------------------------------------------------- properties

case_specs = st.lists(
    st.tuples(
        st.sampled_from(["smoke", "security"]),
        st.text("ppppfe", min_size=1, max_size=4),
        st.sampled_from([0.5, 1.0, 2.0, 5.0]),
        st.booleans(),
    ),
    max_size=12,
)
gate_specs = st.fixed_dictionaries(
    {
        "suites": st.sampled_from([["smoke"], ["smoke", "security"]]),
        "minPassRate": st.sampled_from([0.0, 0.5, 0.8, 0.9, 0.95, 1.0]),
        "repeats": st.integers(1, 4),
        "maxRegression": st.sampled_from([None, 0.0, 0.05]),
    }
)


def build(specs: list[tuple[str, str, float, bool]]) -> list[CaseResult]:
    return [
        case(f"{suite}/c{i}", samples, weight=w, required=req)
        for i, (suite, samples, w, req) in enumerate(specs)
    ]


@settings(max_examples=200, deadline=None)
@given(case_specs, gate_specs, st.text("pp", min_size=1, max_size=4), st.sampled_from([0.5, 1, 3]))
def test_adding_a_passing_case_never_turns_a_pass_into_a_fail(
    specs: list[tuple[str, str, float, bool]], spec: dict[str, Any], samples: str, weight: float
) -> None:
    cases = build(specs)
    before = evaluate_gate("s", gate(**spec), run(*cases), None)
    after = evaluate_gate(
        "s", gate(**spec), run(*cases, case("smoke/new", samples, weight=weight)), None
    )
    check(before)
    check(after)
    if before.passed:
        assert after.passed, after.reasons


@settings(max_examples=200, deadline=None)
@given(case_specs, case_specs, gate_specs, st.data())
def test_turning_a_failed_sample_into_a_pass_never_turns_a_pass_into_a_fail(
    specs: list[tuple[str, str, float, bool]],
    base_specs: list[tuple[str, str, float, bool]],
    spec: dict[str, Any],
    data: st.DataObject,
) -> None:
    failing = [(i, j) for i, s in enumerate(specs) for j, c in enumerate(s[1]) if c == "f"]
    if not failing:
        return
    i, j = data.draw(st.sampled_from(failing))
    suite, samples, w, req = specs[i]
    better = [*specs]
    better[i] = (suite, samples[:j] + "p" + samples[j + 1 :], w, req)
    baseline = run(*build(base_specs))
    before = evaluate_gate("s", gate(**spec), run(*build(specs)), baseline)
    after = evaluate_gate("s", gate(**spec), run(*build(better)), baseline)
    if before.passed:
        assert after.passed, after.reasons
    assert set(after.regressions) <= set(before.regressions)


@settings(max_examples=200, deadline=None)
@given(case_specs, gate_specs, st.sampled_from([0.0, 0.5, 0.8, 0.9, 0.95, 1.0]))
def test_raising_min_pass_rate_never_turns_a_fail_into_a_pass(
    specs: list[tuple[str, str, float, bool]], spec: dict[str, Any], higher: float
) -> None:
    candidate = run(*build(specs))
    lower = evaluate_gate("s", gate(**spec), candidate, None)
    raised = {**spec, "minPassRate": max(higher, spec["minPassRate"])}
    if not lower.passed:
        assert not evaluate_gate("s", gate(**raised), candidate, None).passed


@settings(max_examples=200, deadline=None)
@given(case_specs, gate_specs)
def test_a_candidate_identical_to_its_baseline_never_regresses(
    specs: list[tuple[str, str, float, bool]], spec: dict[str, Any]
) -> None:
    same = run(*build(specs))
    result = evaluate_gate("s", gate(**spec), same, same)
    assert "RegressionAboveMaximum" not in codes(result)
    assert result.regressions == ()
    gated = [c for c in same.cases if c.suite in spec["suites"]]
    if gated:
        assert result.baseline_pass_rate is not None
        assert math.isclose(result.baseline_pass_rate, weighted_pass_rate(gated))
