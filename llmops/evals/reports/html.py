"""One self-contained HTML page comparing a candidate eval run with its baseline.

Called by :func:`llmops.evals.reports.write_reports` (report.html), which CI uploads as
an artifact and the archive keeps as evidence.

Inline CSS and an inline SVG bar chart; no script, no external URL, and a
Content-Security-Policy that forbids both, so the page opens offline and untrusted model
text cannot run even if it slipped through. Every piece of text goes through
:func:`html.escape`. Sections: the verdict and gate reasons, summary numbers side by
side, pass rate per suite (candidate vs baseline), and one row per case with both
outputs, outcome badges and reasons, most serious first.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from llmops.domain.evals import CaseResult, EvalRun, GateResult, Sample
from llmops.evals.gates import CaseChange, case_failure_reason, case_key, compare_cases
from llmops.evals.gates import weighted_pass_rate as rate

MAX_OUTPUT = 20_000

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.meta{color:#59636e;margin:0 0 16px}
section.box{background:#fff;border:1px solid #d1d9e0;border-radius:8px;padding:16px;margin:12px 0}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #d1d9e0;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;max-height:320px;overflow:auto;
background:#f6f8fa;padding:6px;border-radius:4px;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;
color:#fff;white-space:nowrap}
.pass{background:#1a7f37}.fail{background:#cf222e}.error{background:#9a6700}
.none{background:#818b98}.regressed{background:#a40e26}.fixed{background:#0969da}
h1 .badge{font-size:15px;vertical-align:middle;padding:3px 10px}
table.summary{table-layout:fixed}table.summary th:first-child{width:18%}
td{overflow-wrap:anywhere}
ul.reasons{margin:0;padding-left:20px}ul.reasons li{margin:4px 0}
.why{color:#59636e;font-size:12px;margin:2px 0}
.tag{font-size:11px;color:#59636e;border:1px solid #d1d9e0;border-radius:4px;padding:0 4px}
"""

_BLUE, _GREY = "#0969da", "#818b98"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _clip(text: str) -> str:
    if len(text) <= MAX_OUTPUT:
        return text
    return f"{text[:MAX_OUTPUT]}… ({len(text) - MAX_OUTPUT} more characters in report.json)"


def _badge(label: str, kind: str) -> str:
    return f'<span class="badge {kind}">{_e(label)}</span>'


def _facts(run: EvalRun | None) -> dict[str, str]:
    if run is None:
        return {}
    cases = run.cases
    samples = [s for c in cases for s in c.samples]
    tokens = sum(s.usage.total_tokens for s in samples)
    return {
        "Release": run.release,
        "Model": run.model or "—",
        "Pass rate": _pct(rate(cases)),
        "Cases": str(len(cases)),
        "Passed": str(sum(c.outcome == "pass" for c in cases)),
        "Failed": str(sum(c.outcome == "fail" for c in cases)),
        "Errored": str(sum(c.outcome == "error" for c in cases)),
        "Samples per case": str(run.repeats),
        "Cost": f"${run.cost_usd:.4f}",
        "Tokens": f"{tokens:,}",
        "Cache hits": f"{run.cache_hits:,} of {run.cache_hits + run.cache_misses:,}",
        "Duration": f"{run.duration_s:.1f} s",
        "Started": run.started_at or "—",
        "Interrupted": "yes" if run.interrupted else "no",
    }


