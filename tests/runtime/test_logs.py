"""JSON log lines: one object per line, a UTC timestamp to the millisecond, None fields
left out, secrets masked, levels below the threshold skipped."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import UTC, datetime

from llmops.runtime.logs import JsonLogger

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_lines_are_json_with_a_millisecond_utc_timestamp() -> None:
    stream = io.StringIO()
    logger = JsonLogger(stream)
    before = time.time()
    for index in range(3):
        logger.info("request", n=index, skipped=None, path="/v1/ü")
    after = time.time()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["n"] for line in lines] == [0, 1, 2]
    for line in lines:
        assert set(line) == {"ts", "level", "msg", "n", "path"}
        assert TS.match(line["ts"]), line["ts"]
        stamp = datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert before - 0.001 <= stamp.timestamp() <= after + 0.001
    assert '"/v1/ü"' in stream.getvalue(), "not escaped to ASCII"


def test_secrets_are_masked_and_levels_filtered() -> None:
    stream = io.StringIO()
    logger = JsonLogger(stream, level="warning")
    logger.add_secret("sk-abc123")
    assert not logger.enabled("info") and logger.enabled("error")
    logger.info("dropped", detail="sk-abc123")
    logger.error("failed", detail="key sk-abc123 refused", when=datetime(2024, 1, 2, tzinfo=UTC))
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["detail"] == "key [redacted] refused"
    assert record["when"] == "2024-01-02 00:00:00+00:00", "other values as text"


def test_values_orjson_refuses_are_written_by_the_standard_library() -> None:
    stream = io.StringIO()
    logger = JsonLogger(stream)
    logger.info("odd", big=2**70, lone="a\udc80b", tokens=(1, 2))
    (line,) = stream.getvalue().splitlines()
    assert '"big":1180591620717411303424' in line, "the integer kept whole"
    assert '"lone":"a\udc80b"' in line, "the lone surrogate kept (stderr escapes it)"
    assert json.loads(line)["tokens"] == [1, 2]
    stream = io.StringIO()
    JsonLogger(stream).info("plain", nan=float("nan"), tokens=(1, 2), n=2**63 - 1)
    record = json.loads(stream.getvalue())
    assert record["nan"] is None, "NaN is not JSON: written as null"
    assert record["tokens"] == [1, 2] and record["n"] == 2**63 - 1
