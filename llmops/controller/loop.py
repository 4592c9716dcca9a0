"""The controller's work loop: a poll timer and webhook pushes feed a work queue; while
this replica leads, each batch of work becomes one call of the injected pass function.
Run by ``llmops.controller.run`` in its own thread; fed by ``llmops.controller.webhook``.

Backoff is per app: an app that fails is left out of the following passes (``exclude``)
and retried alone after ``base * factor**(n-1)`` seconds (capped), while every other app
keeps being reconciled on every poll. An app leaves backoff when a pass that covered it
reports no failure for it. A pass that fails as a whole (it raised) is retried with the
same backoff. Nothing a pass function does stops the loop.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llmops.controller.events import EventRecorder
from llmops.controller.leader import Election
from llmops.controller.metrics import ControllerMetrics
from llmops.controller.types import PassFn, PassOutcome, PassRequest, Trigger
from llmops.domain.errors import LlmopsError
from llmops.runtime.logs import JsonLogger

#: the work item meaning "every app"
ALL = "*"

_TRIGGER_RANK: dict[Trigger, int] = {"webhook": 3, "startup": 2, "retry": 1, "poll": 0}


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``base * factor**(failures-1)`` seconds, at most ``cap``."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self.cap, self.base * self.factor ** (failures - 1)))


@dataclass(frozen=True, slots=True)
class Work:
    """One queued item: ``key`` is an app name or :data:`ALL`."""

    key: str
    trigger: Trigger
    commit: str | None = None


class WorkQueue:
    """Keys waiting for a pass, ready now or due later; each key is held once.

    Thread-safe. ``take`` hands out every ready key at once, so a burst of pushes
    becomes one pass.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cond = threading.Condition()
        self._ready: dict[str, Work] = {}
        self._delayed: dict[str, tuple[float, Work]] = {}
        self._closed = False

    def add(self, key: str, trigger: Trigger = "poll", commit: str | None = None) -> None:
        """Make ``key`` ready now (it replaces a delayed entry of the same key)."""
        with self._cond:
            self._delayed.pop(key, None)
            old = self._ready.get(key)
            if old is None or _TRIGGER_RANK[trigger] > _TRIGGER_RANK[old.trigger]:
                self._ready[key] = Work(key, trigger, commit or (old.commit if old else None))
            self._cond.notify_all()

    def add_after(self, key: str, delay: float, trigger: Trigger = "retry") -> None:
        """Make ``key`` ready in ``delay`` seconds, unless it is ready already."""
        if delay <= 0:
            self.add(key, trigger)
            return
        with self._cond:
            if key in self._ready:
                return
            self._delayed[key] = (self.clock() + delay, Work(key, trigger))
            self._cond.notify_all()

    def _promote_due(self) -> float | None:
        now = self.clock()
        next_due: float | None = None
        for key, (due, work) in list(self._delayed.items()):
            if due <= now:
                del self._delayed[key]
                self._ready.setdefault(key, work)
            elif next_due is None or due < next_due:
                next_due = due
        return next_due

    def take(self, timeout: float) -> list[Work]:
        """Every ready item, waiting up to ``timeout`` seconds for one; [] on timeout."""
        deadline = self.clock() + max(0.0, timeout)
        with self._cond:
            while True:
                next_due = self._promote_due()
                if self._ready or self._closed:
                    items = list(self._ready.values())
                    self._ready.clear()
                    return items
                now = self.clock()
                if now >= deadline:
                    return []
                wait = deadline - now
                if next_due is not None:
                    wait = min(wait, max(0.0, next_due - now))
                self._cond.wait(wait)

    def put_back(self, items: Iterable[Work]) -> None:
        for work in items:
            self.add(work.key, work.trigger, work.commit)

    def depth(self) -> int:
        with self._cond:
            self._promote_due()
            return len(self._ready)

    def delayed(self) -> int:
        with self._cond:
            return len(self._delayed)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class LoopStatus:
    """What ``/readyz`` and ``/healthz`` need to know, as of one moment (monotonic times)."""

    running: bool
    passes: int
    in_flight_since: float | None
    last_pass_at: float | None
    last_ok_at: float | None
    last_error: str | None
    backing_off: tuple[str, ...]
    #: when this replica last became leader (None: never)
    leading_since: float | None = None


