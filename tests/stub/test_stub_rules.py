"""Scripted replies: first match wins, templates, scopes, echo, and rules files whose
mistakes are reported with the file, the rule and the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmops.domain.errors import InvalidInput, SourceError
from llmops.stub.rules import Rule, load_rules, parse_rules, render, reply_for

RULES = (
    Rule.of(r"(?i)capital of (?P<country>\w+)", "The capital of {country} is Stubville."),
    Rule.of(r"(\d+) \+ (\d+)", "{1} plus {2} is a number ({match})"),
    Rule.of(r"refund", '{"intent": "refund", "said": "{input}"}', scope="conversation"),
    Rule.of(r"capital", "never reached: the first rule wins"),
)


def ask(*messages: tuple[str, str]) -> str:
    return reply_for(RULES, messages)


def test_first_matching_rule_wins_with_named_groups() -> None:
    assert ask(("user", "What is the CAPITAL of France?")) == "The capital of France is Stubville."


def test_numbered_groups_and_the_whole_match() -> None:
    assert ask(("user", "what is 2 + 3")) == "2 plus 3 is a number (2 + 3)"


def test_conversation_scope_sees_earlier_messages_and_json_braces_survive() -> None:
    conversation = (("system", "refund desk"), ("user", "hello"))
    assert ask(*conversation) == '{"intent": "refund", "said": "hello"}'
    assert ask(("user", "hello")) == "echo: hello"  # last-message rules do not see the system


def test_echo_uses_the_last_user_message() -> None:
    messages = (("user", "first"), ("assistant", "ok"), ("user", "second"), ("assistant", "x"))
    assert ask(*messages) == "echo: second"
    assert reply_for((), (("system", "only a system"),)) == "echo: only a system"
    assert reply_for((), ()) == "echo: "


def test_unknown_placeholders_and_missing_groups() -> None:
    found = re.search(r"(a)(b)?", "a")
    assert found is not None
    assert render("{1}{2}|{9}|{nope}|{}", found, "in") == "a|{9}|{nope}|{}"


def test_rules_from_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "rules.yaml"
    yaml_file.write_text(
        "rules:\n"
        "  - {match: 'hello', reply: 'Hi there!'}\n"
        "  - {match: 'order (\\d+)', reply: 'Order {1} shipped.', scope: conversation}\n"
    )
    rules = load_rules(yaml_file)
    assert [r.scope for r in rules] == ["last", "conversation"]
    assert reply_for(rules, [("user", "order 42?")]) == "Order 42 shipped."
    json_file = tmp_path / "rules.json"
    json_file.write_text('[{"match": "x", "reply": "y"}]')
    assert reply_for(load_rules(json_file), [("user", "x")]) == "y"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (
            {"rules": [{"match": "(", "reply": "x"}]},
            "rules[0].match: not a valid regular expression",
        ),
        ({"rules": [{"match": "a"}]}, "rules[0].reply: required field is missing"),
        ({"rules": [{"match": "a", "reply": 3}]}, "rules[0].reply: must be a string (got int)"),
        ({"rules": [{"match": "a", "reply": "b", "when": 1}]}, "rules[0]: unknown key(s) when"),
        ({"rules": [{"match": "a", "reply": "b", "scope": "all"}]}, "rules[0].scope: must be one"),
        ({"rules": ["hello"]}, "rules[0]: must be a mapping"),
        ({"rules": {"match": "a"}}, "expected 'rules:' with a list"),
        ({"rule": []}, "unknown top-level key(s) rule"),
        (None, "expected 'rules:' with a list"),
    ],
)
def test_bad_rules_say_where_and_what(data: object, says: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_rules(data, "my-rules.yaml")
    assert str(info.value).startswith("my-rules.yaml: ")
    assert says in str(info.value)


def test_unreadable_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        load_rules(tmp_path / "missing.yaml")
    with pytest.raises(SourceError, match="is a directory"):
        load_rules(tmp_path)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("rules:\n  - {match: 'a', reply: 'b'\n")
    with pytest.raises(InvalidInput, match=r"bad.yaml:\d+:\d+: not valid YAML"):
        load_rules(bad_yaml)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"rules": [}')
    with pytest.raises(InvalidInput, match=r"bad.json:1:12: not valid JSON"):
        load_rules(bad_json)
