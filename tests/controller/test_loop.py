"""The work loop: queue, batching, per-app exponential backoff, whole-pass failures,
leadership gating. Real threads and real time, with small constants."""

from __future__ import annotations

import io
import itertools
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from llmops.controller.leader import NoElection
from llmops.controller.loop import ALL, Backoff, Loop, Work, WorkQueue
from llmops.controller.metrics import ControllerMetrics
from llmops.controller.types import (
    AppFailure,
    EnvResult,
    GateFailure,
    PassOutcome,
    PassRequest,
    Promotion,
    Rollback,
)
from llmops.domain.errors import ExternalError
from llmops.runtime.logs import JsonLogger

APPS = ("x", "y", "z")


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class Recorder:
    """A pass function over APPS that fails the apps in ``failing``; records every call."""

    def __init__(self, failing: set[str] | None = None, delay: float = 0.0) -> None:
        self.failing = failing or set()
        self.delay = delay
        self.calls: list[tuple[float, PassRequest, tuple[str, ...]]] = []
        self.lock = threading.Lock()

    def __call__(self, request: PassRequest) -> PassOutcome:
        apps = tuple(a for a in APPS if request.wants(a))
        with self.lock:
            self.calls.append((time.monotonic(), request, apps))
        if self.delay:
            time.sleep(self.delay)
        failures = tuple(AppFailure(a, "dev", "model endpoint refused") for a in apps if a in self.failing)
        return PassOutcome(environments=(EnvResult("dev", True),), app_failures=failures)

    def attempts(self, app: str) -> list[float]:
        with self.lock:
            return [t for t, _, apps in self.calls if app in apps]


class Elected:
    """An election the test switches on and off."""

    identity = "test"
    last_error = None

    def __init__(self, leading: bool = True) -> None:
        self.leading = leading

    def is_leader(self) -> bool:
        return self.leading

    def role(self) -> str:
        return "leader" if self.leading else "follower"

    def holder(self) -> str | None:
        return None

    def start(self) -> None: ...

    def alive(self) -> bool:
        return True

    def stop(self, release: bool = True) -> None: ...

    def nudge(self, value: str, attempts: int = 5) -> bool:
        return False


@pytest.fixture
def run_loop() -> Iterator[Callable[..., Loop]]:
    loops: list[Loop] = []

    def start(pass_fn: Callable[[PassRequest], PassOutcome], **kwargs: object) -> Loop:
        kwargs.setdefault("election", NoElection())
        kwargs.setdefault("logger", JsonLogger(io.StringIO()))
        loop = Loop(pass_fn, **kwargs)  # type: ignore[arg-type]
        loops.append(loop)
        loop.start()
        return loop

    yield start
    for loop in loops:
        loop.stop(5)


# -- the queue ----------------------------------------------------------------------------


def test_queue_holds_each_key_once_and_hands_out_a_batch() -> None:
    queue = WorkQueue()
    queue.add("x", "poll")
    queue.add("x", "webhook", "abc")
    queue.add("y", "poll")
    assert queue.depth() == 2
    batch = queue.take(0)
    assert [(w.key, w.trigger, w.commit) for w in batch] == [("x", "webhook", "abc"), ("y", "poll", None)]
    assert queue.take(0) == []


def test_a_delayed_key_becomes_ready_when_due_and_add_makes_it_ready_at_once() -> None:
    queue = WorkQueue()
    queue.add_after("x", 0.2)
    assert queue.depth() == 0 and queue.delayed() == 1
    started = time.monotonic()
    batch = queue.take(2.0)
    assert [w.key for w in batch] == ["x"]
    assert 0.15 <= time.monotonic() - started < 1.5
    queue.add_after("y", 60)
    queue.add("y", "webhook")
    assert [w.key for w in queue.take(0)] == ["y"]


def test_take_returns_when_an_item_arrives_from_another_thread() -> None:
    queue = WorkQueue()
    timer = threading.Timer(0.1, queue.add, args=("x",))
    timer.start()
    started = time.monotonic()
    assert [w.key for w in queue.take(5.0)] == ["x"]
    assert time.monotonic() - started < 2.0


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=1, factor=2, cap=10)
    assert [backoff.delay(n) for n in range(0, 7)] == [0, 1, 2, 4, 8, 10, 10]


def test_request_wants_apps_in_the_pass_only() -> None:
    everything = PassRequest(exclude=frozenset({"x"}))
    assert not everything.wants("x") and everything.wants("y")
    some = PassRequest(apps=frozenset({"x"}))
    assert some.wants("x") and not some.wants("y")