def _summary(run: EvalRun, baseline: EvalRun | None) -> str:
    now, then = _facts(run), _facts(baseline)
    rows = "".join(
        f'<tr><th>{_e(name)}</th><td class="num">{_e(value)}</td>'
        f'<td class="num">{_e(then.get(name, "—"))}</td></tr>'
        for name, value in now.items()
    )
    return (
        '<h2>Summary</h2><table class="summary"><thead><tr><th></th><th class="num">Candidate'
        f'</th><th class="num">Baseline</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _gate(gate: GateResult | None) -> str:
    if gate is None:
        return ""
    items = []
    for r in gate.reasons:
        kind = "fail" if r.blocking else ("pass" if r.code == "Passed" else "error")
        label = r.code if r.blocking or r.code == "Passed" else f"{r.code} (not blocking)"
        items.append(f"<li>{_badge(label, kind)} {_e(r.message)}</li>")
    bound = (
        f" · 95% lower bound {_pct(gate.pass_rate_lower_bound)}"
        if gate.pass_rate_lower_bound != gate.pass_rate
        else ""
    )
    return (
        f'<section class="box"><h2>Gate into {_e(gate.stage)}</h2><p>Pass rate '
        f"<strong>{_pct(gate.pass_rate)}</strong>{bound} · minimum "
        f"{_pct(gate.min_pass_rate)} · baseline {_pct(gate.baseline_pass_rate)} · cost "
        f'${gate.cost_usd:.4f}</p><ul class="reasons">{"".join(items)}</ul></section>'
    )


def _chart(run: EvalRun, baseline: EvalRun | None, minimum: float | None) -> str:
    names = [s.name for s in run.suites]
    names += [s.name for s in (baseline.suites if baseline else ()) if s.name not in names]
    series = [({s.name: rate(s.cases) for s in run.suites if s.cases}, _BLUE, "candidate")]
    if baseline is not None:
        then = {s.name: rate(s.cases) for s in baseline.suites if s.cases}
        series.append((then, _GREY, "baseline"))
    label_w, bar_w, bar_h = 160, 440, 16
    row_h = 14 + bar_h * len(series)
    height = 62 + row_h * len(names)
    parts = [
        f'<svg role="img" width="{label_w + bar_w + 80}" height="{height}" '
        'aria-label="pass rate per suite" font-family="sans-serif" font-size="12">'
    ]
    for k, (_, colour, label) in enumerate(series):
        x = label_w + 110.0 * k
        parts.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 18}" y="16">{label}</text>'
        )
    for tick in (0.0, 0.5, 1.0):
        x = label_w + tick * bar_w
        parts.append(
            f'<line x1="{x:.1f}" y1="38" x2="{x:.1f}" y2="{height - 18}" stroke="#d1d9e0"/>'
            f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle">{tick:.0%}</text>'
        )
    for i, name in enumerate(names):
        y = 44 + i * row_h
        mid = y + bar_h * len(series) / 2 + 4
        parts.append(f'<text x="{label_w - 8}" y="{mid:.0f}" text-anchor="end">{_e(name)}</text>')
        for k, (values, colour, _) in enumerate(series):
            value = values.get(name)
            top = y + k * bar_h
            width = 0.0 if value is None else max(1.0, value * bar_w)
            parts.append(
                f'<rect x="{label_w}" y="{top}" width="{width:.1f}" height="{bar_h - 2}" '
                f'fill="{colour}"><title>{_e(name)}: {_pct(value)}</title></rect>'
                f'<text x="{label_w + width + 6:.1f}" y="{top + 11}">{_pct(value)}</text>'
            )
    if minimum is not None:
        x = label_w + minimum * bar_w
        parts.append(
            f'<line x1="{x:.1f}" y1="24" x2="{x:.1f}" y2="{height - 18}" stroke="#cf222e" '
            f'stroke-dasharray="4 3"/><text x="{x:.1f}" y="34" fill="#cf222e" '
            f'text-anchor="middle">'
            f"minimum {_pct(minimum)}</text>"
        )
    parts.append("</svg>")
    return '<h2>Pass rate per suite</h2><section class="box">' + "".join(parts) + "</section>"


def _shown_sample(case: CaseResult) -> Sample | None:
    for sample in case.samples:
        if sample.outcome != "pass":
            return sample
    return case.samples[0] if case.samples else None


