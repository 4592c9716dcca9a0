"""Scripted replies of the stub model; called by its server and ``llmops stub-model``.

A rule is a regular expression and a reply. The first rule whose pattern is found
(``re.search``) in the last user message (``scope: last``, the default) or in the whole
conversation (``scope: conversation``, one ``role: content`` line per message) answers;
when none matches the stub echoes the last user message as ``echo: <message>``.

Replies are templates: ``{match}`` (or ``{0}``) is the matched text, ``{1}``, ``{2}``…
its groups, ``{name}`` a named group, ``{input}`` the last user message. Any other
brace is kept as written, so JSON replies need no escaping.

Rules files are YAML or JSON::

    rules:
      - {match: "(?i)capital of (\\w+)", reply: "The capital of {1} is Stubville."}
      - {match: "refund", reply: '{"intent": "refund"}', scope: conversation}
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmops.domain.errors import InvalidInput, SourceError

Scope = Literal["last", "conversation"]
SCOPES: tuple[Scope, ...] = ("last", "conversation")
ECHO_PREFIX = "echo: "

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_RULE_KEYS = ("match", "reply", "scope")


class RuleError(ValueError):
    """A rule that cannot be used; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One scripted reply."""

    pattern: re.Pattern[str]
    reply: str
    scope: Scope = "last"

    @classmethod
    def of(cls, match: str, reply: str, scope: Scope = "last") -> Rule:
        """A rule from a pattern string; raises :class:`RuleError` for a bad pattern."""
        try:
            pattern = re.compile(match)
        except re.error as exc:
            raise RuleError(f"match: not a valid regular expression: {exc}") from exc
        if scope not in SCOPES:
            raise RuleError(f"scope: must be one of {', '.join(SCOPES)} (got {scope!r})")
        return cls(pattern, reply, scope)


def render(template: str, found: re.Match[str], last_user: str) -> str:
    """``template`` with ``{match}``, ``{N}``, ``{name}`` and ``{input}`` filled in."""
    named = found.groupdict()

    def fill(placeholder: re.Match[str]) -> str:
        key = placeholder.group(1)
        if key in ("match", "0"):
            return found.group(0)
        if key == "input":
            return last_user
        if key.isdigit() and int(key) <= (found.re.groups or 0):
            return found.group(int(key)) or ""
        if key in named:
            return named[key] or ""
        return placeholder.group(0)

    return _PLACEHOLDER.sub(fill, template)


def reply_for(
    rules: Sequence[Rule], messages: Sequence[tuple[str, str]], echo_prefix: str = ECHO_PREFIX
) -> str:
    """The stub's reply to ``messages`` (``(role, content)`` pairs, oldest first)."""
    users = [content for role, content in messages if role == "user"]
    last_user = users[-1] if users else (messages[-1][1] if messages else "")
    conversation = "\n".join(f"{role}: {content}" for role, content in messages)
    for rule in rules:
        found = rule.pattern.search(last_user if rule.scope == "last" else conversation)
        if found is not None:
            return render(rule.reply, found, last_user)
    return f"{echo_prefix}{last_user}"


def parse_rules(data: Any, source: str) -> tuple[Rule, ...]:
    """Rules from parsed YAML/JSON (``{rules: [...]}`` or a bare list).

    Raises ``InvalidInput`` naming ``source``, the rule's position and what is wrong.
    """
    items = data.get("rules") if isinstance(data, dict) else data
    if isinstance(data, dict) and set(data) - {"rules"}:
        extra = ", ".join(sorted(map(str, set(data) - {"rules"})))
        raise InvalidInput(f"{source}: unknown top-level key(s) {extra}; only 'rules' is allowed")
    if not isinstance(items, list):
        raise InvalidInput(
            f"{source}: expected 'rules:' with a list of {{match: <regex>, reply: <text>}}"
        )
    rules: list[Rule] = []
    for index, item in enumerate(items):
        where = f"{source}: rules[{index}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}: must be a mapping {{match: <regex>, reply: <text>}}")
        unknown = sorted(str(k) for k in item if k not in _RULE_KEYS)
        if unknown:
            allowed = ", ".join(_RULE_KEYS)
            raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
        for key in ("match", "reply"):
            if key not in item:
                raise InvalidInput(f"{where}.{key}: required field is missing")
            if not isinstance(item[key], str):
                kind = type(item[key]).__name__
                raise InvalidInput(f"{where}.{key}: must be a string (got {kind}); quote it")
        scope = item.get("scope", "last")
        try:
            rules.append(Rule.of(item["match"], item["reply"], scope))
        except RuleError as exc:
            raise InvalidInput(f"{where}.{exc}") from exc
    return tuple(rules)


def load_rules(path: Path) -> tuple[Rule, ...]:
    """Rules from a YAML or JSON file; ``SourceError``/``InvalidInput`` say what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SourceError(f"rules file {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise SourceError(f"rules file {path} is a directory, not a file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"rules file {path} cannot be read: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"
            ) from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise InvalidInput(f"{path}{at}: not valid YAML: {problem}") from exc
    return parse_rules(data, str(path))
