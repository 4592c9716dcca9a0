"""`llmops validate` imports only what the repository needs, and leaves the process as
it found it when run in-process."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from llmops.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]

#: Never on the validate path: I/O clients and servers.
NEVER = {"httpx", "aiohttp", "requests", "urllib3", "starlette", "uvicorn", "git", "docker", "kubernetes"}
#: Not needed for the example: its JSON Schema and templates are read by the lean checks,
#: the summary is not drawn (-q), and two apps are checked in this process.
NOT_FOR_THE_EXAMPLE = {"jsonschema", "jinja2", "rich", "multiprocessing"}

PROBE = """
import json, sys
from llmops.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules(*args: str) -> set[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, cwd=ROOT, env=env
    )
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_validate_example_imports_only_what_it_needs() -> None:
    loaded = _modules("validate", "-q", str(ROOT))
    tops = {name.split(".")[0] for name in loaded}
    assert "pydantic" in tops and "yaml" in tops  # it did validate
    assert not tops & NEVER
    assert not tops & NOT_FOR_THE_EXAMPLE
    assert "importlib.metadata" not in loaded  # pydantic's plugin scan is skipped


def test_in_process_run_restores_gc_env_and_modules() -> None:
    loader = "pydantic.plugin._loader"
    before = sys.modules.get(loader)
    env_before = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    result = CliRunner().invoke(cli, ["validate", "-q", str(ROOT)])
    assert result.exit_code == 0, result.output
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen  # only the llmops process itself freezes
    assert os.environ.get("PYDANTIC_DISABLE_PLUGINS") == env_before
    assert sys.modules.get(loader) is before
