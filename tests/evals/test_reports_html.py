"""The HTML comparison report: escaping, self-containment, and rendering in headless Chromium.

Input: the pinned report in tests/fixtures/evals/report.json (see test_reports.py).
The Chromium test runs when ``chromium`` is installed (Debian/Ubuntu package
``chromium``; CI installs it) and is skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from llmops.domain.evals import CaseResult, EvalRun, Sample, SuiteResult
from llmops.evals.reports import load_report, render_html, write_reports

REPORT = load_report(Path(__file__).resolve().parents[1] / "fixtures" / "evals" / "report.json")
RUN, GATE, BASELINE = REPORT.run, REPORT.gate, REPORT.baseline
CHROMIUM = next(
    (p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None
)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    parser.close()
    return parser


def hostile_run(output: str) -> EvalRun:
    sample = Sample("fail", output, error=None)
    case = CaseResult("smoke", "evil", (sample,), description=output, tags=(output,))
    suites = (SuiteResult("smoke", (case,)),)
    return EvalRun(app="bot", release="bot@sha256:" + "b" * 64, suites=suites)


@pytest.mark.parametrize(
    "output",
    [
        '<script>alert("x")</script>',
        '<img src=x onerror="alert(1)">',
        '"><svg onload=alert(1)>',
        "</pre></td></table><script>document.write(1)</script>",
        "&lt;script&gt; already escaped",
    ],
)
def test_model_output_is_escaped(output: str) -> None:
    page = render_html(hostile_run(output), baseline=hostile_run(output))
    parsed = parse(page)
    assert all(tag not in {"script", "img", "iframe", "object"} for tag, _ in parsed.tags)
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert output in "".join(parsed.text), "the text itself is shown, as text"


def test_the_fixture_output_with_a_script_is_escaped() -> None:
    page = render_html(RUN, GATE, BASELINE)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_self_contained_and_locked_down() -> None:
    page = render_html(RUN, GATE, BASELINE)
    parsed = parse(page)
    assert not re.search(r"https?://", page), "no external URL"
    assert all("src" not in attrs and "href" not in attrs for _, attrs in parsed.tags)
    csp = [a["content"] for t, a in parsed.tags if t == "meta" and a.get("http-equiv")]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; img-src data:"]
    assert [t for t, _ in parsed.tags].count("svg") == 1 and "<style>" in page


def test_side_by_side_content() -> None:
    page = render_html(RUN, GATE, BASELINE)
    text = " ".join(parse(page).text)
    assert "support-bot: gate into test failed" in text
    assert RUN.release in text and BASELINE is not None and BASELINE.release in text
    for label in ("66.7%", "86.7%", "75.0%", "100.0%"):  # suite rates, candidate and baseline
        assert label in text
    for badge in ("regressed", "fixed", "new", "removed", "error"):
        assert f">{badge}</span>" in page
    assert page.index("smoke/order-status") < page.index("smoke/greeting"), "worst first"
    assert "Your order ships tomorrow." in text and "See our refund policy." in text
    without = render_html(RUN)
    assert ">new</span>" not in without and "(no baseline)" in without


def test_renders_in_headless_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    assert CHROMIUM is not None
    page = write_reports(tmp_path / "reports", RUN, GATE, BASELINE)["html"]
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = page.as_uri()
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    assert "support-bot: gate into test failed" in rendered
    for number in ("70.4%", "91.7%", "66.7%", "86.7%", "75.0%", "100.0%"):
        assert number in rendered, number
    assert "<script" not in rendered.lower()
    shot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, *flags, "--window-size=1280,1800", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
