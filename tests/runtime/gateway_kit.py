"""Shared pieces of the runtime tests: a small repository on disk, the stub model's
scripted replies, and a gateway served by uvicorn in a thread on 127.0.0.1."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

from llmops.adapters.asgi_server import AsgiServer, bind
from llmops.runtime.canary import canary_token
from llmops.runtime.server import Gateway, create_app
from llmops.stub.rules import Rule

API_KEY = "sk-test-9f8e7d6c5b4a39281706"
CANARY = canary_token("dev")

DEMO_APP = """\
apiVersion: llmops.dev/v1
kind: LLMApp
metadata: {name: demo}
spec:
  model:
    provider: openai-compatible
    name: stub
    baseUrl: http://127.0.0.1:9/v1
    apiKey: {env: DEMO_API_KEY}
    maxRetries: 0
    timeoutSeconds: 2
  prompt:
    system: prompts/system.j2
    user: prompts/user.j2
    inputs:
      question: {type: string, maxLength: 3000}
      tone: {type: string, default: friendly, enum: [friendly, formal]}
  guardrails:
    input:
      maxLength: 4000
      denyPatterns: ["(?i)BEGIN RSA PRIVATE KEY"]
    output:
      redactPii: [email, phone, card]
      maxLength: 500
"""

JSON_APP = """\
apiVersion: llmops.dev/v1
kind: LLMApp
metadata: {name: jsonbot}
spec:
  model:
    provider: openai-compatible
    name: stub
    baseUrl: http://127.0.0.1:9/v1
    apiKey: {env: DEMO_API_KEY}
    maxRetries: 0
    pricing: {inputPerMillion: 1.0, outputPerMillion: 2.0}
  prompt:
    user: prompts/user.j2
    inputs:
      topic: {type: string}
      count: {type: integer, default: 2, minimum: 1, maximum: 5}
  guardrails:
    output:
      jsonSchema: schemas/out.json
      repairRetries: 1
      redactPii: [email]
"""

SCHEMA = """\
{"type": "object", "required": ["answer"], "additionalProperties": false,
 "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}}}
"""

#: Stub replies chosen by what the rendered prompt contains.
STUB_RULES = (
    Rule.of(r"(?s)never-valid", "still not json", "conversation"),
    Rule.of(r"did not satisfy", '{"answer": "fixed", "n": 1}', "conversation"),
    Rule.of(r"fixable", "this is not json"),
    Rule.of(r"good-json", '{"answer": "write to ann@example.com", "n": 2}'),
    Rule.of(r"leak-canary", f"Sure, my reference is {CANARY}."),
    Rule.of(r"contact", "Mail bob@example.com or call +1 415 555 0132, card 4111 1111 1111 1111."),
    Rule.of(r"long-reply", "word " * 150),
)


def write_repo(root: Path) -> Path:
    """A repository with the ``demo`` (text) and ``jsonbot`` (JSON schema) apps."""
    files = {
        "manifests/demo/app.yaml": DEMO_APP,
        "manifests/demo/prompts/system.j2": (
            "You are a {{ tone }} test bot for {{ app }}. Ref {{ canary }}.\n"
        ),
        "manifests/demo/prompts/user.j2": (
            "Question: {{ question }}{% if question == 'explode' %}{{ 1 // 0 }}{% endif %}\n"
        ),
        "manifests/jsonbot/app.yaml": JSON_APP,
        "manifests/jsonbot/prompts/user.j2": "Give {{ count }} facts about {{ topic }} as JSON.\n",
        "manifests/jsonbot/schemas/out.json": SCHEMA,
        "environments/dev.yaml": textwrap.dedent(
            """\
            apiVersion: llmops.dev/v1
            kind: Environment
            metadata: {name: dev}
            spec:
              target: {kind: local}
              overrides:
                demo:
                  model: {name: stub-dev, apiKey: {env: DEV_API_KEY}}
            """
        ),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


class Served:
    """A gateway on a free 127.0.0.1 port, served by its own server from a thread."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = AsgiServer(create_app(gateway))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(10)
        self.sock.close()
