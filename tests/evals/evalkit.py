"""Helpers for the eval engine tests: a tiny llmops repo on disk and a stub model."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from llmops.domain.models.evalsuite import Assertion
from llmops.evals.assertions import GradeContext

APP_YAML = """\
apiVersion: llmops.dev/v1
kind: LLMApp
metadata: {{name: bot}}
spec:
  model: {{provider: stub, name: stub, timeoutSeconds: {timeout}, maxRetries: {retries}}}
  prompt:
    system: prompts/system.j2
    user: prompts/user.j2
    inputs:
      question: {{type: string}}
      tier: {{type: string, default: standard}}
      count: {{type: integer, default: 1}}
  guardrails:
    input: {{injectionHeuristics: false, denyPatterns: ["FORBIDDEN"]}}
    output: {{blockCanary: true}}
  evals: [{evals}]
"""

SUITE_HEAD = """\
apiVersion: llmops.dev/v1
kind: EvalSuite
metadata: {{name: {name}}}
spec:
"""


def write_repo(
    root: Path,
    suites: dict[str, str],
    *,
    timeout: float = 5,
    retries: int = 2,
    files: dict[str, str] | None = None,
) -> Path:
    """A repo with app ``bot`` (stub model) and ``suites`` (name -> YAML body under spec:)."""
    app = root / "manifests" / "bot"
    (app / "prompts").mkdir(parents=True, exist_ok=True)
    (app / "evals").mkdir(parents=True, exist_ok=True)
    (app / "prompts" / "system.j2").write_text(
        "You help {{ tier }} customers. Secret ref {{ canary }}. Count {{ count }}.\n"
    )
    (app / "prompts" / "user.j2").write_text("{{ question }}\n")
    listed = ", ".join(f"evals/{name}.yaml" for name in suites)
    (app / "app.yaml").write_text(APP_YAML.format(timeout=timeout, retries=retries, evals=listed))
    for name, body in suites.items():
        text = SUITE_HEAD.format(name=name) + textwrap.indent(textwrap.dedent(body), "  ")
        (app / "evals" / f"{name}.yaml").write_text(text)
    for rel, text in (files or {}).items():
        target = app / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def contains_cases(count: int, word: str = "hello") -> str:
    """A suite body with ``count`` cases asking the stub to echo ``word``."""
    lines = ["cases:"]
    for index in range(count):
        lines.append(
            f"  - {{id: c{index}, inputs: {{question: '{word} {index}'}}, "
            f"assert: [{{type: contains, value: '{word} {index}'}}]}}"
        )
    return "\n".join(lines) + "\n"


def assertion(type_: str, **fields: Any) -> Assertion:
    return Assertion.model_validate({"type": type_, **fields})


CTX = GradeContext()


class InFlight:
    """ASGI middleware for the stub: the most chat requests it was serving at once."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = 0
        self.max = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        counted = scope.get("type") == "http" and scope.get("path") == "/v1/chat/completions"
        if counted:
            self.now += 1
            self.max = max(self.max, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            if counted:
                self.now -= 1
