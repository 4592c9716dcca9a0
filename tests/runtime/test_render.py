"""Rendering an app's prompt: strict undefined, built-ins, includes from the app directory
only, templates compiled once, and errors that name the template file and line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmops.domain.errors import ManifestInvalid
from llmops.runtime.errors import RenderFailed
from llmops.runtime.render import compile_prompt

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
    from llmops.runtime.sandbox import RenderLimits

    root = app_dir(tmp_path, {"prompts/user.j2": "{{ q }}{{ q }}"})
    prompt = compile_prompt(root, "d", None, "prompts/user.j2", RenderLimits(max_output_chars=100))
    assert len(prompt.render({"q": "x" * 50}, BUILTINS).messages[0].content) == 100
    with pytest.raises(RenderFailed, match="over the limit of 100 characters"):
        prompt.render({"q": "x" * 51}, BUILTINS)
