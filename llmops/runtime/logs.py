"""JSON log lines of the runtime, one object per line on stderr; written by
``llmops.runtime.server`` (one line per request) and its reloader.

Request lines carry ts, level, msg, request_id, method, path, app, release, status and
latency_ms, plus tokens, cost, the guardrail or error type when there is one. They never
carry input or reply text, headers or API keys: callers pass only those fields, and any
value equal to a registered secret is masked as a last line of defence.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class JsonLogger:
    """Writes one JSON object per line; thread-safe."""

    def __init__(self, stream: TextIO | None = None, level: str = "info") -> None:
        self.stream = stream
        self.threshold = LEVELS[level]
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add_secret(self, secret: str | None) -> None:
        """Never write ``secret``, whatever field it turns up in."""
        if secret:
            self._secrets.add(secret)

    def log(self, level: str, msg: str, **fields: Any) -> None:
        if LEVELS[level] < self.threshold:
            return
        now = datetime.now(UTC)
        record: dict[str, Any] = {
            "ts": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "level": level,
            "msg": msg,
        }
        record.update((k, v) for k, v in fields.items() if v is not None)
        line = json.dumps(record, ensure_ascii=False, default=str)
        for secret in self._secrets:
            line = line.replace(secret, "[redacted]")
        stream = self.stream if self.stream is not None else sys.stderr
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def info(self, msg: str, **fields: Any) -> None:
        self.log("info", msg, **fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self.log("warning", msg, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        self.log("error", msg, **fields)
