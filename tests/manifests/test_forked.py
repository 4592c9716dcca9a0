"""forked_map: results in order, whoever computed them; a failing child costs only time."""

from __future__ import annotations

import os
import time

import pytest

from llmops.manifests import forked
from llmops.manifests.forked import forked_map

pytestmark = pytest.mark.skipif(not forked.can_fork(), reason="needs os.fork")


def _child_pids_left() -> list[int]:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return []
    return [pid] if pid else []


def test_results_come_back_in_order_from_every_process() -> None:
    items = list(range(200))
    parent = os.getpid()

    def slowly(i: int) -> tuple[int, str]:
        time.sleep(0.002)  # alone, this process would need 0.4 s: the children join in
        return i * i, "here"

    results = forked_map(
        items,
        slowly,
        lambda i: (i * i, os.getpid()),
        lambda packed: (packed[0], "child" if packed[1] != parent else "here"),
        processes=3,
    )
    assert [r[0] for r in results] == [i * i for i in items]
    # the children really took part (dynamic chunks: the parent may do more or fewer)
    assert any(r[1] == "child" for r in results)
    assert not _child_pids_left()


def test_a_child_that_raises_has_its_chunks_redone_here() -> None:
    def there(i: int) -> int:
        raise RuntimeError("only in the child")

    results = forked_map(list(range(60)), lambda i: i + 1, there, lambda v: v, processes=2)
    assert results == [i + 1 for i in range(60)]
    assert not _child_pids_left()


def test_a_child_that_dies_has_its_chunks_redone_here() -> None:
    def there(i: int) -> int:
        os._exit(7)

    results = forked_map(list(range(60)), lambda i: -i, there, lambda v: v, processes=2)
    assert results == [-i for i in range(60)]


def test_an_error_in_the_work_is_raised_here_as_without_children() -> None:
    def work(i: int) -> int:
        raise ValueError(f"bad item {i}")

    with pytest.raises(ValueError, match="bad item"):
        forked_map(list(range(60)), work, work, lambda v: v, processes=3)
    assert not _child_pids_left()


def test_an_error_here_stops_and_reaps_busy_children() -> None:
    def here(i: int) -> int:
        raise ValueError("stop")

    def there(i: int) -> int:
        time.sleep(0.5)
        return i

    started = time.monotonic()
    with pytest.raises(ValueError, match="stop"):
        forked_map(list(range(40)), here, there, lambda v: v, processes=2)
    assert time.monotonic() - started < 5  # the child was stopped, not waited for
    assert not _child_pids_left()


def test_small_inputs_and_one_process_run_here() -> None:
    assert forked_map([1], lambda i: i * 2, lambda i: 0, lambda v: v, processes=4) == [2]
    assert forked_map([1, 2, 3], lambda i: i * 2, lambda i: 0, lambda v: v, processes=1) == [2, 4, 6]
    assert forked_map([], lambda i: i, lambda i: i, lambda v: v, processes=4) == []
