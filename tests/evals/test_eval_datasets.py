"""Datasets: JSONL, CSV, YAML and JSON lists into cases, defaults merged, bad files named
with file:line and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops.domain.errors import InvalidInput
from llmops.domain.models.app import InputSpec
from llmops.domain.models.evalsuite import EvalSuite
from llmops.evals.datasets import load_dataset, suite_cases

DECLARED = {
    "question": InputSpec.model_validate({"type": "string"}),
    "count": InputSpec.model_validate({"type": "integer", "default": 1}),
    "vip": InputSpec.model_validate({"type": "boolean", "default": False}),
}


def load(tmp_path: Path, name: str, text: str) -> list:  # type: ignore[type-arg]
    path = tmp_path / name
    path.write_text(text)
    return load_dataset(path, DECLARED, f"evals/{name}")


def problems(tmp_path: Path, name: str, text: str) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        load(tmp_path, name, text)
    return [d.render() for d in caught.value.diagnostics]


def test_jsonl(tmp_path: Path) -> None:
    text = (
        '{"id": "a", "inputs": {"question": "hi"}, '
        '"assert": [{"type": "contains", "value": "hi"}]}\n'
        "\n"
        '{"question": "bare", "inputs.count": 3, "tags": ["x"], "weight": 2, "required": true,'
        ' "assert": [{"type": "is-json"}]}\n'
    )
    cases = load(tmp_path, "d.jsonl", text)
    assert [c.id for c in cases] == ["a", "d-2"]
    assert cases[1].inputs == {"question": "bare", "count": 3}
    assert cases[1].weight == 2.0 and cases[1].required and cases[1].tags == ["x"]


def test_csv_cells_are_typed(tmp_path: Path) -> None:
    text = (
        "id,question,inputs.count,vip,tags,required,weight,assert\n"
        'c1,"Hello, world",3,yes,"a, b",true,1.5,'
        '"[{""type"": ""icontains"", ""value"": ""hello""}]"\n'
        'c2,"multi\nline",,,,,,"{""type"": ""is-json""}"\n'
    )
    cases = load(tmp_path, "d.csv", text)
    assert cases[0].inputs == {"question": "Hello, world", "count": 3, "vip": True}
    assert cases[0].tags == ["a", "b"] and cases[0].required and cases[0].weight == 1.5
    assert cases[0].assert_[0].type == "icontains"
    assert cases[1].inputs == {"question": "multi\nline"}
    assert cases[1].assert_[0].type == "is-json"


def test_yaml_and_json_lists(tmp_path: Path) -> None:
    yaml_cases = load(
        tmp_path,
        "d.yaml",
        "- id: y1\n  inputs: {question: q}\n  assert: [{type: is-json}]\n"
        "- id: y2\n  question: r\n  assert: [{type: is-json}]\n",
    )
    assert [c.inputs["question"] for c in yaml_cases] == ["q", "r"]
    one = "cases:\n  - {id: w, question: q, assert: [{type: is-json}]}\n"
    wrapped = load(tmp_path, "w.yml", one)
    assert wrapped[0].id == "w"
    data = [{"id": "j1", "question": "q", "assert": [{"type": "is-json"}]}]
    assert load(tmp_path, "d.json", json.dumps(data, indent=2))[0].id == "j1"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("d.jsonl", '{"id": "a"}\n{not json}\n', "evals/d.jsonl:2:1: not valid JSON"),
        ("d.jsonl", "[1, 2]\n", "evals/d.jsonl:1:1: expected a JSON object per line"),
        (
            "d.jsonl",
            '{"id": "a", "questoin": "x", "assert": [{"type": "is-json"}]}\n',
            "evals/d.jsonl:1:1 questoin: unknown column 'questoin'; did you mean 'question'?",
        ),
        (
            "d.jsonl",
            '{"id": "a", "question": "x", "assert": [{"type": "containz", "value": "x"}]}\n',
            "evals/d.jsonl:1:1 assert.0.type: unknown assertion type 'containz'",
        ),
        (
            "d.jsonl",
            '{"id": "a", "inputs": {"question": 5}, "assert": [{"type": "is-json"}]}\n',
            "evals/d.jsonl:1:1 inputs.question: must be a string",
        ),
        (
            "d.csv",
            "id,question,assert\na,q,not json\n",
            "evals/d.csv:2:1 assert: assert must be JSON",
        ),
        (
            "d.csv",
            "id,question\na,q,extra\n",
            "evals/d.csv:2:1: row has 3 cells but the header has 2",
        ),
        ("d.csv", "id,count\na,three\n", "evals/d.csv:2:1 count: must be an integer"),
        ("d.yaml", "- id: a\n  question: [unclosed\n", "evals/d.yaml:3:1: YAML syntax error"),
        ("d.yaml", "id: a\n", "evals/d.yaml:1:1: a YAML dataset must be a list"),
        ("d.json", '[{"id": "a"},\n 5]', "evals/d.json:2:1: expected a case object, got int"),
        ("d.json", '[{"id": "a"}\n {"id": "b"}]', "evals/d.json:2:1: not valid JSON"),
        ("d.json", "", "evals/d.json:1:1: not valid JSON"),
        ("d.txt", "x", "evals/d.txt: a dataset must be one of"),
        ("d.jsonl", "\n\n", "evals/d.jsonl: the dataset has no cases"),
    ],
)
def test_bad_files_name_file_line_and_fix(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    found = problems(tmp_path, name, text)
    assert any(p.startswith(expected) for p in found), found


def test_non_utf8_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_bytes(b'{"id": "a"}\n\xff\n')
    with pytest.raises(InvalidInput) as caught:
        load_dataset(tmp_path / "bad.jsonl", DECLARED, "bad.jsonl")
    assert caught.value.diagnostics[0].render().startswith("bad.jsonl:2:1: not UTF-8")
    with pytest.raises(InvalidInput, match="does not exist"):
        load_dataset(tmp_path / "none.jsonl", DECLARED, "none.jsonl")


def suite(spec: dict) -> EvalSuite:  # type: ignore[type-arg]
    return EvalSuite.model_validate(
        {
            "apiVersion": "llmops.dev/v1",
            "kind": "EvalSuite",
            "metadata": {"name": "s"},
            "spec": spec,
        }
    )


def test_defaults_merge_into_inline_and_dataset_cases(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "more.jsonl").write_text(
        '{"id": "d1", "question": "from file", "vip": true, '
        '"assert": [{"type": "contains", "value": "x"}]}\n'
    )
    spec = {
        "defaults": {"inputs": {"vip": False, "count": 2}, "assert": [{"type": "is-json"}]},
        "dataset": "data/more.jsonl",
        "cases": [{"id": "i1", "inputs": {"question": "inline"}}],
    }
    cases = suite_cases(suite(spec), tmp_path / "suite.yaml", DECLARED, "evals/suite.yaml")
    assert [c.id for c in cases] == ["i1", "d1"]
    assert cases[0].inputs == {"vip": False, "count": 2, "question": "inline"}
    assert cases[1].inputs == {"vip": True, "count": 2, "question": "from file"}
    assert [a.type for a in cases[1].assert_] == ["is-json", "contains"]


def test_duplicate_ids_across_inline_and_dataset(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text(
        '{"id": "same", "question": "q", "assert": [{"type": "is-json"}]}\n'
    )
    spec = {
        "dataset": "d.jsonl",
        "cases": [{"id": "same", "inputs": {"question": "q"}, "assert": [{"type": "is-json"}]}],
    }
    with pytest.raises(InvalidInput, match="'same' used more than once"):
        suite_cases(suite(spec), tmp_path / "s.yaml", DECLARED, "s.yaml")


def test_dataset_errors_name_the_file_next_to_the_suite(tmp_path: Path) -> None:
    spec = {"dataset": "data/missing.csv"}
    with pytest.raises(InvalidInput) as caught:
        suite_cases(suite(spec), tmp_path / "s.yaml", DECLARED, "manifests/bot/evals/s.yaml")
    assert caught.value.diagnostics[0].file == "manifests/bot/evals/data/missing.csv"
