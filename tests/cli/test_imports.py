"""`llmops --help` and `llmops validate` stay light: no docker, kubernetes or servers imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("docker", "kubernetes", "git", "httpx", "uvicorn", "starlette")

PROBE = """
import json, sys
from llmops.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)), file=sys.stderr)
"""


def _modules(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT
    )
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_help_imports_nothing_heavy() -> None:
    loaded = _modules("--help")
    assert not loaded & set(HEAVY)
    assert "pydantic" not in loaded and "jinja2" not in loaded and "rich" not in loaded


def test_validate_imports_no_io_clients() -> None:
    loaded = _modules("validate", str(ROOT), "-q")
    assert "pydantic" in loaded  # it did validate
    assert not loaded & set(HEAVY)