class Loop:
    """Runs passes while this replica leads; owns the queue, the poll timer and backoff."""

    def __init__(
        self,
        pass_fn: PassFn,
        election: Election,
        *,
        interval: float = 60.0,
        backoff: Backoff | None = None,
        environments: frozenset[str] | None = None,
        metrics: ControllerMetrics | None = None,
        events: EventRecorder | None = None,
        logger: JsonLogger | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        idle_check: float = 0.05,
    ) -> None:
        self.pass_fn = pass_fn
        self.election = election
        self.interval = interval
        self.backoff = backoff or Backoff()
        self.environments = environments
        self.metrics = metrics or ControllerMetrics()
        self.events = events
        self.logger = logger or JsonLogger()
        self.clock = clock
        self.wall = wall
        self.idle_check = idle_check
        self.queue = WorkQueue(clock)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._pass_failures = 0
        self._passes = 0
        self._in_flight_since: float | None = None
        self._last_pass_at: float | None = None
        self._last_ok_at: float | None = None
        self._last_error: str | None = None
        self._leading_since: float | None = None
        #: (app, env, release) gate failures already counted: a pass reports a failed
        #: gate again while its evidence stands, and the metric counts releases
        self._gates_counted: set[tuple[str, str, str]] = set()

    # -- feeding -------------------------------------------------------------------------

    def trigger(
        self, apps: Iterable[str] | None = None, *, trigger: Trigger = "webhook", commit: str | None = None
    ) -> None:
        """Queue a pass for ``apps`` (None: every app) to run as soon as possible."""
        if apps is None:
            self.queue.add(ALL, trigger, commit)
        else:
            for app in apps:
                self.queue.add(app, trigger, commit)
        self._gauges()

    # -- state ---------------------------------------------------------------------------

    def status(self) -> LoopStatus:
        with self._lock:
            now = self.clock()
            return LoopStatus(
                running=self._thread is not None and self._thread.is_alive(),
                passes=self._passes,
                in_flight_since=self._in_flight_since,
                last_pass_at=self._last_pass_at,
                last_ok_at=self._last_ok_at,
                last_error=self._last_error,
                backing_off=tuple(sorted(a for a, t in self._retry_at.items() if t > now)),
                leading_since=self._leading_since,
            )

    def should_stop(self) -> bool:
        """True when a pass in flight should end early: stopping, or the lease is lost."""
        return self._stopping.is_set() or not self.election.is_leader()

    def _gauges(self) -> None:
        self.metrics.queue_depth.set((), self.queue.depth())
        self.metrics.queue_delayed.set((), self.queue.delayed())

    # -- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="reconcile-loop", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Start no new pass, let the one in flight finish; True when the loop ended."""
        self._stopping.set()
        self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def run(self) -> None:
        leading = False
        next_poll = self.clock()
        while not self._stopping.is_set():
            if not self.election.is_leader():
                leading = False
                self._stopping.wait(self.idle_check)
                continue
            if not leading:
                leading = True
                with self._lock:
                    self._leading_since = self.clock()
                self.queue.add(ALL, "startup")
                next_poll = self.clock() + self.interval
            now = self.clock()
            if now >= next_poll:
                self.queue.add(ALL, "poll")
                next_poll = now + self.interval
            # wake up at least every idle_check*10 to notice a lost lease while idle
            items = self.queue.take(min(next_poll - now, max(self.idle_check * 10, 0.5)))
            if self._stopping.is_set():
                break
            if not items:
                self._gauges()
                continue
            if not self.election.is_leader():
                self.queue.put_back(items)
                continue
            self.run_once(items)

    # -- one pass ------------------------------------------------------------------------

    def _request(self, items: list[Work]) -> PassRequest:
        now = self.clock()
        keys = {w.key for w in items}
        # a pass over every app is named by what asked for every app (a poll that
        # happens to take a due retry along is still a poll)
        whole = [w for w in items if w.key == ALL] or items
        trigger = max((w.trigger for w in whole), key=lambda t: _TRIGGER_RANK[t])
        commit = next((w.commit for w in items if w.commit), None)
        with self._lock:
            backing_off = frozenset(a for a, t in self._retry_at.items() if t > now)
        if ALL in keys:
            # a push is new input: every app gets a new chance; a poll leaves them waiting
            exclude = frozenset() if trigger == "webhook" else backing_off
            apps: frozenset[str] | None = None
        else:
            exclude, apps = frozenset(), frozenset(keys)
        return PassRequest(
            apps=apps,
            environments=self.environments,
            exclude=exclude,
            trigger=trigger,
            commit=commit,
            should_stop=self.should_stop,
        )

    def run_once(self, items: list[Work]) -> PassOutcome | None:
        """Run one pass for ``items`` and account for it; the outcome, or None if it raised."""
        request = self._request(items)
        started = self.clock()
        with self._lock:
            self._in_flight_since = started
        self._gauges()
        outcome: PassOutcome | None = None
        error: str | None = None
        try:
            outcome = self.pass_fn(request)
        except LlmopsError as exc:
            error = exc.message
        except Exception as exc:  # a bug in a pass must not end the controller
            error = f"internal error: {type(exc).__name__}: {exc}"
            self.logger.error(
                "pass crashed", error=error, traceback=traceback.format_exc(limit=8)
            )
        ended = self.clock()
        duration = ended - started
        result = "error" if outcome is None else ("ok" if outcome.ok else "degraded")
        self.metrics.pass_duration.observe((request.trigger, result), duration)
        self.metrics.passes.inc((request.trigger, result))
        with self._lock:
            self._in_flight_since = None
            self._passes += 1
            self._last_pass_at = ended
            self._last_error = error
            if outcome is not None:
                self._last_ok_at = ended
        if outcome is None:
            self._whole_pass_failed(request, items, error or "", duration)
        else:
            self._account(request, outcome, duration)
        self._gauges()
        return outcome

    def _whole_pass_failed(
        self, request: PassRequest, items: list[Work], error: str, duration: float
    ) -> None:
        self._pass_failures += 1
        delay = self.backoff.delay(self._pass_failures)
        self.logger.error(
            "pass failed",
            trigger=request.trigger,
            error=error,
            duration_s=round(duration, 3),
            retry_in_s=round(delay, 3),
        )
        for work in items:
            self.queue.add_after(work.key, delay, "retry")

    def _account(self, request: PassRequest, outcome: PassOutcome, duration: float) -> None:
        self._pass_failures = 0
        now = self.clock()
        failed: dict[str, float | None] = {}
        for failure in outcome.app_failures:
            hint = failure.retry_after
            prior = failed.get(failure.app)
            failed[failure.app] = max(hint or 0.0, prior or 0.0) or None
        retries: dict[str, float] = {}
        with self._lock:
            for app, hint in failed.items():
                n = self._failures.get(app, 0) + 1
                self._failures[app] = n
                delay = max(self.backoff.delay(n), hint or 0.0)
                self._retry_at[app] = now + delay
                retries[app] = delay
            recovered = [
                a for a in list(self._failures) if a not in failed and request.wants(a)
            ]
            for app in recovered:
                self._failures.pop(app, None)
                self._retry_at.pop(app, None)
        for app, delay in retries.items():
            self.queue.add_after(app, delay, "retry")
            self.metrics.app_failures.inc((app,))
            self.metrics.backoff.set((app,), delay)
        for app in recovered:
            self.metrics.backoff.set((app,), 0.0)
        wall = self.wall()
        for env in outcome.environments:
            if env.ok:
                self.metrics.last_success.set((env.env,), wall)
        for p in outcome.promotions:
            self.metrics.promotions.inc((p.app, p.env))
        for r in outcome.rollbacks:
            self.metrics.rollbacks.inc((r.app, r.env))
        for g in outcome.gate_failures:
            if (g.app, g.env, g.release) not in self._gates_counted:
                self._gates_counted.add((g.app, g.env, g.release))
                self.metrics.gate_failures.inc((g.app, g.env))
        self.logger.info(
            "pass done",
            trigger=request.trigger,
            apps="all" if request.apps is None else sorted(request.apps),
            excluded=sorted(request.exclude) or None,
            commit=outcome.commit,
            duration_s=round(duration, 3),
            environments={e.env: ("ok" if e.ok else e.message or "failed") for e in outcome.environments},
            promotions=len(outcome.promotions) or None,
            rollbacks=len(outcome.rollbacks) or None,
            gate_failures=len(outcome.gate_failures) or None,
            failed_apps={a: round(d, 3) for a, d in retries.items()} or None,
            recovered=recovered or None,
        )
        for failure in outcome.app_failures:
            self.logger.warning(
                "app failed", app=failure.app, env=failure.env, error=failure.message,
                retry_in_s=round(retries.get(failure.app, 0.0), 3),
            )
        if self.events is not None:
            self.events.record(outcome, request.wants)
