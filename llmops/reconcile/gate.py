"""Run a stage's gate on any archived release (not only the work tree's), at any endpoint.

Called by ``llmops.ops.reconcile`` (the gate step and promotions it triggers) and
``llmops up``. The release's bundle is laid out as a one-app repository
(``llmops.runtime.bundled.materialize``) with the stage's environment file reduced to
this app's overrides, then evaluated by the eval engine exactly as ``llmops eval --gate``
would; ``model_url`` points every model call elsewhere (``llmops up``: the stub). The
response cache of the real repository is used, so a rerun of the same release costs
nothing. An endpoint the stage's environment names for the app wins over ``model_url``.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

from llmops.archive.base import Archive
from llmops.domain.evals import GateResult
from llmops.domain.models.environment import Environment
from llmops.domain.models.pipeline import Stage
from llmops.domain.repo import Repo
from llmops.releases.bundle import Bundle


def _environment_file(environment: Environment, app: str) -> str:
    """``environment`` reduced to ``app``'s overrides and no pins, as YAML (JSON)."""
    body = environment.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec = body["spec"]
    spec["overrides"] = {k: v for k, v in spec.get("overrides", {}).items() if k == app}
    spec["releases"] = {}
    return json.dumps(body, indent=1) + "\n"


def run_gate(
    repo: Repo,
    archive: Archive,
    bundle: Bundle,
    stage: Stage,
    baseline: str | None,
    *,
    model_url: str | None = None,
) -> tuple[GateResult, bytes]:
    """``stage``'s gate on ``bundle``: the decision and the JSON report to archive."""
    from llmops.evals.api import EvalSettings, run_eval
    from llmops.evals.baseline import archived_run
    from llmops.evals.cache import DEFAULT_CACHE_PATH
    from llmops.evals.gates import evaluate_gate
    from llmops.evals.reports import render_json
    from llmops.manifests.repository import load_repo
    from llmops.runtime.bundled import materialize

    app = bundle.app
    with tempfile.TemporaryDirectory(prefix="llmops-gate-") as tmp:
        root = materialize(bundle, Path(tmp))
        env_source = repo.environments.get(stage.env)
        if env_source is not None:
            (root / "environments").mkdir(exist_ok=True)
            (root / "environments" / f"{stage.env}.yaml").write_text(
                _environment_file(env_source.environment, app), encoding="utf-8"
            )
        one = load_repo(root, prefix="")
        override = env_source.environment.spec.overrides.get(app) if env_source else None
        if override is not None and override.model is not None and override.model.base_url:
            model_url = None  # the environment names this app's endpoint: gate it there
        settings = EvalSettings(
            environment=stage.env if env_source is not None else None,
            repeat=stage.gate.repeats,
            model_url=model_url,
            cache_path=Path(repo.root) / DEFAULT_CACHE_PATH,
        )
        run = dataclasses.replace(
            run_eval(one, app, tuple(stage.gate.suites), settings), release=bundle.release_id
        )
    base_run = archived_run(archive, app, baseline, stage.env) if baseline else None
    result = evaluate_gate(stage.env, stage.gate, run, base_run)
    return result, render_json(run, result, base_run).encode("utf-8")
