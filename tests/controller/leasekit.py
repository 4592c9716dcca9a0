"""Test helpers for leader election: an in-memory Lease store with the API server's
optimistic concurrency, a settable clock, and a store wrapper that can be cut off."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from llmops.adapters.kubelease import LeaseConflict, LeaseRecord
from llmops.controller.leader import LeaseStore
from llmops.domain.errors import Retryable


class MemoryLeases:
    """One Lease in memory: create fails when it exists, replace when the version moved."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0
        self.writes = 0
        self._lock = threading.Lock()

    def get(self) -> LeaseRecord | None:
        with self._lock:
            return self.record

    def create(self, record: LeaseRecord) -> LeaseRecord:
        with self._lock:
            if self.record is not None:
                raise LeaseConflict("exists")
            return self._store(record)

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        with self._lock:
            if self.record is None or record.resource_version != self.record.resource_version:
                raise LeaseConflict("changed")
            return self._store(record)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.writes += 1
        self.record = replace(record, resource_version=str(self.version))
        return self.record


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Partition:
    """Wraps a store; while ``cut`` is set every call fails as an unreachable API would."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.cut = threading.Event()
        #: monotonic time each successful write started (create or replace)
        self.writes: list[float] = []

    def _check(self) -> None:
        if self.cut.is_set():
            raise Retryable("cannot reach the Kubernetes API (partitioned by the test)")

    def get(self) -> LeaseRecord | None:
        self._check()
        return self.store.get()

    def create(self, record: LeaseRecord) -> LeaseRecord:
        self._check()
        started = time.monotonic()
        written = self.store.create(record)
        self.writes.append(started)
        return written

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        self._check()
        started = time.monotonic()
        written = self.store.replace(record)
        self.writes.append(started)
        return written
