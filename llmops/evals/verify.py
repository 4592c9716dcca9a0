"""The post-deploy verify of a blue/green deploy: a release's own suites against the new
colour, through its invoke endpoint, before traffic moves to it.

:func:`verify_release` builds the ``Verify`` callable of ``llmops.deploy.target`` that
``Target.apply`` calls as ``verify(desired, base_url)`` once the new colour is ready. It
runs the named suites **of the release bundle** (``bundle.document["suites"]``: what was
gated is what is checked, not the work tree) with ``llmops.evals.remote``, judges the run
with :func:`llmops.evals.gates.evaluate_verify` (plain pass rate against
``min_pass_rate``, required and errored cases), and answers a ``VerifyResult`` whose
message is one line naming the cases that did not pass.

It never raises for a failing check. A colour that cannot be reached, that serves
another release than the one being deployed (or none of this app), or a bundle that
cannot be read are failed checks with a message saying so; so is a crash below (a bug
must roll the deploy back, not leave it half-switched).

The judge of model-graded assertions (``llm-rubric``; ``similar``'s embeddings) is the
app's model as the environment deploys it: ``LLMOPS_MODEL_URL``/``LLMOPS_MODEL_NAME``
from ``desired.env_vars`` when set, else the bundle's ``spec.model``; its API key is the
bundle's ``spec.model.apiKey`` reference resolved in this (the deploying) process's
environment. ``judge_model``/``judge_url`` override it.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from llmops.deploy.target import Verify, VerifyResult
from llmops.domain.deploy import ENV_MODEL_NAME, ENV_MODEL_URL, DesiredApp
from llmops.domain.errors import LlmopsError
from llmops.domain.evals import CaseResult, EvalRun, GateResult
from llmops.domain.models.pipeline import Verify as VerifySpec
from llmops.evals.gates import case_failure_reason, case_key, evaluate_verify
from llmops.evals.runner import DEFAULT_CONCURRENCY

if TYPE_CHECKING:
    from llmops.evals.api import PreparedEval
    from llmops.releases.bundle import Bundle

#: failing cases named in a message; the rest are counted
SHOWN_CASES = 5
_REASON_CHARS = 120


def verify_release(
    bundle: Bundle,
    suites: Sequence[str],
    *,
    repeats: int = 1,
    stage: str,
    min_pass_rate: float = 1.0,
    concurrency: int = DEFAULT_CONCURRENCY,
    sample_timeout: float | None = None,
    judge_model: str | None = None,
    judge_url: str | None = None,
) -> Verify:
    """A ``Verify`` that runs ``suites`` of ``bundle`` (``repeats`` samples per case)
    against the colour at ``base_url`` and judges them as ``stage``'s verify does."""
    wanted = tuple(dict.fromkeys(suites))

    def verify(desired: DesiredApp, base_url: str) -> VerifyResult:
        try:
            return _verify(
                bundle, wanted, desired, base_url, stage=stage, repeats=repeats,
                min_pass_rate=min_pass_rate, concurrency=concurrency,
                sample_timeout=sample_timeout, judge_model=judge_model, judge_url=judge_url,
            )
        except LlmopsError as exc:
            return VerifyResult(False, _one_line(exc.message))
        except Exception as exc:  # never raise out of a verify: a failed check rolls back
            return VerifyResult(
                False,
                _one_line(
                    f"verify {stage} of {bundle.release_id} at {base_url} crashed: "
                    f"{type(exc).__name__}: {exc}"
                ),
            )

    return verify


def verify_apps(verifies: Mapping[str, Verify]) -> Verify:
    """One ``Verify`` for a plan of several apps: each app's own, by ``desired.app``;
    an app without one passes (there is nothing to check)."""

    def verify(desired: DesiredApp, base_url: str) -> VerifyResult:
        chosen = verifies.get(desired.app)
        if chosen is None:
            return VerifyResult(True, f"no verify configured for app {desired.app}")
        return chosen(desired, base_url)

    return verify


