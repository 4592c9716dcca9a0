"""/healthz, /readyz and /metrics of a running controller, over real HTTP."""

from __future__ import annotations

import re
import threading
import time

from ctlkit import HTTP, PassLog, start_controller, wait_for

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

SAMPLE = re.compile(r"^[a-z_]+(\{[^}]*\})? -?[0-9.e+Inf-]+$")


def test_metrics_expose_every_family_in_the_text_format() -> None:
    calls = {"n": 0}

    def fn(request: PassRequest) -> PassOutcome:
        calls["n"] += 1
        return PassOutcome(
            environments=(EnvResult("dev", True), EnvResult("prod", True)),
            promotions=(Promotion("bot", "prod", "bot@sha256:aa", "test"),) if calls["n"] == 1 else (),
            rollbacks=(Rollback("faq", "test", "faq@sha256:01", "faq@sha256:02"),) if calls["n"] == 1 else (),
            gate_failures=(GateFailure("faq", "prod", "faq@sha256:02"),) if calls["n"] == 1 else (),
            app_failures=(AppFailure("broken", "dev", "model endpoint refused"),),
        )

    running = start_controller(fn, interval=0.05)
    try:
        wait_for(lambda: calls["n"] >= 3, what="three passes")
        reply = running.get("/metrics")
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = reply.text
    finally:
        running.controller.stop()
    for name, kind in [
        ("llmops_controller_pass_duration_seconds", "histogram"),
        ("llmops_controller_passes_total", "counter"),
        ("llmops_controller_queue_depth", "gauge"),
        ("llmops_controller_queue_delayed", "gauge"),
        ("llmops_controller_last_success_timestamp_seconds", "gauge"),
        ("llmops_controller_promotions_total", "counter"),
        ("llmops_controller_rollbacks_total", "counter"),
        ("llmops_controller_gate_failures_total", "counter"),
        ("llmops_controller_app_failures_total", "counter"),
        ("llmops_controller_app_backoff_seconds", "gauge"),
        ("llmops_controller_leader", "gauge"),
        ("llmops_controller_webhooks_total", "counter"),
    ]:
        assert f"# TYPE {name} {kind}\n" in text, name
    for line in text.splitlines():
        assert line.startswith("# ") or SAMPLE.match(line), line
    assert 'llmops_controller_promotions_total{app="bot",environment="prod"} 1' in text
    assert 'llmops_controller_rollbacks_total{app="faq",environment="test"} 1' in text
    assert 'llmops_controller_gate_failures_total{app="faq",environment="prod"} 1' in text
    assert 'llmops_controller_pass_duration_seconds_bucket{trigger="startup",result="degraded",le="+Inf"} 1' in text
    assert "llmops_controller_leader 1" in text
    stamp = re.search(
        r'llmops_controller_last_success_timestamp_seconds\{environment="prod"\} (\S+)', text
    )
    assert stamp is not None and abs(float(stamp.group(1)) - time.time()) < 60
    failures = re.search(r'llmops_controller_app_failures_total\{app="broken"\} (\S+)', text)
    assert failures is not None and float(failures.group(1)) >= 1


def test_healthz_follows_the_loop_and_readyz_the_last_good_pass() -> None:
    log = PassLog()
    running = start_controller(log.fn("solo"), interval=0.05, ready_window=0.5)
    try:
        wait_for(lambda: len(log.by("solo")) >= 1, what="a pass")
        health = running.get("/healthz")
        assert (health.status_code, health.json()["status"]) == (200, "ok")
        ready = running.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["role"] == "disabled" and ready.json()["status"] == "ready"
        running.controller.loop.stop(5)
        assert running.get("/healthz").status_code == 503
        not_ready = running.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["reason"] == "the work loop is not running"
    finally:
        running.controller.stop()


def test_readyz_fails_when_passes_keep_failing_past_the_ready_window() -> None:
    healthy = threading.Event()
    healthy.set()

    def fn(request: PassRequest) -> PassOutcome:
        if not healthy.is_set():
            raise ExternalError("cannot fetch https://git.example/acme/llm-apps: connection refused")
        return PassOutcome(environments=(EnvResult("dev", True),))

    running = start_controller(fn, interval=0.05, ready_window=0.4)
    try:
        wait_for(lambda: running.get("/readyz").status_code == 200, what="ready")
        healthy.clear()
        wait_for(lambda: running.get("/readyz").status_code == 503, timeout=5, what="not ready")
        body = running.get("/readyz").json()
        assert body["status"] == "not_ready"
        assert "connection refused" in body["last_error"]
        assert running.get("/healthz").status_code == 200  # alive: no restart for this
        healthy.set()
        wait_for(lambda: running.get("/readyz").status_code == 200, timeout=5, what="ready again")
    finally:
        running.controller.stop()


def test_unknown_routes_and_methods() -> None:
    running = start_controller(PassLog().fn("solo"), interval=3600)
    try:
        assert running.get("/nope").status_code == 404
        assert HTTP.get(running.url + "/webhook/github", timeout=5).status_code == 405
        assert HTTP.post(running.url + "/metrics", timeout=5).status_code == 405
    finally:
        running.controller.stop()


def test_logs_are_json_lines_without_the_secret() -> None:
    import json

    log = PassLog()
    running = start_controller(log.fn("solo"), interval=0.05)
    try:
        wait_for(lambda: len(log.by("solo")) >= 2, what="passes")
        running.get("/metrics")
    finally:
        running.controller.stop()
    lines = [json.loads(line) for line in running.log.getvalue().splitlines()]
    messages = [line["msg"] for line in lines]
    assert "controller started" in messages and "pass done" in messages
    assert messages[-1] == "controller stopped"
    assert all({"ts", "level", "msg"} <= set(line) for line in lines)
    assert "secret to everybody" not in running.log.getvalue()
