"""The ``dir`` archive store: a directory of content-addressed objects and one file per
ledger entry, every write atomic (temp file, fsync, link/rename, fsync directory) and
serialised between processes with an advisory lock.

Layout::

    objects/sha256/ab/cdef…      bytes whose sha256 is abcdef…
    ledger/00000001.json         one entry each, chained by ``prev``
    .lock                        flock(2) target for writers

A crash at any point leaves either the old state or the new one: a temp file is never
visible under its final name, and ``os.link`` refuses to overwrite an entry another
writer already created.

Used through ``llmops.archive.Archive`` by every use case that archives.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops.archive.base import ArchiveCorrupt, ObjectMissing
from llmops.domain.archive import (
    GENESIS,
    EventType,
    Finding,
    LedgerEntry,
    VerifyReport,
    seal,
    sha256_hex,
    verify_chain,
)
from llmops.domain.errors import SourceError

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_ENTRY = re.compile(r"^(\d{8})\.json$")


def default_actor() -> str:
    """Who is acting: LLMOPS_ACTOR, else GITHUB_ACTOR, else user@host."""
    for name in ("LLMOPS_ACTOR", "GITHUB_ACTOR"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(target: Path, data: bytes) -> bool:
    """Create ``target`` with ``data`` atomically; False if it already exists."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        _fsync_dir(target.parent)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class DirArchive:
    """An archive in a local directory (the embedded default)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects" / "sha256"
        self.ledger = root / "ledger"
        # The entries read so far, by file name: ledger files are created once (``os.link``
        # refuses to overwrite) and never rewritten, so a long-running reader (the
        # controller) reads only the entries appended since its last call.
        # ``verify`` always reads every file again.
        self._known: list[LedgerEntry] = []
        self._known_names: list[str] = []
        self._known_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DirArchive({str(self.root)!r})"

    # objects -----------------------------------------------------------------
    def _object_path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise ObjectMissing(f"{digest!r} is not a sha256 digest")
        return self.objects / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        path = self._object_path(digest)
        if not path.exists():
            try:
                _write_new(path, data)
            except OSError as exc:
                raise SourceError(f"cannot write to the archive at {self.root}: {exc.strerror or exc}") from exc
        return digest

    def get(self, digest: str) -> bytes:
        path = self._object_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"object {digest} is not in the archive at {self.root}") from None
        if sha256_hex(data) != digest:
            raise ArchiveCorrupt(f"object {digest} is corrupt; run `llmops archive verify`")
        return data

    def has(self, digest: str) -> bool:
        try:
            return self._object_path(digest).is_file()
        except ObjectMissing:
            return False

    def _object_digests(self) -> Iterator[tuple[str, Path]]:
        if not self.objects.is_dir():
            return
        for prefix in sorted(self.objects.iterdir()):
            if not prefix.is_dir():
                continue
            for path in sorted(prefix.iterdir()):
                if not path.name.startswith(".tmp-"):
                    yield prefix.name + path.name, path

    # ledger ------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _entry_names(self) -> list[str]:
        """The ledger's entry files in order (their names sort as their numbers)."""
        try:
            return sorted(n for n in os.listdir(self.ledger) if _ENTRY.match(n))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _entry_files(self) -> list[Path]:
        return [self.ledger / n for n in self._entry_names()]

    def _read_entry(self, path: Path) -> LedgerEntry:
        try:
            raw = json.loads(path.read_bytes())
            return LedgerEntry.from_json(raw)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArchiveCorrupt(
                f"ledger entry {path.name} cannot be read ({exc}); run `llmops archive verify`"
            ) from exc

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
        for name, digest in (evidence or {}).items():
            if not self.has(digest):
                raise ObjectMissing(f"evidence {name!r} names object {digest}, which is not archived")
        with self._locked():
            names = self._entry_names()
            last = self._read_entry(self.ledger / names[-1]) if names else None
            entry = seal(
                LedgerEntry(
                    seq=(last.seq + 1) if last else 1,
                    prev=last.hash if last else GENESIS,
                    time=now_iso(),
                    actor=actor or default_actor(),
                    event=event,
                    app=app,
                    release=release,
                    env=env,
                    evidence=dict(evidence or {}),
                    data=dict(data or {}),
                )
            )
            body = json.dumps(entry.to_json(), sort_keys=True, indent=1).encode() + b"\n"
            target = self.ledger / f"{entry.seq:08d}.json"
            try:
                created = _write_new(target, body)
            except OSError as exc:
                raise SourceError(f"cannot append to the ledger at {self.ledger}: {exc.strerror or exc}") from exc
            if not created:
                raise ArchiveCorrupt(
                    f"ledger entry {target.name} appeared while locked; another writer ignores the lock"
                )
            return entry

    def entries(self) -> list[LedgerEntry]:
        names = self._entry_names()
        with self._known_lock:
            count = len(self._known_names)
            if count and names[:count] == self._known_names:
                fresh = [self._read_entry(self.ledger / n) for n in names[count:]]
                if not fresh or fresh[0].prev == self._known[-1].hash:
                    self._known.extend(fresh)
                    self._known_names = names
                    return list(self._known)
            entries = [self._read_entry(self.ledger / n) for n in names]
            self._known, self._known_names = entries, names
            return list(entries)

    def verify(self) -> VerifyReport:
        findings: list[Finding] = []
        entries: list[LedgerEntry] = []
        for path in self._entry_files():
            try:
                entries.append(self._read_entry(path))
            except ArchiveCorrupt as exc:
                findings.append(Finding(f"ledger entry {path.name}", str(exc.message)))
        objects = 0
        for digest, path in self._object_digests():
            objects += 1
            try:
                if sha256_hex(path.read_bytes()) != digest:
                    findings.append(Finding(f"object {digest}", "content does not match its digest"))
            except OSError as exc:
                findings.append(Finding(f"object {digest}", f"cannot be read: {exc}"))
        findings.extend(verify_chain(entries, self.has))
        return VerifyReport(len(entries), objects, tuple(findings))
