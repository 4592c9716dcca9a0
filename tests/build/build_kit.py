"""Helpers of the image tests (imported by their modules and conftest)."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = "summarizer"
ENV = "ci"

#: a suite the echoing stub passes, so the served image can be evaluated end to end
CONTAINER_SUITE = """\
apiVersion: llmops.dev/v1
kind: EvalSuite
metadata: {name: container}
spec:
  description: The served image answers through the model and keeps its guardrails.
  defaults:
    assert:
      - {type: not-canary-leak}
      - {type: icontains, value: "echo:"}
  cases:
    - id: disk-full
      inputs: {text: "The disk of db-7 is full since 02:10 UTC."}
      assert:
        - {type: contains, value: db-7}
    - id: refund
      inputs: {text: "Customer asks for a refund of 40 EUR for order A-1138.", max_sentences: 1}
      assert:
        - {type: contains, value: A-1138}
"""


def environment_yaml(registry: str) -> str:
    return (
        "apiVersion: llmops.dev/v1\n"
        "kind: Environment\n"
        f"metadata: {{name: {ENV}}}\n"
        "spec:\n"
        "  target: {kind: docker}\n"
        f"  registry: {registry}\n"
        "  releases: {}\n"
    )


def make_repo(dest: Path, registry: str) -> Path:
    """The example repository, plus environment ``ci`` (docker, ``registry``) and a
    ``container`` suite for the summarizer."""
    for name in ("manifests", "environments", "pipelines", "schemas"):
        shutil.copytree(ROOT / name, dest / name)
    (dest / "environments" / f"{ENV}.yaml").write_text(environment_yaml(registry))
    app_dir = dest / "manifests" / APP
    (app_dir / "evals" / "container.yaml").write_text(CONTAINER_SUITE)
    app_yaml = app_dir / "app.yaml"
    app_yaml.write_text(
        app_yaml.read_text().replace(
            "    - evals/security.yaml\n", "    - evals/security.yaml\n    - evals/container.yaml\n"
        )
    )
    return dest



def change_prompt(repo: Path, text: str) -> None:
    """A prompt-only change: one more line in the summarizer's system prompt."""
    system = repo / "manifests" / APP / "prompts" / "system.j2"
    system.write_text(system.read_text() + text + "\n")
