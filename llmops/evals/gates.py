"""Gate decisions: may a release enter a stage, given its eval run and the baseline's.

Called by the eval CLI and the pipeline (promote, reconcile); the reports reuse its helpers.
Pure functions, no I/O: an :class:`EvalRun` (and the baseline's) in, a
:class:`GateResult` listing every reason out; ``passed`` means no blocking reason.

The rules, exactly (``w`` = case weight, ``n_c`` = samples of a case, ``k_c`` = passed):

* **Case score** ``s_c = k_c / n_c``; a case with any errored sample (or no sample) scores
  0 and adds a blocking ``CaseErrored``: a gate never passes on cases that errored.
* **Pass rate** ``p = Σ w·s_c / Σ w`` over the cases of the gate's suites.
* **repeats == 1**: the gate compares the plain rate: ``p >= minPassRate``. One sample
  per case measures the fixed case list, not a random draw, so no interval is needed.
* **repeats > 1**: the gate compares the Wilson score lower bound (95 %, z = 1.96) of
  ``p`` with ``n = Σ n_c``, every sample of the gate's suites (errored ones included)::

      L = (p + z²/2n − z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)    pass if L >= the bar

  Weights enter only through ``p``; ``n`` is the raw sample count, as if every sample
  carried equal information (with very uneven weights that is slightly optimistic).
  Fewer samples than ``repeats`` widen the interval on their own. A perfect run only
  reaches ``L₁ = n/(n+z²)`` (< 1), so the bar is ``min(minPassRate, L₁)``: a bar that
  ``n`` samples cannot show is met by a perfect run and nothing less (``minPassRate:
  1.0``, the default, means "every sample passed"), and the decision stays monotone:
  raising minPassRate, or a failed sample turning into a pass, never flips the verdict
  the wrong way.
* **Required cases** (``required: true`` or listed in ``requiredCases`` as
  ``suite/case``) must pass every sample: else ``RequiredCaseFailed``, one per case.
* **Regression** (only when ``maxRegression`` is set), on the cases present in both
  runs (paired), weighted with the candidate's weights: blocking
  ``RegressionAboveMaximum`` when ``p_baseline − p_candidate > maxRegression`` on those
  cases, and one more for each paired case that passed every baseline sample and now
  fails: with ``repeats == 1`` any failed sample is a regression; with ``repeats > 1``
  only if the one-sided Fisher exact test on the 2×2 table (baseline pass/fail vs
  candidate pass/fail; errored samples left out) gives ``P ≤ 0.05``, so one flaky
  sample out of a few never flags (3 vs 3 samples: only 0/3 flags, P = 1/20).
  A case whose samples all errored has no verdict, so it is ``CaseErrored``, never a
  regression. No baseline (or one sharing no case) → a NON-blocking ``BaselineMissing``:
  the first release into a stage has nothing to compare with; the other rules still
  hold. ``GateResult.baseline_pass_rate`` is the baseline's own rate over the gate's
  suites, whenever a baseline is given.
* A gate suite absent from the run, or with no case → blocking ``SuiteMissing``.
* ``maxCostUsd``: the summed ``usage.cost_usd`` of the gate suites' samples (whatever
  the runner recorded, cached samples included) above it → ``CostAboveCeiling``.
* An interrupted run → blocking ``Interrupted``. Rates are compared with a 1e-9 slack.
* Passing adds a non-blocking ``Passed`` reason that restates the numbers. Reasons are
  listed in :data:`REASON_ORDER`. :func:`evaluate_verify` applies the same rules with
  ``repeats`` 1 and no baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from llmops.domain.evals import CaseResult, EvalRun, GateReason, GateReasonCode, GateResult
from llmops.domain.models.pipeline import Gate, Verify

PASSED: GateReasonCode = "Passed"
PASS_RATE_BELOW_MINIMUM: GateReasonCode = "PassRateBelowMinimum"
REQUIRED_CASE_FAILED: GateReasonCode = "RequiredCaseFailed"
CASE_ERRORED: GateReasonCode = "CaseErrored"
REGRESSION_ABOVE_MAXIMUM: GateReasonCode = "RegressionAboveMaximum"
COST_ABOVE_CEILING: GateReasonCode = "CostAboveCeiling"
BASELINE_MISSING: GateReasonCode = "BaselineMissing"
SUITE_MISSING: GateReasonCode = "SuiteMissing"
INTERRUPTED: GateReasonCode = "Interrupted"

#: The order reasons are listed in: what invalidates the evidence first, ``Passed`` last.
REASON_ORDER: tuple[GateReasonCode, ...] = (
    INTERRUPTED,
    SUITE_MISSING,
    CASE_ERRORED,
    REQUIRED_CASE_FAILED,
    PASS_RATE_BELOW_MINIMUM,
    REGRESSION_ABOVE_MAXIMUM,
    COST_ABOVE_CEILING,
    BASELINE_MISSING,
    PASSED,
)

Z_95 = 1.96
FISHER_ALPHA = Fraction(1, 20)
EPSILON = 1e-9


# --------------------------------------------------------------------------- statistics


def wilson_lower_bound(rate: float, n: int, z: float = Z_95) -> float:
    """Wilson score interval's lower bound for an observed rate over ``n`` trials."""
    if n <= 0:
        return 0.0
    p = min(1.0, max(0.0, rate))
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(max(0.0, p * (1 - p) / n + z2 / (4 * n * n)))
    return min(p, max(0.0, (centre - spread) / (1 + z2 / n)))


