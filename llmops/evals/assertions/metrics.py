"""Checks on a sample's measurements rather than its text: latency and cost.
Registered in ``registry``; pure functions of the context.

For a reply served from the eval cache, latency and cost are those measured when the
reply was first produced (so the checks keep meaning on a cached rerun).
"""

from __future__ import annotations

from llmops.domain.evals import GradingResult
from llmops.domain.models.evalsuite import Assertion
from llmops.evals.assertions.context import GradeContext
from llmops.evals.assertions.registry import handler, verdict


@handler("latency")
def latency(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    limit = float(assertion.threshold or 0.0)
    took = ctx.latency_ms
    if took <= limit:
        return verdict(True, f"latency {took:.0f} ms ≤ {limit:g} ms")
    return verdict(False, f"expected latency ≤ {limit:g} ms; took {took:.0f} ms")


@handler("cost")
def cost(output: str, assertion: Assertion, ctx: GradeContext) -> GradingResult:
    limit = float(assertion.threshold or 0.0)
    spent = ctx.cost_usd
    if spent <= limit:
        return verdict(True, f"cost ${spent:.6f} ≤ ${limit:g}")
    return verdict(False, f"expected cost ≤ ${limit:g}; the reply cost ${spent:.6f}")
