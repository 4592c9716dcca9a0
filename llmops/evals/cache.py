"""The eval response cache: model replies on disk in SQLite, keyed by what shaped them.

Called by ``llmops.evals.runner`` (lookups before a run, writes after it) and the judge
and embedding hooks. The default file is ``<repo>/.llmops/cache/evals.sqlite``.

Key: the SHA-256 of a canonical JSON (sorted keys, no spaces) of every input that shapes
a reply: provider, base URL, model, every request parameter (temperature, max tokens,
stop, response format, provider extras, seed…), the full messages, tools, and the sample
index when ``--repeat`` asks for several samples of one case (sample 0 shares the key of
a single-sample run). The API key, timeouts and retry counts are not part of it.

Only good replies are stored: errors never reach the cache and empty replies are not
written. The database runs in WAL mode with a busy timeout, and writes are batched in
one transaction per :meth:`EvalCache.flush`, so several eval runs may share the file.
A cache that cannot be written is reported in :attr:`EvalCache.problem` and never ends
a run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llmops.domain.chat import ChatRequest, ChatResponse, Usage
from llmops.domain.errors import SourceError

DEFAULT_CACHE_PATH = Path(".llmops") / "cache" / "evals.sqlite"
SCHEMA_VERSION = 1
_CHUNK = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(
    request: ChatRequest,
    provider: str,
    *,
    tools: Any = None,
    sample: int = 0,
) -> str:
    """The cache key of ``request`` sent to ``provider``; see the module docstring."""
    params = request.params
    shape: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "provider": provider,
        "base_url": request.base_url.rstrip("/"),
        "model": request.model,
        "params": params,
        "messages": [[m.role, m.content] for m in request.messages],
        "tools": tools if tools is not None else params.get("tools"),
        "seed": params.get("seed"),
    }
    if sample:
        shape["sample"] = sample
    canonical = json.dumps(shape, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def embed_key(base_url: str, provider: str, model: str, texts: Iterable[str]) -> str:
    """The cache key of an embeddings request."""
    shape = {
        "v": SCHEMA_VERSION,
        "kind": "embeddings",
        "provider": provider,
        "base_url": base_url.rstrip("/"),
        "model": model,
        "input": list(texts),
    }
    canonical = json.dumps(shape, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _encode(response: ChatResponse) -> str:
    usage = response.usage
    return json.dumps(
        [
            response.content,
            response.model,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cost_usd,
            response.latency_ms,
            response.finish_reason,
        ],
        ensure_ascii=False,
    )


def _decode(value: str) -> ChatResponse | None:
    try:
        content, model, prompt, completion, cost, latency, finish = json.loads(value)
        return ChatResponse(
            content=content,
            usage=Usage(prompt, completion, cost),
            model=model,
            latency_ms=latency,
            retries=0,
            finish_reason=finish,
        )
    except (ValueError, TypeError):
        return None


class EvalCache:
    """One SQLite cache file; used from one thread (the run's event loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None
        self._pending: dict[str, str] = {}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise SourceError(
                f"cannot open the eval cache {path}: {exc}; delete the file or run with --no-cache"
            ) from exc

    def __enter__(self) -> EvalCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get_many(self, keys: Iterable[str]) -> dict[str, ChatResponse]:
        """The cached replies among ``keys`` (missing keys are absent)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, ChatResponse] = {}
        try:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, value FROM responses WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, value in rows:
                    decoded = _decode(value)
                    if decoded is not None:
                        found[key] = decoded
        except sqlite3.Error as exc:
            self.problem = f"eval cache {self.path} could not be read: {exc}"
        return found

    def get(self, key: str) -> ChatResponse | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, response: ChatResponse) -> bool:
        """Queue ``response`` for the next :meth:`flush`; empty replies are refused."""
        if not response.content.strip():
            return False
        self._pending[key] = _encode(response)
        return True

    def get_value(self, key: str) -> Any:
        """A JSON value stored with :meth:`put_value` (e.g. embedding vectors), or None."""
        try:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None

    def put_value(self, key: str, value: Any) -> None:
        self._pending[key] = json.dumps(value)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Write the queued replies in one transaction; returns how many were written."""
        if not self._pending:
            return 0
        rows: list[tuple[str, str, float]] = [
            (k, v, time.time()) for k, v in self._pending.items()
        ]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)", rows
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self.problem = f"eval cache {self.path} could not be written: {exc}"
            return 0
        self._pending.clear()
        return len(rows)

    def close(self) -> None:
        """Flush what is queued and close the file."""
        try:
            self.flush()
        finally:
            self._db.close()

