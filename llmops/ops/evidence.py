"""The evidence model: which release may be pinned where, by what the archive proves.

Called by promote and rollback (``llmops.ops.promote``), and meant for plan, apply and
reconcile (``unevidenced_pins``) and for ``llmops eval --gate`` (``record_gate_evidence``,
so every gate decision is archived the same way). The queries are pure functions over
ledger entries (``llmops.promote.ledger``, re-exported here); this module adds the two
that touch the archive or the manifests.

The rule (DESIGN.md: "only a release that passed the gates of every earlier stage can
reach a later stage; the archive holds the evidence"): release R may be pinned in stage
k of a pipeline only if, for every stage 1..k, the latest ``evaluated`` entry with
``release=R, env=<stage>`` has ``data.gate.passed == true`` and ``evidence.report`` names
the archived JSON eval report (``llmops.evals.reports.render_json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.archive.base import Archive
from llmops.domain.archive import LedgerEntry
from llmops.domain.diagnostics import Diagnostic
from llmops.domain.evals import GateResult
from llmops.domain.models.pipeline import Stage
from llmops.domain.repo import Repo
from llmops.promote.ledger import (
    Evidence,
    EvidenceState,
    active_hold,
    describe_evidence_gap,
    entered_at,
    evidence_state,
    gate_summary,
    has_passing_evidence,
    last_good_release,
    latest_evidence,
    marked_bad,
    missing_stages,
    timeline,
)

__all__ = [
    "Evidence",
    "EvidenceState",
    "active_hold",
    "entered_at",
    "evidence_state",
    "gate_evidence_data",
    "gate_summary",
    "has_passing_evidence",
    "last_good_release",
    "latest_evidence",
    "marked_bad",
    "missing_stages",
    "record_gate_evidence",
    "timeline",
    "unevidenced_pins",
]


def gate_evidence_data(
    result: GateResult, stage: Stage, baseline: str | None = None
) -> dict[str, Any]:
    """The ``data`` of an ``evaluated`` entry: the gate decision in a stable shape."""
    return {
        "gate": {
            "stage": result.stage,
            "passed": result.passed,
            "passRate": result.pass_rate,
            "passRateLowerBound": result.pass_rate_lower_bound,
            "minPassRate": result.min_pass_rate,
            "baselinePassRate": result.baseline_pass_rate,
            "costUsd": result.cost_usd,
            "suites": list(stage.gate.suites),
            "repeats": stage.gate.repeats,
            "reasons": [
                {"code": r.code, "message": r.message, "blocking": r.blocking}
                for r in result.reasons
            ],
            "regressions": list(result.regressions),
        },
        "baseline": baseline,
    }


def record_gate_evidence(
    archive: Archive,
    app: str,
    release: str,
    stage: Stage,
    result: GateResult,
    report: bytes,
    baseline: str | None = None,
) -> LedgerEntry:
    """Archive the JSON eval report and append the ``evaluated`` entry that cites it."""
    digest = archive.put(report)
    return archive.append(
        "evaluated",
        app,
        release=release,
        env=stage.env,
        evidence={"report": digest},
        data=gate_evidence_data(result, stage, baseline),
    )


def unevidenced_pins(repo: Repo, archive: Archive) -> list[Diagnostic]:
    """Every pin that breaks the rule, as a diagnostic at ``environments/ENV.yaml:line:col``.

    One diagnostic per pin and missing stage, e.g. ``release X has no passing gate
    evidence for stage 'test'; promote it with `llmops promote APP --to test```.
    Environments that are no pipeline's stage are not checked.
    """
    from llmops.manifests import yamldoc

    entries = archive.entries()
    found: list[Diagnostic] = []
    for _name, source in sorted(repo.pipelines.items()):
        stages = source.pipeline.spec.stages
        for k, stage in enumerate(stages):
            env = repo.environments.get(stage.env)
            if env is None or not env.environment.spec.releases:
                continue
            try:
                doc: yamldoc.YamlDoc | None = yamldoc.parse(
                    (Path(repo.root) / env.file).read_text(encoding="utf-8")
                )
            except (OSError, UnicodeDecodeError, yamldoc.YamlError):
                doc = None
            for app, release in sorted(env.environment.spec.releases.items()):
                path = ("spec", "releases", app)
                mark = doc.mark_for(path) if doc else yamldoc.Mark(0, 0)
                for gap_stage, state, evidence in missing_stages(
                    entries, release, stages[: k + 1], archive.has
                ):
                    message = (
                        f"{describe_evidence_gap(state, evidence, release, gap_stage.env)}; "
                        f"promote it with `llmops promote {app} --to {gap_stage.env}`"
                    )
                    found.append(
                        Diagnostic(env.file, mark.line, mark.column, ".".join(path), message)
                    )
    return sorted(set(found))
