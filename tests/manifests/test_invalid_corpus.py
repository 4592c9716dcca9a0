"""Golden tests over a corpus of broken repositories.

Each directory under ``tests/fixtures/invalid/`` is a small, complete repository (one
app with system and user templates and an eval suite, a dev environment, a pipeline)
with exactly one thing broken, and an ``expected.txt`` holding the exact rendered
diagnostics of ``validate_repo``, one per line in report order.

A few cases cannot be committed as files (a symlink out of the repository, a file
over the size limit); ``RUNTIME_SETUP`` builds those pieces in a temporary copy.

Regenerate the goldens with ``LLMOPS_UPDATE_GOLDENS=1 pytest tests/manifests`` and
review every changed line by eye before committing it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from llmops.domain.diagnostics import Diagnostic
from llmops.manifests.loader import MAX_MANIFEST_BYTES
from llmops.manifests.repository import validate_repo

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "invalid"
EXAMPLE_REPO = HERE.parents[1]
UPDATE = os.environ.get("LLMOPS_UPDATE_GOLDENS") == "1"

CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())

#: Values that must never be echoed in any output of their case.
SECRETS: dict[str, str] = {
    "literal-api-key": "sk-proj-FAKE0notreal0FAKE0notreal0FAKE",
    "credential-in-description": "AKIAIOSFODNN7EXAMPLE",
    "url-with-credentials": "hunter2",
    "secret-env-var-name": "changeme",
}

#: Cases whose errors concern a whole file or directory, so they carry no line.
WHOLE_FILE_CASES = frozenset({"app-dir-without-app-yaml", "empty-repo", "huge-file"})


def _symlink_outside(root: Path) -> None:
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "system.j2").write_text("You are {{ app }}.\n")
    (root / "manifests/demo/prompts/system.j2").symlink_to(outside / "system.j2")


def _huge_file(root: Path) -> None:
    app = root / "manifests/demo/app.yaml"
    text = app.read_text()
    filler = "# padding\n" * ((MAX_MANIFEST_BYTES + 100_000 - len(text)) // 10)
    app.write_text(text + filler)
    assert app.stat().st_size > MAX_MANIFEST_BYTES


RUNTIME_SETUP: dict[str, Callable[[Path], None]] = {
    "symlink-outside-repo": _symlink_outside,
    "huge-file": _huge_file,
}


def materialise(case: str, tmp_path: Path) -> Path:
    """A private copy of the case's repository, with its run-time pieces added."""
    root = tmp_path / "repo"
    shutil.copytree(FIXTURES / case, root, ignore=shutil.ignore_patterns("expected.txt"))
    setup = RUNTIME_SETUP.get(case)
    if setup is not None:
        setup(root)
    return root


def rendered(diagnostics: tuple[Diagnostic, ...]) -> str:
    return "".join(d.render() + "\n" for d in diagnostics)


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 35
    assert set(RUNTIME_SETUP) <= set(CASES)
    assert set(SECRETS) <= set(CASES)
    assert set(CASES) >= WHOLE_FILE_CASES


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, tmp_path: Path) -> None:
    root = materialise(case, tmp_path)
    report = validate_repo(root)
    actual = rendered(report.diagnostics)
    golden = FIXTURES / case / "expected.txt"
    if UPDATE:
        golden.write_text(actual, encoding="utf-8")
    assert actual == golden.read_text(encoding="utf-8")

    assert report.ok is False
    assert report.repo is None
    assert report.errors
    assert report.diagnostics == tuple(
        sorted(report.diagnostics, key=lambda d: (d.file, d.line, d.column, d.path, d.message))
    )
    for diagnostic in report.diagnostics:
        assert diagnostic.file, diagnostic
        assert diagnostic.file == "." or os.path.lexists(root / diagnostic.file), diagnostic
        assert "Traceback" not in diagnostic.message
        assert (diagnostic.line > 0) == (diagnostic.column > 0), diagnostic
    for error in report.errors:
        if case in WHOLE_FILE_CASES:
            continue
        assert error.line > 0, f"{error.render()} has no line"
    secret = SECRETS.get(case)
    if secret is not None:
        assert secret not in actual
        assert secret not in repr(report)


def test_goldens_do_not_echo_secrets() -> None:
    for case, secret in SECRETS.items():
        assert secret not in (FIXTURES / case / "expected.txt").read_text(encoding="utf-8")


def test_example_repo_is_valid() -> None:
    report = validate_repo(EXAMPLE_REPO)
    assert report.errors == (), rendered(report.diagnostics)
    assert report.repo is not None


@pytest.mark.parametrize("case", CASES)
def test_cli_exit_code(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every broken repository makes `llmops validate` exit 1 without a traceback."""
    from llmops.cli.main import main

    root = materialise(case, tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(root)])
    out, err = capsys.readouterr()
    assert exited.value.code == 1, out + err
    assert "Traceback" not in out + err
    assert "invalid" in out
    secret = SECRETS.get(case)
    if secret is not None:
        assert secret not in out + err


def _run(path: Path | str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "NO_COLOR": "1"}
    env.pop("LLMOPS_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "llmops", "validate", str(path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_cli_exit_0_for_the_example_repo(tmp_path: Path) -> None:
    result = _run(EXAMPLE_REPO, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_cli_exit_1_for_an_invalid_repo(tmp_path: Path) -> None:
    result = _run(FIXTURES / "temperature-out-of-range", tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "manifests/demo/app.yaml:12:20 spec.model.params.temperature: must be ≤ 2 (got 3.5)" in (
        result.stdout
    )
    assert "invalid: 1 error" in result.stdout


def test_cli_exit_2_for_a_missing_path(tmp_path: Path) -> None:
    result = _run(tmp_path / "no-such-repo", tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no such directory" in result.stderr
