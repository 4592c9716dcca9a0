"""Docker fixtures: the engine, a locally made Python base image, a registry, and the stub
model where containers can reach it. Loaded as the pytest plugin ``support.docker``.

- ``docker_engine`` (session): a connected ``DockerEngine``. Without an engine the test
  is skipped, or fails when ``CI`` is set (``.ci/run`` starts ``dockerd``).
- ``base_image`` (session): ``llmops-test/python:3.11-bookworm``, made without any pull by
  ``scripts/make-base-image.sh`` (Debian's python3 from apt, ``docker import``), reused
  while its ``llmops.dev/base-recipe`` label matches the script's hash.
- ``base_image_git`` (session): ``llmops-test/python-git:3.11-bookworm``, the same with
  Debian's ``git`` and ``ca-certificates`` added (``EXTRA_PACKAGES``), for the controller
  image; reused the same way (recipe label plus ``llmops.dev/base-extra-packages``).
- ``registry`` (session): ``127.0.0.1:5000``. When nothing answers there, Debian's
  ``docker-registry`` is started with filesystem storage in a temporary directory and
  stopped at the end (only if this session started it). The engine allows plain HTTP
  to 127.0.0.0/8.
- ``container_stub`` (session): ``llmops stub-model`` run on the host, listening on the
  bridge gateway (e.g. 172.17.0.1), so a container reaches it at ``container_stub.url``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from llmops.adapters.docker_engine import DockerEngine
from llmops.domain.errors import ExternalError

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "llmops-test/python:3.11-bookworm"
BASE_PYTHON = "3.11"
BASE_SCRIPT = ROOT / "scripts" / "make-base-image.sh"
BASE_RECIPE_LABEL = "llmops.dev/base-recipe"
REGISTRY = "127.0.0.1:5000"
BASE_IMAGE_GIT = "llmops-test/python-git:3.11-bookworm"
BASE_EXTRA_LABEL = "llmops.dev/base-extra-packages"
#: what the controller's base adds: git to clone, CA certificates for https:// remotes
BASE_EXTRA_PACKAGES = "git ca-certificates"


def need(reason: str) -> NoReturn:
    """Skip locally; fail under CI, where the service must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: .ci/run should have provided it)")
    pytest.skip(reason)


def recipe_version() -> str:
    """The content version of the base image: the hash the script labels it with."""
    return hashlib.sha256(BASE_SCRIPT.read_bytes()).hexdigest()[:12]


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    try:
        engine = DockerEngine.connect()
    except ExternalError as exc:
        need(exc.message)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="session")
def base_image(docker_engine: DockerEngine) -> str:
    found = docker_engine.image(BASE_IMAGE)
    if found is not None and found.labels.get(BASE_RECIPE_LABEL) == recipe_version():
        return BASE_IMAGE
    missing = [tool for tool in ("apt-get", "dpkg-deb", "ldconfig", "docker") if not shutil.which(tool)]
    if missing:
        need(f"cannot make {BASE_IMAGE}: {', '.join(missing)} not found")
    proc = subprocess.run(
        ["bash", str(BASE_SCRIPT), BASE_IMAGE],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"{BASE_SCRIPT.name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return BASE_IMAGE


@pytest.fixture(scope="session")
def base_image_git(docker_engine: DockerEngine) -> str:
    found = docker_engine.image(BASE_IMAGE_GIT)
    if (
        found is not None
        and found.labels.get(BASE_RECIPE_LABEL) == recipe_version()
        and found.labels.get(BASE_EXTRA_LABEL) == BASE_EXTRA_PACKAGES
    ):
        return BASE_IMAGE_GIT
    missing = [tool for tool in ("apt-get", "dpkg-deb", "ldconfig", "docker") if not shutil.which(tool)]
    if missing:
        need(f"cannot make {BASE_IMAGE_GIT}: {', '.join(missing)} not found")
    proc = subprocess.run(
        ["bash", str(BASE_SCRIPT), BASE_IMAGE_GIT],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "EXTRA_PACKAGES": BASE_EXTRA_PACKAGES},
    )
    if proc.returncode != 0:
        pytest.fail(f"{BASE_SCRIPT.name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return BASE_IMAGE_GIT


def _registry_answers(address: str) -> bool:
    try:
        return httpx.get(f"http://{address}/v2/", timeout=2).status_code in (200, 401)
    except httpx.HTTPError:
        return False


REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: {address}
"""


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _registry_answers(REGISTRY):
        yield REGISTRY
        return
    binary = shutil.which("docker-registry")
    if binary is None:
        need(f"no registry answers on {REGISTRY} and docker-registry is not installed")
    work = tmp_path_factory.mktemp("registry")
    config = work / "config.yml"
    config.write_text(REGISTRY_CONFIG.format(root=work / "storage", address=REGISTRY))
    log = (work / "registry.log").open("w")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not _registry_answers(REGISTRY):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"docker-registry did not answer on {REGISTRY}:\n"
                    + (work / "registry.log").read_text()[-2000:]
                )
            time.sleep(0.1)
        yield REGISTRY
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass(frozen=True)
class ContainerStub:
    """The stub model on the host, as a container sees it."""

    #: the OpenAI base URL, e.g. http://172.17.0.1:PORT/v1 (the host reaches it too)
    url: str

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")


@pytest.fixture(scope="session")
def container_stub(docker_engine: DockerEngine) -> Iterator[ContainerStub]:
    gateway = docker_engine.bridge_gateway()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmops", "stub-model", "--host", gateway, "--port", "0",
         "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            match = re.search(r"base URL:\s+(\S+)", line)
            url = match.group(1) if match else None
        if url is None:
            pytest.fail(f"llmops stub-model did not start on {gateway}")
        root = url.removesuffix("/v1")
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{root}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llmops stub-model on {url} does not answer")
            time.sleep(0.1)
        yield ContainerStub(url=url)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
