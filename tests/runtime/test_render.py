"""Rendering an app's prompt: strict undefined, built-ins, includes from the app directory
only, templates compiled once, errors that name the template file and line, and the two
shortcuts (plain templates, the system-message cache) giving what Jinja gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmops.domain.errors import ManifestInvalid
from llmops.runtime.errors import RenderFailed
from llmops.runtime.render import CACHE_ENTRIES, CompiledPrompt, compile_prompt
from llmops.runtime.sandbox import RenderLimits

BUILTINS = {"app": "demo", "release": "dev", "environment": "local", "canary": "llmops-canary-abc"}


def app_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "demo"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_system_and_user_messages_with_builtins(tmp_path: Path) -> None:
    root = app_dir(
        tmp_path,
        {
            "prompts/system.j2": "{{ app }} {{ release }} {{ environment }} {{ canary }}\n",
            "prompts/user.j2": "{% for k, v in inputs.items() %}{{ k }}={{ v }};{% endfor %}\n",
        },
    )
    prompt = compile_prompt(root, "manifests/demo", "prompts/system.j2", "prompts/user.j2")
    rendered = prompt.render({"q": "hi", "n": 2}, BUILTINS)
    assert [(m.role, m.content) for m in rendered.messages] == [
        ("system", "demo dev local llmops-canary-abc"),
        ("user", "q=hi;n=2;"),
    ]
    assert rendered.inputs == {"q": "hi", "n": 2}
    assert prompt.files == ("manifests/demo/prompts/system.j2", "manifests/demo/prompts/user.j2")


def test_undefined_names_fail_with_file_and_line(tmp_path: Path) -> None:
    root = app_dir(tmp_path, {"prompts/user.j2": "ok\n{% if q %}\n{{ missing }}\n{% endif %}\n"})
    prompt = compile_prompt(root, "manifests/demo", None, "prompts/user.j2")
    with pytest.raises(RenderFailed) as caught:
        prompt.render({"q": "x"}, BUILTINS)
    assert caught.value.message.startswith(
        "manifests/demo/prompts/user.j2:3: 'missing' is undefined"
    )
    assert (caught.value.file, caught.value.line) == ("manifests/demo/prompts/user.j2", 3)


def test_errors_inside_an_included_template_name_that_file(tmp_path: Path) -> None:
    root = app_dir(
        tmp_path,
        {
            "prompts/user.j2": "{% include 'prompts/parts/footer.j2' %}\n",
            "prompts/parts/footer.j2": "line 1\nline 2 {{ 1 // zero }}\n",
        },
    )
    prompt = compile_prompt(root, "manifests/demo", None, "prompts/user.j2")
    assert prompt.files[-1] == "manifests/demo/prompts/parts/footer.j2"
    with pytest.raises(
        RenderFailed, match=r"^manifests/demo/prompts/parts/footer.j2:2: ZeroDivisionError"
    ):
        prompt.render({"zero": 0}, BUILTINS)
    assert prompt.render({"zero": 1}, BUILTINS).messages[0].content == "line 1\nline 2 1"


def test_none_renders_as_empty_text(tmp_path: Path) -> None:
    root = app_dir(tmp_path, {"prompts/user.j2": "[{{ note }}]"})
    prompt = compile_prompt(root, "d", None, "prompts/user.j2")
    assert prompt.render({"note": None}, BUILTINS).messages[0].content == "[]"


def test_syntax_errors_are_manifest_diagnostics_with_a_line(tmp_path: Path) -> None:
    root = app_dir(tmp_path, {"prompts/user.j2": "fine\n{% if %}\n"})
    with pytest.raises(ManifestInvalid) as caught:
        compile_prompt(root, "manifests/demo", None, "prompts/user.j2")
    diagnostic = caught.value.diagnostics[0]
    assert (diagnostic.file, diagnostic.line) == ("manifests/demo/prompts/user.j2", 2)
    assert "syntax error" in diagnostic.message


@pytest.mark.parametrize(
    "include",
    ["../secret.j2", "/etc/passwd", "prompts/../../secret.j2", "prompts\\\\x.j2", "nope.j2"],
)
def test_includes_stay_inside_the_app_directory(tmp_path: Path, include: str) -> None:
    (tmp_path / "secret.j2").write_text("TOP SECRET", encoding="utf-8")
    root = app_dir(tmp_path, {"prompts/user.j2": f"{{% include '{include}' %}}"})
    with pytest.raises(ManifestInvalid) as caught:
        compile_prompt(root, "manifests/demo", None, "prompts/user.j2")
    assert "TOP SECRET" not in caught.value.message


def test_a_symlink_out_of_the_app_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.j2").write_text("TOP SECRET", encoding="utf-8")
    root = app_dir(tmp_path, {"prompts/user.j2": "{% include 'prompts/link.j2' %}"})
    os.symlink(tmp_path / "secret.j2", root / "prompts" / "link.j2")
    with pytest.raises(ManifestInvalid, match="leads outside the app directory"):
        compile_prompt(root, "manifests/demo", None, "prompts/user.j2")


def test_a_symlink_inside_the_app_directory_is_fine(tmp_path: Path) -> None:
    root = app_dir(
        tmp_path, {"prompts/user.j2": "{% include 'prompts/link.j2' %}", "shared.j2": "shared"}
    )
    os.symlink(root / "shared.j2", root / "prompts" / "link.j2")
    prompt = compile_prompt(root, "d", None, "prompts/user.j2")
    assert prompt.render({}, BUILTINS).messages[0].content == "shared"


def test_templates_are_compiled_once_and_never_read_again(tmp_path: Path) -> None:
    root = app_dir(
        tmp_path,
        {"prompts/user.j2": "A {% include 'prompts/b.j2' %}", "prompts/b.j2": "B {{ x }}"},
    )
    prompt = compile_prompt(root, "d", None, "prompts/user.j2")
    (root / "prompts" / "user.j2").write_text("CHANGED", encoding="utf-8")
    (root / "prompts" / "b.j2").unlink()
    assert prompt.render({"x": 1}, BUILTINS).messages[0].content == "A B 1"


def test_a_template_name_computed_at_render_time_is_refused(tmp_path: Path) -> None:
    root = app_dir(tmp_path, {"prompts/user.j2": "{% include name %}", "prompts/other.j2": "other"})
    prompt = compile_prompt(root, "d", None, "prompts/user.j2")
    with pytest.raises(RenderFailed, match="was not loaded with the app"):
        prompt.render({"name": "prompts/other.j2"}, BUILTINS)


def test_an_input_is_never_compiled_as_a_template(tmp_path: Path) -> None:
    root = app_dir(tmp_path, {"prompts/user.j2": "{{ q }}"})
    prompt = compile_prompt(root, "d", None, "prompts/user.j2")
    text = "{{ 7 * 7 }} {% for i in range(3) %}x{% endfor %} {{ canary }}"
    assert prompt.render({"q": text}, BUILTINS).messages[0].content == text


def test_the_rendered_size_is_bounded(tmp_path: Path) -> None:
    root = app_dir(tmp_path, {"prompts/user.j2": "{{ q }}{{ q }}"})
    prompt = compile_prompt(root, "d", None, "prompts/user.j2", RenderLimits(max_output_chars=100))
    assert len(prompt.render({"q": "x" * 50}, BUILTINS).messages[0].content) == 100
    with pytest.raises(RenderFailed, match="over the limit of 100 characters"):
        prompt.render({"q": "x" * 51}, BUILTINS)


# -- the two shortcuts: plain templates and the system-message cache ---------------------


def test_plain_templates_render_as_jinja_does(tmp_path: Path) -> None:
    """Text and ``{{ name }}`` only: rendered without Jinja, to the same text (None as
    empty text, the trailing newline dropped, values printed with ``str``)."""
    root = app_dir(tmp_path, {"prompts/user.j2": "Q: {{ q }} / {{ n }} / {{ empty }}\n"})
    prompt = compile_prompt(root, "manifests/demo", None, "prompts/user.j2")
    assert prompt.user_plain is not None
    rendered = prompt.render({"q": "{{ 7 * 7 }}", "n": -0.0, "empty": None}, BUILTINS)
    assert rendered.messages[-1].content == "Q: {{ 7 * 7 }} / -0.0 / "


def test_plain_templates_leave_errors_to_jinja(tmp_path: Path) -> None:
    root = app_dir(tmp_path, {"prompts/user.j2": "line 1\nline 2 {{ missing }}\n"})
    prompt = compile_prompt(root, "d", None, "prompts/user.j2", RenderLimits(max_value_chars=10))
    with pytest.raises(RenderFailed) as caught:
        prompt.render({}, BUILTINS)
    assert (caught.value.file, caught.value.line) == ("d/prompts/user.j2", 2)
    root = app_dir(tmp_path, {"prompts/user.j2": "a\n{{ q }}\n"})
    prompt = compile_prompt(root, "d", None, "prompts/user.j2", RenderLimits(max_value_chars=10))
    with pytest.raises(RenderFailed, match="the limit is 10") as caught:
        prompt.render({"q": "x" * 11}, BUILTINS)
    assert caught.value.line == 2


@pytest.mark.parametrize(
    "source",
    ["{% if q %}{{ q }}{% endif %}", "{{ q|upper }}", "{{ self }}", "{% include 'p.j2' %}"],
)
def test_templates_with_more_than_names_are_not_plain(tmp_path: Path, source: str) -> None:
    root = app_dir(tmp_path, {"prompts/user.j2": source, "p.j2": "x"})
    assert compile_prompt(root, "d", None, "prompts/user.j2").user_plain is None


def system_prompt(
    tmp_path: Path, source: str, limits: RenderLimits | None = None
) -> CompiledPrompt:
    root = app_dir(tmp_path, {"prompts/system.j2": source, "prompts/user.j2": "{{ q }}"})
    return compile_prompt(root, "d", "prompts/system.j2", "prompts/user.j2", limits)


def system_text(prompt: CompiledPrompt, **inputs: object) -> str:
    return prompt.render({"q": "", **inputs}, BUILTINS).messages[0].content


def test_the_system_message_is_cached_by_the_values_it_reads(tmp_path: Path) -> None:
    prompt = system_prompt(tmp_path, "{% if tier == 'pro' %}Pro{% else %}{{ tier }}{% endif %}")
    cache = prompt.system_cache
    assert cache is not None and cache.names == ("tier",), "only what the system reads"
    assert system_text(prompt, tier="pro", q="a") == "Pro"
    assert system_text(prompt, tier="pro", q="b") == "Pro"
    assert len(cache.entries) == 1, "another question does not make another entry"
    assert system_text(prompt, tier="free", q="a") == "free"
    # equal in Python, printed differently: never one entry
    assert [system_text(prompt, tier=v) for v in (1, 1.0, True, 0.0, -0.0)] == [
        "1",
        "1.0",
        "True",
        "0.0",
        "-0.0",
    ]
    assert system_text(prompt, tier=[1]) == "[1]", "a list is rendered, not cached"
    assert len(cache.entries) == 7


def test_a_cache_hit_charges_the_render_budget(tmp_path: Path) -> None:
    """The system message emits 60 characters, the user message 50: over a budget of 100
    on the first render and on every later one, cached or not."""
    prompt = system_prompt(tmp_path, "{{ tier * 60 }}", RenderLimits(max_emitted_chars=100))
    assert prompt.system_cache is not None
    assert system_text(prompt, tier="x", q="y" * 30) == "x" * 60
    for _ in range(2):
        with pytest.raises(RenderFailed, match="more than 100 characters"):
            system_text(prompt, tier="x", q="y" * 50)


@pytest.mark.parametrize("source", ["{{ [1, 2, 3]|random }}", "{{ lipsum(1) }}"])
def test_templates_that_may_differ_for_the_same_values_are_not_cached(
    tmp_path: Path, source: str
) -> None:
    assert system_prompt(tmp_path, source).system_cache is None


def test_an_included_template_is_part_of_the_cache_key(tmp_path: Path) -> None:
    root = app_dir(
        tmp_path,
        {
            "prompts/system.j2": "S {% include 'prompts/part.j2' %}",
            "prompts/part.j2": "{{ tone }}",
            "prompts/user.j2": "{{ q }}",
        },
    )
    prompt = compile_prompt(root, "d", "prompts/system.j2", "prompts/user.j2")
    assert prompt.system_cache is not None and prompt.system_cache.names == ("tone",)
    assert system_text(prompt, tone="warm") == "S warm"
    assert system_text(prompt, tone="cold") == "S cold"


def test_the_cache_is_bounded(tmp_path: Path) -> None:
    prompt = system_prompt(tmp_path, "{% if n %}{{ n }}{% endif %}")
    cache = prompt.system_cache
    assert cache is not None
    for n in range(CACHE_ENTRIES + 10):
        assert system_text(prompt, n=n) == (str(n) if n else "")
    assert len(cache.entries) <= CACHE_ENTRIES


def _outcome(prompt: CompiledPrompt, inputs: dict[str, object]) -> object:
    try:
        return [(m.role, m.content) for m in prompt.render(inputs, BUILTINS).messages]
    except RenderFailed as exc:
        return ("failed", str(exc))


@pytest.mark.parametrize(
    ("system", "user"),
    [
        (None, "Q: {{ q }}!"),
        ("You help ({{ tier }}) {{ canary }}", "{{ q }}"),  # both plain
        ("{% if tier == 'pro' %}Pro{% endif %} {{ canary }}", "<{{ q }}>"),  # system cached
        ("{{ tier * 40 }}", "{{ q }}"),  # cached, emits 40 per "x"
        ("{% for c in q %}{{ c }}{% endfor %}", "{{ q }}"),  # inputs read: not cached
        ("{{ tier }}", "{% if q %}{{ q }}{% endif %}"),  # the user template not plain
    ],
)
@pytest.mark.parametrize(
    "inputs",
    [
        {"q": "hello", "tier": "x"},
        {"q": None, "tier": "pro"},
        {"q": 7, "tier": 1.5},
        {"q": [1, "a"], "tier": True},
        {"q": {"k": "v"}, "tier": "x"},
        {"q": "y" * 45, "tier": "x"},  # over the emitted budget with the system's 40
        {"q": ["y" * 20, "y" * 20], "tier": "x"},  # so is this list (it weighs 46)
        {"q": "z" * 70, "tier": "x"},  # over the value limit
        {"q": "w" * 30},  # tier missing
    ],
)
def test_the_budget_free_path_renders_as_the_budgeted_one(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    system: str | None,
    user: str,
    inputs: dict[str, object],
) -> None:
    """Rendering without a budget (templates plain, or the system message cached) gives
    the text, or the error, that rendering in one gives."""
    files = {"prompts/user.j2": user, **({"prompts/system.j2": system} if system else {})}
    root = app_dir(tmp_path, files)
    limits = RenderLimits(max_emitted_chars=80, max_value_chars=60, max_output_chars=200)
    sys_name = "prompts/system.j2" if system else None

    def outcomes() -> list[object]:
        prompt = compile_prompt(root, "d", sys_name, "prompts/user.j2", limits)
        return [_outcome(prompt, inputs) for _ in range(3)]  # a miss, then cache hits

    fast = outcomes()
    monkeypatch.setattr(CompiledPrompt, "_fast", lambda self, context: None)
    assert fast == outcomes()
