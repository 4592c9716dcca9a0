"""Every GitHub Actions workflow we ship (ours and the scaffold's) passes actionlint."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted(
    [*ROOT.glob(".github/workflows/*.yml"), *ROOT.glob("llmops/scaffold/files/github/workflows/*.yml")]
)


def test_there_are_workflows() -> None:
    assert len(WORKFLOWS) >= 2


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_actionlint(workflow: Path) -> None:
    binary = shutil.which("actionlint")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("actionlint is not installed; `pip install -e '.[dev]'` provides it")
        pytest.skip("actionlint not installed")
    proc = subprocess.run([binary, "-no-color", str(workflow)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
