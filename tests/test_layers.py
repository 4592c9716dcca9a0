"""The layering contract in .importlinter holds: the domain does no I/O, and only
llmops.adapters imports git, docker, kubernetes or HTTP clients."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IO_CLIENTS = {"git", "docker", "kubernetes", "httpx", "requests", "urllib3", "aiohttp"}


def test_import_linter_contracts() -> None:
    assert shutil.which("lint-imports"), "import-linter is a dev dependency: pip install -e '.[dev]'"
    proc = subprocess.run(["lint-imports"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_adapters_import_io_clients() -> None:
    """The same rule as the contract, checked by reading every module (lazy imports too)."""
    offenders = []
    for path in sorted((ROOT / "llmops").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("llmops/adapters/"):
            continue
        bad = _imports(path) & IO_CLIENTS
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert not offenders, offenders


def test_domain_imports_no_io_library() -> None:
    forbidden = IO_CLIENTS | {"yaml", "jinja2", "click", "rich", "socket", "subprocess", "sqlite3"}
    for path in sorted((ROOT / "llmops" / "domain").rglob("*.py")):
        bad = _imports(path) & forbidden
        assert not bad, f"{path}: {sorted(bad)}"
