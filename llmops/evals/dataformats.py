"""Read the records of a dataset file: JSONL, CSV, a JSON list or a YAML list.

Called by ``llmops.evals.datasets``, which turns records into cases. Each reader yields
``(line, record)`` pairs, the 1-based line where the record starts, and reports what it
cannot read into :class:`Problems` (file:line and what to do) instead of raising.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from llmops.domain.diagnostics import Diagnostic

#: Diagnostics reported per file before giving up on it.
MAX_PROBLEMS = 50

Record = tuple[int, dict[str, Any]]


class Problems:
    """The diagnostics found in one dataset file, capped at MAX_PROBLEMS."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[Diagnostic] = []

    def add(self, line: int, path: str, message: str) -> None:
        self.found.append(Diagnostic(self.file, line, 1 if line > 0 else 0, path, message))

    @property
    def full(self) -> bool:
        return len(self.found) >= MAX_PROBLEMS


def jsonl_records(text: str, problems: Problems) -> Iterator[Record]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            msg = getattr(exc, "msg", str(exc))
            problems.add(line_no, "", f"not valid JSON ({msg}); each line must be one JSON object")
            if problems.full:
                return
            continue
        if not isinstance(value, dict):
            problems.add(line_no, "", f"expected a JSON object per line, got {_kind(value)}")
            continue
        yield line_no, value


def csv_records(text: str, problems: Problems) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        problems.add(1, "", f"CSV header cannot be read: {exc}")
        return
    names = [h.strip() for h in header]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        problems.add(1, "", f"column(s) {', '.join(dupes)} appear twice in the header")
        return
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.add(start, "", f"CSV cannot be parsed here: {exc}")
            return
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            problems.add(line, "", f"row has {len(row)} cells but the header has {len(names)}")
            continue
        yield line, {n: c for n, c in zip(names, row, strict=True) if c != ""}


def json_list_records(text: str, problems: Problems) -> list[Record]:
    decoder = json.JSONDecoder()
    at = _skip_ws(text, 0)
    if at >= len(text) or text[at] != "[":
        try:
            json.loads(text)
        except ValueError as exc:
            why = getattr(exc, "msg", exc)
            problems.add(getattr(exc, "lineno", 1), "", f"not valid JSON: {why}")
            return []
        problems.add(1, "", "a JSON dataset must be a list of case objects: [{...}, ...]")
        return []
    records: list[Record] = []
    at = _skip_ws(text, at + 1)
    if at < len(text) and text[at] == "]":
        return records
    while True:
        line = text.count("\n", 0, at) + 1
        try:
            value, at = decoder.raw_decode(text, at)
        except ValueError as exc:
            bad = getattr(exc, "lineno", line)
            problems.add(bad, "", f"not valid JSON: {getattr(exc, 'msg', exc)}")
            return records
        if isinstance(value, dict):
            records.append((line, value))
        else:
            problems.add(line, "", f"expected a case object, got {_kind(value)}")
        at = _skip_ws(text, at)
        if at < len(text) and text[at] == ",":
            at = _skip_ws(text, at + 1)
            continue
        if at < len(text) and text[at] == "]":
            return records
        line = text.count("\n", 0, at) + 1
        problems.add(line, "", "not valid JSON: expected ',' or ']' after a case")
        return records


def _skip_ws(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def yaml_list_records(text: str, problems: Problems) -> list[Record]:
    from llmops.manifests.yamldoc import YamlError, parse

    try:
        doc = parse(text)
    except YamlError as exc:
        problems.add(exc.mark.line, "", exc.message)
        return []
    data = doc.data
    prefix: tuple[str, ...] = ()
    if isinstance(data, dict) and set(data) == {"cases"}:
        data, prefix = data["cases"], ("cases",)
    if not isinstance(data, list):
        problems.add(1, "", "a YAML dataset must be a list of case mappings (- id: ...)")
        return []
    records: list[Record] = []
    for index, item in enumerate(data):
        line = doc.mark_for((*prefix, index)).line
        if isinstance(item, dict):
            records.append((line, item))
        else:
            problems.add(line, "", f"expected a case mapping, got {_kind(item)}")
    return records


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else type(value).__name__
