"""SIGKILL a writer mid-release and mid-append: the archive always verifies and converges."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from crash_archive import run  # noqa: E402


def test_sigkill_never_corrupts_the_archive() -> None:
    result = run(kills=5, seed=7, max_delay_ms=60)
    assert result["failures"] == []
    assert result["final_ok"] is True
    # every writer finished one whole iteration (a release and an entry) before its kill
    assert isinstance(result["final_entries"], int) and result["final_entries"] >= 2 * 5
