"""Serving an archived release renders exactly what the work tree rendered, under its id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops import api
from llmops.domain.errors import InvalidInput
from llmops.releases.bundle import build_bundle, load_bundle
from llmops.runtime.bundled import materialize
from llmops.runtime.loaded import load_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("app", ["support-bot", "summarizer"])
def test_release_renders_like_the_work_tree(tmp_path: Path, app: str) -> None:
    repo = api.load(ROOT)
    bundle = build_bundle(repo.apps[app], ROOT)
    served = load_app(api.load(materialize(bundle, tmp_path)), app, release=bundle.release_id)
    work = load_app(repo, app, release=bundle.release_id)
    inputs = {"question": "Where is my invoice?"} if app == "support-bot" else {"text": "Disk full."}
    assert served.render(inputs) == work.render(inputs)
    assert served.release == bundle.release_id
    assert served.canary == work.canary != load_app(repo, app).canary
    assert served.output_schema == work.output_schema
    # the materialized release is itself the same release
    again = build_bundle(api.load(tmp_path).apps[app], tmp_path)
    assert again.release_id == bundle.release_id


def test_bundle_paths_are_checked(tmp_path: Path) -> None:
    bundle = build_bundle(api.load(ROOT).apps["summarizer"], ROOT)
    document = dict(bundle.document)
    document["files"] = {**bundle.files, "../../evil.j2": "x"}
    evil = load_bundle(json.dumps(document).encode())
    with pytest.raises(InvalidInput, match=r"'\.\.' is not allowed"):
        materialize(evil, tmp_path)
    assert not (tmp_path.parent / "evil.j2").exists()
