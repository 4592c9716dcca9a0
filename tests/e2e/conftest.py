"""The e2e suite runs against a real cluster (kind in GitHub Actions), never by accident.

Every test here is marked ``e2e`` and runs only when all of these hold, else it is skipped:

- it was selected on purpose: ``pytest -m e2e tests/e2e`` (or ``LLMOPS_E2E=1``), because it
  creates and deletes namespaces on whatever cluster ``KUBECONFIG`` names;
- ``KUBECONFIG`` is set;
- the cluster answers (when ``CI`` is set, an unreachable cluster fails instead of skipping).

Each session works in a fresh namespace ``llmops-e2e-<random>``, deleted at the end.
``LLMOPS_E2E_IMAGE`` names an image whose ``llmops serve …`` answers its probes (the
workflow builds ``tests/e2e/Dockerfile`` and loads it into kind); the tests that need a
rollout to succeed are skipped without it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.adapters.kube import KubeClient
from llmops.domain.errors import ExternalError

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster_kubeconfig(request: pytest.FixtureRequest) -> str:
    selected = (
        "e2e" in (request.config.getoption("markexpr") or "") or os.environ.get("LLMOPS_E2E") == "1"
    )
    if not selected:
        pytest.skip("e2e tests write to a real cluster: run them with `pytest -m e2e tests/e2e`")
    path = os.environ.get("KUBECONFIG")
    if not path:
        pytest.skip("KUBECONFIG is not set: no real cluster to test against")
    try:
        with KubeClient.from_config(path, attempts=2) as probe:
            probe.list("Namespace", limit=1)
    except ExternalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"KUBECONFIG is set but the cluster does not answer: {exc}")
        pytest.skip(f"the cluster of KUBECONFIG does not answer: {exc}")
    return path


@pytest.fixture(scope="session")
def kube(cluster_kubeconfig: str) -> Iterator[KubeClient]:
    with KubeClient.from_config(cluster_kubeconfig) as client:
        yield client


@pytest.fixture(scope="session")
def namespace(kube: KubeClient) -> Iterator[str]:
    name = f"llmops-e2e-{uuid.uuid4().hex[:6]}"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        kube.delete("Namespace", name)


@pytest.fixture(scope="session")
def standin_image() -> str:
    image = os.environ.get("LLMOPS_E2E_IMAGE")
    if not image:
        pytest.skip("LLMOPS_E2E_IMAGE is not set: no image whose `llmops serve` answers its probes")
    return image
