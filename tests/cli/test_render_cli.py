"""`llmops render` on a copy of the example repo: the output parses, every object passes
strict Kubernetes schema validation, the release and image come from the right place,
and bad input is one line and exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from llmops.archive import DirArchive
from llmops.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.37"
IMAGE_DIGEST = "sha256:" + "c" * 64


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for part in ("manifests", "environments", "pipelines"):
        shutil.copytree(ROOT / part, root / part)
    prod = root / "environments" / "prod.yaml"
    text = prod.read_text()
    assert "kind: local\n    basePort: 18280" in text
    prod.write_text(
        text.replace(
            "kind: local\n    basePort: 18280", "kind: kubernetes\n    namespace: llm-prod"
        ).replace("  driftPolicy:", "  registry: 127.0.0.1:5000/llm-apps\n  driftPolicy:")
    )
    return root


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli, ["render", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def validated(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for obj in objects:
        assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True) == K8S_VERSION
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in objects}


def pin(repo: Path, app: str) -> str:
    created = CliRunner().invoke(cli, ["release", "create", app, "--path", str(repo), "-o", "json"])
    assert created.exit_code == 0, created.output
    release: str = json.loads(created.stdout)["release"]
    prod = repo / "environments" / "prod.yaml"
    prod.write_text(prod.read_text().replace("releases: {}", f'releases: {{{app}: "{release}"}}'))
    return release


def test_work_tree_release_renders_with_notes(repo: Path) -> None:
    result = run("support-bot", "--env", "prod", "--path", str(repo))
    assert result.exit_code == 0, result.output
    objects = validated(list(yaml.safe_load_all(result.stdout)))
    assert list(objects) == [
        "ConfigMap/support-bot-blue",
        "Deployment/support-bot-blue",
        "Service/support-bot-blue",
        "Service/support-bot",
        "HorizontalPodAutoscaler/support-bot",
        "PodDisruptionBudget/support-bot",
    ]
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"llm-prod"}
    release = objects["Deployment/support-bot-blue"]["metadata"]["annotations"][
        "llmops.dev/release"
    ]
    notes = result.stderr.splitlines()
    assert notes == [
        f"note: not pinned in prod; rendering the work tree's release {release}",
        "note: image not built yet; using the tag reference "
        f"127.0.0.1:5000/llm-apps/support-bot:{release.split(':')[1]}",
    ]
    container = objects["Deployment/support-bot-blue"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"127.0.0.1:5000/llm-apps/support-bot:{release.split(':')[1]}"
    assert objects["ConfigMap/support-bot-blue"]["data"] == {"LLMOPS_ENVIRONMENT": "prod"}


def test_pinned_release_and_built_image_are_used(repo: Path) -> None:
    release = pin(repo, "support-bot")
    image = f"127.0.0.1:5000/llm-apps/support-bot@{IMAGE_DIGEST}"
    DirArchive(repo / ".llmops" / "archive").append(
        "built",
        "support-bot",
        release=release,
        data={
            "image": image,
            "tag": "127.0.0.1:5000/llm-apps/support-bot:x",
            "imageId": "sha256:1",
        },
    )
    # the work tree moves on after the release: the pinned release is what renders
    app = repo / "manifests" / "support-bot" / "app.yaml"
    app.write_text(app.read_text().replace("minAvailable: 1", "minAvailable: 2"))

    result = run("support-bot", "--env", "prod", "--path", str(repo))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    objects = validated(list(yaml.safe_load_all(result.stdout)))
    deployment = objects["Deployment/support-bot-blue"]
    assert deployment["metadata"]["annotations"]["llmops.dev/release"] == release
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert objects["PodDisruptionBudget/support-bot"]["spec"]["minAvailable"] == 1


def test_json_list_and_green(repo: Path) -> None:
    result = run(
        "summarizer", "--env", "prod", "--path", str(repo), "-o", "json", "--colour", "green"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["apiVersion"], document["kind"]) == ("v1", "List")
    objects = validated(document["items"])
    assert list(objects) == [
        "ConfigMap/summarizer-green",
        "Deployment/summarizer-green",
        "Service/summarizer-green",
        "Service/summarizer",
    ]
    assert objects["Service/summarizer"]["spec"]["selector"]["llmops.dev/colour"] == "green"


def test_non_kubernetes_target_renders_with_default_namespace(repo: Path) -> None:
    result = run("summarizer", "--env", "dev", "--path", str(repo), "--release", "summarizer@work")
    assert result.exit_code == 0, result.output
    objects = validated(list(yaml.safe_load_all(result.stdout)))
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"default"}
    assert (
        "note: dev deploys to local, not Kubernetes; rendering anyway with namespace default"
        in (result.stderr.splitlines())
    )
    assert "not pinned" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--env", "prod"], "error: no app named 'nope' (apps: summarizer, support-bot)"),
        (
            ["support-bot", "--env", "qa"],
            "error: no environment named 'qa' (environments: dev, prod, test)",
        ),
        (
            ["support-bot", "--env", "prod", "--release", "summarizer@work"],
            "error: release summarizer@sha256:",
        ),
        (
            ["support-bot", "--env", "prod", "--release", "support-bot@sha256:" + "0" * 64],
            "error: release support-bot@sha256:" + "0" * 64 + " is not in the archive",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(repo: Path, args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "render", *args, "--path", str(repo)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr


def test_pin_missing_from_the_archive_is_exit_2(repo: Path) -> None:
    release = pin(repo, "support-bot")
    shutil.rmtree(repo / ".llmops")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmops",
            "render",
            "support-bot",
            "--env",
            "prod",
            "--path",
            str(repo),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: release {release} is not in the archive; `llmops release list` shows what is"
    ]


def test_built_but_unpushed_image_is_named_as_such(repo: Path) -> None:
    release = pin(repo, "summarizer")
    tag = f"127.0.0.1:5000/llm-apps/summarizer:{release.split(':')[1]}"
    DirArchive(repo / ".llmops" / "archive").append(
        "built", "summarizer", release=release, data={"image": tag, "tag": tag}
    )
    result = run("summarizer", "--env", "prod", "--path", str(repo))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"note: image built but not pushed (no registry digest); using the tag {tag}"
    ]
    objects = validated(list(yaml.safe_load_all(result.stdout)))
    assert (
        objects["Deployment/summarizer-blue"]["spec"]["template"]["spec"]["containers"][0]["image"]
        == tag
    )


def test_strings_stay_strings_for_kubernetes_yaml(repo: Path) -> None:
    """Kubernetes reads YAML 1.1: ``1e5`` and ``y`` unquoted would be a number and a bool."""
    prod = repo / "environments" / "prod.yaml"
    prod.write_text(
        prod.read_text().replace(
            "      replicas: 3\n",
            '      replicas: 3\n      env: {RATIO: "1e5", FLAG: "y", NAME: plain}\n',
        )
    )
    result = run("support-bot", "--env", "prod", "--path", str(repo))
    assert result.exit_code == 0, result.output
    assert "\n  RATIO: '1e5'\n" in result.stdout and "\n  FLAG: 'y'\n" in result.stdout
    assert "\n  NAME: plain\n" in result.stdout
    objects = validated(list(yaml.safe_load_all(result.stdout)))
    assert objects["ConfigMap/support-bot-blue"]["data"] == {
        "FLAG": "y",
        "LLMOPS_ENVIRONMENT": "prod",
        "NAME": "plain",
        "RATIO": "1e5",
    }
