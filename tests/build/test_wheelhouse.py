"""The wheels an image installs: requirements from llmops's metadata, manylinux tags for the
engine's architecture, and caches keyed by content that a failed download never fills."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

import llmops
from llmops.build.wheelhouse import (
    cache_root,
    ensure_llmops_wheel,
    ensure_wheelhouse,
    package_files,
    package_key,
    platform_tags,
    runtime_requirements,
    source_tree,
    wheelhouse_key,
)
from llmops.domain.errors import ExternalError, UsageError

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ("click>=8.1", "pydantic>=2.6")


def test_requirements_leave_out_extras_and_are_sorted() -> None:
    requires = [
        "pydantic>=2.6",
        "click>=8.1",
        'pytest>=8; extra == "dev"',
        "uvicorn[standard]>=0.29",
        'tomli; python_version < "3.11"',
        "mypy; extra=='dev'",
    ]
    assert runtime_requirements(requires) == (
        "click>=8.1",
        "pydantic>=2.6",
        'tomli; python_version < "3.11"',
        "uvicorn[standard]>=0.29",
    )


def test_platform_tags_cover_every_manylinux_up_to_the_glibc() -> None:
    tags = platform_tags("x86_64")
    assert tags == platform_tags("amd64")
    assert tags[0] == "manylinux_2_36_x86_64" and tags[-1] == "manylinux2014_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux_2_16_x86_64" not in tags
    assert platform_tags("aarch64", (2, 28))[0] == "manylinux_2_28_aarch64"
    assert platform_tags("arm64")[-1] == "manylinux2014_aarch64"
    with pytest.raises(UsageError, match="s390x"):
        platform_tags("s390x")


def test_the_wheelhouse_key_changes_with_every_input() -> None:
    key = wheelhouse_key(REQUIREMENTS, "3.12", platform_tags("x86_64"))
    assert key == wheelhouse_key(REQUIREMENTS, "3.12", platform_tags("x86_64"))
    assert key != wheelhouse_key(REQUIREMENTS, "3.11", platform_tags("x86_64"))
    assert key != wheelhouse_key(REQUIREMENTS, "3.12", platform_tags("aarch64"))
    assert key != wheelhouse_key((*REQUIREMENTS, "rich>=13"), "3.12", platform_tags("x86_64"))


def test_cache_root_follows_the_environment(tmp_path: Path) -> None:
    assert cache_root({"LLMOPS_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "llmops"
    assert cache_root({}) == Path.home() / ".cache" / "llmops"


class FakePip:
    """Records the pip command lines; writes one wheel into --dest, or fails."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        if self.fail:
            return subprocess.CompletedProcess(
                list(args), 1, "", "ERROR: No matching distribution found for pydantic>=2.6\n"
            )
        dest = Path(args[args.index("--dest") + 1])
        (dest / "pydantic-2.9.0-py3-none-any.whl").write_bytes(b"wheel")
        return subprocess.CompletedProcess(list(args), 0, "", "")


def test_the_wheelhouse_is_downloaded_once_for_the_target(tmp_path: Path) -> None:
    pip = FakePip()
    platforms = platform_tags("x86_64")
    first = ensure_wheelhouse(REQUIREMENTS, "3.12", platforms, tmp_path, run=pip)
    assert first.prepared and first.path == tmp_path / "wheelhouse" / first.key
    args = pip.calls[0]
    assert "--only-binary=:all:" in args and args[args.index("--python-version") + 1] == "3.12"
    assert args[args.index("--implementation") + 1] == "cp"
    assert [a.removeprefix("--platform=") for a in args if a.startswith("--platform=")] == list(platforms)
    assert args[-2:] == list(REQUIREMENTS)
    assert [p.name for p in first.files] == ["pydantic-2.9.0-py3-none-any.whl", "requirements.txt"]
    assert (first.path / "requirements.txt").read_text() == "click>=8.1\npydantic>=2.6\n"
    again = ensure_wheelhouse(REQUIREMENTS, "3.12", platforms, tmp_path, run=pip)
    assert not again.prepared and again.path == first.path and len(pip.calls) == 1


def test_a_failed_download_names_pip_s_error_and_caches_nothing(tmp_path: Path) -> None:
    with pytest.raises(ExternalError) as info:
        ensure_wheelhouse(REQUIREMENTS, "3.12", platform_tags("x86_64"), tmp_path, run=FakePip(fail=True))
    assert "Python 3.12" in info.value.message
    assert "No matching distribution found for pydantic>=2.6" in info.value.message
    assert list((tmp_path / "wheelhouse").iterdir()) == []


def test_the_source_tree_is_the_checkout_llmops_runs_from(tmp_path: Path) -> None:
    assert source_tree(llmops.__file__) == ROOT
    fake = tmp_path / "site-packages" / "llmops" / "__init__.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("")
    with pytest.raises(UsageError, match="pip install -e"):
        source_tree(str(fake))


def test_the_package_key_follows_the_package_files_only(tmp_path: Path) -> None:
    (tmp_path / "llmops" / "sub").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "llmops"\n')
    (tmp_path / "README.md").write_text("readme\n")
    (tmp_path / "llmops" / "__init__.py").write_text("")
    (tmp_path / "llmops" / "sub" / "x.py").write_text("x = 1\n")
    files = package_files(tmp_path)
    assert [f.as_posix() for f in files] == [
        "README.md", "llmops/__init__.py", "llmops/sub/x.py", "pyproject.toml",
    ]  # fmt: skip
    key = package_key(tmp_path, files)
    (tmp_path / "llmops" / "__pycache__").mkdir()
    (tmp_path / "llmops" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("")
    assert package_key(tmp_path, package_files(tmp_path)) == key
    (tmp_path / "llmops" / "sub" / "x.py").write_text("x = 2\n")
    assert package_key(tmp_path, package_files(tmp_path)) != key


@pytest.mark.slow
def test_the_llmops_wheel_is_built_once_per_content(tmp_path: Path, llmops_source: Path) -> None:
    wheel = ensure_llmops_wheel(llmops_source, tmp_path)
    assert wheel.built and wheel.path.name.startswith("llmops-") and wheel.path.suffix == ".whl"
    requirements = wheel.requirements()
    assert any(r.startswith("pydantic") for r in requirements)
    assert not any(r.startswith(("pytest", "mypy")) for r in requirements)
    again = ensure_llmops_wheel(llmops_source, tmp_path)
    assert not again.built and again.path == wheel.path
    assert list((tmp_path / "llmops-wheel").iterdir()) == [wheel.path.parent]