def _side(case: CaseResult | None) -> str:
    if case is None:
        return _badge("not run", "none")
    parts = [f"{_badge(case.outcome, case.outcome)} {case.passes}/{len(case.samples)} passed"]
    reason = case_failure_reason(case)
    if reason:
        parts.append(f'<div class="why">{_e(reason)}</div>')
    sample = _shown_sample(case)
    if sample is not None and sample.output:
        parts.append(f"<pre>{_e(_clip(sample.output))}</pre>")
    if len(case.samples) > 1:
        every = "".join(
            f"<div>sample {i}: {_badge(s.outcome, s.outcome)}"
            + "".join(f'<div class="why">{_e(a.type)}: {_e(a.reason)}</div>' for a in s.assertions)
            + f"<pre>{_e(_clip(s.output))}</pre></div>"
            for i, s in enumerate(case.samples, start=1)
        )
        parts.append(
            f"<details><summary>all {len(case.samples)} samples</summary>{every}</details>"
        )
    return "".join(parts)


def _status(
    case: CaseResult | None, change: CaseChange | None, flagged: bool, compared: bool
) -> tuple[int, str]:
    """Sort rank (most serious first) and the badge saying how the case moved."""
    if flagged:
        return 0, _badge("regressed", "regressed")
    if case is None:
        return 5, _badge("removed", "none")
    rank = {"error": 1, "fail": 2, "pass": 4}[case.outcome]
    if not compared:
        return rank, ""
    if change is None:
        return rank, _badge("new", "none")
    return (3, _badge("fixed", "fixed")) if change.fixed else (rank, "")


def _cases(run: EvalRun, baseline: EvalRun | None, regressions: Sequence[str]) -> str:
    base = {case_key(c): c for c in baseline.cases} if baseline else {}
    changes = {c.key: c for c in compare_cases(run.cases, base.values(), run.repeats)}
    flagged = set(regressions) | {k for k, c in changes.items() if c.regressed}
    now = {case_key(c): c for c in run.cases}
    rows = []
    for index, key in enumerate([*now, *(k for k in base if k not in now)]):
        case = now.get(key)
        rank, status = _status(case, changes.get(key), key in flagged, baseline is not None)
        shown = case or base[key]
        tags = "".join(f' <span class="tag">{_e(t)}</span>' for t in shown.tags)
        if shown.required:
            tags += ' <span class="tag">required</span>'
        desc = f'<div class="why">{_e(shown.description)}</div>' if shown.description else ""
        cells = (
            f"<td><code>{_e(key)}</code>{tags}{desc}<div>{status}</div></td>"
            f"<td>{_side(case)}</td><td>{_side(base.get(key))}</td>"
        )
        rows.append((rank, index, f"<tr>{cells}</tr>"))
    body = "".join(row for _, _, row in sorted(rows))
    return (
        f"<h2>Cases ({len(rows)})</h2><table><thead><tr><th>Case</th><th>Candidate</th>"
        f"<th>Baseline</th></tr></thead><tbody>{body}</tbody></table>"
    )


def render_html(
    run: EvalRun, gate: GateResult | None = None, baseline: EvalRun | None = None
) -> str:
    """report.html's text."""
    failing = sum(1 for c in run.cases if c.outcome != "pass")
    ok = gate.passed if gate is not None else failing == 0 and not run.interrupted
    verdict = (
        f"gate into {gate.stage} {'passed' if ok else 'failed'}"
        if gate is not None
        else ("eval passed" if ok else f"{failing} of {len(run.cases)} cases did not pass")
    )
    title = f"{run.app}: {verdict}"
    compared = f" compared with {baseline.release}" if baseline else " (no baseline)"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>{_badge('PASSED', 'pass') if ok else _badge('FAILED', 'fail')} {_e(title)}</h1>"
        f'<p class="meta">{_e(run.release)}{_e(compared)}</p>'
        + _gate(gate)
        + _summary(run, baseline)
        + _chart(run, baseline, gate.min_pass_rate if gate is not None else None)
        + _cases(run, baseline, gate.regressions if gate is not None else ())
        + "</main></body></html>\n"
    )
