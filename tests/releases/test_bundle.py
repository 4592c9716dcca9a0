"""Release ids: the same content gives the same id anywhere; every real change gives a new one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmops import api
from llmops.releases.bundle import build_bundle, load_bundle

ROOT = Path(__file__).resolve().parents[2]


def _copy(dest: Path) -> Path:
    for part in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / part, dest / part)
    return dest


def _release(repo: Path, app: str = "support-bot") -> str:
    loaded = api.load(repo)
    return build_bundle(loaded.apps[app], Path(loaded.root)).release_id


def test_same_content_same_id_in_another_directory(tmp_path: Path) -> None:
    assert _release(_copy(tmp_path / "a")) == _release(_copy(tmp_path / "b")) == _release(ROOT)


def test_id_ignores_comments_layout_crlf_and_overrides(tmp_path: Path) -> None:
    repo = _copy(tmp_path / "repo")
    before = _release(repo)
    app = repo / "manifests/support-bot/app.yaml"
    app.write_text("# a new comment\n" + app.read_text().replace("\n", "\r\n"))
    system = repo / "manifests/support-bot/prompts/system.j2"
    system.write_bytes(system.read_bytes().replace(b"\n", b"\r\n"))
    prod = repo / "environments/prod.yaml"
    prod.write_text(prod.read_text().replace("replicas: 3", "replicas: 5"))
    assert _release(repo) == before


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("app.yaml", "temperature: 0.2", "temperature: 0.3"),
        ("prompts/system.j2", "Acme Cloud", "Acme Cloud Inc."),
        ("evals/smoke.yaml", "billing", "Billing"),
        ("schemas/answer.json", '"maxItems": 3', '"maxItems": 4'),
    ],
)
def test_any_real_change_gives_a_new_id(tmp_path: Path, file: str, old: str, new: str) -> None:
    repo = _copy(tmp_path / "repo")
    before = _release(repo)
    path = repo / "manifests/support-bot" / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    assert _release(repo) != before


def test_bundle_round_trips_and_holds_what_it_references() -> None:
    loaded = api.load(ROOT)
    bundle = build_bundle(loaded.apps["support-bot"], Path(loaded.root))
    assert set(bundle.files) == {"prompts/system.j2", "prompts/user.j2", "schemas/answer.json"}
    assert set(bundle.document["suites"]) == {"smoke", "security"}
    again = load_bundle(bundle.data)
    assert again.release_id == bundle.release_id
    assert bundle.release_id.startswith("support-bot@sha256:") and len(bundle.digest) == 64


def test_bundle_has_no_secrets_or_paths_outside_the_app() -> None:
    loaded = api.load(ROOT)
    bundle = build_bundle(loaded.apps["support-bot"], Path(loaded.root))
    text = bundle.data.decode()
    assert str(ROOT) not in text
    assert '"env":"OPENAI_API_KEY"' in text  # the reference, never a value
