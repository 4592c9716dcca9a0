"""Pass functions for controller processes started by the tests (``--pass-fn
passfns:slow``); they record each pass in the file named by ``LLMOPS_TEST_PASS_LOG``."""

from __future__ import annotations

import json
import os
import time

from llmops.controller.types import EnvResult, PassOutcome, PassRequest


def _record(event: str, request: PassRequest) -> None:
    path = os.environ["LLMOPS_TEST_PASS_LOG"]
    line = json.dumps({"event": event, "t": time.time(), "trigger": request.trigger, "pid": os.getpid()})
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def slow(request: PassRequest) -> PassOutcome:
    """A pass that takes ``LLMOPS_TEST_PASS_SECONDS`` (default 1) and ignores should_stop."""
    _record("start", request)
    time.sleep(float(os.environ.get("LLMOPS_TEST_PASS_SECONDS", "1")))
    _record("end", request)
    return PassOutcome(environments=(EnvResult("dev", True),))
