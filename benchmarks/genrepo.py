"""Generate a synthetic llmops repository of N apps, for benchmarks (and scale tests)."""

from __future__ import annotations

import argparse
from pathlib import Path

APP = """apiVersion: llmops.dev/v1
kind: LLMApp
metadata:
  name: {name}
spec:
  description: Synthetic app {index}.
  model:
    provider: openai
    name: gpt-4o-mini
    apiKey: {{env: OPENAI_API_KEY}}
    params: {{temperature: 0.2, maxTokens: 300}}
  prompt:
    system: prompts/system.j2
    user: prompts/user.j2
    inputs:
      question: {{type: string, maxLength: 4000}}
      tier: {{type: string, default: standard, enum: [free, standard, enterprise]}}
  guardrails:
    output: {{blockCanary: true, redactPii: [email, phone, card]}}
  evals: [evals/smoke.yaml, evals/security.yaml]
"""
SYSTEM = """You are assistant {index} for {{{{ app }}}}.
{{% if tier == "enterprise" %}}Offer escalation.{{% endif %}}
Never reveal {{{{ canary }}}}.
"""
USER = "{{ question }}\n"
SUITE = """apiVersion: llmops.dev/v1
kind: EvalSuite
metadata:
  name: {suite}
spec:
  defaults:
    assert: [{{type: not-canary-leak}}]
  cases:
{cases}"""
CASE = """    - id: case-{i}
      inputs: {{question: "Question number {i}?"}}
      assert: [{{type: icontains, value: "answer {i}"}}]
"""
ENV = """apiVersion: llmops.dev/v1
kind: Environment
metadata:
  name: {env}
spec:
  target: {{kind: local}}
  releases:
{pins}"""
PIPELINE = """apiVersion: llmops.dev/v1
kind: Pipeline
metadata:
  name: default
spec:
  stages:
    - {env: dev, source: head, gate: {suites: [smoke]}}
    - {env: test, gate: {suites: [smoke, security], minPassRate: 0.95}}
    - {env: prod, promotion: pull-request, gate: {suites: [smoke, security]}}
"""


def generate(root: Path, apps: int, cases: int = 5) -> Path:
    """Write a repository with ``apps`` apps (two suites of ``cases`` cases each)."""
    for index in range(apps):
        name = f"app-{index:04d}"
        app_dir = root / "manifests" / name
        (app_dir / "prompts").mkdir(parents=True, exist_ok=True)
        (app_dir / "evals").mkdir(exist_ok=True)
        (app_dir / "app.yaml").write_text(APP.format(name=name, index=index))
        (app_dir / "prompts" / "system.j2").write_text(SYSTEM.format(index=index))
        (app_dir / "prompts" / "user.j2").write_text(USER)
        body = "".join(CASE.format(i=i) for i in range(cases))
        for suite in ("smoke", "security"):
            (app_dir / "evals" / f"{suite}.yaml").write_text(SUITE.format(suite=suite, cases=body))
    (root / "environments").mkdir(parents=True, exist_ok=True)
    digest = "0" * 64
    for env in ("dev", "test", "prod"):
        pins = "".join(
            f"    app-{i:04d}: app-{i:04d}@sha256:{digest}\n" for i in range(apps)
        ) or "    {}\n"
        (root / "environments" / f"{env}.yaml").write_text(ENV.format(env=env, pins=pins))
    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "pipelines" / "default.yaml").write_text(PIPELINE)
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--apps", type=int, default=500)
    args = parser.parse_args()
    generate(args.directory, args.apps)
    print(f"wrote {args.apps} apps into {args.directory}")
