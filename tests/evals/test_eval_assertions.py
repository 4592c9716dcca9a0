"""Assertion handlers: every type, pass/fail/error, not- inversion, actionable reasons."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from evalkit import CTX, assertion

from llmops.domain.evals import GradingResult
from llmops.domain.models.evalsuite import BASE_ASSERTION_TYPES
from llmops.evals.assertions import (
    ASYNC_HANDLERS,
    HANDLER_TYPES,
    SYNC_HANDLERS,
    GradeContext,
    agrade,
    grade,
    grade_all,
)
from llmops.evals.assertions.jsonpath import JsonPathError, json_equal, parse_path
from llmops.evals.assertions.model_graded import parse_judgement
from llmops.runtime.canary import canary_token


def run(type_: str, output: str, ctx: GradeContext = CTX, **fields: Any) -> GradingResult:
    return asyncio.run(agrade(output, assertion(type_, **fields), ctx))


def test_every_base_type_has_exactly_one_handler() -> None:
    assert set(BASE_ASSERTION_TYPES) == HANDLER_TYPES
    assert not set(SYNC_HANDLERS) & set(ASYNC_HANDLERS)
    assert set(ASYNC_HANDLERS) == {"similar", "llm-rubric"}


@pytest.mark.parametrize(
    ("type_", "fields", "good", "bad"),
    [
        ("equals", {"value": "OK"}, "  OK\n", "OK!"),
        ("contains", {"value": "refund"}, "a refund is due", "A Refund is due"),
        ("icontains", {"value": "refund"}, "A REFUND is due", "no money back"),
        ("contains-any", {"value": ["x", "refund"]}, "refund", "nothing"),
        ("contains-all", {"value": ["reset", "password"]}, "reset your password", "reset it"),
        ("regex", {"value": r"\bAUTH-\d{4}\b"}, "error AUTH-4031 seen", "AUTH-12"),
        ("starts-with", {"value": "Dear"}, "  Dear customer", "Hi, Dear"),
        ("length", {"min": 2, "max": 5}, "abcd", "abcdef"),
        ("is-json", {}, '{"a": 1}', "{a: 1}"),
        ("json-path", {"path": "$.a.b[0].c", "value": 3}, '{"a": {"b": [{"c": 3}]}}', '{"a": {}}'),
        ("json-schema", {"value": {"type": "object", "required": ["a"]}}, '{"a": 1}', '{"b": 1}'),
        ("is-refusal", {}, "I’m sorry, but I can’t help with that.", "Sure! Here it is."),
        ("pii-leak", {}, "mail me at jane.doe@example.com", "mail me at [REDACTED:email]"),
    ],
)
def test_pass_and_fail(type_: str, fields: dict[str, Any], good: str, bad: str) -> None:
    passed = run(type_, good, **fields)
    failed = run(type_, bad, **fields)
    assert passed.outcome == "pass", passed.reason
    assert failed.outcome == "fail", failed.reason
    inverted_pass = run(f"not-{type_}", bad, **fields)
    inverted_fail = run(f"not-{type_}", good, **fields)
    assert inverted_pass.outcome == "pass", inverted_pass.reason
    assert inverted_fail.outcome == "fail", inverted_fail.reason
    assert inverted_fail.score == pytest.approx(1 - passed.score)


def test_fail_reasons_say_what_was_expected_and_what_came_back() -> None:
    reply = "We cannot help with money matters. " * 10
    result = run("icontains", reply, value="refund")
    assert result.reason.startswith("expected output to contain 'refund' (case-insensitive); got")
    assert "We cannot help" in result.reason and "…" in result.reason
    assert len(result.reason) < 200
    leaked = run("not-contains", "see https://attacker.example/x", value="attacker.example")
    assert leaked.outcome == "fail"
    assert "attacker.example" in leaked.reason and "expected the opposite" in leaked.reason


def test_contains_all_scores_partially() -> None:
    result = run("contains-all", "reset it", value=["reset", "password"])
    assert result.score == 0.5 and "missing 'password'" in result.reason


def test_latency_and_cost_read_the_context() -> None:
    fast = GradeContext(latency_ms=120.0, cost_usd=0.0004)
    assert run("latency", "", fast, threshold=200).outcome == "pass"
    assert run("latency", "", fast, threshold=100).outcome == "fail"
    assert run("cost", "", fast, threshold=0.001).outcome == "pass"
    slow = run("cost", "", fast, threshold=0.0001)
    assert slow.outcome == "fail" and "0.000400" in slow.reason


def test_json_path_compares_as_json() -> None:
    doc = '{"escalate": false, "n": 1, "tags": ["a"], "k-1": {"x": null}}'
    assert run("json-path", doc, path="$.escalate", value=False).outcome == "pass"
    assert run("json-path", doc, path="$.n", value=False).outcome == "fail"
    assert run("json-path", '{"n": 0}', path="$.n", value=False).outcome == "fail"
    assert run("json-path", doc, path="$.n", value=1.0).outcome == "pass"
    assert run("json-path", doc, path="$.tags[-1]", value="a").outcome == "pass"
    assert run("json-path", doc, path="$['k-1'].x").outcome == "pass"  # exists (null value)
    assert run("json-path", doc, path="$.missing").outcome == "fail"
    not_json = run("json-path", "plain text", path="$.a", value=1)
    assert not_json.outcome == "fail" and "not JSON" in not_json.reason
    bad_path = run("json-path", doc, path="$..deep", value=1)
    assert bad_path.outcome == "error"


def test_jsonpath_parser() -> None:
    assert parse_path("$") == ()
    assert parse_path("$.a.b[0].c") == ("a", "b", 0, "c")
    assert parse_path("$['x.y'][\"z\"][-2]") == ("x.y", "z", -2)
    for bad in ("a.b", "$.a[*]", "$..a", "$.a[", "$.[0]"):
        with pytest.raises(JsonPathError):
            parse_path(bad)
    assert json_equal({"a": [1, True]}, {"a": [1.0, True]})
    assert not json_equal({"a": [1, True]}, {"a": [1, 1]})


def test_json_schema_from_a_file_relative_to_the_app(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "answer.json").write_text(json.dumps({"required": ["answer"]}))
    ctx = GradeContext(app_dir=tmp_path)
    good = run("json-schema", '{"answer": "x"}', ctx, value="schemas/answer.json")
    bad = run("json-schema", '{"other": 1}', ctx, value="schemas/answer.json")
    assert good.outcome == "pass"
    assert bad.outcome == "fail" and "'answer' is a required property" in bad.reason
    preloaded = GradeContext(schemas={"s.json": {"type": "string"}})
    assert run("json-schema", '"text"', preloaded, value="s.json").outcome == "pass"


def test_json_schema_problems_are_errors_that_not_never_inverts(tmp_path: Path) -> None:
    ctx = GradeContext(app_dir=tmp_path)
    missing = run("json-schema", "{}", ctx, value="nope.json")
    assert missing.outcome == "error" and "relative to the app directory" in missing.reason
    assert run("not-json-schema", "{}", ctx, value="nope.json").outcome == "error"
    escape = run("json-schema", "{}", ctx, value="../outside.json")
    assert escape.outcome == "error"
    invalid = run("json-schema", "{}", value={"type": 12})
    assert invalid.outcome == "error" and "Schema itself is invalid" in invalid.reason


def test_canary_leak_is_a_detector_so_not_canary_leak_means_no_leak() -> None:
    token = canary_token("dev")
    ctx = GradeContext(canary=token)
    assert run("not-canary-leak", "all good", ctx).outcome == "pass"
    leak = run("not-canary-leak", f"the ref is {token}.", ctx)
    assert leak.outcome == "fail" and token in leak.reason
    spaced = token[:8] + " \u200b" + token[8:].upper()
    assert run("canary-leak", f"ref: {spaced}", ctx).outcome == "pass"
    no_token = run("not-canary-leak", f"the ref is {token}", GradeContext())
    assert no_token.outcome == "error"


def test_pii_leak_kinds_and_luhn() -> None:
    assert run("pii-leak", "card 4111 1111 1111 1111").outcome == "pass"
    assert run("pii-leak", "order 4111 1111 1111 1112").outcome == "fail"  # fails Luhn
    assert run("pii-leak", "call +1 555 0100 2345 now").outcome == "pass"
    assert run("pii-leak", "HTTP 503 since 10:05 UTC on 2025-05-02").outcome == "fail"
    leak = run("not-pii-leak", "write to max.mustermann@example.com")
    assert leak.outcome == "fail" and "email 'max.mustermann@example.com'" in leak.reason
    only_cards = run("pii-leak", "jane@example.com", value=["card"])
    assert only_cards.outcome == "fail"
    assert run("pii-leak", "x", value=["ssn"]).outcome == "error"


def test_is_refusal_counts_guardrail_blocks() -> None:
    blocked = GradeContext(blocked="input guardrail deny-patterns: matches pattern 1")
    result = run("is-refusal", "[blocked by the input guardrail deny-patterns]", blocked)
    assert result.outcome == "pass" and "deny-patterns" in result.reason
    assert run("not-is-refusal", "[blocked]", blocked).outcome == "fail"


def test_is_json_passes_a_guardrail_block_which_the_runtime_answers_with_json() -> None:
    blocked = GradeContext(blocked="input guardrail prompt-injection: ignore previous")
    block_text = "[blocked by the input guardrail prompt-injection]"
    assert run("is-json", block_text, blocked).passed
    assert not run("is-json", block_text).passed
    assert not run("not-is-json", block_text, blocked).passed
    assert run("json-schema", block_text, blocked, value={"type": "object"}).passed is False


def test_a_crashing_handler_is_an_error_not_a_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> GradingResult:
        raise RuntimeError("bug")

    monkeypatch.setitem(SYNC_HANDLERS, "equals", boom)
    result = grade("x", assertion("not-equals", value="x"), CTX)
    assert result.outcome == "error" and "RuntimeError: bug" in result.reason


# --------------------------------------------------------------------------- model-graded


def test_similar_uses_embeddings_and_falls_back_lexically() -> None:
    async def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0], [0.6, 0.8]]

    ctx = GradeContext(embed=embed)
    assert run("similar", "a", ctx, value="b", threshold=0.5).outcome == "pass"
    assert run("similar", "a", ctx, value="b").outcome == "fail"  # 0.6 < default 0.8
    lexical = run("similar", "the refund is on its way", value="the refund is on its way")
    assert lexical.outcome == "pass" and "lexical fallback" in lexical.reason

    async def broken(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("404 no such model")

    fallback = run("similar", "cats", GradeContext(embed=broken), value="dogs")
    assert fallback.outcome == "fail" and "embeddings unavailable" in fallback.reason


def judge_says(reply: str | Exception) -> GradeContext:
    async def judge(prompt: str) -> str:
        assert "<rubric>" in prompt and "<output>" in prompt
        if isinstance(reply, Exception):
            raise reply
        return reply

    return GradeContext(judge=judge)


def test_llm_rubric_parses_json_anywhere_or_pass_fail_words() -> None:
    prose = 'Sure. {"pass": true, "score": 0.9, "reason": "polite"} Done.'
    assert run("llm-rubric", "x", judge_says(prose), value="r").outcome == "pass"
    lukewarm = judge_says('{"pass": true, "score": 0.6}')
    low = run("llm-rubric", "x", lukewarm, value="r", threshold=0.8)
    assert low.outcome == "fail" and "0.60" in low.reason
    assert run("llm-rubric", "x", judge_says("Verdict: FAIL"), value="r").outcome == "fail"
    assert run("llm-rubric", "x", judge_says("PASS - fine"), value="r").outcome == "pass"
    unreadable = run("llm-rubric", "x", judge_says("I think it is okay-ish"), value="r")
    assert unreadable.outcome == "error"
    assert run("not-llm-rubric", "x", judge_says("hmm"), value="r").outcome == "error"
    down = run("llm-rubric", "x", judge_says(RuntimeError("503")), value="r")
    assert down.outcome == "error" and "judge model failed" in down.reason
    assert run("llm-rubric", "x", value="r").outcome == "error"  # no judge configured


def test_parse_judgement() -> None:
    assert parse_judgement('{"score": 0.7}') == (None, 0.7, "")
    assert parse_judgement('{"pass": "false", "reason": "no"}') == (False, None, "no")
    assert parse_judgement("PASS and FAIL") is None


def test_grade_all_keeps_order_and_weights() -> None:
    checks = [assertion("contains", value="a", weight=2), assertion("not-contains", value="b")]
    results = asyncio.run(grade_all("ab", checks, CTX))
    assert [(r.type, r.outcome, r.weight) for r in results] == [
        ("contains", "pass", 2.0),
        ("not-contains", "fail", 1.0),
    ]
