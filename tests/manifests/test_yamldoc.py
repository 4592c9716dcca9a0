"""Unit tests of the position-keeping safe YAML reader ``llmops.manifests.yamldoc``."""

from __future__ import annotations

import time

import pytest

from llmops.manifests.yamldoc import MAX_DEPTH, MAX_NODES, Mark, YamlError, parse


def error_of(text: str) -> YamlError:
    with pytest.raises(YamlError) as caught:
        parse(text)
    return caught.value


# ---- positions


def test_positions_are_one_based_lines_and_columns() -> None:
    doc = parse("apiVersion: v1\nspec:\n  model:\n    name: gpt\n  list:\n    - a\n    - {b: 1}\n")
    assert doc.marks[()] == Mark(1, 1)
    assert doc.marks[("apiVersion",)] == Mark(1, 13)
    assert doc.marks[("spec", "model", "name")] == Mark(4, 11)
    assert doc.marks[("spec", "list", 0)] == Mark(6, 7)
    assert doc.marks[("spec", "list", 1)] == Mark(7, 7)
    assert doc.marks[("spec", "list", 1, "b")] == Mark(7, 11)
    assert doc.key_marks[("spec", "model", "name")] == Mark(4, 5)
    assert doc.key_marks[("spec", "list", 1, "b")] == Mark(7, 8)


def test_mark_for_falls_back_to_the_deepest_existing_prefix() -> None:
    doc = parse("spec:\n  model:\n    name: gpt\n")
    assert doc.mark_for(("spec", "model", "missing", "deeper")) == Mark(3, 5)
    assert doc.mark_for(("nothing",)) == Mark(1, 1)
    assert doc.mark_for(("spec", "model", "name"), key=True) == Mark(3, 5)
    assert doc.mark_for(("spec", "model", "name")) == Mark(3, 11)
    assert doc.mark_for(()) == Mark(1, 1)


def test_flow_style_positions() -> None:
    doc = parse("a: {b: [1, 2], c: x}\n")
    assert doc.marks[("a", "b", 1)] == Mark(1, 12)
    assert doc.key_marks[("a", "c")] == Mark(1, 16)


def test_empty_documents_have_no_data() -> None:
    for text in ("", "\n\n", "# only a comment\n", "---\n"):
        doc = parse(text)
        assert doc.data is None
        assert doc.mark_for(("anything",)).line >= 1


def test_scalars_resolve_like_yaml_1_1_but_dates_stay_text() -> None:
    doc = parse("a: 1\nb: 1.5\nc: true\nd: null\ne: '1'\nf: 2024-01-31\ng: 0x10\nh: yes\n")
    assert doc.data == {
        "a": 1,
        "b": 1.5,
        "c": True,
        "d": None,
        "e": "1",
        "f": "2024-01-31",
        "g": 16,
        "h": True,
    }


# ---- duplicate and odd keys


def test_duplicate_key_names_both_lines_and_the_path() -> None:
    error = error_of("spec:\n  model:\n    name: a\n    name: b\n")
    assert error.mark == Mark(4, 5)
    assert error.path == ("spec", "model", "name")
    assert error.message == "duplicate key 'name' (first at line 3); keep one"


def test_duplicate_top_level_key() -> None:
    error = error_of("kind: A\nkind: B\n")
    assert error.mark == Mark(2, 1)
    assert "duplicate key 'kind'" in error.message


def test_keys_that_look_different_but_read_the_same_are_kept_apart_as_text() -> None:
    # Keys are taken as written: '1' and 1 are the same text, so this is a duplicate.
    error = error_of("'1': a\n1: b\n")
    assert "duplicate key '1'" in error.message


def test_non_scalar_keys_are_rejected() -> None:
    error = error_of("? [a, b]\n: 1\n")
    assert "mapping keys must be plain text" in error.message
    assert error.mark == Mark(1, 3)


# ---- merge keys


def test_merge_key_copies_a_mapping_and_explicit_keys_win() -> None:
    doc = parse("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n")
    assert doc.data["thing"] == {"x": 1, "y": 3}
    # A merged value is located where it was written, in the anchored mapping.
    assert doc.marks[("thing", "x")] == Mark(1, 14)
    assert doc.marks[("thing", "y")] == Mark(4, 6)


def test_merge_of_several_mappings_first_wins() -> None:
    doc = parse("a: &a {x: 1}\nb: &b {x: 2, z: 3}\nc:\n  <<: [*a, *b]\n")
    assert doc.data["c"] == {"x": 1, "z": 3}


def test_nested_merges() -> None:
    doc = parse("a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b, z: 3}\n")
    assert doc.data["c"] == {"x": 1, "y": 2, "z": 3}


def test_duplicate_explicit_keys_next_to_a_merge_are_still_duplicates() -> None:
    error = error_of("a: &a {x: 1}\nc:\n  <<: *a\n  y: 1\n  y: 2\n")
    assert "duplicate key 'y'" in error.message


def test_merge_of_a_non_mapping_is_an_error() -> None:
    error = error_of("a: 1\nc:\n  <<: [x]\n")
    assert error.message == "'<<' merges only mappings"
    assert error.mark == Mark(3, 8)