def fisher_one_sided(base_pass: int, base_fail: int, cand_pass: int, cand_fail: int) -> Fraction:
    """P-value of "the candidate passes less often than the baseline" (Fisher exact).

    The chance, with both rows' sizes and the total failures fixed, that the candidate
    gets ``cand_fail`` failures or more (hypergeometric upper tail). Exact fractions.
    """
    rows_b, rows_c = base_pass + base_fail, cand_pass + cand_fail
    fails = base_fail + cand_fail
    total = math.comb(rows_b + rows_c, fails)
    if total == 0:
        return Fraction(1)
    tail = sum(
        math.comb(rows_c, k) * math.comb(rows_b, fails - k)
        for k in range(cand_fail, min(rows_c, fails) + 1)
    )
    return Fraction(tail, total)


# --------------------------------------------------------------------------- cases


def case_key(case: CaseResult) -> str:
    """``suite/case``, the id used by ``requiredCases`` and the reports."""
    return f"{case.suite}/{case.case_id}"


def case_score(case: CaseResult) -> float:
    """Fraction of samples that passed; 0 when any sample errored or there is none."""
    if case.errors or not case.samples:
        return 0.0
    return case.passes / len(case.samples)


def weighted_pass_rate(cases: Iterable[CaseResult]) -> float:
    """``Σ weight·score / Σ weight``; 0.0 for no case."""
    cases = tuple(cases)
    total = sum(c.weight for c in cases)
    return sum(c.weight * case_score(c) for c in cases) / total if total > 0 else 0.0


def case_failure_reason(case: CaseResult) -> str:
    """Why the first failing or errored sample did not pass, for people; "" if none."""
    for index, sample in enumerate(case.samples, start=1):
        if sample.outcome == "pass":
            continue
        where = f"sample {index}: " if len(case.samples) > 1 else ""
        if sample.outcome == "error" and sample.error:
            return f"{where}error: {sample.error}"
        for a in sample.assertions:
            if a.outcome == sample.outcome:
                return f"{where}{a.type}: {a.reason}"
        return f"{where}{sample.error or sample.outcome}"
    return ""


@dataclass(frozen=True, slots=True)
class CaseChange:
    """One case present in both runs, compared; ``p_value`` is None under the plain rule."""

    key: str
    baseline_passes: int
    baseline_samples: int
    candidate_passes: int
    candidate_samples: int
    regressed: bool
    p_value: float | None = None
    candidate_errors: int = 0

    @property
    def fixed(self) -> bool:
        """Failed in the baseline, passes every candidate sample now."""
        return self.baseline_passes < self.baseline_samples and (
            self.candidate_samples > 0 and self.candidate_passes == self.candidate_samples
        )


