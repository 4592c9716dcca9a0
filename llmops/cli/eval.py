"""``llmops eval``: run an app's eval suites against its model, optionally decide a gate.

Called by ``llmops.cli.main`` (lazily). Builds the run with ``llmops.evals.api``, shows a
progress bar on a terminal, prints a per-suite table and the top failures (or JSON), then
gates and writes reports when asked. Exit 0 passed, 1 gate failed (without ``--gate``:
any case failed or errored, or the run was interrupted), 2 the eval could not run.
With ``--endpoint URL`` the cases go to the app served at URL (``llmops serve``, a
deployed colour) instead of the model, uncached; an endpoint that cannot be reached
exits 2 with one line.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from llmops.domain.evals import CaseResult, EvalRun, GateResult
    from llmops.domain.models.pipeline import Gate
    from llmops.domain.repo import Repo
    from llmops.evals.api import PreparedEval

TOP_FAILURES = 10


@click.command("eval")
@click.argument("app")
@click.option("--suite", "suites", multiple=True, help="Run only this suite (repeatable).")
@click.option("--env", "environment", help="Use this environment's model overrides.")
@click.option("--repeat", type=click.IntRange(1, 100), help="Samples per case [default: 1].")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=8, show_default=True,
              help="Model requests in flight at once.")
@click.option("--rate-limit", type=click.FloatRange(min=0.01), help="Requests/s per endpoint.")
@click.option("--no-cache", is_flag=True, help="Call the model for every sample.")
@click.option("--model-url", help="Send model calls to this endpoint (e.g. a local stub).")
@click.option("--endpoint", metavar="URL",
              help="Evaluate the app served at this runtime URL (POST URL/v1/apps/APP/invoke) "
                   "instead of calling the model; never cached.")
@click.option("--judge-model", help="Model that grades llm-rubric [default: the app's].")
@click.option("--gate", "stage", help="Decide the gate of this pipeline stage (environment).")
@click.option("--baseline", help="Compare with: RELEASE, auto (pinned in STAGE) or PATH.json.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for machines.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write JSON, JUnit, Markdown and HTML reports here.")
@click.option("-C", "--path", "repo_path", default=".", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="The llmops repository.")
def eval_(
    app: str,
    suites: tuple[str, ...],
    environment: str | None,
    repeat: int | None,
    concurrency: int,
    rate_limit: float | None,
    no_cache: bool,
    model_url: str | None,
    endpoint: str | None,
    judge_model: str | None,
    stage: str | None,
    baseline: str | None,
    output: str,
    report_dir: Path | None,
    repo_path: Path,
) -> None:
    """Run APP's eval suites against its model, the way the runtime serves it.

    Every case is rendered with the app's templates and guardrails, sent to the model
    (replies are cached in .llmops/cache/evals.sqlite; --no-cache skips it) and graded.
    With --endpoint the cases' inputs go to the app running at URL instead, and its
    answers are graded (guardrail blocks included); nothing is cached.
    Exit 0 when every case passed (with --gate: when the gate passed), 1 when not,
    2 when the eval could not run.
    """
    with _could_not_run():
        from llmops import api
        from llmops.domain.errors import UsageError
        from llmops.evals.api import EvalSettings, run_eval

        if endpoint is not None and model_url is not None:
            raise UsageError(
                "--endpoint and --model-url exclude each other: --endpoint evaluates the app "
                "served at that URL, --model-url runs the app here against another model"
            )
        repo = api.load(repo_path)
        gate = _gate(repo, stage) if stage else None
        if baseline and not stage and baseline == "auto":
            raise UsageError("--baseline auto needs --gate STAGE")
        if gate is not None and not suites:
            suites = tuple(gate.suites)
        settings = EvalSettings(
            environment=environment,
            repeat=repeat or (gate.repeats if gate is not None else 1),
            concurrency=concurrency,
            use_cache=not no_cache and endpoint is None,
            model_url=model_url,
            endpoint=endpoint,
            rate_limit=rate_limit,
            judge_model=judge_model,
        )
        base_run = _baseline(baseline, repo, app, stage) if baseline else None
        progress = _Progress(enabled=output == "text" and sys.stderr.isatty())
        try:
            run = run_eval(
                repo, app, suites, settings, on_start=progress.start, on_case=progress.advance
            )
        finally:
            progress.stop()
        result = None
        if gate is not None and stage is not None:
            from llmops.evals.gates import evaluate_gate

            result = evaluate_gate(stage, gate, run, base_run)
        if report_dir is not None:
            from llmops.evals.reports import write_reports

            written = write_reports(report_dir, run, result, base_run)
            if output == "text":
                click.echo(f"reports: {', '.join(str(p) for p in written.values())}", err=True)
        if output == "json":
            from llmops.evals.reports import render_json

            click.echo(render_json(run, result, base_run))
        else:
            _print_text(run, result, endpoint)
        if result is not None:
            raise SystemExit(0 if result.passed else 1)
        failed = run.interrupted or any(c.outcome != "pass" for c in run.cases)
        raise SystemExit(1 if failed else 0)



@contextlib.contextmanager
def _could_not_run() -> Iterator[None]:
    """Exit 1 means "the gate failed"; anything that stopped the eval exits 2."""
    from llmops.domain.errors import LlmopsError

    try:
        yield
    except LlmopsError as exc:
        exc.exit_code = 2
        raise

def _gate(repo: Repo, stage: str) -> Gate:
    from llmops.domain.errors import UsageError

    found = [
        (name, s) for name, p in repo.pipelines.items() for s in p.pipeline.spec.stages
        if s.env == stage
    ]
    if not found:
        stages = sorted({s.env for p in repo.pipelines.values() for s in p.pipeline.spec.stages})
        raise UsageError(
            f"no pipeline has a stage {stage!r} (stages: {', '.join(stages) or 'none'})"
        )
    if len(found) > 1:
        names = ", ".join(name for name, _ in found)
        raise UsageError(f"stage {stage!r} is in several pipelines ({names}); keep one")
    return found[0][1].gate


def _baseline(spec: str, repo: Repo, app: str, stage: str | None) -> EvalRun | None:
    from llmops.evals.baseline import resolve_baseline

    archive = None
    if not spec.endswith(".json"):
        from llmops.ops.release import archive_for

        archive = archive_for(repo)
    return resolve_baseline(spec, repo, app, stage, archive)


class _Progress:
    """A rich progress bar on stderr, when it is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def start(self, prepared: PreparedEval) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        name = prepared.loaded.name
        self._task = self._bar.add_task(f"eval {name}", total=len(prepared.planned))

    def advance(self, case: CaseResult) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _print_text(run: EvalRun, gate: GateResult | None, endpoint: str | None = None) -> None:
    from llmops.cli.output import plural, table

    rows = []
    for suite in run.suites:
        cases = suite.cases
        passed = sum(1 for c in cases if c.outcome == "pass")
        failed = sum(1 for c in cases if c.outcome == "fail")
        errored = sum(1 for c in cases if c.outcome == "error")
        rate = f"{passed / len(cases) * 100:.1f}%" if cases else "-"
        rows.append((suite.name, len(cases), passed, failed, errored, rate))
    table(f"eval {run.app} ({run.model})", ["suite", "cases", "pass", "fail", "error", "pass rate"],
          rows)
    bad = [c for c in run.cases if c.outcome != "pass"]
    bad.sort(key=lambda c: (c.outcome != "error", not c.required))
    if bad:
        click.echo(f"\ntop failures ({min(len(bad), TOP_FAILURES)} of {len(bad)}):")
        for case in bad[:TOP_FAILURES]:
            flag = " [required]" if case.required else ""
            click.echo(f"  ✗ {case.suite}/{case.case_id}{flag} ({case.outcome}): {_why(case)}")
    retries = f"{run.retries} {'retry' if run.retries == 1 else 'retries'}"
    calls = f"{plural(run.model_calls, 'model call')}, {run.cache_hits} cached, {retries}"
    if endpoint is not None:
        calls = f"{plural(run.model_calls, 'request')} (invoke and judge), {retries}"
        calls += f"; release {run.release} at {run.model}"
    count = plural(len(run.cases), "case")
    click.echo(f"\n{count} × {run.repeats} in {run.duration_s:.2f}s; {calls}")
    if run.interrupted:
        click.echo("interrupted: the result is partial (cases that did not finish are left out)")
    if gate is not None:
        mark = "✓" if gate.passed else "✗"
        click.echo(f"\n{mark} gate {gate.stage}: {'passed' if gate.passed else 'failed'}")
        for reason in gate.reasons:
            click.echo(f"  - {reason.code}: {reason.message}")


def _why(case: CaseResult) -> str:
    for sample in case.samples:
        if sample.outcome == "error" and sample.error:
            return sample.error
        for result in sample.assertions:
            if result.outcome == sample.outcome:
                return f"{result.type}: {result.reason}"
    return case.outcome
