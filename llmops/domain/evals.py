"""Results of an eval run and of a gate decision. Frozen values; failures are data.

Produced by ``llmops.evals`` (runner, gates); rendered by ``llmops.evals.reports`` and
the CLI; archived as evidence by releases and promotion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from llmops.domain.chat import Usage

#: pass / fail are verdicts on a reply; error means no verdict could be reached (the
#: provider or a grader failed). An error is never inverted by ``not-`` and never a pass.
Outcome = Literal["pass", "fail", "error"]


@dataclass(frozen=True, slots=True)
class GradingResult:
    """What one assertion handler returns: ``(pass, score, reason)``, or an error."""

    passed: bool
    score: float
    reason: str
    error: bool = False

    @property
    def outcome(self) -> Outcome:
        if self.error:
            return "error"
        return "pass" if self.passed else "fail"


@dataclass(frozen=True, slots=True)
class AssertionResult:
    """One assertion applied to one reply."""

    type: str
    outcome: Outcome
    score: float
    reason: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One model call for one case (a case has ``repeats`` samples) and its grading."""

    outcome: Outcome
    output: str
    assertions: tuple[AssertionResult, ...] = ()
    latency_ms: float = 0.0
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    retries: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CaseResult:
    """Every sample of one case."""

    suite: str
    case_id: str
    samples: tuple[Sample, ...]
    required: bool = False
    weight: float = 1.0
    tags: tuple[str, ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def passes(self) -> int:
        return sum(1 for s in self.samples if s.outcome == "pass")

    @property
    def errors(self) -> int:
        return sum(1 for s in self.samples if s.outcome == "error")

    @property
    def outcome(self) -> Outcome:
        """error if any sample errored, else pass only if every sample passed."""
        if self.errors:
            return "error"
        return "pass" if self.samples and self.passes == len(self.samples) else "fail"


@dataclass(frozen=True, slots=True)
class SuiteResult:
    """The cases of one suite."""

    name: str
    cases: tuple[CaseResult, ...]


@dataclass(frozen=True, slots=True)
class EvalRun:
    """One eval of one app (a release or a work tree) on one or more suites."""

    app: str
    release: str
    suites: tuple[SuiteResult, ...]
    model: str = ""
    environment: str | None = None
    started_at: str = ""
    duration_s: float = 0.0
    repeats: int = 1
    model_calls: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    retries: int = 0
    interrupted: bool = False

    @property
    def cases(self) -> tuple[CaseResult, ...]:
        return tuple(c for s in self.suites for c in s.cases)

    @property
    def cost_usd(self) -> float:
        return sum(s.usage.cost_usd for c in self.cases for s in c.samples)


GateReasonCode = Literal[
    "PassRateBelowMinimum",
    "RequiredCaseFailed",
    "CaseErrored",
    "RegressionAboveMaximum",
    "CostAboveCeiling",
    "BaselineMissing",
    "SuiteMissing",
    "Interrupted",
    "Passed",
]


@dataclass(frozen=True, slots=True)
class GateReason:
    """One reason a gate passed or failed; ``code`` is a closed constant, ``message`` is for people."""

    code: GateReasonCode
    message: str
    blocking: bool = True


@dataclass(frozen=True, slots=True)
class GateResult:
    """The decision on whether a release may enter a stage, with every reason listed."""

    stage: str
    passed: bool
    reasons: tuple[GateReason, ...]
    pass_rate: float
    pass_rate_lower_bound: float
    min_pass_rate: float
    baseline_pass_rate: float | None = None
    regressions: tuple[str, ...] = ()
    cost_usd: float = 0.0
