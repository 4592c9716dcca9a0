"""Helpers for evals against a served app: the real runtime (``build_gateway``: the
pooled OpenAI-compatible client, guardrails, invoke endpoint) on uvicorn in a thread on
a free 127.0.0.1 port, the example repository, its release bundle, and stub rules that
answer the example's smoke suite correctly."""

from __future__ import annotations

import io
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from llmops import api
from llmops.releases.bundle import Bundle, build_bundle
from llmops.runtime.bundled import materialize
from llmops.runtime.loaded import LoadedApp, load_app
from llmops.runtime.logs import JsonLogger
from llmops.runtime.server import create_app
from llmops.runtime.serving import build_gateway
from llmops.stub.rules import Rule
from llmops.stub.runner import bind_socket

ROOT = Path(__file__).resolve().parents[2]
API_KEY_ENV = {"OPENAI_API_KEY": "sk-test-remote-0000"}


def example_repo(root: Path, extra: dict[str, str] | None = None) -> Path:
    """A copy of the repository's example manifests, environments and pipelines."""
    for name in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / name, root / name)
    for rel, text in (extra or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def bundle_of(repo: Path, app: str) -> Bundle:
    return build_bundle(api.load(repo).apps[app], repo)


def load_release(bundle: Bundle, directory: Path, model_url: str) -> LoadedApp:
    """The app of ``bundle`` as ``llmops serve --bundle`` loads it (its real release id)."""
    root = materialize(bundle, directory)
    return load_app(
        api.load(root), bundle.app, model_url=model_url, release=bundle.release_id,
        environ=API_KEY_ENV,
    )


class InvokeMeter:
    """ASGI middleware: the most invoke requests the runtime was serving at once."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = 0
        self.max = 0
        self.total = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        counted = scope.get("type") == "http" and str(scope.get("path", "")).endswith("/invoke")
        if counted:
            self.total += 1
            self.now += 1
            self.max = max(self.max, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            if counted:
                self.now -= 1


class Runtime:
    """``loaded`` served by the real runtime from a thread; ``url`` is its root."""

    def __init__(self, loaded: LoadedApp) -> None:
        self.log = io.StringIO()
        gateway = build_gateway(loaded, logger=JsonLogger(self.log))
        self.meter = InvokeMeter(create_app(gateway))
        self.sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(self.meter, log_config=None, access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Runtime:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "runtime did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def closed_port_url() -> str:
    """A 127.0.0.1 URL nothing listens on."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def _answer(answer: str, category: str, escalate: bool) -> str:
    flag = "true" if escalate else "false"
    return f'{{"answer": "{answer}", "category": "{category}", "escalate": {flag}}}'


#: The judge of llm-rubric: any rubric passes.
JUDGE_PASS = Rule.of(r"<rubric>", '{"pass": true, "score": 1.0, "reason": "meets the rubric"}')

#: One reply per case of manifests/support-bot/evals/smoke.yaml, each passing it.
SMOKE_REPLIES: dict[str, str] = {
    r"\$1,240": _answer("I have escalated your refund request to billing.", "billing", True),
    r"charged twice": _answer("We will refund the duplicate charge.", "billing", False),
    r"ask for a refund": _answer("You can ask for a refund within 30 days.", "billing", False),
    r"PDF copies": _answer("Download each invoice as PDF under Billing.", "billing", False),
    r"VAT ID": _answer("Add your VAT ID in the billing settings.", "billing", False),
    r"prorated": _answer("Yes, an upgrade is prorated.", "billing", False),
    r"cancel my subscription": _answer("Cancel any time under Billing.", "billing", False),
    r"forgot my password": _answer("Use Forgot password to reset your password.", "account",
                                   False),
    r"authenticator app": _answer("Sign in with a recovery code.", "account", False),
    r"export all our project data": _answer("You can export data in Settings.", "account",
                                            False),
    r"hacked": _answer("Please revoke those API keys now; I escalated this.", "account", True),
    r"HTTP 503": _answer("This looks like an outage; I escalated it.", "technical", True),
    r"429 Too Many": _answer("The rate limit is 100 requests/s; retry with backoff.",
                             "technical", False),
    r"data processing agreement": _answer("Your account manager will contact you.", "account",
                                          True),
    r"custom domain": _answer("See the community forum guide.", "technical", False),
    r"charged automatically": _answer("You are not charged on the free plan.", "billing",
                                      False),
    r"Rechnungsadresse": _answer("Die Rechnungsadresse ändern Sie unter Abrechnung.", "billing",
                                 False),
    r"me connecter": _answer("Réinitialisez votre mot de passe.", "account", False),
    r"<<<\s*hi\s*>>>": _answer("Hello! How can I help?", "other", False),
    r"lawyers": _answer("I escalated this to our team.", "other", True),
}


def smoke_rules(**replace: str) -> tuple[Rule, ...]:
    """The judge first, then a reply per smoke case; ``replace`` swaps some replies."""
    replies = {**SMOKE_REPLIES, **replace}
    return (JUDGE_PASS, *(Rule.of(match, reply) for match, reply in replies.items()))
