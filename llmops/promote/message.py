"""The words of a promotion: commit message (with ``Llmops-*`` trailers) and the pull
request's Markdown body. Pure.

Called by ``llmops.ops.promote``. Trailers make a promotion commit machine-readable
(``git interpret-trailers --parse``, ``git log --format=%(trailers)``): the release, the
environment, the release it replaces, and per stage the gate summary and the digest of
the archived eval report that proves it.
"""

from __future__ import annotations

import re

from llmops.promote.plan import PromotionPlan, short

_CELL = re.compile(r"([\\`*_\[\]|<>#])")
_MENTION = re.compile(r"([@#])(?=[\w-])")


def subject(plan: PromotionPlan) -> str:
    if plan.kind == "rollback":
        return f"rollback {plan.app} in {plan.env} to {short(plan.candidate)}"
    return f"promote {plan.app} to {plan.env}: {short(plan.candidate)}"


def trailers(plan: PromotionPlan) -> list[tuple[str, str]]:
    """``(key, value)`` pairs, one line each."""
    pairs = [
        ("Llmops-Action", plan.kind),
        ("Llmops-App", plan.app),
        ("Llmops-Environment", plan.env),
        ("Llmops-Release", plan.candidate or ""),
    ]
    if plan.current:
        pairs.append(("Llmops-Previous-Release", plan.current))
    if plan.pipeline:
        pairs.append(("Llmops-Pipeline", plan.pipeline))
    for item in plan.evidence:
        pairs.append(("Llmops-Gate", f"{item.stage} {_one_line(item.summary)}"))
    for item in plan.evidence:
        pairs.append(("Llmops-Evidence-Report", f"{item.stage} sha256:{item.report}"))
    return pairs


def _one_line(text: str) -> str:
    return " ".join(text.split())


def commit_message(plan: PromotionPlan, reason: str | None = None) -> str:
    """Subject, a short body, and the trailers."""
    lines = [subject(plan), ""]
    if plan.kind == "rollback":
        lines.append(
            f"Roll {plan.env} back from {plan.current or '(nothing)'} to {plan.candidate}."
        )
        lines.append(
            f"Automatic promotion of {plan.app} into {plan.env} is held until "
            f"`llmops unhold {plan.app} --env {plan.env}`."
        )
        if reason:
            lines.append(f"Reason: {_one_line(reason)}")
    else:
        origin = f" from {plan.source}" if plan.source else ""
        lines.append(f"Pin {plan.candidate}{origin} in {plan.env_file}.")
        if plan.evidence:
            lines.append("")
            lines.append("Gates:")
            lines.extend(f"- {e.stage}: {_one_line(e.summary)}" for e in plan.evidence)
    lines.append("")
    lines.extend(f"{key}: {value}" for key, value in trailers(plan))
    return "\n".join(lines) + "\n"


def md_cell(text: str) -> str:
    """Text safe in a Markdown table cell: escaped, one line, no @mentions."""
    text = _CELL.sub(r"\\\1", _one_line(text))
    return _MENTION.sub("\\1\u200b", text)


_ICON = {"True": "✅", "False": "❌", "Unknown": "⏳"}


def pull_request_body(plan: PromotionPlan, reason: str | None = None) -> str:
    """The gate report a reviewer reads before approving (by merging)."""
    verb = "Promote" if plan.kind == "promote" else "Roll back"
    where = f"to **{plan.env}**" if plan.kind == "promote" else f"in **{plan.env}**"
    out = [f"## {verb} `{plan.app}` {where}", ""]
    out += ["| | |", "|---|---|"]
    out.append(f"| release | `{plan.candidate}` |")
    out.append(
        f"| replaces | `{plan.current}` |" if plan.current else "| replaces | (nothing pinned) |"
    )
    if plan.source:
        out.append(f"| from | {md_cell(plan.source)} |")
    if plan.pipeline:
        out.append(f"| pipeline | {md_cell(plan.pipeline)} |")
    out.append(f"| file | `{plan.env_file}` |")
    if plan.kind == "rollback" and reason:
        out.append(f"| reason | {md_cell(reason)} |")
    if plan.evidence:
        out += [
            "",
            "### Gate evidence",
            "",
            "| stage | verdict | archived report |",
            "|---|---|---|",
        ]
        out += [
            f"| {md_cell(e.stage)} | {md_cell(e.summary)} | `sha256:{e.report}` |"
            for e in plan.evidence
        ]
    out += ["", "### Checks", ""]
    out += [
        f"- {_ICON[ch.status]} **{ch.condition}** ({ch.reason}): {md_cell(ch.message)}"
        for ch in plan.checks
    ]
    out.append("")
    if plan.kind == "rollback":
        out.append(
            f"Merging pins the earlier release. Automatic promotion of `{plan.app}` into "
            f"{plan.env} is held until `llmops unhold {plan.app} --env {plan.env}`."
        )
    else:
        out.append(
            "Merging this pull request is the approval. The ledger records this promotion as "
            "*proposed* now; the reconciler records `deployed` once the merged pin runs."
        )
    out += [
        "",
        f"<!-- llmops:{plan.kind} app={plan.app} env={plan.env} release={plan.candidate} -->",
    ]
    return "\n".join(out) + "\n"
