"""Two controllers against one Lease on the Kubernetes API test server, over real HTTP:
exactly one acts; a leader cut off from the API stops at its renew deadline and the
other takes over after the lease expires; a lost lease stops work at once; a graceful
stop hands the lease over at once; a push received by the follower reaches the leader."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from ctlkit import HTTP, LEASE, NS, SECRET, PassLog, Running, start_controller, wait_for

from llmops.controller.types import PassOutcome, PassRequest


@pytest.fixture
def started() -> Iterator[list[Running]]:
    running: list[Running] = []
    yield running
    for one in running:
        one.controller.stop()


def holder(kube_server: Any) -> str | None:
    lease = kube_server.get("Lease", LEASE, NS)
    return None if lease is None else lease["spec"].get("holderIdentity")


def assert_no_overlap(log: PassLog) -> None:
    """Passes of different controllers never overlap in time."""
    entries = log.snapshot()
    for (who1, _, end1, _), (who2, start2, _, _) in itertools.pairwise(entries):
        if who1 != who2:
            assert start2 >= end1, f"{who2} started at {start2} before {who1} ended at {end1}"


def test_of_two_controllers_exactly_one_runs_passes(
    kube_server: Any, started: list[Running]
) -> None:
    log = PassLog()
    a = start_controller(log.fn("a"), kube_server=kube_server, identity="a")
    started.append(a)
    wait_for(lambda: holder(kube_server) == "a", what="a holds the lease")
    b = start_controller(log.fn("b"), kube_server=kube_server, identity="b")
    started.append(b)
    time.sleep(2.5)  # more than two lease durations
    assert len(log.by("a")) >= 10
    assert log.by("b") == []
    assert holder(kube_server) == "a"
    # both are ready: the leader after good passes, the follower because it is waiting
    ready_a, ready_b = a.get("/readyz"), b.get("/readyz")
    assert (ready_a.status_code, ready_a.json()["role"]) == (200, "leader")
    assert (ready_b.status_code, ready_b.json()["role"]) == (200, "follower")
    assert ready_b.json()["leader"] == "a"
    assert "llmops_controller_leader 1" in a.get("/metrics").text
    assert "llmops_controller_leader 0" in b.get("/metrics").text
    reasons = [e["reason"] for e in kube_server.objects("Event", NS)]
    assert reasons.count("LeaderElected") == 1


def test_a_leader_cut_off_from_the_api_stops_and_the_other_takes_over_after_expiry(
    kube_server: Any, started: list[Running]
) -> None:
    log = PassLog()
    a = start_controller(log.fn("a"), kube_server=kube_server, identity="a")
    started.append(a)
    wait_for(lambda: holder(kube_server) == "a", what="a holds the lease")
    b = start_controller(log.fn("b"), kube_server=kube_server, identity="b")
    started.append(b)
    wait_for(lambda: len(log.by("a")) >= 3, what="a runs passes")
    assert a.partition is not None
    last_renewal = kube_server.get("Lease", LEASE, NS)["metadata"]["resourceVersion"]
    a.partition.cut.set()  # a can no longer renew; the lease record stops changing
    cut_at = time.monotonic()
    wait_for(lambda: len(log.by("b")) >= 1, timeout=10, what="b takes over")
    taken_at = log.by("b")[0][0]
    last_write = a.partition.writes[-1]
    a_passes = log.by("a")
    # a stopped at its renew deadline: 0.6 s after the start of its last good renewal
    assert max(s for s, _, _ in a_passes) <= last_write + 0.6 + 0.25
    assert last_write <= cut_at
    # b waited for the lease to expire: a full lease duration (1 s) after a's last write
    assert taken_at >= last_write + 1.0
    assert taken_at - cut_at < 5.0
    assert kube_server.get("Lease", LEASE, NS)["metadata"]["resourceVersion"] != last_renewal
    assert holder(kube_server) == "b"
    assert kube_server.get("Lease", LEASE, NS)["spec"]["leaseTransitions"] == 1
    assert_no_overlap(log)
    # a knows it is not leading, and says so
    assert a.get("/readyz").json()["role"] == "follower"
    assert "stopped leading" in a.log.getvalue()


def test_a_lost_lease_stops_the_pass_in_flight_and_all_further_work(
    kube_server: Any, started: list[Running]
) -> None:
    seen_stop = threading.Event()
    entered = threading.Event()
    starts: list[float] = []

    def long_pass(request: PassRequest) -> PassOutcome:
        starts.append(time.monotonic())
        entered.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if request.should_stop():
                seen_stop.set()
                break
            time.sleep(0.01)
        return PassOutcome()

    a = start_controller(long_pass, kube_server=kube_server, identity="a")
    started.append(a)
    assert entered.wait(10)
    # someone else takes the lease (as another controller whose clock says it expired
    # would), and holds it: renewed now, for longer than this test runs (with a's last
    # renewal left in place, the lease would expire after a second and a would rightly
    # take it back)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kube_server.edit(
        "Lease", LEASE, NS,
        {"spec": {"holderIdentity": "intruder", "renewTime": now, "leaseDurationSeconds": 60}},
    )  # fmt: skip
    stolen_at = time.monotonic()
    assert seen_stop.wait(5)
    # a noticed at its next renewal: within one retry period (0.15 s, jittered) and change
    assert time.monotonic() - stolen_at < 1.0
    count = len(starts)
    time.sleep(1.0)
    assert len(starts) == count, "no new pass after the lease was lost"
    assert holder(kube_server) == "intruder"


def test_a_graceful_stop_releases_the_lease_and_the_follower_takes_over_at_once(
    kube_server: Any, started: list[Running]
) -> None:
    log = PassLog()
    a = start_controller(
        log.fn("a", 0.3),
        kube_server=kube_server,
        identity="a",
        lease_duration=5,
        renew_deadline=3,
        retry_period=0.15,
    )
    wait_for(lambda: holder(kube_server) == "a", what="a holds the lease")
    b = start_controller(
        log.fn("b"),
        kube_server=kube_server,
        identity="b",
        lease_duration=5,
        renew_deadline=3,
        retry_period=0.15,
    )
    started.append(b)
    wait_for(lambda: len(log.by("a")) >= 2, what="a runs passes")
    a.controller.stop()
    stopped = time.monotonic()
    assert holder(kube_server) in ("", "b")
    # the pass in flight finished (0.3 s passes are never cut short by a stop)
    assert all(e - s >= 0.29 for s, e, _ in log.by("a"))
    wait_for(lambda: len(log.by("b")) >= 1, timeout=3, what="b takes over")
    # far sooner than the 5 s lease duration: the lease was released
    assert log.by("b")[0][0] - stopped < 2.0
    assert_no_overlap(log)
    assert "released the lease" in a.log.getvalue()


def test_a_push_received_by_the_follower_triggers_a_pass_on_the_leader(
    kube_server: Any, started: list[Running]
) -> None:
    log = PassLog()
    a = start_controller(log.fn("a"), kube_server=kube_server, identity="a", interval=3600)
    started.append(a)
    wait_for(lambda: holder(kube_server) == "a", what="a holds the lease")
    b = start_controller(log.fn("b"), kube_server=kube_server, identity="b", interval=3600)
    started.append(b)
    wait_for(lambda: len(log.by("a")) == 1, what="a's startup pass")
    time.sleep(0.3)
    body = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": "c0ffee" * 6 + "c0ff",
            "repository": {"default_branch": "main"},
            "commits": [
                {"added": [], "removed": [], "modified": ["manifests/support-bot/app.yaml"]}
            ],
        }
    ).encode()
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    reply = HTTP.post(
        b.url + "/webhook/github",
        content=body,
        headers={
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": signature,
            "X-GitHub-Delivery": "d-1",
            "Content-Type": "application/json",
        },
        timeout=5,
    )
    assert reply.status_code == 202, reply.text
    assert reply.json()["msg"] == "forwarded to the leader"
    wait_for(lambda: len(log.by("a")) == 2, timeout=3, what="the leader's webhook pass")
    request = log.by("a")[1][2]
    assert request.trigger == "webhook"
    assert request.apps == frozenset({"support-bot"})
    assert request.commit == "c0ffee" * 6 + "c0ff"
    assert log.by("b") == []
