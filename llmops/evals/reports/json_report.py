"""The complete JSON report of an eval run, and its loader back into the frozen types.

Called by :func:`llmops.evals.reports.write_reports` (report.json, archived as the
release's evidence) and by ``llmops eval --baseline PATH.json`` (:func:`load_report`).

Shape (``schemaVersion`` 1; keys are camelCase, like the manifests)::

    {"schemaVersion": 1, "kind": "EvalReport",
     "summary": {...},            # derived numbers for readers (jq, dashboards); ignored on load
     "run": {EvalRun},            # every field of llmops.domain.evals.EvalRun, nested
     "gate": {GateResult} | null,
     "baseline": {EvalRun} | null}

Derived values are written for readers (``run.costUsd``, each case's ``outcome``,
``passes`` and ``errors``, ``usage.totalTokens``) and skipped by the loader, which
rebuilds them from the data. Any other unknown key, a missing required key or a wrong
type is an :class:`InvalidInput` naming the key's path. Strings are written with
``\\uXXXX`` escapes for non-ASCII so any text a model produced round-trips exactly.
"""

from __future__ import annotations

import dataclasses
import json
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from llmops.domain.chat import Usage
from llmops.domain.errors import InvalidInput, SourceError
from llmops.domain.evals import CaseResult, EvalRun, GateResult
from llmops.evals.gates import weighted_pass_rate

SCHEMA_VERSION = 1
KIND = "EvalReport"

#: Keys written for readers and ignored by the loader, per type.
DERIVED: dict[type, frozenset[str]] = {
    EvalRun: frozenset({"costUsd"}),
    CaseResult: frozenset({"outcome", "passes", "errors"}),
    Usage: frozenset({"totalTokens"}),
}


@dataclass(frozen=True, slots=True)
class EvalReport:
    """What a report.json holds."""

    run: EvalRun
    gate: GateResult | None = None
    baseline: EvalRun | None = None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {_camel(f.name): _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, EvalRun):
            out["costUsd"] = value.cost_usd
        elif isinstance(value, CaseResult):
            out.update(outcome=value.outcome, passes=value.passes, errors=value.errors)
        elif isinstance(value, Usage):
            out["totalTokens"] = value.total_tokens
        return out
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def summary(run: EvalRun) -> dict[str, Any]:
    """Headline numbers of a run (all derived)."""
    samples = [s for c in run.cases for s in c.samples]
    return {
        "cases": len(run.cases),
        "passed": sum(1 for c in run.cases if c.outcome == "pass"),
        "failed": sum(1 for c in run.cases if c.outcome == "fail"),
        "errored": sum(1 for c in run.cases if c.outcome == "error"),
        "samples": len(samples),
        "passRate": weighted_pass_rate(run.cases),
        "suites": {s.name: weighted_pass_rate(s.cases) for s in run.suites},
        "costUsd": run.cost_usd,
        "promptTokens": sum(s.usage.prompt_tokens for s in samples),
        "completionTokens": sum(s.usage.completion_tokens for s in samples),
    }


def report_to_dict(
    run: EvalRun, gate: GateResult | None = None, baseline: EvalRun | None = None
) -> dict[str, Any]:
    """The report as JSON-ready data."""
    return {
        "schemaVersion": SCHEMA_VERSION,
        "kind": KIND,
        "summary": summary(run),
        "run": _encode(run),
        "gate": _encode(gate) if gate is not None else None,
        "baseline": _encode(baseline) if baseline is not None else None,
    }


def render_json(
    run: EvalRun, gate: GateResult | None = None, baseline: EvalRun | None = None
) -> str:
    """report.json's text: indented, keys in a stable order, newline-terminated."""
    return json.dumps(report_to_dict(run, gate, baseline), indent=2, ensure_ascii=True) + "\n"


# --------------------------------------------------------------------------- loading


class _Bad(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _decode(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _decode(inner, value, path)
    if origin is Literal:
        if value not in get_args(tp):
            allowed = ", ".join(map(str, get_args(tp)))
            raise _Bad(path, f"expected one of {allowed}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise _Bad(path, f"expected a list, got {_kind(value)}")
        return tuple(_decode(get_args(tp)[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise _Bad(path, f"expected an object, got {_kind(value)}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, path)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise _Bad(path, f"expected {tp.__name__}, got {_kind(value)}")


def _decode_dataclass(tp: Any, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise _Bad(path, f"expected an object, got {_kind(value)}")
    hints = get_type_hints(tp)
    fields = {_camel(f.name): f for f in dataclasses.fields(tp)}
    unknown = set(value) - set(fields) - DERIVED.get(tp, frozenset())
    if unknown:
        raise _Bad(path, f"unknown key {sorted(unknown)[0]!r}")
    kwargs = {}
    for key, f in fields.items():
        if key in value:
            kwargs[f.name] = _decode(hints[f.name], value[key], f"{path}.{key}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Bad(path, f"missing key {key!r}")
    return tp(**kwargs)


def report_from_dict(data: Any, source: str = "report") -> EvalReport:
    """Rebuild the frozen values; :class:`InvalidInput` names what is wrong and where."""
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise InvalidInput(f"{source}: not an llmops eval report (expected kind: {KIND})")
    version = data.get("schemaVersion")
    if version != SCHEMA_VERSION:
        raise InvalidInput(
            f"{source}: schemaVersion {version!r} is not supported (this llmops reads "
            f"{SCHEMA_VERSION}); re-run the eval with this version of llmops"
        )
    try:
        run = _decode(EvalRun, data.get("run"), "run")
        gate = _decode(GateResult | None, data.get("gate"), "gate")
        baseline = _decode(EvalRun | None, data.get("baseline"), "baseline")
    except _Bad as exc:
        raise InvalidInput(f"{source}: {exc}") from None
    return EvalReport(run=run, gate=gate, baseline=baseline)


def parse_report(text: str, source: str = "report") -> EvalReport:
    """Parse report.json text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{source}: not valid JSON ({exc})") from None
    return report_from_dict(data, source)


def load_report(path: Path) -> EvalReport:
    """Read a report.json, e.g. the one given as ``--baseline PATH.json``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read eval report {path}: {exc}") from None
    return parse_report(text, str(path))