def _verdicts(case: CaseResult) -> tuple[int, int]:
    return case.passes, sum(1 for s in case.samples if s.outcome == "fail")


def compare_cases(
    candidate: Iterable[CaseResult], baseline: Iterable[CaseResult], repeats: int
) -> tuple[CaseChange, ...]:
    """Every paired case (same ``suite/case`` in both), in the candidate's order."""
    base = {case_key(c): c for c in baseline}
    changes = []
    for case in candidate:
        before = base.get(case_key(case))
        if before is None:
            continue
        b_pass, b_fail = _verdicts(before)
        c_pass, c_fail = _verdicts(case)
        was_green = before.outcome == "pass"
        p_value: float | None = None
        if repeats > 1:
            fisher = fisher_one_sided(b_pass, b_fail, c_pass, c_fail)
            p_value = float(fisher)
            regressed = was_green and c_fail > 0 and fisher <= FISHER_ALPHA
        else:
            regressed = was_green and c_fail > 0
        changes.append(
            CaseChange(
                key=case_key(case),
                baseline_passes=before.passes,
                baseline_samples=len(before.samples),
                candidate_passes=case.passes,
                candidate_samples=len(case.samples),
                regressed=regressed,
                p_value=p_value,
                candidate_errors=case.errors,
            )
        )
    return tuple(changes)


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class _Policy:
    what: str
    suites: tuple[str, ...]
    min_pass_rate: float
    repeats: int = 1
    max_regression: float | None = None
    required_cases: tuple[str, ...] = ()
    max_cost_usd: float | None = None


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _pcts(value: float, bar: float) -> tuple[str, str]:
    """Both as percentages, with enough digits that a miss never reads as equal."""
    digits = 1
    while digits < 4 and f"{value * 100:.{digits}f}" == f"{bar * 100:.{digits}f}":
        digits += 1
    return f"{value * 100:.{digits}f}%", f"{bar * 100:.{digits}f}%"


def _reason(code: GateReasonCode, message: str, blocking: bool = True) -> GateReason:
    return GateReason(code=code, message=message, blocking=blocking)


def _missing_suites(policy: _Policy, run: EvalRun) -> list[GateReason]:
    present = {s.name: s for s in run.suites}
    reasons = []
    for name in policy.suites:
        suite = present.get(name)
        if suite is None:
            msg = (
                f"suite {name} is named by the {policy.what} but is not in the eval run; run "
                f"it (llmops eval --suite {name}) or remove it from the {policy.what}"
            )
        elif not suite.cases:
            msg = f"suite {name} ran no case, so it proves nothing; check its dataset and filters"
        else:
            continue
        reasons.append(_reason(SUITE_MISSING, msg))
    return reasons


def _errored(cases: Sequence[CaseResult]) -> list[GateReason]:
    reasons = []
    for c in cases:
        if c.errors:
            msg = (
                f"case {case_key(c)} errored in {c.errors} of {len(c.samples)} samples "
                f"({case_failure_reason(c)}); an errored case has no verdict and never passes "
                "a gate: fix the provider or grader error and run the eval again"
            )
            reasons.append(_reason(CASE_ERRORED, msg))
    return reasons


def _required(policy: _Policy, run: EvalRun, cases: Sequence[CaseResult]) -> list[GateReason]:
    by_key = {case_key(c): c for c in run.cases}
    keys = [case_key(c) for c in cases if c.required]
    keys += [k for k in policy.required_cases if k not in keys]
    ran = {s.name for s in run.suites}
    reasons = []
    for key in keys:
        case = by_key.get(key)
        if case is None:
            why = (
                "its suite did not run"
                if key.partition("/")[0] not in ran
                else ("its suite has no such case; check the id in requiredCases")
            )
            msg = f"required case {key} has no result: {why}"
        elif case.outcome != "pass":
            msg = (
                f"required case {key} passed {case.passes} of {len(case.samples)} samples; "
                f"it must pass every sample ({case_failure_reason(case)})"
            )
        else:
            continue
        reasons.append(_reason(REQUIRED_CASE_FAILED, msg))
    return reasons


