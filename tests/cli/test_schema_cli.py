"""`llmops schema`: printed schemas match the committed files and the example modelines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmops.cli.main import cli
from llmops.domain.models import KINDS
from llmops.manifests.schemas import dumps, json_schema, schema_file_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", list(KINDS))
def test_committed_schema_is_current(kind: str) -> None:
    committed = (ROOT / "schemas" / schema_file_name(kind)).read_text()
    assert committed == dumps(json_schema(kind)), (
        f"schemas/{schema_file_name(kind)} is stale: run `llmops schema --write schemas`"
    )


def test_schema_cli_prints_one_kind_case_insensitively() -> None:
    result = CliRunner().invoke(cli, ["schema", "llmapp"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "LLMApp"
    assert schema["additionalProperties"] is False
    assert "apiVersion" in schema["properties"]


def test_schema_cli_unknown_kind_is_usage_error() -> None:
    from llmops.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["schema", "Deployment"])
    assert exit_info.value.code == 2


def test_example_manifests_carry_the_modeline() -> None:
    files = [
        *ROOT.glob("manifests/*/app.yaml"),
        *ROOT.glob("manifests/*/evals/*.yaml"),
        *ROOT.glob("environments/*.yaml"),
        *ROOT.glob("pipelines/*.yaml"),
    ]
    assert len(files) >= 10
    for file in files:
        first = file.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), file
        target = (file.parent / first.split("$schema=", 1)[1]).resolve()
        assert target.is_file(), f"{file}: modeline points at missing {target}"
