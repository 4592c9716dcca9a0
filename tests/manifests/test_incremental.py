"""The load cache: an app is checked again exactly when a file it depends on changed, and a
cached load always reports what a fresh load of the same files reports."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.domain.errors import ManifestInvalid
from llmops.manifests.incremental import LoadCache, tree_digest
from llmops.manifests.repository import load_repo, validate_repo

ROOT = Path(__file__).resolve().parents[2]


def _copy_example(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for part in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / part, path / part)
    return path


def _fresh(root: Path) -> tuple[object, ...]:
    report = validate_repo(root)
    return (report.diagnostics, report.repo)


def test_a_second_load_checks_no_app_and_gives_the_same_repo(tmp_path: Path) -> None:
    root = _copy_example(tmp_path / "repo")
    cache = LoadCache()
    first = load_repo(root, prefix="", cache=cache)
    assert (cache.hits, cache.misses) == (0, 2)
    second = load_repo(root, prefix="", cache=cache)
    assert (cache.hits, cache.misses) == (2, 2)
    assert second == first == load_repo(root, prefix="")


def test_an_edit_rechecks_only_that_app(tmp_path: Path) -> None:
    root = _copy_example(tmp_path / "repo")
    cache = LoadCache()
    load_repo(root, prefix="", cache=cache)
    user = root / "manifests" / "summarizer" / "prompts" / "user.j2"
    user.write_text(user.read_text() + "\nKeep it short.\n")
    repo = load_repo(root, prefix="", cache=cache)
    assert (cache.hits, cache.misses) == (1, 3)
    assert repo == load_repo(root, prefix="")


def test_a_broken_edit_is_reported_then_a_fix_is_seen(tmp_path: Path) -> None:
    root = _copy_example(tmp_path / "repo")
    cache = LoadCache()
    load_repo(root, prefix="", cache=cache)
    app = root / "manifests" / "summarizer" / "app.yaml"
    good = app.read_text()
    app.write_text(good.replace("temperature: 0", "temperature: 3.5"))
    with pytest.raises(ManifestInvalid) as raised:
        load_repo(root, prefix="", cache=cache)
    assert any("temperature" in d.path for d in raised.value.diagnostics)
    with pytest.raises(ManifestInvalid):  # still broken: the cached outcome says so too
        load_repo(root, prefix="", cache=cache)
    app.write_text(good)
    assert load_repo(root, prefix="", cache=cache) == load_repo(root, prefix="")


def test_a_file_linked_from_outside_the_app_directory_is_part_of_the_key(tmp_path: Path) -> None:
    # manifests may not say '..', but a symlink may point elsewhere inside the repository
    root = _copy_example(tmp_path / "repo")
    shared = root / "shared"
    shared.mkdir()
    (shared / "user.j2").write_text("Summarise for {{ audience }}:\n{{ text }}\n")
    user = root / "manifests" / "summarizer" / "prompts" / "user.j2"
    user.unlink()
    user.symlink_to(Path("../../../shared/user.j2"))
    cache = LoadCache()
    load_repo(root, prefix="", cache=cache)
    # a variable the app does not declare, in the file outside the app's directory
    (shared / "user.j2").write_text("{{ undeclared_thing }}\n")
    with pytest.raises(ManifestInvalid) as raised:
        load_repo(root, prefix="", cache=cache)
    assert any("undeclared_thing" in d.message for d in raised.value.diagnostics)
    assert cache.misses == 3


def test_a_missing_file_that_appears_is_seen(tmp_path: Path) -> None:
    root = _copy_example(tmp_path / "repo")
    system = root / "manifests" / "summarizer" / "prompts" / "system.j2"
    text = system.read_text()
    system.unlink()
    cache = LoadCache()
    with pytest.raises(ManifestInvalid):
        load_repo(root, prefix="", cache=cache)
    system.write_text(text)
    load_repo(root, prefix="", cache=cache)


def test_a_removed_app_is_forgotten_and_its_references_fail(tmp_path: Path) -> None:
    root = _copy_example(tmp_path / "repo")
    cache = LoadCache()
    load_repo(root, prefix="", cache=cache)
    shutil.rmtree(root / "manifests" / "summarizer")
    assert _fresh(root)[1] is None  # environments still name it
    report = validate_repo(root, cache=cache)
    assert report.diagnostics == _fresh(root)[0]
    assert set(cache.digests) == {"support-bot"}


def test_tree_digest_sees_names_bytes_and_links(tmp_path: Path) -> None:
    base = tmp_path / "d"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "a.txt").write_text("one")
    first = tree_digest(os.fspath(base))
    (base / "sub" / "a.txt").write_text("one")  # same bytes, new mtime
    assert tree_digest(os.fspath(base)) == first
    (base / "sub" / "a.txt").write_text("two")
    second = tree_digest(os.fspath(base))
    assert second != first
    (base / "sub" / "a.txt").rename(base / "sub" / "b.txt")
    assert tree_digest(os.fspath(base)) != second
    (base / "link").symlink_to("sub")
    assert tree_digest(os.fspath(base)) not in (first, second)


# Random edit sequences: after each, a load through the cache reports exactly what a
# fresh load reports (diagnostics and the repository).
EDITS = (
    ("manifests/summarizer/app.yaml", "temperature: 0", "temperature: 3.5"),
    ("manifests/summarizer/app.yaml", "maxTokens: 300", "maxTokens: 301"),
    (
        "manifests/summarizer/app.yaml",
        "blockCanary: true",
        "blockCanary: true\n      bogusField: 1",
    ),
    ("manifests/summarizer/prompts/user.j2", "{{", "{{ nope }} {{"),
    ("manifests/support-bot/app.yaml", "apiVersion: llmops.dev/v1", "apiVersion: llmops.dev/v2"),
    ("manifests/support-bot/evals/smoke.yaml", "cases:", "cases:\n    - {}"),
    ("environments/dev.yaml", "kind: Environment", "kind: Environment\nbogus: 1"),
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.integers(0, len(EDITS) - 1), st.booleans()), min_size=1, max_size=6))
def test_cached_loads_match_fresh_loads(tmp_path: Path, steps: list[tuple[int, bool]]) -> None:
    root = _copy_example(tmp_path / f"repo-{random.getrandbits(32):08x}")
    originals = {file: (root / file).read_text() for file, _, _ in EDITS}
    cache = LoadCache()
    validate_repo(root, cache=cache)
    for index, apply in steps:
        file, old, new = EDITS[index]
        text = originals[file]
        (root / file).write_text(text.replace(old, new, 1) if apply else text)
        cached = validate_repo(root, cache=cache)
        assert (cached.diagnostics, cached.repo) == _fresh(root)
    shutil.rmtree(root)