def _bar(policy: _Policy, samples: int) -> float:
    """What the decided value must reach: minPassRate, capped at a perfect run's bound."""
    if policy.repeats > 1 and samples > 0:
        return min(policy.min_pass_rate, wilson_lower_bound(1.0, samples))
    return policy.min_pass_rate


def _rate(policy: _Policy, cases: Sequence[CaseResult]) -> tuple[float, float, list[GateReason]]:
    rate = weighted_pass_rate(cases)
    samples = sum(len(c.samples) for c in cases)
    statistical = policy.repeats > 1
    bound = wilson_lower_bound(rate, samples) if statistical else rate
    bar = _bar(policy, samples)
    if not cases or bound + EPSILON >= bar:
        return rate, bound, []
    failing = sum(1 for c in cases if c.outcome != "pass")
    if not statistical:
        shown, wanted = _pcts(rate, policy.min_pass_rate)
        msg = (
            f"weighted pass rate {shown} ({failing} of {len(cases)} cases not passing) is "
            f"below minPassRate {wanted}; fix the failing cases or lower minPassRate"
        )
    elif bar < policy.min_pass_rate:
        msg = (
            f"weighted pass rate {_pct(rate)} over {samples} samples: that many samples show "
            f"at most {_pct(bar)} (95% Wilson lower bound of a perfect run), below minPassRate "
            f"{_pct(policy.min_pass_rate)}, so every sample must pass; fix the {failing} "
            "failing cases, or raise repeats to let the rate show with a few failures"
        )
    else:
        shown, wanted = _pcts(bound, bar)
        msg = (
            f"weighted pass rate {_pct(rate)} over {samples} samples has a 95% Wilson lower "
            f"bound of {shown}, below minPassRate {wanted}: the evidence does not clear the "
            f"bar; fix the {failing} failing cases, raise repeats, or lower minPassRate"
        )
    return rate, bound, [_reason(PASS_RATE_BELOW_MINIMUM, msg)]


_NO_BASELINE = (
    "no baseline run to compare with (nothing has been released into this stage yet), "
    "so maxRegression was not checked"
)


def _regressions(
    policy: _Policy, cases: Sequence[CaseResult], baseline: EvalRun | None
) -> tuple[tuple[str, ...], list[GateReason]]:
    if policy.max_regression is None:
        return (), []
    if baseline is None:
        return (), [_reason(BASELINE_MISSING, _NO_BASELINE, blocking=False)]
    base_cases = [c for c in baseline.cases if c.suite in policy.suites]
    changes = compare_cases(cases, base_cases, policy.repeats)
    if not changes:
        msg = (
            f"baseline {baseline.release} shares no case with the {policy.what}'s suites, "
            "so maxRegression was not checked; evaluate the baseline on the current suites"
        )
        return (), [_reason(BASELINE_MISSING, msg, blocking=False)]
    reasons = []
    weights = {case_key(c): c.weight for c in cases}
    paired = {c.key for c in changes}
    cand_rate = weighted_pass_rate(c for c in cases if case_key(c) in paired)
    base_rate = weighted_pass_rate(
        replace(c, weight=weights[case_key(c)]) for c in base_cases if case_key(c) in paired
    )
    drop = base_rate - cand_rate
    if drop > policy.max_regression + EPSILON:
        msg = (
            f"on the {len(changes)} cases both runs share, the pass rate fell from "
            f"{_pct(base_rate)} ({baseline.release}) to {_pct(cand_rate)}: a drop of "
            f"{drop * 100:.1f} points, more than the {policy.max_regression * 100:.1f} "
            "maxRegression allows; fix the regressed cases or raise maxRegression"
        )
        reasons.append(_reason(REGRESSION_ABOVE_MAXIMUM, msg))
    for c in changes:
        if c.regressed:
            test = f", one-sided Fisher P = {c.p_value:.3g} ≤ 0.05" if c.p_value is not None else ""
            msg = (
                f"case {c.key} regressed: it passed {c.baseline_passes}/{c.baseline_samples} "
                f"samples in the baseline, {c.candidate_passes}/{c.candidate_samples} now"
                f"{test}; fix it before promoting"
            )
            reasons.append(_reason(REGRESSION_ABOVE_MAXIMUM, msg))
    return tuple(c.key for c in changes if c.regressed), reasons


