"""JUnit XML of an eval run, for CI test reporters (GitHub Actions, GitLab).

Called by :func:`llmops.evals.reports.write_reports` (junit.xml).

One ``<testsuite>`` per eval suite and one ``<testcase>`` per case (not per sample):
test reporters list one row per testcase and match rows across pipelines by
``classname`` + ``name``, so a case keeps one row whatever ``repeats`` is. A case passes
only if every sample passed; otherwise it has a ``<failure>`` (a verdict failed) or an
``<error>`` (a sample errored: no verdict), whose message is the first reason and whose
body lists every non-passing sample. Each sample's output and assertions are in
``<system-out>``. With a gate, a last ``<testsuite name="gate">`` holds one testcase,
failed with every blocking reason, so the CI test view shows why the gate failed.
Text that XML 1.0 cannot carry (control characters, lone surrogates) becomes U+FFFD.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from llmops.domain.evals import CaseResult, EvalRun, GateResult, Sample
from llmops.evals.gates import case_failure_reason

#: Longest output kept per sample; report.json has everything.
MAX_OUTPUT = 20_000

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 forbids replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def _clip(text: str, limit: int = MAX_OUTPUT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters in report.json)"


def _sample_text(index: int, sample: Sample) -> str:
    usage = sample.usage
    notes = [sample.outcome, f"{sample.latency_ms:.0f} ms"]
    notes.append(f"{usage.prompt_tokens}+{usage.completion_tokens} tokens")
    if sample.cached:
        notes.append("cached")
    if sample.retries:
        notes.append(f"{sample.retries} retries")
    lines = [f"--- sample {index} ({', '.join(notes)})"]
    if sample.error:
        lines.append(f"error: {sample.error}")
    lines += [f"  [{a.outcome}] {a.type}: {a.reason}" for a in sample.assertions]
    lines += ["output:", _clip(sample.output)]
    return "\n".join(lines)


def _problems(case: CaseResult) -> str:
    lines = []
    for index, sample in enumerate(case.samples, start=1):
        if sample.outcome == "pass":
            continue
        lines.append(
            f"sample {index}: {sample.outcome}" + (f": {sample.error}" if sample.error else "")
        )
        lines += [f"  {a.type}: {a.reason}" for a in sample.assertions if a.outcome != "pass"]
    return "\n".join(lines)


def _testcase(parent: ET.Element, case: CaseResult) -> None:
    seconds = sum(s.latency_ms for s in case.samples) / 1000
    element = ET.SubElement(
        parent, "testcase", classname=case.suite, name=case.case_id, time=f"{seconds:.3f}"
    )
    if case.outcome != "pass":
        tag = "error" if case.outcome == "error" else "failure"
        bad = case.errors if tag == "error" else len(case.samples) - case.passes
        verb = "errored" if tag == "error" else "did not pass"
        message = f"{bad}/{len(case.samples)} samples {verb}: {case_failure_reason(case)}"
        problem = ET.SubElement(element, tag, message=xml_text(message), type=case.outcome)
        problem.text = xml_text(_problems(case))
    out = "\n".join(_sample_text(i, s) for i, s in enumerate(case.samples, start=1))
    header = f"{case.suite}/{case.case_id}" + (f": {case.description}" if case.description else "")
    ET.SubElement(element, "system-out").text = xml_text(f"{header}\n{out}")


def _counts(cases: tuple[CaseResult, ...]) -> dict[str, str]:
    seconds = sum(s.latency_ms for c in cases for s in c.samples) / 1000
    return {
        "tests": str(len(cases)),
        "failures": str(sum(1 for c in cases if c.outcome == "fail")),
        "errors": str(sum(1 for c in cases if c.outcome == "error")),
        "skipped": "0",
        "time": f"{seconds:.3f}",
    }


def _gate_suite(root: ET.Element, gate: GateResult) -> None:
    blocking = [r for r in gate.reasons if r.blocking]
    suite = ET.SubElement(
        root,
        "testsuite",
        name="gate",
        tests="1",
        failures=str(min(1, len(blocking))),
        errors="0",
        skipped="0",
        time="0.000",
    )
    case = ET.SubElement(suite, "testcase", classname="gate", name=f"gate into {gate.stage}")
    case.set("time", "0.000")
    if blocking:
        more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
        failure = ET.SubElement(
            case, "failure", message=xml_text(f"{blocking[0].message}{more}"), type=blocking[0].code
        )
        failure.text = xml_text("\n".join(f"{r.code}: {r.message}" for r in blocking))
    every = "\n".join(
        f"{r.code}{'' if r.blocking else ' (not blocking)'}: {r.message}" for r in gate.reasons
    )
    ET.SubElement(case, "system-out").text = xml_text(every)


def render_junit(run: EvalRun, gate: GateResult | None = None) -> str:
    """junit.xml's text."""
    root = ET.Element("testsuites", name=xml_text(f"llmops eval {run.app}"))
    root.attrib.update(_counts(run.cases))
    root.attrib.pop("skipped")
    for suite in run.suites:
        element = ET.SubElement(root, "testsuite", name=xml_text(suite.name))
        element.attrib.update(_counts(suite.cases))
        if run.started_at:
            element.set("timestamp", xml_text(run.started_at))
        properties = ET.SubElement(element, "properties")
        values = {"app": run.app, "release": run.release, "model": run.model}
        values["repeats"] = str(run.repeats)
        for name, value in values.items():
            ET.SubElement(properties, "property", name=name, value=xml_text(value))
        for case in suite.cases:
            _testcase(element, case)
    if gate is not None:
        _gate_suite(root, gate)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'
