"""Wiring of ``llmops serve``: costs follow a reload of the pricing, the server runs on
uvloop, and the heap is settled once loaded (and again after a reload)."""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import Callable

from llmops.adapters.asgi_server import AsgiServer
from llmops.domain.models.app import Pricing
from llmops.runtime.heap import refreeze, settle_heap
from llmops.runtime.loaded import LoadedApp
from llmops.runtime.server import AppSlot
from llmops.runtime.serving import pricer_for


def priced(loaded: LoadedApp, per_million: float) -> LoadedApp:
    pricing = Pricing(inputPerMillion=per_million, outputPerMillion=per_million)
    return dataclasses.replace(loaded, model=dataclasses.replace(loaded.model, pricing=pricing))


def test_costs_follow_the_pricing_of_the_current_version(
    load: Callable[..., LoadedApp],
) -> None:
    slot = AppSlot(priced(load("demo"), 1.0))
    pricer = pricer_for({"demo": slot})
    assert pricer("stub-dev", 1_000_000, 0) == 0, "another model: the built-in table"
    assert pricer("stub", 1_000_000, 1_000_000) == 2.0
    assert pricer("stub", 500_000, 0) == 0.5
    slot.swap(priced(load("demo"), 3.0))
    assert pricer("stub", 1_000_000, 0) == 3.0


def test_the_server_runs_on_uvloop_where_it_is_installed() -> None:
    async def app(scope: object, receive: object, send: object) -> None: ...

    assert AsgiServer(app).loop_name == "uvloop"  # uvicorn[standard] installs it


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_the_settled_heap_lets_a_replaced_version_go_after_a_reload() -> None:
    refreeze()  # not settled: nothing happens
    assert gc.get_freeze_count() == 0
    try:
        old = Node()
        gone = weakref.ref(old)
        settle_heap()
        assert gc.get_freeze_count() > 0
        del old
        gc.collect()
        assert gone() is not None, "frozen: out of the collector's sight"
        refreeze()
        assert gone() is None and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