def test_outcome_is_ok_only_when_every_environment_converged_and_no_app_failed() -> None:
    assert PassOutcome(environments=(EnvResult("dev", True),)).ok
    assert not PassOutcome(environments=(EnvResult("dev", False, "unreachable"),)).ok
    assert not PassOutcome(app_failures=(AppFailure("x", None, "boom"),)).ok


# -- the loop -----------------------------------------------------------------------------


def test_a_failing_app_backs_off_exponentially_while_the_others_keep_passing(
    run_loop: Callable[..., Loop],
) -> None:
    fn = Recorder(failing={"x"})
    loop = run_loop(fn, interval=0.05, backoff=Backoff(base=0.1, factor=2, cap=10))
    wait_for(lambda: len(fn.attempts("x")) >= 5, timeout=10)
    x = fn.attempts("x")[:5]
    gaps = [b - a for a, b in itertools.pairwise(x)]
    # 0.1, 0.2, 0.4, 0.8 (each at least its backoff, and growing)
    for gap, expected in zip(gaps, (0.1, 0.2, 0.4, 0.8), strict=True):
        assert gap >= expected * 0.95, gaps
    assert gaps[3] > gaps[0], gaps
    # y was reconciled on every poll meanwhile: far more often than x
    y_during = [t for t in fn.attempts("y") if x[0] <= t <= x[-1]]
    assert len(y_during) >= 10, len(y_during)
    # the polls left x out while it was backing off, and x was retried on its own
    with fn.lock:
        polls = [r for _, r, _ in fn.calls if r.trigger == "poll"]
        retries = [r for _, r, _ in fn.calls if r.trigger == "retry"]
    assert any("x" in r.exclude for r in polls)
    assert retries and all(r.apps == frozenset({"x"}) for r in retries)
    assert "x" in loop.status().backing_off
    assert loop.metrics.app_failures.get(("x",)) >= 5
    assert loop.metrics.app_failures.get(("y",)) == 0


def test_an_app_that_recovers_leaves_backoff(run_loop: Callable[..., Loop]) -> None:
    fn = Recorder(failing={"x"})
    loop = run_loop(fn, interval=0.05, backoff=Backoff(base=0.05, factor=2, cap=0.2))
    wait_for(lambda: len(fn.attempts("x")) >= 3)
    fn.failing.clear()
    wait_for(lambda: "x" not in loop.status().backing_off and loop.metrics.backoff.get(("x",)) == 0)
    count = len(fn.attempts("x"))
    wait_for(lambda: len(fn.attempts("x")) >= count + 3)  # back on every poll
    with fn.lock:
        last = [r for _, r, apps in fn.calls[-3:]]
    assert all("x" not in r.exclude for r in last)


def test_a_pass_that_raises_is_retried_with_backoff_and_the_loop_survives(
    run_loop: Callable[..., Loop],
) -> None:
    calls: list[float] = []

    def broken(request: PassRequest) -> PassOutcome:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise ExternalError("cannot fetch the repository")
        if len(calls) == 2:
            raise RuntimeError("a bug")
        return PassOutcome(environments=(EnvResult("dev", True),))

    loop = run_loop(broken, interval=60, backoff=Backoff(base=0.1, factor=2, cap=1))
    wait_for(lambda: len(calls) >= 3)
    assert calls[1] - calls[0] >= 0.09
    assert calls[2] - calls[1] >= 0.19
    wait_for(lambda: loop.status().last_ok_at is not None)
    status = loop.status()
    assert status.running and status.last_error is None
    assert loop.metrics.passes.get(("startup", "error")) == 1
    assert loop.metrics.passes.get(("retry", "error")) == 1
    assert loop.metrics.passes.get(("retry", "ok")) == 1


def test_triggered_apps_run_at_once_and_pushes_give_backing_off_apps_a_new_chance(
    run_loop: Callable[..., Loop],
) -> None:
    fn = Recorder(failing={"x"})
    loop = run_loop(fn, interval=60, backoff=Backoff(base=30, cap=30))
    wait_for(lambda: len(fn.calls) == 1)
    assert "x" in loop.status().backing_off
    loop.trigger(["y"], trigger="webhook", commit="c1")
    wait_for(lambda: len(fn.calls) == 2)
    request = fn.calls[1][1]
    assert request.apps == frozenset({"y"}) and request.commit == "c1"
    loop.trigger(None, trigger="webhook")
    wait_for(lambda: len(fn.calls) == 3)
    assert fn.calls[2][1].apps is None and fn.calls[2][1].exclude == frozenset()
    assert fn.calls[2][2] == APPS