_INTERRUPTED = "the eval run was interrupted, so its results are incomplete; run it to the end"


def _evaluate(stage: str, policy: _Policy, run: EvalRun, baseline: EvalRun | None) -> GateResult:
    cases = [c for c in run.cases if c.suite in policy.suites]
    reasons = [_reason(INTERRUPTED, _INTERRUPTED)] if run.interrupted else []
    reasons += _missing_suites(policy, run)
    reasons += _errored(cases)
    reasons += _required(policy, run, cases)
    rate, bound, rate_reasons = _rate(policy, cases)
    reasons += rate_reasons
    regressed, regression_reasons = _regressions(policy, cases, baseline)
    reasons += regression_reasons
    cost = sum(s.usage.cost_usd for c in cases for s in c.samples)
    if policy.max_cost_usd is not None and cost > policy.max_cost_usd + EPSILON:
        msg = (
            f"the eval cost ${cost:.4f}, above maxCostUsd ${policy.max_cost_usd:.4f}; make "
            "prompts or replies cheaper (fewer tokens, a cheaper model) or raise maxCostUsd"
        )
        reasons.append(_reason(COST_ABOVE_CEILING, msg))
    passed = not any(r.blocking for r in reasons)
    if passed:
        reasons.append(_reason(PASSED, _passed_message(stage, policy, cases, rate, bound), False))
    reasons.sort(key=lambda r: REASON_ORDER.index(r.code))
    base_cases = [c for c in baseline.cases if c.suite in policy.suites] if baseline else []
    return GateResult(
        stage=stage,
        passed=passed,
        reasons=tuple(reasons),
        pass_rate=rate,
        pass_rate_lower_bound=bound,
        min_pass_rate=policy.min_pass_rate,
        baseline_pass_rate=weighted_pass_rate(base_cases) if base_cases else None,
        regressions=regressed,
        cost_usd=cost,
    )


def _passed_message(
    stage: str, policy: _Policy, cases: Sequence[CaseResult], rate: float, bound: float
) -> str:
    if not policy.suites:
        return f"the {policy.what} into {stage} names no suite, so there is nothing to check"
    samples = sum(len(c.samples) for c in cases)
    lower = f" (95% lower bound {_pct(bound)})" if policy.repeats > 1 else ""
    bar = _bar(policy, samples)
    capped = (
        f", every sample passing ({samples} samples show at most {_pct(bar)})"
        if bar < policy.min_pass_rate
        else ""
    )
    return (
        f"{policy.what} into {stage} passed: weighted pass rate {_pct(rate)}{lower} meets "
        f"minPassRate {_pct(policy.min_pass_rate)}{capped} over {len(cases)} cases, "
        f"{samples} samples"
    )


def evaluate_gate(
    stage: str, gate: Gate, candidate: EvalRun, baseline: EvalRun | None
) -> GateResult:
    """Decide whether ``candidate`` may enter ``stage``; ``baseline`` is the release there now."""
    policy = _Policy(
        what="gate",
        suites=tuple(gate.suites),
        min_pass_rate=gate.min_pass_rate,
        repeats=gate.repeats,
        max_regression=gate.max_regression,
        required_cases=tuple(gate.required_cases),
        max_cost_usd=gate.max_cost_usd,
    )
    return _evaluate(stage, policy, candidate, baseline)


def evaluate_verify(stage: str, verify: Verify, run: EvalRun) -> GateResult:
    """Judge a post-deploy smoke eval: the plain pass rate, required and errored cases."""
    policy = _Policy(what="verify", suites=tuple(verify.suites), min_pass_rate=verify.min_pass_rate)
    return _evaluate(stage, policy, run, None)
