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
import time
from typing import Any, TextIO

import orjson

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":"))
#: dates and dataclasses written as their ``str`` too, as the standard library's ``default``
_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def encode(record: dict[str, Any]) -> str:
    """``record`` as one line of compact JSON, other values as their ``str``: orjson
    (several times faster), the standard library for what orjson refuses (an integer
    over 64 bits, a lone surrogate). orjson writes NaN and infinity as ``null``."""
    try:
        return orjson.dumps(record, default=str, option=_OPTIONS).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _ENCODER.encode(record)


class JsonLogger:
    """Writes one JSON object per line; thread-safe."""

    def __init__(self, stream: TextIO | None = None, level: str = "info") -> None:
        self.stream = stream
        self.threshold = LEVELS[level]
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._second: tuple[int, str] = (-1, "")

    def enabled(self, level: str) -> bool:
        """Whether lines of ``level`` are written (so callers can skip building them)."""
        return LEVELS[level] >= self.threshold

    def timestamp(self) -> str:
        """Now in UTC, ``2024-05-01T12:00:00.123Z``; the part up to the second is formatted
        once a second (``strftime`` costs more than the rest of a log line)."""
        now = time.time()
        second = int(now)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
            self._second = cached
        return f"{cached[1]}{int((now - second) * 1000):03d}Z"

    def add_secret(self, secret: str | None) -> None:
        """Never write ``secret``, whatever field it turns up in."""
        if secret:
            self._secrets.add(secret)

    def log(self, level: str, msg: str, **fields: Any) -> None:
        if LEVELS[level] < self.threshold:
            return
        record: dict[str, Any] = {"ts": self.timestamp(), "level": level, "msg": msg}
        for key, value in fields.items():
            if value is not None:
                record[key] = value
        line = encode(record)
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