def test_a_quoted_merge_key_is_an_ordinary_key() -> None:
    assert parse("'<<': {x: 1}\n").data == {"<<": {"x": 1}}


# ---- alias bombs and recursion


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [lol]"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * width)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_bounded() -> None:
    started = time.perf_counter()
    error = error_of(billion_laughs())
    assert time.perf_counter() - started < 5
    assert f"more than {MAX_NODES:,} values" in error.message
    assert error.mark.line >= 1


def test_merge_key_bomb_is_bounded() -> None:
    lines = ["m0: &m0 {a: 1, b: 2}"]
    for i in range(1, 10):
        refs = ", ".join([f"*m{i - 1}"] * 9)
        lines.append(f"m{i}: &m{i} {{<<: [{refs}]}}")
    started = time.perf_counter()
    with pytest.raises(YamlError, match="values"):
        parse("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 5


def test_modest_alias_use_is_fine() -> None:
    doc = parse(billion_laughs(levels=3, width=3))
    assert len(doc.data["a3"]) == 3
    assert doc.data["a3"][0][0] == [["lol"]] * 3


def test_recursive_alias_is_an_error() -> None:
    error = error_of("a: &x [1, *x]\n")
    assert "nests deeper than" in error.message
    assert error.mark.line == 1


def test_recursive_mapping_alias_is_an_error() -> None:
    with pytest.raises(YamlError, match="nests deeper than"):
        parse("a: &x {b: *x}\n")


def test_recursive_merge_is_an_error() -> None:
    with pytest.raises(YamlError, match=r"merge keys nest too deeply"):
        parse("a: &x {<<: *x}\n")


def test_deep_nesting_is_bounded() -> None:
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    with pytest.raises(YamlError, match=f"deeper than {MAX_DEPTH}"):
        parse(deep)
    shallow = "[" * 10 + "]" * 10
    assert parse(shallow).data == [[[[[[[[[[]]]]]]]]]]


def test_undefined_alias_is_a_syntax_error() -> None:
    error = error_of("a: *nowhere\n")
    assert error.message.startswith("YAML syntax error:")
    assert error.mark == Mark(1, 4)


# ---- tags


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a: !!python/object/apply:os.system [ls]\n", "!!python/object/apply:os.system"),
        ("a: !!python/name:os.system ''\n", "!!python/name:os.system"),
        ("a: !!binary aGVsbG8=\n", "!!binary"),
        ("a: !!set {x: null}\n", "!!set"),
        ("a: !!omap [{x: 1}]\n", "!!omap"),
        ("a: !include other.yaml\n", "!include"),
        ("a: !Ref thing\n", "!Ref"),
    ],
)
def test_unknown_tags_are_rejected_with_their_written_name(text: str, shown: str) -> None:
    error = error_of(text)
    assert error.message.startswith(f"unsupported YAML tag {shown!r}; remove it")
    assert error.mark == Mark(1, 4)
    assert error.path == ("a",)


def test_standard_tags_on_plain_values_are_fine() -> None:
    doc = parse("a: !!str 12\nb: !!int '7'\nc: !!float 1\nd: !!map {x: 1}\ne: !!seq [1]\n")
    assert doc.data == {"a": "12", "b": 7, "c": 1.0, "d": {"x": 1}, "e": [1]}


def test_bad_value_for_a_standard_tag() -> None:
    error = error_of("a: !!int twelve\n")
    assert error.message.startswith("cannot read value 'twelve'")
    assert error.path == ("a",)


# ---- documents and syntax


def test_multi_document_file_is_an_error_at_the_second_document() -> None:
    error = error_of("a: 1\n---\nb: 2\n")
    assert error.mark == Mark(2, 1)
    assert "one YAML document" in error.message


def test_explicit_start_and_end_markers_of_one_document_are_fine() -> None:
    assert parse("---\na: 1\n...\n").data == {"a": 1}


def test_syntax_error_names_where_an_unclosed_bracket_started() -> None:
    error = error_of("a: [1, 2\nb: 3\n")
    assert error.message.startswith("YAML syntax error: ")
    assert "opened by '[' at line 1, column 4" in error.message
    assert error.mark.line >= 1


@pytest.mark.parametrize("text", ["a:\n\tb: 1\n", "a:\n  b: 1\n\tc: 2\n", "a:\n  \tb: 1\n"])
def test_tab_indentation_is_a_syntax_error(text: str) -> None:
    error = error_of(text)
    assert error.message == "YAML syntax error: a tab cannot indent YAML; indent with spaces"
    assert error.mark.line >= 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [1, 2\nb: 3\n", "(in the list opened by '[' at line 1, column 4)"),
        ("a: {x: 1\n", "(in the mapping opened by '{' at line 1, column 4)"),
        ("a: 'x\n", "(in the quoted text opened at line 1, column 4)"),
    ],
)
def test_syntax_errors_say_where_the_construct_opened(text: str, expected: str) -> None:
    assert error_of(text).message.endswith(expected)


def test_syntax_error_without_context() -> None:
    error = error_of("a: b: c\n")
    assert error.message == "YAML syntax error: mapping values are not allowed in this context"
    assert error.mark == Mark(1, 5)
