"""Kubernetes API test server fixtures: a real HTTP server on 127.0.0.1 per test.

``kube_server`` starts :class:`support.kubeserver.KubeApiServer` (namespaces ``default``
and ``llm-test``), writes a kubeconfig for it under the test's tmp dir and yields the
server: ``.url``, ``.kubeconfig``, ``.objects(kind, namespace)``, ``.get(kind, name, ns)``,
``.fail_next(...)``, ``.deny(verb, resource)``, ``.latency``, ``.rollout(after, name)``
(Deployments ready ``after`` seconds past each new generation, ``None``: never),
``.mark_ready(name, ns)``, ``.fail_progress(name, ns)``, ``.edit(...)`` (a hand edit by
another field manager) and ``.requests`` (every request it answered).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from support.kubeserver import KubeApiServer

#: the namespace tests deploy into
TEST_NAMESPACE = "llm-test"


@pytest.fixture
def kube_server(tmp_path: Path) -> Iterator[KubeApiServer]:
    server = KubeApiServer(namespaces=("default", TEST_NAMESPACE)).start()
    try:
        server.write_kubeconfig(tmp_path / "kubeconfig", namespace=TEST_NAMESPACE)
        yield server
    finally:
        server.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_kubeconfig(
    path: Path, server: str, *, context: str = "llmops-test", token: str = "t"
) -> Path:
    """A kubeconfig naming any server URL (for unreachable or TLS-mismatched servers)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": context,
                        "context": {"cluster": "c", "user": "u", "namespace": TEST_NAMESPACE},
                    }
                ],
                "current-context": context,
            }
        )
    )
    return path


@pytest.fixture
def unreachable_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose server refuses connections."""
    return write_kubeconfig(
        tmp_path / "kubeconfig-unreachable", f"http://127.0.0.1:{closed_port()}"
    )
