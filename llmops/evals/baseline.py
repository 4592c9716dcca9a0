"""Find the baseline run a gate compares with: a report file, a release's archived eval,
or (``auto``) the eval of the release pinned in the gate's environment now.

Called by ``llmops.cli.eval`` (``--baseline``); the archive is passed in (the CLI opens
the one the pipeline names). Archived evals are ledger entries ``evaluated`` whose
``evidence["report"]`` is the digest of a ``report.json`` (``llmops.evals.reports``).
"""

from __future__ import annotations

from pathlib import Path

from llmops.archive.base import Archive, ObjectMissing
from llmops.domain.errors import UsageError
from llmops.domain.evals import EvalRun
from llmops.domain.repo import Repo


def pinned_release(repo: Repo, app: str, env: str) -> str | None:
    """The release of ``app`` pinned in environment ``env``, or None."""
    source = repo.environments.get(env)
    if source is None:
        return None
    return source.environment.spec.releases.get(app)


def archived_run(
    archive: Archive, app: str, release: str, env: str | None = None
) -> EvalRun | None:
    """The newest archived eval of ``release`` (preferring one in ``env``), or None."""
    from llmops.evals.reports import parse_report

    entries = [
        e
        for e in archive.entries()
        if e.event == "evaluated"
        and e.app == app
        and e.release == release
        and "report" in e.evidence
    ]
    entries.sort(key=lambda e: (env is not None and e.env == env, e.seq))
    for entry in reversed(entries):
        try:
            data = archive.get(entry.evidence["report"])
        except ObjectMissing:
            continue
        return parse_report(data.decode("utf-8"), f"archived report of {release}").run
    return None


def resolve_baseline(
    spec: str,
    repo: Repo,
    app: str,
    stage: str | None,
    archive: Archive | None,
) -> EvalRun | None:
    """The baseline run named by ``--baseline``.

    ``PATH.json``: a report written by ``--report-dir``. ``auto``: the release pinned in
    the gate's environment; None when nothing is pinned there yet (the first release of
    a stage has no baseline, and the gate says so). A release id: its archived eval.
    Raises ``UsageError`` when a named baseline cannot be found.
    """
    if spec.endswith(".json") or Path(spec).is_file():
        from llmops.evals.reports import load_report

        return load_report(Path(spec)).run
    if spec == "auto":
        if stage is None:
            raise UsageError("--baseline auto needs --gate STAGE (the environment to compare with)")
        release = pinned_release(repo, app, stage)
        if release is None:
            return None
    else:
        release = spec
    if archive is None:
        raise UsageError(f"no archive to look up the eval of {release} in")
    run = archived_run(archive, app, release, stage)
    if run is None and spec != "auto":
        raise UsageError(
            f"no archived eval of {release}; pass a report file (--baseline PATH.json) "
            "or run the eval of that release first"
        )
    return run
