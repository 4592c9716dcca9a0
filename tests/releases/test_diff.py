"""`release diff`: readable changes of fields, files and suites."""

from __future__ import annotations

import shutil
from pathlib import Path

from llmops import api
from llmops.releases.bundle import build_bundle
from llmops.releases.diff import diff_bundles

ROOT = Path(__file__).resolve().parents[2]


def test_diff_names_each_kind_of_change(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for part in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / part, repo / part)
    old = build_bundle(api.load(repo).apps["support-bot"], repo)
    app = repo / "manifests/support-bot/app.yaml"
    app.write_text(app.read_text().replace("temperature: 0.2", "temperature: 0.4"))
    (repo / "manifests/support-bot/prompts/user.j2").write_text("Question: {{ question }}\n")
    smoke = repo / "manifests/support-bot/evals/smoke.yaml"
    smoke.write_text(smoke.read_text().replace("id: refund-window", "id: refund-window-2"))
    new = build_bundle(api.load(repo).apps["support-bot"], repo)

    result = diff_bundles(old, new)
    assert not result.identical
    assert [(f.path, f.old, f.new) for f in result.fields] == [
        ("spec.model.params.temperature", 0.2, 0.4)
    ]
    assert [f.path for f in result.files] == ["prompts/user.j2"]
    assert "+Question: {{ question }}" in result.files[0].unified
    (suite,) = result.suites
    assert suite.suite == "smoke" and suite.added == ("refund-window-2",)
    assert suite.removed == ("refund-window",)


def test_identical() -> None:
    bundle = build_bundle(api.load(ROOT).apps["summarizer"], ROOT)
    assert diff_bundles(bundle, bundle).identical
