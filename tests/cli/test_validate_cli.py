"""`llmops validate` output formats and exit codes on the example repo and a broken copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmops.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def broken(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for part in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / part, repo / part)
    app = repo / "manifests" / "support-bot" / "app.yaml"
    app.write_text(app.read_text().replace("temperature: 0.2", "temperature: 3.5"))
    return repo


def test_example_is_valid_text() -> None:
    result = CliRunner().invoke(cli, ["validate", str(ROOT)])
    assert result.exit_code == 0, result.output
    assert "✓ valid: 2 apps, 3 environments, 1 pipeline" in result.output


def test_example_is_valid_json() -> None:
    result = CliRunner().invoke(cli, ["validate", str(ROOT), "-o", "json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["valid"] is True and data["errors"] == 0
    assert data["summary"]["apps"] == 2 and data["summary"]["cases"] >= 60


def test_invalid_text_names_file_line_field(broken: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", str(broken)])
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if "temperature" in x)
    assert line.endswith("app.yaml:17:20 spec.model.params.temperature: must be ≤ 2 (got 3.5)")


def test_invalid_github_annotations(broken: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", str(broken), "-o", "github"])
    assert result.exit_code == 1
    annotation = next(x for x in result.output.splitlines() if x.startswith("::error "))
    assert "manifests/support-bot/app.yaml,line=17,col=20,title=llmops validate::" in annotation
    assert annotation.endswith("spec.model.params.temperature: must be ≤ 2 (got 3.5)")


def test_invalid_json(broken: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", str(broken), "-o", "json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["valid"] is False
    assert data["diagnostics"][0]["line"] == 17 and data["diagnostics"][0]["column"] == 20


def test_strict_fails_on_warnings(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for part in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / part, repo / part)
    (repo / "manifests" / "summarizer" / "evals" / "extra.yaml").write_text(
        (repo / "manifests" / "summarizer" / "evals" / "smoke.yaml").read_text()
    )
    relaxed = CliRunner().invoke(cli, ["validate", str(repo)])
    assert relaxed.exit_code == 0 and "warning: not listed in spec.evals" in relaxed.output
    strict = CliRunner().invoke(cli, ["validate", str(repo), "--strict"])
    assert strict.exit_code == 1


def test_missing_path_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmops.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["validate", str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    assert "no such directory" in capsys.readouterr().err


def test_other_commands_print_the_diagnostics_of_an_invalid_repo(
    broken: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmops.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["release", "create", "support-bot", "--path", str(broken)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "spec.model.params.temperature: must be ≤ 2 (got 3.5)" in err
    assert "error: 1 error in the manifests" in err
    assert "Traceback" not in err
