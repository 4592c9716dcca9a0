"""The response cache: keys cover every input that shapes a reply (and nothing else),
only good replies are stored, and concurrent writers share one file safely."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmops.domain.chat import ChatMessage, ChatRequest, ChatResponse, Usage
from llmops.evals.cache import EvalCache, cache_key

BASE = ChatRequest(
    base_url="http://127.0.0.1:9/v1",
    model="gpt-4o-mini",
    messages=(ChatMessage("system", "You help."), ChatMessage("user", "Refund?")),
    params={
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 400,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "seed": 7,
        "stop": ["END"],
        "response_format": {"type": "json_object"},
        "top_k": 40,
    },
)


def with_params(**changes: Any) -> ChatRequest:
    return dataclasses.replace(BASE, params={**BASE.params, **changes})


CHANGES: dict[str, tuple[ChatRequest, str]] = {
    "provider": (BASE, "vllm"),
    "base_url": (dataclasses.replace(BASE, base_url="http://127.0.0.1:10/v1"), "openai"),
    "model": (dataclasses.replace(BASE, model="gpt-4o"), "openai"),
    "temperature": (with_params(temperature=0.3), "openai"),
    "top_p": (with_params(top_p=0.8), "openai"),
    "max_tokens": (with_params(max_tokens=401), "openai"),
    "presence_penalty": (with_params(presence_penalty=0.1), "openai"),
    "frequency_penalty": (with_params(frequency_penalty=0.1), "openai"),
    "seed": (with_params(seed=8), "openai"),
    "stop": (with_params(stop=["END", "STOP"]), "openai"),
    "response_format": (with_params(response_format={"type": "text"}), "openai"),
    "extra_body": (with_params(top_k=41), "openai"),
    "new_param": (with_params(logit_bias={"50256": -100}), "openai"),
    "tools": (with_params(tools=[{"type": "function", "function": {"name": "f"}}]), "openai"),
    "system_message": (
        dataclasses.replace(BASE, messages=(ChatMessage("system", "You help!"), BASE.messages[1])),
        "openai",
    ),
    "user_message": (
        dataclasses.replace(BASE, messages=(BASE.messages[0], ChatMessage("user", "Refund!"))),
        "openai",
    ),
    "role": (
        dataclasses.replace(BASE, messages=(ChatMessage("user", "You help."), BASE.messages[1])),
        "openai",
    ),
    "message_count": (dataclasses.replace(BASE, messages=BASE.messages[1:]), "openai"),
}


def reply(text: str = '{"answer": "yes"}') -> ChatResponse:
    return ChatResponse(text, Usage(10, 5, 0.0001), "gpt-4o-mini", 123.0, retries=1)


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_changing_any_one_input_misses(tmp_path: Path, field: str) -> None:
    with EvalCache(tmp_path / "c.sqlite") as cache:
        cache.put(cache_key(BASE, "openai"), reply())
        cache.flush()
        assert cache.get(cache_key(BASE, "openai")) is not None
        changed, provider = CHANGES[field]
        assert cache.get(cache_key(changed, provider)) is None


def test_the_key_ignores_api_key_timeouts_and_retries_but_not_the_sample() -> None:
    same = dataclasses.replace(
        BASE, timeout_seconds=99, max_retries=9, base_url=BASE.base_url + "/"
    )
    assert cache_key(same, "openai") == cache_key(BASE, "openai")
    reordered = dataclasses.replace(BASE, params=dict(reversed(list(BASE.params.items()))))
    assert cache_key(reordered, "openai") == cache_key(BASE, "openai")
    assert cache_key(BASE, "openai", sample=0) != cache_key(BASE, "openai", sample=1)
    assert "sk-" not in repr(cache_key.__code__.co_varnames)  # no api_key parameter at all
    assert "api_key" not in cache_key.__code__.co_varnames


def test_a_hit_round_trips_the_reply(tmp_path: Path) -> None:
    key = cache_key(BASE, "openai")
    with EvalCache(tmp_path / "c.sqlite") as cache:
        cache.put(key, reply())
    with EvalCache(tmp_path / "c.sqlite") as cache:
        found = cache.get(key)
    assert found is not None
    assert found.content == '{"answer": "yes"}'
    assert (found.usage, found.latency_ms) == (Usage(10, 5, 0.0001), 123.0)
    assert found.retries == 0


def test_empty_replies_are_not_cached(tmp_path: Path) -> None:
    with EvalCache(tmp_path / "c.sqlite") as cache:
        assert not cache.put("k1", reply(""))
        assert not cache.put("k2", reply("  \n"))
        assert cache.put("k3", reply("ok"))
        assert cache.flush() == 1
        assert cache.get("k1") is None and cache.get("k3") is not None


def test_wal_mode(tmp_path: Path) -> None:
    EvalCache(tmp_path / "c.sqlite").close()
    mode = sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


WRITER = """
import sys
from pathlib import Path
from llmops.domain.chat import ChatResponse, Usage
from llmops.evals.cache import EvalCache
path, who = Path(sys.argv[1]), sys.argv[2]
for batch in range(20):
    cache = EvalCache(path)
    for i in range(50):
        cache.put(f"{who}-{batch}-{i}", ChatResponse(f"reply {who} {batch} {i}", Usage(), "m", 1.0))
    cache.get_many([f"{who}-{batch}-{i}" for i in range(50)])
    cache.close()
print("ok")
"""


def test_concurrent_writers_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"w{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "ok", err
    with EvalCache(path) as cache:
        keys = [f"w{n}-{b}-{i}" for n in range(4) for b in range(20) for i in range(50)]
        found = cache.get_many(keys)
        assert cache.problem is None
    assert len(found) == 4 * 20 * 50
    assert found["w3-19-49"].content == "reply w3 19 49"


def test_a_broken_cache_file_is_a_clear_error(tmp_path: Path) -> None:
    from llmops.domain.errors import SourceError

    (tmp_path / "c.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(SourceError, match="--no-cache"):
        EvalCache(tmp_path / "c.sqlite")
