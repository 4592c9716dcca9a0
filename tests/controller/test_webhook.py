"""POST /webhook/github: signatures over real HTTP to a running controller, payload
parsing, and a push triggering a pass."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ctlkit import HTTP, SECRET, PassLog, Running, start_controller, wait_for
from hypothesis import given
from hypothesis import strategies as st

from llmops.controller.webhook import (
    MAX_BODY_BYTES,
    BadPayload,
    WebhookSecret,
    load_secret,
    parse_push,
    touched_apps,
)
from llmops.domain.errors import UsageError

COMMIT = "9" * 40


def push_body(paths: list[str] | None = None, ref: str = "refs/heads/main", **extra: object) -> bytes:
    payload: dict[str, object] = {
        "ref": ref,
        "before": "1" * 40,
        "after": COMMIT,
        "repository": {"full_name": "acme/llm-apps", "default_branch": "main"},
    }
    if paths is not None:
        payload["commits"] = [{"id": COMMIT, "added": [], "removed": [], "modified": paths}]
    payload.update(extra)
    return json.dumps(payload).encode()


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def post(
    running: Running, body: bytes, event: str = "push", signature: str | bytes | None = "auto"
) -> httpx.Response:
    headers: dict[str, str | bytes] = {"X-GitHub-Event": event, "X-GitHub-Delivery": "delivery-1",
               "Content-Type": "application/json"}
    if signature == "auto":
        headers["X-Hub-Signature-256"] = sign(body)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return HTTP.post(running.url + "/webhook/github", content=body, headers=headers, timeout=5)


@pytest.fixture
def controller() -> Iterator[tuple[Running, PassLog]]:
    log = PassLog()
    running = start_controller(log.fn("solo"), interval=3600)
    wait_for(lambda: len(log.by("solo")) == 1, what="the startup pass")
    yield running, log
    running.controller.stop()


# -- over HTTP ----------------------------------------------------------------------------


def test_a_signed_push_triggers_a_pass_at_once(controller: tuple[Running, PassLog]) -> None:
    running, log = controller
    body = push_body(["manifests/support-bot/prompts/system.j2", "manifests/faq/app.yaml"])
    reply = post(running, body)
    assert reply.status_code == 202
    assert reply.json() == {"msg": "queued", "apps": ["faq", "support-bot"], "commit": COMMIT}
    # the next poll is an hour away: a pass now was triggered by the push
    wait_for(lambda: len(log.by("solo")) == 2, timeout=5, what="a webhook pass")
    _, _, request = log.by("solo")[1]
    assert request.trigger == "webhook"
    assert request.apps == frozenset({"faq", "support-bot"})
    assert request.commit == COMMIT
    metrics = running.get("/metrics").text
    assert 'llmops_controller_webhooks_total{event="push",result="queued"} 1' in metrics
    assert 'llmops_controller_passes_total{trigger="webhook",result="ok"} 1' in metrics


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        "sha1=0123",
        "sha256=" + hmac.new(b"another secret", b"{}", hashlib.sha256).hexdigest(),
        "sha256=é".encode(),
    ],
    ids=["missing", "empty", "zeros", "sha1", "other-secret", "non-ascii"],
)
def test_a_bad_or_missing_signature_is_401_and_triggers_nothing(
    controller: tuple[Running, PassLog], signature: str | bytes | None
) -> None:
    running, log = controller
    body = push_body(["manifests/x/app.yaml"])
    reply = post(running, body, signature=signature)
    assert reply.status_code == 401
    assert "X-Hub-Signature-256" in reply.json()["error"]
    time.sleep(0.2)
    assert len(log.by("solo")) == 1
    assert SECRET.decode() not in running.log.getvalue()
    assert 'result="bad_signature"' in running.get("/metrics").text


def test_a_signature_over_a_different_body_is_rejected(controller: tuple[Running, PassLog]) -> None:
    running, _ = controller
    body = push_body(["manifests/x/app.yaml"])
    assert post(running, body + b" ", signature=sign(body)).status_code == 401


def test_ping_is_answered(controller: tuple[Running, PassLog]) -> None:
    running, log = controller
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    reply = post(running, body, event="ping")
    assert (reply.status_code, reply.json()) == (200, {"msg": "pong"})
    assert len(log.by("solo")) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"after": "abc"}', "'ref'"),
        (b'{"ref": "refs/heads/main", "commits": {"a": 1}}', "'commits' must be a list"),
        (b'{"ref": "refs/heads/main", "commits": [{"added": "x"}]}', "list of paths"),
        (b'{"ref": "refs/heads/main", "commits": [3]}', "list of objects"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_a_bad_payload_is_400(controller: tuple[Running, PassLog], body: bytes, message: str) -> None:
    running, log = controller
    reply = post(running, body)
    assert reply.status_code == 400
    assert message in reply.json()["error"]
    assert len(log.by("solo")) == 1


def test_pushes_elsewhere_and_other_events_are_ignored(controller: tuple[Running, PassLog]) -> None:
    running, log = controller
    other_branch = post(running, push_body(["manifests/x/app.yaml"], ref="refs/heads/llmops/promote-x"))
    deleted = post(running, push_body(None, deleted=True, after="0" * 40))
    issue = post(running, b'{"action": "opened"}', event="issues")
    for reply in (other_branch, deleted, issue):
        assert reply.status_code == 202
        assert reply.json()["msg"].startswith("ignored")
    time.sleep(0.2)
    assert len(log.by("solo")) == 1


def test_an_oversized_body_is_413(controller: tuple[Running, PassLog]) -> None:
    running, _ = controller
    body = b"x" * (MAX_BODY_BYTES + 1)
    assert post(running, body).status_code == 413


def test_without_a_secret_the_webhook_is_off() -> None:
    log = PassLog()
    running = start_controller(log.fn("solo"), interval=3600, secret=None)
    try:
        body = push_body(["manifests/x/app.yaml"])
        reply = post(running, body, signature=sign(body))
        assert reply.status_code == 404
        assert "webhook is off" in reply.json()["error"]
    finally:
        running.controller.stop()


# -- pure parts ---------------------------------------------------------------------------


def test_touched_apps() -> None:
    assert touched_apps(["manifests/a/app.yaml", "manifests/b/evals/x.yaml"]) == {"a", "b"}
    assert touched_apps(["manifests/a/app.yaml", "environments/prod.yaml"]) is None
    assert touched_apps(["manifests/README.md"]) is None
    assert touched_apps(["llm/manifests/a/app.yaml"], prefix="llm") == {"a"}
    assert touched_apps(["manifests/a/app.yaml"], prefix="llm") is None


def test_a_push_without_a_file_list_or_with_20_commits_means_every_app() -> None:
    assert parse_push(push_body(None)) is not None
    assert parse_push(push_body(None)).apps is None  # type: ignore[union-attr]
    many = json.loads(push_body(["manifests/a/app.yaml"]))
    many["commits"] = many["commits"] * 20
    parsed = parse_push(json.dumps(many).encode())
    assert parsed is not None and parsed.apps is None


def test_the_branch_watched_is_the_option_else_the_default_branch() -> None:
    body = push_body(["manifests/a/app.yaml"], ref="refs/heads/release")
    assert parse_push(body) is None
    assert parse_push(body, branch="release") is not None
    no_default = json.loads(body)
    del no_default["repository"]
    assert parse_push(json.dumps(no_default).encode()) is not None


@given(st.binary(max_size=200))
def test_parse_push_never_fails_with_anything_but_bad_payload(body: bytes) -> None:
    with contextlib.suppress(BadPayload):
        parse_push(body)


@given(st.binary(max_size=200), st.text(max_size=80))
def test_only_the_exact_signature_verifies(body: bytes, header: str) -> None:
    secret = WebhookSecret(b"s3cret")
    assert secret.verify(body, secret.sign(body))
    assert secret.verify(body, header) == (header.strip() == secret.sign(body))


def test_the_secret_never_shows_in_its_repr() -> None:
    secret = WebhookSecret(b"hunter2")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)


def test_load_secret_from_a_file_or_an_environment_variable(tmp_path: Path) -> None:
    file = tmp_path / "secret"
    file.write_bytes(b"from-file\n")
    from_file = load_secret("UNUSED", file, environ={})
    assert from_file is not None and from_file.verify(b"x", WebhookSecret(b"from-file").sign(b"x"))
    from_env = load_secret("HOOK", None, environ={"HOOK": "from-env"})
    assert from_env is not None and from_env.verify(b"x", WebhookSecret(b"from-env").sign(b"x"))
    assert load_secret("HOOK", None, environ={}) is None
    with pytest.raises(UsageError, match="cannot read the webhook secret file"):
        load_secret(None, tmp_path / "missing", environ={})
    (tmp_path / "empty").write_bytes(b"\n")
    with pytest.raises(UsageError, match="is empty"):
        load_secret(None, tmp_path / "empty", environ={})
