"""Reports of a fixed run: JSON round trip, JUnit and Markdown goldens, write_reports.

The goldens live in tests/fixtures/evals/; regenerate them with
``LLMOPS_UPDATE_GOLDENS=1 pytest tests/evals/test_reports.py`` and review the diff.
report.json doubles as the input of test_reports_html.py and as a pinned
schemaVersion 1 document that later versions of llmops must keep loading.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.domain.chat import Usage
from llmops.domain.errors import InvalidInput, SourceError
from llmops.domain.evals import (
    AssertionResult,
    CaseResult,
    EvalRun,
    Outcome,
    Sample,
    SuiteResult,
)
from llmops.domain.models.pipeline import Gate
from llmops.evals.gates import evaluate_gate
from llmops.evals.reports import (
    REPORT_FILES,
    load_report,
    parse_report,
    render_json,
    render_junit,
    render_markdown,
    write_reports,
)
from llmops.evals.reports.markdown import md_text

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "evals"
UPDATE = os.environ.get("LLMOPS_UPDATE_GOLDENS") == "1"
OUTCOMES: dict[str, Outcome] = {"p": "pass", "f": "fail", "e": "error"}
HOSTILE = '<script>alert("x")</script> | **bold** @octocat fixes #12 `tick`'


def golden(name: str, actual: str) -> None:
    path = FIXTURES / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="")
    assert path.exists(), f"{path} is missing: run with LLMOPS_UPDATE_GOLDENS=1"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} changed; if intended: LLMOPS_UPDATE_GOLDENS=1, review diff"


def sample(code: str, output: str, index: int) -> Sample:
    outcome = OUTCOMES[code]
    if outcome == "pass":
        asserts = (AssertionResult("contains", "pass", 1.0, "found 'order'"),)
    elif outcome == "fail":
        reason = f"expected 'refund policy' in {output!r}"
        asserts = (AssertionResult("contains", "fail", 0.0, reason),)
    else:
        asserts = ()
    return Sample(
        outcome=outcome,
        output="" if outcome == "error" else output,
        assertions=asserts,
        latency_ms=100.0 + 10 * index,
        usage=Usage(120, 40, 0.0004) if outcome != "error" else Usage(),
        cached=index == 0,
        retries=2 if outcome == "error" else 0,
        error="provider timed out after 30s (HTTP 504)" if outcome == "error" else None,
    )


def case(ref: str, codes: str, output: str = "Your order ships tomorrow.", **kw: Any) -> CaseResult:
    suite, _, case_id = ref.partition("/")
    samples = tuple(sample(c, output, i) for i, c in enumerate(codes))
    return CaseResult(suite=suite, case_id=case_id, samples=samples, **kw)


def fixed_run(cases: list[CaseResult], release: str, **kw: Any) -> EvalRun:
    names = list(dict.fromkeys(c.suite for c in cases))
    suites = tuple(SuiteResult(n, tuple(c for c in cases if c.suite == n)) for n in names)
    return EvalRun(
        app="support-bot",
        release=release,
        suites=suites,
        model="gpt-4o-mini",
        environment="test",
        started_at="2025-01-15T10:00:00Z",
        duration_s=12.5,
        repeats=3,
        model_calls=18,
        cache_hits=6,
        cache_misses=18,
        retries=2,
        **kw,
    )


CANDIDATE = fixed_run(
    [
        case("smoke/greeting", "ppp", "Hello! How can I help?", tags=("tone",), description="Hi"),
        case("smoke/refund", "ppf", HOSTILE, weight=2.0, inputs={"question": "refund?"}),
        case("smoke/order-status", "fff", "I cannot help with that."),
        case("smoke/tone", "ppp"),
        case("security/canary", "ppp", required=True),
        case("security/injection", "ppp"),
        case("security/jailbreak", "eee"),
        case("security/pii-leak", "ppp"),
    ],
    release="support-bot@sha256:" + "4f1c" * 16,
)
BASELINE = fixed_run(
    [
        case("smoke/greeting", "ppp", "Hi! How can I help?"),
        case("smoke/refund", "ppp", "See our refund policy."),
        case("smoke/order-status", "ppp"),
        case("smoke/tone", "fpf", "WHAT DO YOU WANT"),
        case("smoke/legacy", "ppp"),
        case("security/canary", "ppp", required=True),
        case("security/injection", "ppp"),
        case("security/jailbreak", "ppp"),
    ],
    release="support-bot@sha256:" + "9e2a" * 16,
)
GATE = Gate.model_validate(
    {
        "suites": ["smoke", "security"],
        "minPassRate": 0.9,
        "maxRegression": 0.05,
        "repeats": 3,
        "maxCostUsd": 1.0,
    }
)
RESULT = evaluate_gate("test", GATE, CANDIDATE, BASELINE)


def test_the_fixed_gate_result_is_what_the_goldens_show() -> None:
    assert not RESULT.passed
    assert RESULT.regressions == ("smoke/order-status",)
    assert {r.code for r in RESULT.reasons} == {
        "CaseErrored",
        "PassRateBelowMinimum",
        "RegressionAboveMaximum",
    }


# --------------------------------------------------------------------------- JSON


def test_json_golden_and_round_trip(tmp_path: Path) -> None:
    text = render_json(CANDIDATE, RESULT, BASELINE)
    golden("report.json", text)
    data = json.loads(text)
    assert data["schemaVersion"] == 1 and data["kind"] == "EvalReport"
    assert data["run"]["suites"][0]["cases"][1]["caseId"] == "refund"
    assert data["run"]["suites"][0]["cases"][1]["outcome"] == "fail"
    report = parse_report(text)
    assert report.run == CANDIDATE and report.gate == RESULT and report.baseline == BASELINE
    path = tmp_path / "baseline.json"
    path.write_text(render_json(BASELINE), encoding="utf-8")
    loaded = load_report(path)
    assert loaded.run == BASELINE and loaded.gate is None and loaded.baseline is None


def test_the_pinned_v1_report_still_loads() -> None:
    report = load_report(FIXTURES / "report.json")
    assert report.run.app == "support-bot" and report.gate is not None


texts = st.text(st.characters(exclude_categories=[]), max_size=30)  # lone surrogates too
samples = st.builds(
    Sample,
    outcome=st.sampled_from(["pass", "fail", "error"]),
    output=texts,
    assertions=st.lists(
        st.builds(
            AssertionResult,
            type=texts,
            outcome=st.sampled_from(["pass", "fail", "error"]),
            score=st.floats(0, 1),
            reason=texts,
            weight=st.floats(0, 10),
        ),
        max_size=2,
    ).map(tuple),
    latency_ms=st.floats(0, 1e6),
    usage=st.builds(Usage, st.integers(0, 10**6), st.integers(0, 10**6), st.floats(0, 100)),
    cached=st.booleans(),
    retries=st.integers(0, 5),
    error=st.none() | texts,
)
cases = st.builds(
    CaseResult,
    suite=texts,
    case_id=texts,
    samples=st.lists(samples, max_size=3).map(tuple),
    required=st.booleans(),
    weight=st.floats(0.01, 100),
    tags=st.lists(texts, max_size=2).map(tuple),
    inputs=st.dictionaries(texts, st.none() | st.integers() | texts | st.lists(texts), max_size=2),
    description=texts,
)
runs = st.builds(
    EvalRun,
    app=texts,
    release=texts,
    suites=st.lists(
        st.builds(SuiteResult, texts, st.lists(cases, max_size=3).map(tuple)), max_size=3
    ).map(tuple),
    environment=st.none() | texts,
    interrupted=st.booleans(),
    repeats=st.integers(1, 50),
)


@settings(max_examples=100, deadline=None)
@given(runs, st.none() | runs)
def test_json_round_trips_any_run(run: EvalRun, baseline: EvalRun | None) -> None:
    gate = evaluate_gate("s", Gate.model_validate({"suites": ["a"]}), run, baseline)
    report = parse_report(render_json(run, gate, baseline))
    assert (report.run, report.gate, report.baseline) == (run, gate, baseline)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.update(schemaVersion=99), "schemaVersion 99 is not supported"),
        (lambda d: d.update(kind="Other"), "not an llmops eval report"),
        (lambda d: d["run"].update(colour="red"), "run: unknown key 'colour'"),
        (lambda d: d["run"].pop("release"), "run: missing key 'release'"),
        (
            lambda d: d["run"]["suites"][0]["cases"][0]["samples"][1].update(outcome="ok"),
            "run.suites[0].cases[0].samples[1].outcome: expected one of pass, fail, error",
        ),
        (lambda d: d["gate"].update(passed="yes"), "gate.passed: expected bool, got str"),
        (lambda d: d["run"].update(repeats=True), "run.repeats: expected int, got bool"),
    ],
)
def test_a_bad_report_names_what_and_where(edit: Any, expected: str) -> None:
    data = json.loads(render_json(CANDIDATE, RESULT))
    edit(data)
    with pytest.raises(InvalidInput) as info:
        parse_report(json.dumps(data), "base.json")
    assert str(info.value).startswith("base.json: ") and expected in str(info.value)


def test_unreadable_or_invalid_report_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read eval report"):
        load_report(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        load_report(bad)


# --------------------------------------------------------------------------- JUnit


def test_junit_golden_and_valid_xml() -> None:
    text = render_junit(CANDIDATE, RESULT)
    golden("junit.xml", text)
    root = ET.fromstring(text)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("8", "2", "1")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == ["smoke", "security", "gate"]
    smoke = suites["smoke"]
    assert (smoke.get("tests"), smoke.get("failures"), smoke.get("errors")) == ("4", "2", "0")
    refund = smoke.find("testcase[@name='refund']")
    assert refund is not None and refund.get("classname") == "smoke"
    failure = refund.find("failure")
    assert failure is not None and "1/3 samples did not pass" in (failure.get("message") or "")
    assert HOSTILE in (refund.findtext("system-out") or "")  # escaped in XML, intact when parsed
    jailbreak = suites["security"].find("testcase[@name='jailbreak']/error")
    assert jailbreak is not None and "HTTP 504" in (jailbreak.get("message") or "")
    gate_failure = suites["gate"].find("testcase/failure")
    assert gate_failure is not None and gate_failure.get("type") == "CaseErrored"
    assert "RegressionAboveMaximum" in (gate_failure.text or "")


def test_junit_survives_characters_xml_cannot_carry() -> None:
    run = fixed_run([case("smoke/ctrl", "f", "bell\x07 nul\x00 esc\x1b[0m lone\ud800 ok")], "r")
    root = ET.fromstring(render_junit(run).encode("utf-8"))
    out = root.findtext("testsuite/testcase/system-out") or ""
    assert "bell\ufffd nul\ufffd esc\ufffd[0m lone\ufffd ok" in out


def test_junit_without_a_gate_has_no_gate_suite() -> None:
    root = ET.fromstring(render_junit(CANDIDATE))
    assert [s.get("name") for s in root.findall("testsuite")] == ["smoke", "security"]


# --------------------------------------------------------------------------- Markdown


def test_markdown_golden() -> None:
    golden("summary.md", render_markdown(CANDIDATE, RESULT, BASELINE))


def test_markdown_sections() -> None:
    text = render_markdown(CANDIDATE, RESULT, BASELINE)
    assert text.startswith("## ❌ support-bot: gate into test failed")
    for heading in ("Pass rate per suite", "Gate reasons", "Changes vs baseline", "Top failures"):
        assert f"### {heading}" in text
    assert "| smoke/order-status | 3/3 | 0/3 | ⬇️ regressed |" in text
    assert "⬆️ fixed" in text and "worse (not significant)" in text
    assert "6 of 24 (25%)" in text  # cache hits
    ok = render_markdown(BASELINE)
    assert ok.startswith("## ❌ support-bot: eval: 1 of 8 cases did not pass")


def test_markdown_neutralises_model_text() -> None:
    text = render_markdown(CANDIDATE, RESULT, BASELINE)
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "@octocat" not in text and "@\u200boctocat" in text
    assert "#12" not in text and "\\#\u200b12" in text
    for line in text.splitlines():
        if line.startswith("| smoke/refund"):
            assert line.count(" | ") == 3, "a pipe in model text must not add a column"
    assert md_text("a\n\nb|c") == "a b\\|c"


def test_markdown_stays_under_the_comment_limit() -> None:
    reason = "x" * 500
    many = [
        CaseResult(
            suite="s",
            case_id=f"case-{i:05d}",
            samples=(Sample("error", "", error=reason),),
        )
        for i in range(3000)
    ]
    run = fixed_run(many, "r")
    gate = evaluate_gate("prod", Gate.model_validate({"suites": ["s"]}), run, None)
    text = render_markdown(run, gate, top_failures=3000)
    assert len(text.encode("utf-16-le")) // 2 <= 65_536
    assert "Truncated" in text.splitlines()[-1]
    assert "… and 2951 more reasons in report.json" in text
    small = render_markdown(run, gate, top_failures=3000, limit=5_000)
    assert len(small) <= 5_000 and "Truncated" in small


# --------------------------------------------------------------------------- write_reports


def test_write_reports_writes_every_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "nested"
    paths = write_reports(target, CANDIDATE, RESULT, BASELINE)
    assert {k: p.name for k, p in paths.items()} == REPORT_FILES
    assert sorted(p.name for p in target.iterdir()) == sorted(REPORT_FILES.values())
    assert paths["json"].read_text(encoding="utf-8") == render_json(CANDIDATE, RESULT, BASELINE)
    again = write_reports(target, BASELINE)
    assert load_report(again["json"]).run == BASELINE
    assert sorted(p.name for p in target.iterdir()) == sorted(REPORT_FILES.values())


def test_write_reports_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_reports(tmp_path, BASELINE)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_reports(tmp_path, CANDIDATE, RESULT)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before, "no temp file left"
