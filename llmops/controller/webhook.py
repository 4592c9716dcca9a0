"""``POST /webhook/github``: GitHub push events trigger a pass at once; served by
``llmops.controller.server``, the secret is loaded by ``llmops.cli.controller``.

Every delivery must carry ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the
raw body under the shared secret, compared in constant time (``hmac.compare_digest``);
anything else is 401 before the body is parsed. The secret is read from an environment
variable or a file, held in memory only, and never logged or echoed.

Answers: ``ping`` → 200 ``pong``; ``push`` to the watched branch → 202 with the apps
queued; a push elsewhere, a branch deletion, or another event → 202 ``ignored``; a body
that is not a JSON push → 400; no webhook secret configured → 404; a body over 5 MiB → 413.
Which apps a push touches is read from the changed paths: files under
``manifests/<app>/`` queue that app, anything else (environments, pipelines, a push
without a file list) queues every app.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.domain.errors import UsageError

MAX_BODY_BYTES = 5 * 1024 * 1024
SIGNATURE_HEADER = "x-hub-signature-256"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"


class WebhookSecret:
    """The shared secret; ``repr`` and ``str`` never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if not value:
            raise UsageError("the webhook secret is empty")
        self._value = value

    def __repr__(self) -> str:
        return "WebhookSecret(***)"

    __str__ = __repr__

    def sign(self, body: bytes) -> str:
        """The ``X-Hub-Signature-256`` value for ``body``."""
        return "sha256=" + hmac.new(self._value, body, hashlib.sha256).hexdigest()

    def verify(self, body: bytes, header: str | None) -> bool:
        """True when ``header`` is the signature of ``body``; constant time."""
        if not header:
            return False
        expected = self.sign(body).encode("ascii")
        try:
            given = header.strip().encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(expected, given)


def load_secret(
    env_var: str | None, file: Path | None, environ: Mapping[str, str] | None = None
) -> WebhookSecret | None:
    """The secret from ``file`` (trailing newline dropped) or the variable ``env_var``;
    None when neither is set (the webhook is then off)."""
    environ = os.environ if environ is None else environ
    if file is not None:
        try:
            data = file.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise UsageError(
                f"cannot read the webhook secret file {file}: {exc.strerror or exc}"
            ) from exc
        if not data:
            raise UsageError(f"the webhook secret file {file} is empty")
        return WebhookSecret(data)
    if env_var:
        value = environ.get(env_var)
        if value:
            return WebhookSecret(value.encode("utf-8"))
    return None


@dataclass(frozen=True, slots=True)
class Push:
    """What a push asks of the controller: apps to reconcile (None: all) at ``commit``."""

    ref: str
    commit: str | None
    apps: frozenset[str] | None
    delivery: str | None = None


class BadPayload(ValueError):
    """The body is not a GitHub push payload; the message says why (sent as the 400)."""


_ZERO_SHA = "0" * 40


def touched_apps(paths: list[str], prefix: str = "") -> frozenset[str] | None:
    """Apps whose ``manifests/<app>/`` files changed; None when anything else changed."""
    apps: set[str] = set()
    root = (prefix.strip("/") + "/manifests/") if prefix.strip("/") else "manifests/"
    for path in paths:
        if not path.startswith(root):
            return None
        parts = path[len(root) :].split("/")
        if len(parts) < 2 or not parts[0]:
            return None
        apps.add(parts[0])
    return frozenset(apps)


def parse_push(
    body: bytes, branch: str | None = None, prefix: str = ""
) -> Push | None:
    """The :class:`Push` in ``body``, or None when it is not for the watched branch (or
    deletes it). ``branch=None`` watches the repository's default branch as the payload
    names it, or any branch when it names none. Raises :class:`BadPayload`."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"the body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadPayload("the body is not a JSON object")
    ref = payload.get("ref")
    if not isinstance(ref, str) or not ref:
        raise BadPayload("a push payload needs a string 'ref'")
    after = payload.get("after")
    if after is not None and not isinstance(after, str):
        raise BadPayload("'after' must be a commit id")
    if payload.get("deleted") is True or after == _ZERO_SHA:
        return None
    if branch is None:
        repository = payload.get("repository")
        default = repository.get("default_branch") if isinstance(repository, dict) else None
        branch = default if isinstance(default, str) and default else None
    if branch is not None and ref != f"refs/heads/{branch}":
        return None
    commits = payload.get("commits")
    apps: frozenset[str] | None = None
    if isinstance(commits, list) and commits:
        paths: list[str] = []
        complete = True
        for commit in commits:
            if not isinstance(commit, dict):
                raise BadPayload("'commits' must be a list of objects")
            for key in ("added", "modified", "removed"):
                files = commit.get(key)
                if files is None:
                    complete = False
                    continue
                if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                    raise BadPayload(f"'commits[].{key}' must be a list of paths")
                paths.extend(files)
        # GitHub lists at most 20 commits; more (or none listed) means "look at everything"
        if complete and len(commits) < 20:
            apps = touched_apps(paths, prefix)
    elif commits is not None and not isinstance(commits, list):
        raise BadPayload("'commits' must be a list")
    return Push(ref=ref, commit=after, apps=apps)


@dataclass(frozen=True, slots=True)
class Reply:
    """A webhook answer, before it becomes an HTTP response."""

    status: int
    body: dict[str, Any]
    result: str


def handle(
    secret: WebhookSecret | None,
    headers: Mapping[str, str],
    body: bytes,
    on_push: Callable[[Push], str],
    branch: str | None = None,
    prefix: str = "",
) -> Reply:
    """Answer one delivery (pure but for ``on_push``, which queues the pass and says how:
    ``queued`` here, or ``forwarded`` to the leader)."""
    if secret is None:
        return Reply(
            404,
            {"error": "the webhook is off: give the controller a secret (--webhook-secret-env)"},
            "disabled",
        )
    if len(body) > MAX_BODY_BYTES:
        return Reply(413, {"error": f"the body is larger than {MAX_BODY_BYTES} bytes"}, "too_large")
    if not secret.verify(body, headers.get(SIGNATURE_HEADER)):
        return Reply(
            401,
            {"error": "missing or wrong X-Hub-Signature-256 (HMAC-SHA256 of the body)"},
            "bad_signature",
        )
    event = headers.get(EVENT_HEADER, "")
    if event == "ping":
        return Reply(200, {"msg": "pong"}, "ping")
    if event != "push":
        return Reply(202, {"msg": f"ignored: event {event or '(none)'!r} is not a push"}, "ignored")
    try:
        push = parse_push(body, branch, prefix)
    except BadPayload as exc:
        return Reply(400, {"error": str(exc)}, "bad_payload")
    if push is None:
        return Reply(202, {"msg": "ignored: not a push to the watched branch"}, "ignored")
    push = Push(push.ref, push.commit, push.apps, headers.get(DELIVERY_HEADER))
    how = on_push(push)
    return Reply(
        202,
        {
            "msg": how,
            "apps": "all" if push.apps is None else sorted(push.apps),
            "commit": push.commit,
        },
        how,
    )
