"""The simple template reader gives exactly Jinja2's analysis, or steps aside for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.manifests.templates import (
    _GLOBALS,
    TemplateInfo,
    _analyse_simple,
    analyse,
    analyse_jinja,
    environment,
)

ROOT = Path(__file__).resolve().parents[2]

#: Pieces of templates: the simple reader's whole grammar, its near misses, and noise.
FRAGMENTS = [
    "text", " ", "\n", "\r\n", "{", "}", "{{", "}}", "%}", "#}", "{#", "-",
    "{{ x }}", "{{y}}", "{{- x -}}", "{{  loop }}", "{{ range }}", "{{ self }}", "{{ _a1 }}",
    "{{ true }}", "{{ None }}", "{{ 1 }}", "{{ 0 }}", "{{ 'a' }}", '{{ "}}" }}',
    "{{ not x }}", "{{ a and b or not c }}", "{{ a == 'b' }}", "{{ a != 1 }}",
    "{{ a if b else c }}", "{{ a if b }}", "{{ a if b if c else d }}", "{{ a if b else c if d }}",
    "{% if a %}", "{%- if not b -%}", "{% if a == \"x\" %}", "{% elif c != 1 %}", "{% else %}",
    "{%- else -%}", "{% endif %}", "{% endif -%}", "{%endif%}", "{% if a or b and c %}",
    "{# note #}", "{#- note -#}", "{##}", "{#}",
    # near misses: Jinja2 handles (or rejects) these; the reader must step aside
    "{{ }}", "{{ x.y }}", "{{ x|upper }}", "{{ x is defined }}", "{{ -x }}", "{{ a - }}",
    "{{+ a }}", "{%+ if a %}", "{% if a +%}", "{{ 01 }}", "{{ 1.5 }}", "{{ 1abc }}",
    "{{ é }}", "{{ x\n}}", "{{\tx }}", "{{ 'a' 'b' }}", "{{ a == b == c }}", "{{ not }}",
    "{{ in }}", "{{ for }}", "{{ a == not }}", "{% if %}", "{% if a b %}", "{% if a: %}",
    "{% if a if b else c %}", "{% elif x %}", "{% for i in x %}", "{% endfor %}",
    "{% set x = 1 %}", "{% raw %}{{ z }}{% endraw %}", "{% include 'x.j2' %}", "{{ 'a\\'b' }}",
    "{{{ x }}}", "{%%}", "{{ x }}}",
]  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=10).map("".join))
def test_simple_reader_agrees_with_jinja(source: str) -> None:
    jinja = analyse_jinja(source)
    simple = _analyse_simple(source)
    if simple is not None:
        assert isinstance(jinja, TemplateInfo), source
        # equal, first lines included, and in the order Jinja2's walk meets the names
        assert list(simple.variables.items()) == list(jinja.variables.items()), source
        assert simple.references == jinja.references == ()
    assert analyse(source) == jinja


def test_the_example_templates_need_no_jinja() -> None:
    templates = sorted(ROOT.glob("manifests/*/prompts/*.j2"))
    assert templates
    for path in templates:
        source = path.read_text()
        assert _analyse_simple(source) == analyse_jinja(source), path


@pytest.mark.parametrize(
    ("source", "variables"),
    [
        ("Hi {{ name }}!\n{% if tier == 'gold' -%}\nVIP {{ name }}\n{%- endif %}", {"name": 1, "tier": 2}),
        ('{{ "s" if count != 1 else "" }} {{ loop }} {{ range }}', {"count": 1}),
        ("{# {{ hidden }} #}\n\n{{ shown }}", {"shown": 3}),
    ],
)
def test_simple_reader_examples(source: str, variables: dict[str, int]) -> None:
    found = _analyse_simple(source)
    assert found is not None and found.variables == variables


def test_globals_are_jinjas() -> None:
    assert frozenset(environment().globals) == _GLOBALS