def _verify(
    bundle: Bundle,
    suites: tuple[str, ...],
    desired: DesiredApp,
    base_url: str,
    *,
    stage: str,
    repeats: int,
    min_pass_rate: float,
    concurrency: int,
    sample_timeout: float | None,
    judge_model: str | None,
    judge_url: str | None,
) -> VerifyResult:
    from llmops.evals.api import EvalSettings, load_repo, prepare_eval
    from llmops.runtime.bundled import materialize

    release = bundle.release_id
    if desired.app != bundle.app or desired.release != release:
        return VerifyResult(
            False,
            f"verify {stage} was built for {release} but asked to check "
            f"{desired.app} {desired.release}; build one verify per app and release",
        )
    known: Mapping[str, object] = bundle.document.get("suites") or {}
    missing = [name for name in suites if name not in known]
    if missing:
        listed = ", ".join(sorted(known)) or "none"
        return VerifyResult(
            False,
            f"verify {stage}: release {release} has no suite {', '.join(missing)} "
            f"(its suites: {listed}); fix the pipeline's verify.suites",
        )
    if not suites:
        return VerifyResult(True, f"verify {stage} names no suite: nothing to check")
    env = dict(desired.env_vars)
    settings = EvalSettings(
        repeat=repeats,
        concurrency=concurrency,
        use_cache=False,
        endpoint=base_url,
        judge_url=judge_url or env.get(ENV_MODEL_URL),
        judge_model=judge_model or env.get(ENV_MODEL_NAME),
        sample_timeout=sample_timeout,
    )
    with tempfile.TemporaryDirectory(prefix="llmops-verify-") as tmp:
        root = materialize(bundle, Path(tmp))
        prepared = prepare_eval(load_repo(root), bundle.app, suites, settings)
        run = _run(prepared)
    if run.release != release:
        return VerifyResult(
            False,
            f"verify {stage}: {base_url} serves {run.release}, not {release}: the new colour "
            "does not run the release being deployed",
        )
    spec = VerifySpec.model_validate({"suites": list(suites), "minPassRate": min_pass_rate})
    gate = evaluate_verify(stage, spec, run)
    return VerifyResult(gate.passed, summary(stage, base_url, run, gate))


def _run(prepared: PreparedEval) -> EvalRun:
    """The run, in a new event loop; in a worker thread when this thread has one going
    (a verify called from async code)."""
    from llmops.evals.api import run_prepared

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_prepared(prepared)
    with ThreadPoolExecutor(1, thread_name_prefix="llmops-verify") as pool:
        return pool.submit(run_prepared, prepared).result()


def summary(stage: str, base_url: str, run: EvalRun, gate: GateResult) -> str:
    """One line: the verdict, where, which release, and the cases that did not pass."""
    cases = run.cases
    bad = [c for c in cases if c.outcome != "pass"]
    bad.sort(key=lambda c: (c.outcome != "error", not c.required))
    short = _short(run.release)
    names = "+".join(s.name for s in run.suites)
    where = f"at {base_url} ({short})"
    if gate.passed:
        line = f"verify {stage} passed: {len(cases) - len(bad)} of {len(cases)} cases of {names}"
        line += f" passed {where}"
        if bad:
            line += f", within minPassRate {gate.min_pass_rate * 100:.1f}%; not passing: "
            line += _named(bad)
        return _one_line(line)
    line = f"verify {stage} failed {where}: "
    if bad:
        line += f"{len(bad)} of {len(cases)} cases not passing: {_named(bad)}"
    blocking = [r for r in gate.reasons if r.blocking]
    if not bad and blocking:
        line += "; ".join(f"{r.code}: {r.message}" for r in blocking[:2])
    elif any(r.code == "Interrupted" for r in blocking):
        line += "; the run was interrupted"
    return _one_line(line)


def _named(cases: Sequence[CaseResult]) -> str:
    shown = []
    for case in cases[:SHOWN_CASES]:
        why = case_failure_reason(case)
        if len(why) > _REASON_CHARS:
            why = why[: _REASON_CHARS - 1] + "…"
        label = f"{case_key(case)}{' [required]' if case.required else ''}"
        shown.append(f"{label} ({why})" if why else label)
    more = len(cases) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _short(release: str) -> str:
    app, sep, digest = release.partition("@sha256:")
    return f"{app}@sha256:{digest[:12]}" if sep else release


def _one_line(text: str) -> str:
    return " ".join(text.split())
