"""The Archive protocol every store implements, and its errors.

Used by releases, evals (evidence), promotion and rollback; implemented by
``dirstore.DirArchive`` (and the git store).
"""

from __future__ import annotations

from typing import Any, Protocol

from llmops.domain.archive import EventType, LedgerEntry, VerifyReport
from llmops.domain.errors import LlmopsError


class ObjectMissing(LlmopsError):
    """An object named by digest is not in the archive."""

    exit_code = 1


class ArchiveCorrupt(LlmopsError):
    """The archive cannot be read as written; `llmops archive verify` says where."""

    exit_code = 1


class Archive(Protocol):
    """Content-addressed objects plus an append-only, hash-chained ledger."""

    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256 hex digest. Idempotent."""
        ...

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``; ``ObjectMissing`` otherwise."""
        ...

    def has(self, digest: str) -> bool: ...

    def append(
        self,
        event: EventType,
        app: str,
        *,
        release: str | None = None,
        env: str | None = None,
        evidence: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> LedgerEntry:
        """Append one event, chained to the last; atomic and safe for concurrent writers."""
        ...

    def entries(self) -> list[LedgerEntry]:
        """The whole ledger, oldest first."""
        ...

    def verify(self) -> VerifyReport:
        """Check every entry and object; name each problem found."""
        ...
