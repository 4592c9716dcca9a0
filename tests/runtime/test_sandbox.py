"""The template sandbox against a template-injection corpus: every attack written in a
template is blocked with our error naming file:line; passed as an input value, it is inert
text. Resource attacks (huge ranges, loops, strings, numbers, output) fail fast."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from llmops.runtime.errors import RenderFailed
from llmops.runtime.render import CompiledPrompt, compile_prompt
from llmops.runtime.sandbox import RenderLimits

BUILTINS = {"app": "demo", "release": "dev", "environment": "local", "canary": "llmops-canary-x"}

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ range.__globals__ }}",
    "{{ ''|attr('__class__') }}",
    "{{ ''|attr('__class__')|attr('__mro__') }}",
    "{{ (''|attr('\\x5f\\x5fclass\\x5f\\x5f')) }}",
    "{{ request.application.__globals__ }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ [].append(1) }}",
    "{{ {}.update(a=1) }}",
    "{{ ''.format.__globals__ }}",
    "{{ '{0.__class__}'.format('') }}",
    "{{ dict.__base__.__subclasses__() }}",
    "{{ inputs.__class__ }}",
    "{% for c in ''.__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% set x = ''.__class__ %}{{ x }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../../../etc/passwd' %}",
]

RESOURCE_ATTACKS = [
    ("{% for i in range(10**9) %}x{% endfor %}", "range()"),
    ("{% for x in range(99999999) %}{{ x }}{% endfor %}", "range()"),
    ("{{ 'a' * 10**9 }}", "repeated sequence"),
    ("{{ 10**9 * 'a' }}", "repeated sequence"),
    ("{{ ['a'] * 10**9 }}", "repeated sequence"),
    ("{{ 9 ** 999999999 }}", "bits"),
    ("{{ 'x'.center(10**9) }}", "str.center"),
    ("{{ 'x'.ljust(10**9) }}", "str.ljust"),
    ("{{ 'x'|center(10**9) }}", "filter center"),
    ("{{ 'x\\nx'|indent(10**8) }}", "filter indent"),
    ("{{ '%0999999999d' % 1 }}", "format width"),
    ("{{ '%*d' % (10**9, 1) }}", r"\('\*'\)"),
    ("{{ '{:>999999999}'.format(1) }}", "format width"),
    ("{{ '{:{w}}'.format(1, w=10**9) }}", "nested"),
    ("{{ ('ab' * 1000)|replace('a', 'x' * 1000) }}", "filter replace"),
    ("{{ ('ab' * 1000).replace('a', 'x' * 1000) }}", "str.replace"),
    ("{{ ('a' * 200000)|replace('a', 'bb') }}", "filter replace"),
    ("{{ range(10000)|join('x' * 100) }}", "filter join"),
    ("{{ [1, 2]|batch(10**9, 'x')|list }}", "linecount"),
    ("{{ lipsum(10**6) }}", "lipsum"),
    (
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "iterations|longer than",
    ),
    (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(30) }}",
        "iterations and calls|longer than",
    ),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recurse"),
    (
        "{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
        "concatenation",
    ),
    ("{% set x = 'a' * 200000 %}{{ [x, x, x, x, x, x] }}", "literal"),
    ("{% for i in range(10000) %}{{ 'y' * 200 }}{% endfor %}", "characters"),
    (
        "{% set s %}{% for i in range(5000) %}" + "z" * 400 + "{% endfor %}{% endset %}ok",
        "characters",
    ),
]


def compiled(
    tmp_path: Path, user: str, files: dict[str, str] | None = None, **limits: Any
) -> CompiledPrompt:
    app_dir = tmp_path / "app"
    (app_dir / "prompts").mkdir(parents=True, exist_ok=True)
    (app_dir / "prompts" / "user.j2").write_text(user, encoding="utf-8")
    for rel, text in (files or {}).items():
        (app_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (app_dir / rel).write_text(text, encoding="utf-8")
    return compile_prompt(app_dir, "manifests/app", None, "prompts/user.j2", RenderLimits(**limits))


def render(prompt: CompiledPrompt, **inputs: Any) -> str:
    return prompt.render(inputs, BUILTINS).messages[-1].content


@pytest.mark.parametrize("source", ESCAPES)
def test_escapes_written_in_a_template_are_blocked(tmp_path: Path, source: str) -> None:
    try:
        prompt = compiled(tmp_path, "line one\n" + source + "\n")
    except Exception as exc:  # includes outside the app are refused when the app loads
        assert "outside" in str(exc) or "must" in str(exc), exc
        return
    with pytest.raises(RenderFailed) as caught:
        render(prompt)
    message = caught.value.message
    assert message.startswith("manifests/app/prompts/user.j2:2: "), message
    assert "Traceback" not in message


@pytest.mark.parametrize("source", ESCAPES)
def test_escapes_passed_as_input_values_are_inert_text(tmp_path: Path, source: str) -> None:
    prompt = compiled(tmp_path, "Q: {{ question }} | {{ inputs.question }}")
    assert render(prompt, question=source) == f"Q: {source} | {source}"


@pytest.mark.parametrize(("source", "needle"), RESOURCE_ATTACKS)
def test_resource_attacks_fail_fast_with_a_clear_error(
    tmp_path: Path, source: str, needle: str
) -> None:
    prompt = compiled(tmp_path, source)
    started = time.monotonic()
    with pytest.raises(RenderFailed) as caught:
        render(prompt)
    assert time.monotonic() - started < 3.0
    assert caught.value.file == "manifests/app/prompts/user.j2"
    assert re.search(needle, caught.value.message), caught.value.message


def test_the_wall_clock_bounds_a_render(tmp_path: Path) -> None:
    source = (
        "{% for i in range(10000) %}{% for j in range(10000) %}{{ '' }}{% endfor %}{% endfor %}"
    )
    prompt = compiled(tmp_path, source, max_steps=10**12, max_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(RenderFailed, match=r"longer than 0\.2 s"):
        render(prompt)
    assert time.monotonic() - started < 2.0


def test_the_budget_is_per_render(tmp_path: Path) -> None:
    prompt = compiled(tmp_path, "{% for i in range(900) %}.{% endfor %}", max_steps=1000)
    for _ in range(3):
        assert render(prompt) == "." * 900


def test_ordinary_templates_still_work(tmp_path: Path) -> None:
    source = (
        "{% set ns = namespace(n=0) %}{% for w in words %}{% set ns.n = ns.n + 1 %}"
        "{{ loop.index }}={{ w|upper }}{{ ', ' if not loop.last }}{% endfor %} "
        "({{ ns.n }}) {{ '%s-%03d' % ('a', 7) }} {{ '{}:{}'.format(1, 2) }} "
        "{{ words|join('/') }} {{ {'k': [1, 2]}|tojson }} {{ 'x'|center(5) }}| "
        "{{ range(3)|list }} {{ 2 ** 10 }} {{ 'ab' * 2 }} {{ words|length }} {{ none_value }}"
    )
    out = render(compiled(tmp_path, source), words=["a", "b"], none_value=None)
    assert out == '1=A, 2=B (2) a-007 1:2 a/b {"k": [1, 2]}   x  | [0, 1, 2] 1024 abab 2 '
