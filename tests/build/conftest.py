"""Fixtures for the image tests: a copy of the example repository with a docker
environment whose registry is private to this session, a snapshot of the llmops source
(so edits to the tree during a run do not change the wheel between two builds), and
cleanup of every image the session tagged."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from build_kit import APP, ENV, ROOT, make_repo

from llmops import api
from llmops.ops.build import BuildResult, build_release
from llmops.ops.release import archive_for


@pytest.fixture(scope="session")
def namespace() -> str:
    """A registry path private to this test session."""
    return f"llmops-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def llmops_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The llmops source tree as it was when the session started."""
    dest = tmp_path_factory.mktemp("llmops-source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "llmops", dest / "llmops", ignore=ignore)
    return dest


@pytest.fixture
def image_repo(tmp_path: Path, registry_prefix: str) -> Path:
    """A fresh copy of the example repository for one test."""
    return make_repo(tmp_path / "repo", registry_prefix)


@pytest.fixture(scope="session")
def registry_prefix(namespace: str) -> str:
    """``127.0.0.1:5000/<namespace>``; only pushes need the registry to run."""
    from support.docker import REGISTRY

    return f"{REGISTRY}/{namespace}"


@pytest.fixture(scope="session")
def cleanup_images(namespace: str) -> Iterator[None]:
    """Remove every image tagged under this session's namespace at the end."""
    yield
    import docker

    try:
        client = docker.from_env()
        for image in client.images.list():
            for tag in image.tags:
                if f"/{namespace}/" in tag:
                    # keep the untagged parents: they are the layer cache of later builds
                    client.images.remove(tag, force=True, noprune=True)
        client.close()
    except docker.errors.DockerException:
        pass


Builder = Callable[..., BuildResult]


@pytest.fixture(scope="session")
def build(base_image: str, llmops_source: Path, cleanup_images: None) -> Builder:
    """``build(repo, **options)``: ``build_release`` of the summarizer in env ``ci`` on the
    local base image, with the session's llmops source snapshot."""
    from support.docker import BASE_PYTHON

    def run(repo: Path, **options: Any) -> BuildResult:
        loaded = api.load(repo)
        options.setdefault("env", ENV)
        options.setdefault("base_image", base_image)
        options.setdefault("python", BASE_PYTHON)
        return build_release(loaded, APP, archive_for(loaded), source=llmops_source, **options)

    return run
