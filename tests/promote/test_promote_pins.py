"""Pin rewriting: golden files for every layout, and a property test over pins and layouts
(the result parses to the same document with only that pin changed; comments, order,
quoting and line endings stay)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.manifests import yamldoc
from llmops.promote.pins import PinEditError, pin_mark, read_pin, set_pin

GOLDENS = Path(__file__).parent / "goldens"
RELEASE = "support-bot@sha256:" + "a" * 64
CASES = sorted(p.stem for p in (GOLDENS / "in").glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str) -> None:
    source = (GOLDENS / "in" / f"{name}.yaml").read_bytes().decode("utf-8")
    result = set_pin(source, "support-bot", RELEASE)
    expected_file = GOLDENS / "out" / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDENS"):
        expected_file.write_bytes(result.encode("utf-8"))
    assert result == expected_file.read_bytes().decode("utf-8")
    assert read_pin(result, "support-bot") == RELEASE
    assert set_pin(result, "support-bot", RELEASE) == result  # idempotent
    if "\r\n" in source:
        assert result.count("\n") == result.count("\r\n")


def test_every_golden_has_an_expected_output() -> None:
    assert sorted(p.stem for p in (GOLDENS / "out").glob("*.yaml")) == CASES


def test_pin_mark_points_at_the_value() -> None:
    text = (GOLDENS / "out" / "block-append.yaml").read_text()
    mark = pin_mark(text, "support-bot")
    line = text.splitlines()[mark.line - 1]
    assert line[mark.column - 1 :].startswith(f"'{RELEASE}'")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("kind: Environment\n", "no spec mapping"),
        ("spec:\n  releases: [a, b]\n", "must be a mapping"),
        ("spec:\n  releases: {support-bot: {a: 1}}\n", "not a single value"),
        ("spec: {releases: {a: 1}\n", "YAML syntax error"),
        (
            "spec:\n  releases: &pins\n    support-bot: x\n  overrides: {copy: *pins}\n",
            "without changing other values",
        ),
    ],
)
def test_refuses_what_it_cannot_edit_safely(text: str, words: str) -> None:
    with pytest.raises(PinEditError, match=words):
        set_pin(text, "support-bot", RELEASE)


def test_rejects_a_malformed_release() -> None:
    with pytest.raises(PinEditError, match="not a release id"):
        set_pin("spec: {}\n", "support-bot", "support-bot@latest")


# --------------------------------------------------------------------------- property

APPS = ["alpha", "beta", "support-bot", "null", "x1"]
hexes = st.text("0123456789abcdef", min_size=64, max_size=64)
styles = st.sampled_from(["plain", "single", "double"])


def _value(release: str, style: str) -> str:
    return {"plain": release, "single": f"'{release}'", "double": f'"{release}"'}[style]


def _key(app: str) -> str:
    return '"null"' if app == "null" else app


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[str, str] | None, str]:
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    ind = " " * draw(st.sampled_from([2, 4]))
    layout = draw(st.sampled_from(["missing", "empty", "null", "flow", "flow-lines", "block"]))
    apps = draw(st.lists(st.sampled_from(APPS), unique=True, max_size=3))
    if layout in ("missing", "empty", "null"):
        apps = []
    if layout == "block" and not apps:
        apps = ["beta"]
    pins = {app: f"{app}@sha256:{draw(hexes)}" for app in apps}
    comments = draw(st.booleans())
    lines = ["# an environment", "apiVersion: llmops.dev/v1", "kind: Environment", "spec:"]
    lines += [f"{ind}target:", f"{ind}{ind}kind: local"]
    if comments:
        lines.append(f"{ind}# the pins")
    entries = [f"{_key(a)}: {_value(r, draw(styles))}" for a, r in pins.items()]
    if layout == "empty":
        lines.append(f"{ind}releases:" + ("  # none yet" if comments else ""))
    elif layout == "null":
        lines.append(f"{ind}releases: null")
    elif layout == "flow":
        lines.append(f"{ind}releases: {{{', '.join(entries)}}}" + ("  # flow" if comments else ""))
    elif layout == "flow-lines":
        lines.append(f"{ind}releases: {{")
        lines += [f"{ind}{ind}{e}," for e in entries]
        lines.append(f"{ind}}}")
    elif layout == "block":
        lines.append(f"{ind}releases:")
        for entry in entries:
            lines.append(f"{ind}{ind}{entry}" + ("  # pinned" if comments else ""))
    if draw(st.booleans()):
        lines += [f"{ind}overrides:", f"{ind}{ind}alpha: {{replicas: 2}}"]
    if comments:
        lines.append("# the end")
    text = nl.join(lines) + (nl if draw(st.booleans()) else "")
    target = draw(st.sampled_from(APPS))
    release = f"{target}@sha256:{draw(hexes)}"
    expected = None if layout in ("empty", "null") else (pins if layout != "missing" else None)
    return text, expected, f"{target}\t{release}"


@settings(max_examples=300, deadline=None)
@given(documents())
def test_set_pin_changes_only_that_pin(case: tuple[str, dict[str, str] | None, str]) -> None:
    text, pins, target = case
    app, release = target.split("\t")
    before = yamldoc.parse(text).data
    assert before["spec"].get("releases") == pins
    result = set_pin(text, app, release)

    after = yamldoc.parse(result).data
    expected = {**before, "spec": {**before["spec"], "releases": {**(pins or {}), app: release}}}
    assert after == expected
    assert list(after["spec"])[: len(before["spec"])] == list(before["spec"])  # key order kept
    # every comment and every line not about the pins survives, in order
    kept = iter(result.splitlines())
    for line in text.splitlines():
        if "releases" in line or line.strip().startswith(f"{_key(app)}:") or line.strip() == "}":
            continue
        assert any(line == out for out in kept), line
    if "\r\n" in text:
        assert result.count("\n") == result.count("\r\n")
    assert set_pin(result, app, release) == result
    if pins and app in pins:  # replacing and replacing back restores the text exactly
        assert set_pin(result, app, pins[app]) == text
