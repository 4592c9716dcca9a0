"""The loader's shortcuts answer as the slow calls they replace: paths named relative to
the root, directories resolved through symlinks, files read in one go."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from llmops.manifests.appcheck import _glob_yaml
from llmops.manifests.loader import MAX_MANIFEST_BYTES, Context


def _tree(tmp_path: Path) -> Path:
    base = tmp_path.resolve()
    (base / "repo/a/b").mkdir(parents=True)
    (base / "out/x").mkdir(parents=True)
    os.symlink(base / "out", base / "repo/a/link")
    os.symlink("../a", base / "repo/a/b/up")
    os.symlink(base / "repo/a/b", base / "repo/lb")
    os.symlink("nowhere", base / "repo/dangling")
    os.symlink("loop", base / "repo/loop")
    return base / "repo"


def test_real_dir_is_realpath(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    ctx = Context(root)
    parts = ["a", "b", "link", "up", "..", ".", "x", "lb", "c", "f.txt", "dangling", "loop", "..."]
    rnd = random.Random(4)
    for _ in range(3000):
        path = os.path.join(str(root), *(rnd.choice(parts) for _ in range(rnd.randint(0, 6))))
        directory = os.path.dirname(path)
        assert ctx._real_dir(directory) == os.path.realpath(directory), directory


def test_inside_follows_symlinks_out(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    ctx = Context(root)
    assert ctx.inside(root / "a" / "b" / "file.yaml")
    assert ctx.inside(root / "lb" / "file.yaml")
    assert not ctx.inside(root / "a" / "link" / "file.yaml")
    assert not ctx.inside(root / "a" / "link")


@pytest.mark.parametrize("prefix", ["", "sub/repo"])
def test_display_is_relative_to_the_root(tmp_path: Path, prefix: str) -> None:
    root = tmp_path.resolve() / "repo"
    ctx = Context(root, prefix)
    for path in [root / "manifests/app/app.yaml", root, tmp_path / "elsewhere.yaml", root.parent / "repo2/x"]:
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            rel = path.as_posix()
        assert ctx.display(path) == (f"{prefix}/{rel}" if prefix else rel)


def test_read_text_words_each_problem_as_before(tmp_path: Path) -> None:
    ctx = Context(tmp_path)
    good = tmp_path / "good.yaml"
    good.write_text("\ufeffa: 1\n")
    assert ctx.read_text(good, MAX_MANIFEST_BYTES, "manifest") == "a: 1\n"
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 101)
    assert ctx.read_text(big, 100, "manifest") is None
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    assert ctx.read_text(folder, MAX_MANIFEST_BYTES, "manifest") is None
    assert ctx.read_text(tmp_path / "missing.yaml", 100, "manifest") is None
    messages = [d.message for d in ctx.diagnostics]
    assert messages == [
        "manifest is 101 bytes, over the limit of 100 bytes; make it smaller",
        "expected a manifest file but found a directory",
        "cannot read manifest: No such file or directory",
    ]
    assert ctx.files == 1


def test_glob_yaml_is_path_glob(tmp_path: Path) -> None:
    names = ["a.yaml", ".h.yml", "b.yml", "c.YAML", "x.y.ml", "z.yamlx", "q.ymlml", "y", ".yml", "é.yaml"]
    for name in names:
        (tmp_path / name).write_text("")
    (tmp_path / "dir.yaml").mkdir()
    assert _glob_yaml(tmp_path) == sorted(tmp_path.glob("*.y*ml"))
    assert _glob_yaml(tmp_path / "absent") == []


def _problem_as_before(ctx: Context, base: Path, rel: str) -> str | None:
    """What referenced_file said before it answered from one lstat."""
    target = base / rel
    if not ctx.inside(target):
        return "outside"
    if not os.path.isfile(target):
        return "not regular" if os.path.exists(target) else "missing"
    return None


def test_referenced_file_answers_as_before(tmp_path: Path) -> None:
    from llmops.manifests.loader import Parsed
    from llmops.manifests.yamldoc import parse

    root = _tree(tmp_path)
    app = root / "a"
    (app / "file.txt").write_text("x")
    (app / "dir").mkdir()
    os.symlink("file.txt", app / "to-file")
    os.symlink("dir", app / "to-dir")
    os.symlink(root.parent / "out", app / "to-out")
    os.symlink("gone", app / "to-gone")
    os.mkfifo(app / "fifo")
    owner: Parsed[Any] = Parsed(None, parse("a: 1\n"), "app.yaml", app / "app.yaml")
    words = {"outside": "resolves outside", "not regular": "is not a regular file", "missing": "does not exist"}
    for rel in ["file.txt", "dir", "to-file", "to-dir", "to-out", "to-out/x", "to-gone", "fifo", "nope", "link/x", "b/up/file.txt"]:
        ctx = Context(root)
        expected = _problem_as_before(ctx, app, rel)
        found = ctx.referenced_file(app, rel, owner, ("x",), "file")
        if expected is None:
            assert found == app / rel and not ctx.diagnostics, rel
        else:
            assert found is None and words[expected] in ctx.diagnostics[0].message, rel
