"""The pass memo: content hashes that let a pass with nothing changed do nothing at all.

Called by ``llmops.ops.reconcile``. At the end of a pass that settled (no app failed,
nothing left in flight) the reconciler writes what it saw: the source commit, the ledger's
tip, and per environment the fingerprint of every ``DesiredApp``; and the earliest time a
waiting policy (a soak) may change the answer. The next pass compares the commit, the
ledger tip and the live fingerprints the targets report with the memo: when all match
and no soak is due, nothing changed, and the pass ends without loading a manifest,
planning, building, applying, proposing or appending (``PassResult.shortcut``).

The memo is a cache, never the truth: deleting it (or a crash before it is written) only
costs a full pass. It is written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from llmops.archive.base import Archive
from llmops.domain.deploy import LiveApp

MEMO_VERSION = 1
_LEDGER_FILE = "00000000.json"


@dataclass(frozen=True, slots=True)
class LedgerTip:
    """The last ledger entry's sequence number and hash (0 and "" for an empty ledger)."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Memo:
    """What a settled pass saw."""

    source: str
    tip: LedgerTip
    #: env -> app -> DesiredApp fingerprint
    envs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    wake_at: str | None = None
    options: str = ""
    #: env -> the environment's ``spec.target`` (JSON), to ask the target before loading
    targets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the archive directory (a ``dir`` archive), to read the ledger tip before loading
    archive: str | None = None
    #: apps that were not Ready (waiting on a soak or an approval, a failed gate…), as
    #: ``AppResult.to_json()``, so a pass answered by the memo still says what waits
    unsettled: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MEMO_VERSION,
            "source": self.source,
            "tip": {"seq": self.tip.seq, "hash": self.tip.hash},
            "envs": {env: dict(apps) for env, apps in self.envs.items()},
            "wakeAt": self.wake_at,
            "options": self.options,
            "targets": {env: dict(spec) for env, spec in self.targets.items()},
            "archive": self.archive,
            "unsettled": [dict(app) for app in self.unsettled],
        }

    @staticmethod
    def from_json(raw: Any) -> Memo | None:
        try:
            if raw.get("version") != MEMO_VERSION:
                return None
            tip = raw["tip"]
            envs = {
                str(env): {str(app): str(fp) for app, fp in apps.items()}
                for env, apps in raw["envs"].items()
            }
            targets = {str(env): dict(spec) for env, spec in raw["targets"].items()}
            archive = raw.get("archive")
            return Memo(
                source=str(raw["source"]),
                tip=LedgerTip(int(tip["seq"]), str(tip["hash"])),
                envs=envs,
                wake_at=raw.get("wakeAt"),
                options=str(raw.get("options", "")),
                targets=targets,
                archive=str(archive) if archive is not None else None,
                unsettled=tuple(dict(app) for app in raw.get("unsettled", ())),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            return None


def ledger_tip(archive: Archive) -> LedgerTip:
    """The ledger's last entry; for a directory archive only that one file is read."""
    ledger = getattr(archive, "ledger", None)
    if isinstance(ledger, Path):
        try:
            names = sorted(
                n for n in os.listdir(ledger) if len(n) == len(_LEDGER_FILE) and n.endswith(".json")
            )
        except FileNotFoundError:
            return LedgerTip(0, "")
        if not names:
            return LedgerTip(0, "")
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            raw = json.loads((ledger / names[-1]).read_bytes())
            return LedgerTip(int(raw["seq"]), str(raw["hash"]))
    entries = archive.entries()
    if not entries:
        return LedgerTip(0, "")
    return LedgerTip(entries[-1].seq, entries[-1].hash)


def load_memo(path: Path) -> Memo | None:
    try:
        return Memo.from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        return None


def save_memo(path: Path, memo: Memo) -> None:
    """Write ``memo`` atomically; a failure to write only costs the next pass its shortcut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(memo.to_json(), handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def forget(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def live_matches(expected: Mapping[str, str], live: Mapping[str, LiveApp]) -> bool:
    """Every expected app runs with that fingerprint, ready and undrifted, and nothing else
    llmops owns runs there."""
    if set(live) != set(expected):
        return False
    for app, fingerprint in expected.items():
        found = live[app]
        if found.fingerprint != fingerprint or not found.ready or found.drift:
            return False
    return True


def memo_holds(
    memo: Memo | None,
    *,
    source: str | None,
    tip: LedgerTip,
    now: datetime,
    options: str,
) -> bool:
    """Whether the memo still describes the world, before the targets are asked."""
    if memo is None or source is None or memo.source != source or memo.tip != tip:
        return False
    if memo.options != options:
        return False
    if memo.wake_at is not None:
        try:
            due = datetime.fromisoformat(memo.wake_at.replace("Z", "+00:00"))
        except ValueError:
            return False
        if now >= due:
            return False
    return True
