"""Load a suite's cases: inline ones plus its ``dataset`` file, with ``defaults`` merged.

Called by ``llmops.evals.plan`` for every suite of a run. A dataset is JSONL (one object
per line), CSV (a header row), or a YAML / JSON list of objects, at a path **relative to
the suite file's directory**. Each record has the fields of an inline case:

- ``id`` (default ``<file stem>-<record number>``; give one so baselines can match),
  ``description``, ``tags``, ``weight``, ``required``;
- ``inputs``: an object; or one ``inputs.<name>`` column/key per input; or a bare
  column/key named like one of the app's declared inputs;
- ``assert``: a list of assertions (a JSON list, or one object, in a CSV cell).

CSV cells are text: inputs are read as their declared type (``3`` for an integer input,
``true`` for a boolean), ``tags`` as a JSON list or comma-separated words, ``required``
as true/false/yes/no/1/0, an empty cell as "not given". Problems are collected and
raised together as ``InvalidInput`` whose diagnostics name ``file:line`` and what to do.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llmops.domain.diagnostics import Diagnostic
from llmops.domain.errors import InvalidInput
from llmops.domain.models.app import InputSpec, input_value_problem
from llmops.domain.models.evalsuite import Case, EvalSuite
from llmops.evals.dataformats import (
    Problems,
    csv_records,
    json_list_records,
    jsonl_records,
    yaml_list_records,
)
from llmops.manifests.messages import message_for
from llmops.runtime.inputs import coerce_text

DATASET_SUFFIXES = (".jsonl", ".csv", ".yaml", ".yml", ".json")
CASE_FIELDS = ("id", "description", "inputs", "assert", "tags", "weight", "required")
#: Largest dataset file read.
MAX_DATASET_BYTES = 64 * 1024 * 1024

def suite_cases(
    suite: EvalSuite,
    suite_path: Path,
    declared: Mapping[str, InputSpec],
    display: str | None = None,
) -> tuple[Case, ...]:
    """Every case of ``suite`` (inline first, then the dataset's), defaults merged in.

    ``suite_path`` is the suite file on disk; ``display`` how to name it in messages.
    Raises ``InvalidInput`` listing every problem with ``file:line``.
    """
    spec = suite.spec
    cases = list(spec.cases)
    problems: list[Diagnostic] = []
    if spec.dataset is not None:
        shown_dir = (display or suite_path.as_posix()).rsplit("/", 1)
        shown = f"{shown_dir[0]}/{spec.dataset}" if len(shown_dir) == 2 else spec.dataset
        try:
            cases.extend(load_dataset(suite_path.parent / spec.dataset, declared, shown))
        except InvalidInput as exc:
            problems.extend(exc.diagnostics)
    seen: dict[str, int] = {}
    for case in cases:
        seen[case.id] = seen.get(case.id, 0) + 1
    dupes = sorted(k for k, n in seen.items() if n > 1)
    if dupes:
        problems.append(
            Diagnostic(
                display or suite_path.as_posix(), 0, 0, "",
                f"case id(s) {', '.join(map(repr, dupes[:5]))} used more than once across the "
                "suite's cases and its dataset; case ids are unique within a suite",
            )
        )
    if problems:
        raise InvalidInput(_summary(problems), problems)
    defaults = spec.defaults
    if not defaults.inputs and not defaults.assert_:
        return tuple(cases)
    return tuple(
        case.model_copy(
            update={
                "inputs": {**defaults.inputs, **case.inputs},
                "assert_": [*defaults.assert_, *case.assert_],
            }
        )
        for case in cases
    )


def load_dataset(path: Path, declared: Mapping[str, InputSpec], display: str) -> list[Case]:
    """The cases of one dataset file (defaults not merged); ``InvalidInput`` on problems."""
    problems = Problems(display)
    suffix = path.suffix.lower()
    if suffix not in DATASET_SUFFIXES:
        problems.add(0, "", f"a dataset must be one of {', '.join(DATASET_SUFFIXES)}; rename it")
        raise InvalidInput(_summary(problems.found), problems.found)
    text = _read(path, problems)
    if text is None:
        raise InvalidInput(_summary(problems.found), problems.found)
    if suffix == ".jsonl":
        records = list(jsonl_records(text, problems))
    elif suffix == ".csv":
        records = list(csv_records(text, problems))
    elif suffix == ".json":
        records = json_list_records(text, problems)
    else:
        records = yaml_list_records(text, problems)
    cases: list[Case] = []
    for number, (line, record) in enumerate(records, start=1):
        if problems.full:
            break
        case = _case(record, line, number, path.stem, declared, suffix == ".csv", problems)
        if case is not None:
            cases.append(case)
    if not cases and not problems.found:
        problems.add(0, "", "the dataset has no cases; add records or remove spec.dataset")
    if problems.found:
        raise InvalidInput(_summary(problems.found), problems.found)
    return cases


def _summary(found: list[Diagnostic]) -> str:
    first = found[0].render()
    more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
    return f"{first}{more}"


def _read(path: Path, problems: Problems) -> str | None:
    try:
        size = path.stat().st_size
        if size > MAX_DATASET_BYTES:
            problems.add(0, "", f"dataset is {size:,} bytes, over {MAX_DATASET_BYTES:,}; split it")
            return None
        raw = path.read_bytes()
    except FileNotFoundError:
        problems.add(0, "", "dataset file does not exist; check spec.dataset (suite-relative)")
        return None
    except IsADirectoryError:
        problems.add(0, "", "dataset is a directory; spec.dataset must name a file")
        return None
    except OSError as exc:
        problems.add(0, "", f"cannot read the dataset: {exc.strerror or exc}")
        return None
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.add(line, "", f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8")
        return None


_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})


def _case(
    record: dict[str, Any],
    line: int,
    number: int,
    stem: str,
    declared: Mapping[str, InputSpec],
    from_csv: bool,
    problems: Problems,
) -> Case | None:
    data: dict[str, Any] = {}
    inputs: dict[str, Any] = {}
    before = len(problems.found)
    for key, value in record.items():
        name = str(key)
        if name in CASE_FIELDS:
            data[name] = _cell(name, value, line, problems) if from_csv else value
        elif name.startswith("inputs.") or name in declared:
            input_name = name.removeprefix("inputs.")
            if input_name not in declared:
                problems.add(line, name, _unknown_input(input_name, declared))
                continue
            spec = declared[input_name]
            inputs[input_name] = _typed(spec, value, line, name, problems) if from_csv else value
        else:
            close = difflib.get_close_matches(name, [*CASE_FIELDS, *declared], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            allowed = ", ".join([*CASE_FIELDS, *(f"inputs.{n}" for n in declared)])
            problems.add(line, name, f"unknown column {name!r}{hint} (known: {allowed})")
    if inputs:
        given = data.get("inputs", {})
        if not isinstance(given, dict):
            problems.add(line, "inputs", "inputs must be an object of input values")
            return None
        data["inputs"] = {**given, **inputs}
    data.setdefault("id", f"{stem}-{number}")
    if len(problems.found) != before:
        return None
    try:
        case = Case.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            problems.add(line, ".".join(map(str, loc)), message_for(err, loc, Case))
        return None
    for name, value in case.inputs.items():
        if name not in declared:
            problems.add(line, f"inputs.{name}", _unknown_input(name, declared))
            continue
        problem = input_value_problem(declared[name], value)
        if problem:
            problems.add(line, f"inputs.{name}", problem)
    return case if len(problems.found) == before else None


def _unknown_input(name: str, declared: Mapping[str, InputSpec]) -> str:
    close = difflib.get_close_matches(name, list(declared), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    known = ", ".join(declared) or "none"
    return f"input {name!r} is not declared by the app{hint} (declared: {known})"


def _typed(spec: InputSpec, value: Any, line: int, column: str, problems: Problems) -> Any:
    try:
        return coerce_text(spec, str(value))
    except ValueError as exc:
        problems.add(line, column, str(exc))
        return value


def _cell(name: str, value: Any, line: int, problems: Problems) -> Any:
    """A CSV cell (text) as the case field ``name`` expects it."""
    text = str(value).strip()
    if name in ("id", "description"):
        return str(value)
    if name == "weight":
        try:
            return float(text)
        except ValueError:
            problems.add(line, name, f"weight must be a number (got {text!r})")
            return 1.0
    if name == "required":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        problems.add(line, name, f"required must be true or false (got {text!r})")
        return False
    if name == "tags" and not text.startswith("["):
        return [t.strip() for t in text.split(",") if t.strip()]
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        example = (
            '[{"type": "contains", "value": "refund"}]' if name == "assert" else '{"q": "..."}'
        )
        why = getattr(exc, "msg", exc)
        problems.add(line, name, f"{name} must be JSON in a CSV cell, e.g. {example} ({why})")
        return None
    if name == "assert" and isinstance(parsed, dict):
        return [parsed]
    return parsed
