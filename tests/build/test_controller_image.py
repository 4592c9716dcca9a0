"""`llmops build --controller`: the controller image, built with the app images' machinery
(same wheel layers) on a base image with git, run through the docker SDK read-only as
user 10001; a base image without git fails at the git check, naming the fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import docker
import pytest
import yaml
from build_kit import ROOT
from click.testing import CliRunner
from support.docker import BASE_PYTHON

import llmops
from llmops.adapters.docker_engine import DockerEngine
from llmops.build.dockerfile import (
    ControllerDockerfileSpec,
    DockerfileSpec,
    render_controller_dockerfile,
    render_dockerfile,
)
from llmops.cli.main import cli
from llmops.domain.errors import UsageError
from llmops.ops.build import CONTROLLER_IMAGE, ControllerResult, build_controller

TAG_RE = re.compile(rf"^{re.escape(llmops.__version__)}-[0-9a-f]{{12}}$")


#: how many certificates the system bundle holds (git and OpenSSL read this file)
CA_BUNDLE_CHECK = (
    "import ssl; c = ssl.create_default_context(cafile='/etc/ssl/certs/ca-certificates.crt'); "
    "print(len(c.get_ca_certs()))"
)


def _run(image: str, entrypoint: list[str] | None, command: list[str] | None = None) -> str:
    """Run ``image`` as the manifests do (user 10001, read-only root, /tmp writable);
    ``entrypoint`` None keeps the image's."""
    client = docker.from_env()
    try:
        out: bytes = client.containers.run(
            image,
            command=command,
            entrypoint=entrypoint,
            user="10001:10001",
            read_only=True,
            tmpfs={"/tmp": "rw,size=16m"},
            network_disabled=True,
            remove=True,
            stdout=True,
            stderr=True,
        )
    finally:
        client.close()
    return out.decode()


def test_the_wheel_layers_are_those_of_app_images_and_git_is_checked() -> None:
    app = render_dockerfile(DockerfileSpec("summarizer", 8080, "b:1", "3.11", "p"))
    controller = render_controller_dockerfile(ControllerDockerfileSpec("b:1", "3.11", "p"))
    lines = app.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("# 3. "))
    shared = lines[1:end]
    assert any("pip install --no-index --no-deps /dist/*.whl" in line for line in shared)
    assert controller.splitlines()[1 : len(shared) + 1] == shared
    assert "RUN command -v git" in controller and "git ca-certificates" in controller
    assert 'ENTRYPOINT ["llmops", "controller"]' in controller
    assert "USER 10001:10001" in controller and "release.json" not in controller


def test_dry_run_prints_the_dockerfile_and_the_tag_and_push_needs_a_registry() -> None:
    runner = CliRunner()
    args = ["build", "--controller", "--dry-run", "--base-image", "b:3.11", "--python", "3.11"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "RUN command -v git" in result.output
    tag = re.search(rf"^tag +llmops/{CONTROLLER_IMAGE}:(\S+)$", result.output, re.M)
    assert tag is not None and TAG_RE.match(tag.group(1)), result.output

    pushed = runner.invoke(cli, [*args, "--push"])
    assert isinstance(pushed.exception, UsageError) and pushed.exception.exit_code == 2
    assert "names no registry" in str(pushed.exception)
    both = runner.invoke(cli, ["build", "summarizer", "--controller", "--dry-run"])
    assert both.exit_code == 2 and "--controller builds no app" in both.output


@pytest.mark.docker
@pytest.mark.slow
def test_the_controller_image_has_llmops_and_git_and_prints_manifests(
    docker_engine: DockerEngine,
    base_image_git: str,
    llmops_source: Path,
    registry_prefix: str,
    cleanup_images: None,
) -> None:
    repository = f"{registry_prefix}/{CONTROLLER_IMAGE}"
    def build() -> ControllerResult:
        return build_controller(
            tag=repository, base_image=base_image_git, python=BASE_PYTHON, source=llmops_source
        )

    result = build()
    plan = result.plan
    assert result.built and plan.repository == repository and TAG_RE.match(plan.tag)
    image = plan.reference
    local = docker_engine.image(image)
    assert local is not None and local.id == result.image_id

    client = docker.from_env()
    try:
        config = client.images.get(image).attrs["Config"]
    finally:
        client.close()
    assert config["Entrypoint"] == ["llmops", "controller"]
    assert config["User"] == "10001:10001"

    assert f"version {llmops.__version__}" in _run(image, ["llmops", "--version"])
    assert _run(image, ["git", "--version"]).startswith("git version ")
    # https:// clones verify the server against the bundle git reads by default
    bundle = _run(image, ["python3", "-c", CA_BUNDLE_CHECK])
    assert int(bundle) > 50, bundle
    # the default entrypoint is `llmops controller`
    assert "--lease-name" in _run(image, None, ["--help"])
    text = _run(
        image,
        ["llmops", "controller", "manifests"],
        ["--repo", "https://git.example/llm-apps.git", "--target-namespace", "x", "--image", image],
    )
    documents = [d for d in yaml.safe_load_all(text) if d]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image
    assert any(d["kind"] == "Namespace" and d["metadata"]["name"] == "x" for d in documents)

    again = build()
    assert not again.built and again.plan.tag == plan.tag
    assert again.plan.build_reason == f"the engine has {image}"


@pytest.mark.docker
@pytest.mark.slow
def test_a_base_image_without_git_fails_at_the_git_check_naming_the_fix(
    docker_engine: DockerEngine, base_image: str, registry_prefix: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "build", "--controller", "-q",
         "--base-image", base_image, "--python", BASE_PYTHON,
         "--tag", f"{registry_prefix}/{CONTROLLER_IMAGE}-nogit"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the image build failed at step" in proc.stderr
    assert "command -v git" in proc.stderr
    assert f"the base image {base_image} has no git" in proc.stderr
    assert "EXTRA_PACKAGES='git ca-certificates' scripts/make-base-image.sh" in proc.stderr
    assert "Traceback" not in proc.stderr
