"""The fast JSON codec gives what the standard library gives: the same values parsed,
the same values written (compact, UTF-8, no NaN), the standard library's errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmops.domain import jsoncodec

STD = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def standard(value: Any) -> Any:
    try:
        return ("ok", STD.encode(value).encode("utf-8"))
    except (TypeError, ValueError) as exc:
        return ("error", type(exc))


@settings(max_examples=300, deadline=None)
@given(values)
def test_dumps_writes_what_the_standard_library_reads_back_the_same(value: Any) -> None:
    expected = standard(value)
    try:
        written = jsoncodec.dumps(value)
    except (TypeError, ValueError) as exc:
        assert expected == ("error", type(exc))
        return
    assert expected[0] == "ok"
    assert json.loads(written) == json.loads(expected[1])
    assert b" " not in written.replace(b'" "', b"").split(b'"')[0], "compact"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_as_the_standard_library_refuses_them(bad: float) -> None:
    for value in (bad, [1, bad], {"a": {"b": [bad]}}, {"a": None, "b": bad}):
        with pytest.raises(ValueError, match="not JSON compliant"):
            jsoncodec.dumps(value)
    assert jsoncodec.dumps({"a": None, "b": "null"}) == b'{"a":null,"b":"null"}'


def test_what_orjson_cannot_write_goes_to_the_standard_library() -> None:
    assert jsoncodec.dumps({"n": 2**80}) == b'{"n":1208925819614629174706176}'
    assert jsoncodec.dumps({1: "int key"}) == b'{"1":"int key"}'
    assert jsoncodec.dumps("é ✓") == '"é ✓"'.encode()
    with pytest.raises(TypeError):
        jsoncodec.dumps({"x": object()})


@settings(max_examples=300, deadline=None)
@given(st.one_of(values.map(lambda v: json.dumps(v)), st.text(max_size=40)))
def test_loads_parses_as_the_standard_library_or_lets_it_answer(text: str) -> None:
    def fallback() -> Any:
        return ("fallback", json.loads(text))

    try:
        expected: Any = ("value", json.loads(text))
    except (ValueError, RecursionError) as exc:
        expected = ("error", type(exc))
    try:
        got = jsoncodec.loads_or(text.encode("utf-8", "surrogatepass"), fallback)
    except (ValueError, RecursionError) as exc:
        assert expected == ("error", type(exc))
        return
    if isinstance(got, tuple) and got and got[0] == "fallback":
        assert expected == ("value", got[1])
    else:
        assert expected == ("value", got)


def test_loads_leaves_to_the_fallback_what_orjson_refuses() -> None:
    assert jsoncodec.loads_or(b'{"a": 1}', lambda: "fallback") == {"a": 1}
    for refused in (b"NaN", b'{"a": 1e999999}', b"\xef\xbb\xbf{}", '{"a":1}'.encode("utf-16")):
        assert jsoncodec.loads_or(refused, lambda: "fallback") == "fallback"


def test_a_run_of_19_digits_is_left_to_the_standard_library_in_bytes_and_text() -> None:
    for raw in (b'{"n": 18446744073709551616}', b'["x", 1234567890123456789]'):
        assert jsoncodec.loads_or(raw, lambda: "fallback") == "fallback"
        assert jsoncodec.loads_or(raw.decode(), lambda: "fallback") == "fallback"
    assert jsoncodec.loads_or(b'{"n": 123456789012345678, "s": "1-2"}', lambda: "x") == {
        "n": 123456789012345678,
        "s": "1-2",
    }
    assert jsoncodec.loads_or('{"s": "\u0663\u0663"}', lambda: "x") == {"s": "\u0663\u0663"}
