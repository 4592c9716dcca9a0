"""Leader election logic on an in-memory Lease with a hand-moved clock (the election
over real HTTP is in test_election.py)."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from leasekit import Clock, MemoryLeases, Partition

from llmops.adapters.kubelease import LeaseConflict, LeaseRecord
from llmops.controller.leader import ElectionConfig, LeaderElector
from llmops.domain.errors import UsageError
from llmops.runtime.logs import JsonLogger


def elector(
    store: object, clock: Clock, name: str, changes: list[tuple[str, bool]] | None = None
) -> LeaderElector:
    def on_change(leading: bool) -> None:
        if changes is not None:
            changes.append((name, leading))

    return LeaderElector(
        store,  # type: ignore[arg-type]
        ElectionConfig(identity=name, lease_duration=15, renew_deadline=10, retry_period=2),
        logger=JsonLogger(io.StringIO()),
        on_change=on_change,
        clock=clock,
    )


def test_first_candidate_creates_the_lease_and_leads() -> None:
    store, clock = MemoryLeases(), Clock()
    a = elector(store, clock, "a")
    assert a.step() is True
    assert a.is_leader()
    assert store.record is not None
    assert store.record.holder == "a"
    assert store.record.lease_duration_seconds == 15
    assert store.record.transitions == 0


def test_a_follower_waits_while_the_lease_is_renewed() -> None:
    store, clock = MemoryLeases(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.step()
    for _ in range(20):  # 40 s of renewals every 2 s
        assert b.step() is False
        clock.advance(2)
        assert a.step() is True
    assert a.is_leader() and not b.is_leader()
    assert b.holder() == "a"
    assert store.record is not None and store.record.transitions == 0


def test_takeover_only_after_the_lease_expired_on_the_followers_clock() -> None:
    store, clock = MemoryLeases(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.step()
    assert not b.step()  # b first sees the record now
    clock.advance(14.9)
    assert not b.step()
    clock.advance(0.2)  # 15.1 s since b saw the record change
    assert b.step()
    assert b.is_leader()
    assert store.record is not None
    assert store.record.holder == "b" and store.record.transitions == 1


def test_a_leader_that_cannot_renew_stops_at_the_renew_deadline_before_anyone_takes_over() -> None:
    store, clock = MemoryLeases(), Clock()
    cut = Partition(store)
    changes: list[tuple[str, bool]] = []
    a, b = elector(cut, clock, "a", changes), elector(store, clock, "b", changes)
    assert a.step() and not b.step()
    cut.cut.set()
    clock.advance(9.9)
    assert a.step() is False
    assert a.is_leader()  # still within the renew deadline
    clock.advance(0.2)
    assert not a.is_leader()  # the clock alone ends it, even before the next step
    a.step()
    assert changes == [("a", True), ("a", False)]
    assert not b.step()  # 10.1 s: the lease is still valid for others
    clock.advance(5)
    assert b.step() and b.is_leader()
    assert changes[-1] == ("b", True)


def test_a_leader_that_sees_another_holder_stops_at_once() -> None:
    store, clock = MemoryLeases(), Clock()
    a = elector(store, clock, "a")
    assert a.step()
    assert store.record is not None
    store.record = replace(store.record, holder="intruder", resource_version="99")
    clock.advance(2)
    assert a.step() is False
    assert not a.is_leader()


def test_of_two_racing_candidates_exactly_one_wins() -> None:
    store, clock = MemoryLeases(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.step()
    clock.advance(100)  # a died long ago
    assert not b.step()  # b only now sees the record
    stale = store.get()
    clock.advance(16)

    class Racer:
        """b reads the record, then a third candidate writes first."""

        def get(self) -> LeaseRecord | None:
            record = store.get()
            assert stale is not None and record is not None
            store.replace(replace(record, holder="c", renew_time=None))
            return record

        create = store.create
        replace = store.replace

    b.store = Racer()
    assert b.step() is False  # LeaseConflict: not leader, and no exception escapes
    assert not b.is_leader()
    assert store.record is not None and store.record.holder == "c"


def test_release_lets_a_follower_take_over_at_once() -> None:
    store, clock = MemoryLeases(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.step() and not b.step()
    assert a.release()
    assert store.record is not None and store.record.holder == ""
    clock.advance(0.1)
    assert b.step() and b.is_leader()


def test_release_of_a_lease_held_by_another_does_nothing() -> None:
    store, clock = MemoryLeases(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.step()
    assert b.release() is False
    assert store.record is not None and store.record.holder == "a"


def test_a_nudge_reaches_the_leader_and_does_not_keep_a_dead_lease_alive() -> None:
    store, clock = MemoryLeases(), Clock()
    nudges: list[str] = []
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    a.on_nudge = nudges.append
    assert a.step() and not b.step()
    assert b.nudge("push-1")
    clock.advance(2)
    assert a.step()
    assert nudges == ["push-1"]
    clock.advance(2)
    assert a.step()
    assert nudges == ["push-1"]  # seen once
    # a dies; b keeps nudging: the lease still expires 15 s after its last renewal
    assert not b.step()
    for _ in range(7):
        clock.advance(2)
        assert b.nudge(f"push-{clock.now}")
        assert not b.step()
    clock.advance(2)
    assert b.step()


def test_conflicts_while_nudging_are_retried() -> None:
    store, clock = MemoryLeases(), Clock()
    a = elector(store, clock, "a")
    assert a.step()
    calls = {"n": 0}

    class Flaky:
        get = store.get
        create = store.create

        def replace(self, record: LeaseRecord) -> LeaseRecord:
            calls["n"] += 1
            if calls["n"] < 3:
                raise LeaseConflict("changed")
            return store.replace(record)

    b = elector(Flaky(), clock, "b")
    assert b.nudge("x")
    assert store.record is not None and store.record.nudge == "x"


@pytest.mark.parametrize(
    ("duration", "deadline", "period"),
    [(10, 10, 2), (15, 10, 10), (15, 10, 0), (0, 0.5, 0.1)],
)
def test_inconsistent_timings_are_refused(duration: int, deadline: float, period: float) -> None:
    with pytest.raises(UsageError):
        ElectionConfig("a", duration, deadline, period)


def test_an_empty_identity_is_refused() -> None:
    with pytest.raises(UsageError, match="identity"):
        ElectionConfig("")
