"""The garbage collector and a long-running server: ``llmops serve`` settles the heap once
the app is loaded (:func:`settle_heap`) and the reloader again after each swap
(:func:`refreeze`).

Everything alive when the server starts (modules, the loaded app, its compiled
templates, pydantic's and Jinja's machinery: a few hundred thousand objects) lives as long
as the process. Left to the collector, each full collection walks all of them, a pause of
tens of milliseconds that lands on whichever request is running. Frozen, they are out of
the collector's sight and collections scan only what requests allocate.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect, then freeze every object alive now."""
    gc.collect()
    gc.freeze()


def refreeze() -> None:
    """After a reload: let the replaced version (cycles and all) be collected, then
    settle again. Does nothing unless the heap was settled (tests and library users keep
    the collector as it is)."""
    if gc.get_freeze_count():
        gc.unfreeze()
        settle_heap()
