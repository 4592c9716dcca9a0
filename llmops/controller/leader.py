"""Leader election on a ``coordination.k8s.io/v1`` Lease; run by ``llmops.controller.run``
and asked by ``llmops.controller.loop`` before every pass.

The algorithm is client-go's: every ``retry_period`` a candidate reads the Lease; it may
take it when nobody holds it, when it holds it already, or when the holder has not
renewed it for ``leaseDurationSeconds`` *as measured by the candidate's own clock since it
last saw the record change* (clocks of different machines are never compared). Writes
carry the ``resourceVersion`` that was read, so of two candidates racing for the same
record exactly one wins (the other gets ``LeaseConflict``).

A leader counts itself leader only until ``renew_deadline`` after the start of its last
successful renewal. ``is_leader()`` computes that from the clock, so a renewal that hangs
(a network partition) cannot stretch leadership: work stops at the deadline, and since
``renew_deadline < lease_duration`` it has stopped before any other candidate may take over.

Followers that receive a webhook push pass it on to the leader through an annotation of
the Lease (:meth:`LeaderElector.nudge`); the leader sees it at its next renewal.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

from llmops.adapters.kubelease import LeaseConflict, LeaseRecord
from llmops.domain.errors import LlmopsError, UsageError
from llmops.runtime.logs import JsonLogger

Role = Literal["leader", "follower", "disabled"]


class LeaseStore(Protocol):
    """One Lease: ``llmops.adapters.kubelease.KubeLeases`` or an in-memory store in tests."""

    def get(self) -> LeaseRecord | None: ...

    def create(self, record: LeaseRecord) -> LeaseRecord: ...

    def replace(self, record: LeaseRecord) -> LeaseRecord: ...


@dataclass(frozen=True, slots=True)
class ElectionConfig:
    """Timing of the election, in seconds (client-go's defaults: 15, 10, 2)."""

    identity: str
    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.identity:
            raise UsageError("leader election needs a non-empty --identity")
        if self.lease_duration < 1:
            raise UsageError("the lease duration must be at least 1 second")
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise UsageError(
                "leader election needs lease duration > renew deadline > retry period > 0 "
                f"(got {self.lease_duration}, {self.renew_deadline}, {self.retry_period})"
            )


def _lease_time(record: LeaseRecord) -> tuple[object, ...]:
    return (record.holder, record.renew_time, record.acquire_time, record.transitions)


def _now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Acquires, renews and releases one Lease in a background thread."""

    def __init__(
        self,
        store: LeaseStore,
        config: ElectionConfig,
        *,
        logger: JsonLogger | None = None,
        on_change: Callable[[bool], None] | None = None,
        on_nudge: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.config = config
        self.logger = logger or JsonLogger()
        self.on_change = on_change
        self.on_nudge = on_nudge
        self.clock = clock
        self.wall = wall
        self._lock = threading.Lock()
        self._leading = False
        self._renewed_at = 0.0
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._seen_nudge: str | None = None
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- state ---------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        return self.config.identity

    def is_leader(self) -> bool:
        """True while this process may act: it renewed within the renew deadline."""
        with self._lock:
            return self._leading and self.clock() - self._renewed_at < self.config.renew_deadline

    def role(self) -> Role:
        return "leader" if self.is_leader() else "follower"

    def holder(self) -> str | None:
        """The holder last seen in the Lease (None before the first read)."""
        with self._lock:
            return self._observed.holder if self._observed is not None else None

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def _set_leading(self, leading: bool, why: str) -> None:
        with self._lock:
            changed = self._leading != leading
            self._leading = leading
        if not changed:
            return
        if leading:
            self.logger.info("became leader", identity=self.identity, why=why)
        else:
            self.logger.warning("stopped leading", identity=self.identity, why=why)
        if self.on_change is not None:
            self.on_change(leading)

    # -- one step ------------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One attempt to take or keep the Lease; True when this process holds it now."""
        started = self.clock()
        now = self.wall()
        cfg = self.config
        old = self.store.get()
        if old is None:
            created = self.store.create(
                LeaseRecord(
                    holder=cfg.identity,
                    lease_duration_seconds=cfg.lease_duration,
                    acquire_time=now,
                    renew_time=now,
                    transitions=0,
                )
            )
            self._took(created, started, "created the lease")
            return True
        with self._lock:
            seen = self._observed
            # a changed record restarts the clock; a nudge alone is no sign of life
            if seen is None or _lease_time(seen) != _lease_time(old):
                self._observed, self._observed_at = old, self.clock()
            observed_at = self._observed_at
        if old.holder and old.holder != cfg.identity:
            if self.is_leader():
                self._set_leading(False, f"the lease is held by {old.holder}")
            if observed_at + old.lease_duration_seconds > self.clock():
                return False
        ours = old.holder == cfg.identity
        record = replace(
            old,
            holder=cfg.identity,
            lease_duration_seconds=cfg.lease_duration,
            acquire_time=old.acquire_time if ours and old.acquire_time else now,
            renew_time=now,
            transitions=old.transitions if ours else old.transitions + 1,
        )
        written = self.store.replace(record)
        if ours:
            self._renewed(written, started)
        else:
            why = f"took over from {old.holder}" if old.holder else "the lease was free"
            self._took(written, started, why)
        return True

    def _took(self, record: LeaseRecord, started: float, why: str) -> None:
        with self._lock:
            self._observed, self._observed_at = record, self.clock()
            self._renewed_at = started
            # a new leader runs a full pass anyway: older nudges are done with
            self._seen_nudge = record.nudge
        self._set_leading(True, why)

    def _renewed(self, record: LeaseRecord, started: float) -> None:
        with self._lock:
            self._observed, self._observed_at = record, self.clock()
            was_leading = self._leading
            self._renewed_at = started
            nudge, seen = record.nudge, self._seen_nudge
            self._seen_nudge = nudge
        if not was_leading:
            self._set_leading(True, "renewed the lease it held")
        elif nudge and nudge != seen and self.on_nudge is not None:
            self.on_nudge(nudge)

    def step(self) -> bool:
        """:meth:`try_acquire_or_renew`, with API failures logged instead of raised."""
        try:
            held = self.try_acquire_or_renew()
            self._last_error = None
        except LeaseConflict:
            held = False  # someone wrote first; look again next time
        except LlmopsError as exc:
            held = False
            if exc.message != self._last_error:
                self.logger.warning("lease call failed", identity=self.identity, error=exc.message)
            self._last_error = exc.message
        with self._lock:
            leading = self._leading
            expired = self.clock() - self._renewed_at >= self.config.renew_deadline
        if leading and expired:
            self._set_leading(False, "could not renew the lease within the renew deadline")
        return held

    # -- the thread ----------------------------------------------------------------------

    def run(self) -> None:
        """Step every retry period (with jitter while following) until :meth:`stop`."""
        while not self._stop.is_set():
            self.step()
            period = self.config.retry_period
            if not self.is_leader():
                period *= 1.0 + random.random() * 0.2
            self._stop.wait(period)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="leader-election", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, release: bool = True) -> None:
        """Stop renewing; with ``release``, give the Lease up so another takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        was_leader = self.is_leader()
        self._set_leading(False, "shutting down")
        if release and was_leader:
            self.release()

    def release(self) -> bool:
        """Empty the holder of a Lease this process holds; True when done."""
        try:
            old = self.store.get()
            if old is None or old.holder != self.identity:
                return False
            now = self.wall()
            self.store.replace(
                replace(old, holder="", lease_duration_seconds=1, renew_time=now, acquire_time=now)
            )
        except LlmopsError as exc:
            self.logger.warning("could not release the lease", identity=self.identity, error=exc.message)
            return False
        self.logger.info("released the lease", identity=self.identity)
        return True

    # -- webhook pushes received by a follower -------------------------------------------

    def nudge(self, value: str, attempts: int = 5) -> bool:
        """Write ``value`` into the Lease's nudge annotation for the leader to see."""
        for _ in range(attempts):
            try:
                old = self.store.get()
                if old is None:
                    return False
                self.store.replace(replace(old, nudge=value))
                return True
            except LeaseConflict:
                continue
            except LlmopsError as exc:
                self.logger.warning("could not pass a push on to the leader", error=exc.message)
                return False
        return False


class NoElection:
    """Stands in for :class:`LeaderElector` with ``--no-leader-election``: always leader."""

    identity = "standalone"
    last_error: str | None = None

    def is_leader(self) -> bool:
        return True

    def role(self) -> Role:
        return "disabled"

    def holder(self) -> str | None:
        return None

    def start(self) -> None:
        pass

    def alive(self) -> bool:
        return True

    def stop(self, release: bool = True) -> None:
        pass

    def nudge(self, value: str, attempts: int = 5) -> bool:
        return False


class Election(Protocol):
    """What the loop and the server ask of an election (:class:`LeaderElector` or not)."""

    @property
    def identity(self) -> str: ...

    @property
    def last_error(self) -> str | None: ...

    def is_leader(self) -> bool: ...

    def role(self) -> Role: ...

    def holder(self) -> str | None: ...

    def start(self) -> None: ...

    def alive(self) -> bool: ...

    def stop(self, release: bool = True) -> None: ...

    def nudge(self, value: str, attempts: int = 5) -> bool: ...
