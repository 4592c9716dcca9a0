"""The Markdown summary of an eval run: a GitHub job summary or pull-request comment.

Called by :func:`llmops.evals.reports.write_reports` (summary.md) and the CLI's
``--format github``. Sections: the verdict, pass rates per suite (with the baseline's),
the gate's reasons, regressions vs the baseline, the top failures, cost and cache.

Model text is untrusted: every piece of it goes through :func:`md_text`, which keeps it
on one line, escapes Markdown and HTML, and puts a zero-width space after a ``@`` or
``#`` that starts a word, so a comment never pings anyone or cross-links an issue. The result stays
under GitHub's 65,536-character comment limit (counted in UTF-16 units, the stricter
count); longer summaries are cut at a line with a note saying so.
"""

from __future__ import annotations

import re

from llmops.domain.evals import CaseResult, EvalRun, GateResult
from llmops.evals.gates import CaseChange, case_failure_reason, case_key, compare_cases
from llmops.evals.gates import weighted_pass_rate as rate

GITHUB_COMMENT_LIMIT = 65_536
TOP_FAILURES = 10
MAX_REASONS = 50
MAX_ROWS = 50

_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}|~#!])")
_MENTION = re.compile(r"(?<!\w)([@#])(?=\w)")


def md_text(text: str, limit: int = 300) -> str:
    """Untrusted text, safe inline in Markdown (and in a table cell)."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION.sub("\\1\u200b", text)


def _code(text: str) -> str:
    return "`" + " ".join(text.replace("`", "'").split()) + "`"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _delta(now: float, before: float | None) -> str:
    if before is None:
        return "—"
    points = (now - before) * 100
    return "±0.0" if abs(points) < 0.05 else f"{points:+.1f}"


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _header(run: EvalRun, gate: GateResult | None) -> list[str]:
    failing = sum(1 for c in run.cases if c.outcome != "pass")
    if gate is not None:
        ok = gate.passed
        title = f"gate into {md_text(gate.stage)} {'passed' if ok else 'failed'}"
    else:
        ok = failing == 0 and not run.interrupted
        title = "eval passed" if ok else f"eval: {failing} of {len(run.cases)} cases did not pass"
    facts = [f"release {_code(run.release)}"]
    if run.model:
        facts.append(f"model {_code(run.model)}")
    facts.append(f"{run.repeats} sample{'s' if run.repeats != 1 else ''} per case")
    if run.started_at:
        facts.append(f"started {md_text(run.started_at)}")
    facts.append(f"{run.duration_s:.1f} s")
    lines = [f"## {'✅' if ok else '❌'} {md_text(run.app)}: {title}", "", " · ".join(facts)]
    if run.interrupted:
        lines += ["", "> ⚠️ The run was interrupted: its results are incomplete."]
    if gate is not None:
        bound = (
            f" (95% lower bound {_pct(gate.pass_rate_lower_bound)})"
            if gate.pass_rate_lower_bound != gate.pass_rate
            else ""
        )
        base = (
            f" · baseline {_pct(gate.baseline_pass_rate)}"
            if gate.baseline_pass_rate is not None
            else ""
        )
        lines += [
            "",
            f"**Pass rate {_pct(gate.pass_rate)}**{bound} · minimum "
            f"{_pct(gate.min_pass_rate)}{base}",
        ]
    return lines


def _suites(run: EvalRun, baseline: EvalRun | None) -> list[str]:
    base = {s.name: s for s in baseline.suites} if baseline else {}
    head = "| Suite | Cases | ✅ Passed | ❌ Failed | ⚠️ Errored | Pass rate |"
    rule = "|---|---:|---:|---:|---:|---:|"
    if baseline is not None:
        head += " Baseline | Δ points |"
        rule += "---:|---:|"
    lines = ["", "### Pass rate per suite", "", head, rule]
    rows = [(s.name, s.cases, base[s.name].cases if s.name in base else None) for s in run.suites]
    rows.append(("**all**", run.cases, baseline.cases if baseline else None))
    for name, cases, before in rows:
        shown = name if name == "**all**" else md_text(name)
        row = (
            f"| {shown} | {len(cases)} | {sum(c.outcome == 'pass' for c in cases)} "
            f"| {sum(c.outcome == 'fail' for c in cases)} "
            f"| {sum(c.outcome == 'error' for c in cases)} | {_pct(rate(cases))} |"
        )
        if baseline is not None:
            then = rate(before) if before else None
            row += f" {_pct(then)} | {_delta(rate(cases), then)} |"
        lines.append(row)
    return lines


def _reasons(gate: GateResult) -> list[str]:
    lines = ["", "### Gate reasons", ""]
    for reason in gate.reasons[:MAX_REASONS]:
        icon = "❌" if reason.blocking else ("✅" if reason.code == "Passed" else "⚠️")
        note = "" if reason.blocking or reason.code == "Passed" else " _(not blocking)_"
        lines.append(f"- {icon} `{reason.code}`{note}: {md_text(reason.message, 600)}")
    if len(gate.reasons) > MAX_REASONS:
        lines.append(f"- … and {len(gate.reasons) - MAX_REASONS} more reasons in report.json")
    return lines


def _change(change: CaseChange, regressed: bool) -> str:
    if regressed:
        return "⬇️ regressed"
    if change.candidate_errors:
        return "⚠️ errored"
    if change.fixed:
        return "⬆️ fixed"
    before = change.baseline_passes / max(1, change.baseline_samples)
    now = change.candidate_passes / max(1, change.candidate_samples)
    return "↘️ worse (not significant)" if now < before else "↗️ better"


def _regressions(run: EvalRun, gate: GateResult | None, baseline: EvalRun) -> list[str]:
    changes = compare_cases(run.cases, baseline.cases, run.repeats)
    flagged = {c.key for c in changes if c.regressed} | set(gate.regressions if gate else ())
    moved = [
        c
        for c in changes
        if c.key in flagged
        or c.baseline_passes * c.candidate_samples != c.candidate_passes * c.baseline_samples
    ]
    moved.sort(key=lambda c: (c.key not in flagged, not c.fixed))
    lines = ["", f"### Changes vs baseline {_code(baseline.release)}", ""]
    if not moved:
        return [*lines, f"No case changed its pass rate ({len(changes)} cases compared)."]
    lines += ["| Case | Baseline | Candidate | Change |", "|---|---:|---:|---|"]
    for c in moved[:MAX_ROWS]:
        lines.append(
            f"| {md_text(c.key)} | {c.baseline_passes}/{c.baseline_samples} "
            f"| {c.candidate_passes}/{c.candidate_samples} | {_change(c, c.key in flagged)} |"
        )
    if len(moved) > MAX_ROWS:
        lines.append(f"\n… and {len(moved) - MAX_ROWS} more changed cases in report.json")
    return lines


def _severity(case: CaseResult) -> tuple[int, int, float, float]:
    passed = case.passes / len(case.samples) if case.samples else 0.0
    return (not case.required, case.outcome != "error", passed, -case.weight)


def _failures(run: EvalRun, top: int) -> list[str]:
    failing = sorted((c for c in run.cases if c.outcome != "pass"), key=_severity)
    if not failing:
        return []
    shown = failing[:top]
    title = f"### Top failures ({len(shown)} of {len(failing)})"
    lines = ["", title, "", "| Case | Outcome | Samples passed | Reason |", "|---|---|---:|---|"]
    for c in shown:
        outcome = "⚠️ error" if c.outcome == "error" else "❌ fail"
        if c.required:
            outcome += " (required)"
        lines.append(
            f"| {md_text(case_key(c))} | {outcome} | {c.passes}/{len(c.samples)} "
            f"| {md_text(case_failure_reason(c), 200)} |"
        )
    return lines


def _usage(run: EvalRun) -> list[str]:
    samples = [s for c in run.cases for s in c.samples]
    prompt = sum(s.usage.prompt_tokens for s in samples)
    completion = sum(s.usage.completion_tokens for s in samples)
    lookups = run.cache_hits + run.cache_misses
    hit_rate = f" ({run.cache_hits / lookups * 100:.0f}%)" if lookups else ""
    return [
        "",
        "### Cost and usage",
        "",
        "| Cost | Prompt tokens | Completion tokens | Model calls | Cache hits | Retries |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| ${run.cost_usd:.4f} | {prompt:,} | {completion:,} | {run.model_calls:,} "
        f"| {run.cache_hits:,} of {lookups:,}{hit_rate} | {run.retries:,} |",
    ]


def _fit(lines: list[str], limit: int) -> str:
    text = "\n".join(lines) + "\n"
    if _utf16(text) <= limit:
        return text
    kept: list[str] = []
    used = 0
    budget = limit - 400  # room for the note
    for line in lines:
        size = _utf16(line) + 1
        if used + size > budget:
            break
        kept.append(line)
        used += size
    omitted = len(lines) - len(kept)
    note = (
        f"> ✂️ Truncated: {omitted} more lines did not fit GitHub's {limit:,}-character "
        "limit. The full results are in report.json, junit.xml and report.html."
    )
    return "\n".join([*kept, "", note]) + "\n"


def render_markdown(
    run: EvalRun,
    gate: GateResult | None = None,
    baseline: EvalRun | None = None,
    *,
    top_failures: int = TOP_FAILURES,
    limit: int = GITHUB_COMMENT_LIMIT,
) -> str:
    """summary.md's text, at most ``limit`` UTF-16 units long."""
    lines = _header(run, gate) + _suites(run, baseline)
    if gate is not None:
        lines += _reasons(gate)
    if baseline is not None:
        lines += _regressions(run, gate, baseline)
    lines += _failures(run, top_failures) + _usage(run)
    lines += ["", "<sub>llmops eval · full results: report.json, junit.xml, report.html</sub>"]
    return _fit(lines, limit)
