"""The build context tar: identical inputs give identical bytes, with fixed metadata."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from llmops.build.context import make_context
from llmops.domain.errors import SourceError


def test_identical_inputs_give_identical_bytes_whatever_the_file_times(tmp_path: Path) -> None:
    wheel = tmp_path / "a-1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel bytes")
    files: dict[str, bytes | Path] = {
        "Dockerfile": b"FROM x\n",
        "wheels/a-1.0-py3-none-any.whl": wheel,
        "release.json": b"{}",
    }
    first = make_context(files)
    os.utime(wheel, (time.time() + 3600, time.time() + 3600))
    wheel.chmod(0o600)
    second = make_context(dict(reversed(list(files.items()))))
    assert first.data == second.data and first.digest == second.digest
    assert make_context({**files, "release.json": b"{ }"}).digest != first.digest


def test_entries_are_sorted_with_fixed_owner_time_and_mode() -> None:
    context = make_context({"b/z.txt": b"z", "a.txt": b"a", "b/c/d.txt": b"d"})
    with tarfile.open(fileobj=io.BytesIO(context.data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["a.txt", "b", "b/c", "b/c/d.txt", "b/z.txt"]
        for member in members:
            assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
            assert member.mode == (0o755 if member.isdir() else 0o644)
        reader = tar.extractfile("b/c/d.txt")
        assert reader is not None and reader.read() == b"d"
    assert context.files == ("a.txt", "b/c/d.txt", "b/z.txt")


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x"])
def test_paths_stay_inside_the_context(name: str) -> None:
    with pytest.raises(ValueError, match="must be relative"):
        make_context({name: b"x"})


def test_an_unreadable_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read"):
        make_context({"x": tmp_path / "missing.whl"})
