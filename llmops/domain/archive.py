"""Archive values: ledger entries, their hash chain, and verification findings. Pure.

Used by ``llmops.archive`` (the stores) and by releases, promotion and rollback, which
append entries; ``llmops archive verify`` reports ``Finding`` values.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

EventType = Literal[
    "released",
    "evaluated",
    "built",
    "deployed",
    "promoted",
    "rolled-back",
    "held",
    "unheld",
    "marked-bad",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

#: ``prev`` of the first entry.
GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    """The one byte encoding hashed everywhere: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One event, chained to the entry before it by ``prev`` (that entry's ``hash``)."""

    seq: int
    prev: str
    time: str
    actor: str
    event: EventType
    app: str
    release: str | None = None
    env: str | None = None
    evidence: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """Every field but ``hash``: what the hash covers."""
        return {
            "seq": self.seq,
            "prev": self.prev,
            "time": self.time,
            "actor": self.actor,
            "event": self.event,
            "app": self.app,
            "release": self.release,
            "env": self.env,
            "evidence": dict(self.evidence),
            "data": dict(self.data),
        }

    def computed_hash(self) -> str:
        return sha256_hex(canonical_json(self.body()))

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}

    @staticmethod
    def from_json(raw: dict[str, Any]) -> LedgerEntry:
        """Rebuild an entry; ``KeyError``/``TypeError``/``ValueError`` when malformed."""
        event = raw["event"]
        if event not in EVENT_TYPES:
            raise ValueError(f"unknown event {event!r}")
        evidence = raw.get("evidence") or {}
        data = raw.get("data") or {}
        if not isinstance(evidence, dict) or not isinstance(data, dict):
            raise TypeError("evidence and data must be objects")
        return LedgerEntry(
            seq=int(raw["seq"]),
            prev=str(raw["prev"]),
            time=str(raw["time"]),
            actor=str(raw["actor"]),
            event=event,
            app=str(raw["app"]),
            release=raw.get("release"),
            env=raw.get("env"),
            evidence={str(k): str(v) for k, v in evidence.items()},
            data=data,
            hash=str(raw["hash"]),
        )


def seal(entry: LedgerEntry) -> LedgerEntry:
    """The entry with its ``hash`` filled in."""
    from dataclasses import replace

    return replace(entry, hash=entry.computed_hash())


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem ``archive verify`` found; ``where`` names the entry or object."""

    where: str
    message: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of verifying an archive."""

    entries: int
    objects: int
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings


def verify_chain(entries: list[LedgerEntry], has_object: Any) -> list[Finding]:
    """Check sequence, links, hashes and referenced objects. Pure over its inputs."""
    findings: list[Finding] = []
    prev = GENESIS
    for index, entry in enumerate(entries):
        where = f"ledger entry {index + 1}"
        if entry.seq != index + 1:
            findings.append(
                Finding(where, f"has sequence number {entry.seq}; expected {index + 1} "
                        "(an entry was removed, inserted or reordered)")
            )
        if entry.hash != entry.computed_hash():
            findings.append(Finding(where, "content does not match its hash (the entry was edited)"))
        if entry.prev != prev:
            findings.append(
                Finding(where, "does not link to the entry before it (entries were removed or reordered)")
            )
        for name, digest in sorted(entry.evidence.items()):
            if not has_object(digest):
                findings.append(Finding(where, f"evidence {name!r} names missing object {digest}"))
        prev = entry.hash
    return findings