def test_passes_run_only_while_leading_and_the_new_leader_starts_at_once(
    run_loop: Callable[..., Loop],
) -> None:
    fn = Recorder()
    election = Elected(leading=False)
    loop = run_loop(fn, election=election, interval=0.05)
    loop.trigger(None)
    time.sleep(0.3)
    assert fn.calls == []
    election.leading = True
    wait_for(lambda: len(fn.calls) >= 1)
    assert fn.calls[0][1].trigger in ("startup", "webhook")
    election.leading = False
    time.sleep(0.3)
    count = len(fn.calls)
    time.sleep(0.3)
    assert len(fn.calls) == count
    assert loop.status().running


def test_should_stop_turns_true_when_the_lease_is_lost_mid_pass(
    run_loop: Callable[..., Loop],
) -> None:
    election = Elected()
    seen: list[bool] = []
    entered = threading.Event()

    def long_pass(request: PassRequest) -> PassOutcome:
        seen.append(request.should_stop())
        entered.set()
        deadline = time.monotonic() + 5
        while not request.should_stop() and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(request.should_stop())
        return PassOutcome()

    run_loop(long_pass, election=election, interval=60)
    assert entered.wait(5)
    election.leading = False
    wait_for(lambda: len(seen) == 2)
    assert seen == [False, True]


def test_stop_lets_the_pass_in_flight_finish() -> None:
    finished = threading.Event()
    entered = threading.Event()

    def slow(request: PassRequest) -> PassOutcome:
        entered.set()
        time.sleep(0.3)
        finished.set()
        return PassOutcome()

    loop = Loop(slow, NoElection(), interval=60, logger=JsonLogger(io.StringIO()))
    loop.start()
    assert entered.wait(5)
    assert loop.stop(5)
    assert finished.is_set()
    assert not loop.status().running


def test_outcomes_are_counted_in_metrics() -> None:
    metrics = ControllerMetrics()
    outcome = PassOutcome(
        environments=(EnvResult("dev", True), EnvResult("prod", False, "cluster unreachable")),
        promotions=(Promotion("x", "test", "x@sha256:aa", "dev"),),
        rollbacks=(Rollback("y", "prod", "y@sha256:01", "y@sha256:02", "verify failed"),),
        gate_failures=(GateFailure("z", "test", "z@sha256:03", "pass rate 0.5 < 0.95"),),
    )
    loop = Loop(
        lambda r: outcome, NoElection(), metrics=metrics, logger=JsonLogger(io.StringIO()),
        wall=lambda: 1700000000.0,
    )
    assert loop.run_once([Work(ALL, "poll")]) == outcome
    text = metrics.render()
    assert 'llmops_controller_last_success_timestamp_seconds{environment="dev"} 1700000000' in text
    assert 'environment="prod"' not in text.split("llmops_controller_last_success")[1].split("# HELP")[0]
    assert 'llmops_controller_promotions_total{app="x",environment="test"} 1' in text
    assert 'llmops_controller_rollbacks_total{app="y",environment="prod"} 1' in text
    assert 'llmops_controller_gate_failures_total{app="z",environment="test"} 1' in text
    assert 'llmops_controller_passes_total{trigger="poll",result="degraded"} 1' in text
    assert 'llmops_controller_pass_duration_seconds_count{trigger="poll",result="degraded"} 1' in text


def test_a_retry_hint_lengthens_the_backoff() -> None:
    def fn(request: PassRequest) -> PassOutcome:
        return PassOutcome(app_failures=(AppFailure("x", "dev", "rate limited", retry_after=30),))

    loop = Loop(fn, NoElection(), backoff=Backoff(base=1), logger=JsonLogger(io.StringIO()))
    loop.run_once([Work(ALL, "poll")])
    assert loop.metrics.backoff.get(("x",)) == 30
    assert loop.queue.delayed() == 1


def test_a_poll_that_takes_a_due_retry_along_is_a_poll_over_every_app() -> None:
    seen: list[PassRequest] = []

    def fn(request: PassRequest) -> PassOutcome:
        seen.append(request)
        return PassOutcome()

    loop = Loop(fn, NoElection(), logger=JsonLogger(io.StringIO()))
    loop.run_once([Work(ALL, "poll"), Work("x", "retry")])
    loop.run_once([Work("x", "retry"), Work("y", "webhook")])
    assert (seen[0].trigger, seen[0].apps) == ("poll", None)
    assert (seen[1].trigger, seen[1].apps) == ("webhook", frozenset({"x", "y"}))
