"""Eval reports: JSON evidence, JUnit XML, a Markdown summary and an HTML comparison.

Called by ``llmops eval`` and the pipeline after a gate decision. The renderers are pure
(text in memory); :func:`write_reports` is the one function here that writes files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from llmops.domain.evals import EvalRun, GateResult
from llmops.evals.reports.html import render_html
from llmops.evals.reports.json_report import EvalReport, load_report, parse_report, render_json
from llmops.evals.reports.junit import render_junit
from llmops.evals.reports.markdown import render_markdown

__all__ = [
    "REPORT_FILES",
    "EvalReport",
    "load_report",
    "parse_report",
    "render_html",
    "render_json",
    "render_junit",
    "render_markdown",
    "write_reports",
]

#: Report kind → file name inside the report directory.
REPORT_FILES: dict[str, str] = {
    "json": "report.json",
    "junit": "junit.xml",
    "markdown": "summary.md",
    "html": "report.html",
}


def _write_atomic(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename durable where directories can sync
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_reports(
    directory: Path | str,
    run: EvalRun,
    gate: GateResult | None = None,
    baseline: EvalRun | None = None,
) -> dict[str, Path]:
    """Write every report into ``directory`` (created if needed); kind → path written.

    Every text is rendered before the first file is written, so a rendering bug leaves
    the directory as it was; each file is replaced atomically.
    """
    texts = {
        "json": render_json(run, gate, baseline),
        "junit": render_junit(run, gate),
        "markdown": render_markdown(run, gate, baseline),
        "html": render_html(run, gate, baseline),
    }
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, text in texts.items():
        path = target / REPORT_FILES[kind]
        _write_atomic(path, text)
        written[kind] = path
    return written
