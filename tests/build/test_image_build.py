"""`llmops build` against the real Docker Engine and a real registry: the example app is
built on the local base image, run read-only as user 10001 and evaluated through its HTTP
API; a prompt-only change rebuilds one layer; an unchanged release builds and pushes
nothing; failures name what failed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import httpx
import pytest
from build_kit import APP, ENV, change_prompt
from support.docker import BASE_PYTHON, ContainerStub

from llmops import api
from llmops.adapters.docker_engine import BuildFailed, DockerEngine
from llmops.build.context import make_context
from llmops.domain.deploy import (
    ENV_API_KEY_VAR,
    ENV_ENVIRONMENT,
    ENV_MODEL_URL,
    RELEASE_ANNOTATION,
)
from llmops.ops.release import archive_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def built_entries(repo: Path, release: str) -> list[dict[str, object]]:
    entries = archive_for(api.load(repo)).entries()
    return [e.data for e in entries if e.event == "built" and e.release == release]


def wait_healthy(engine: DockerEngine, container_id: str, base: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        state = engine.container_state(container_id)
        if not state.get("Running") or time.monotonic() > deadline:
            pytest.fail(f"the container is not serving ({state.get('Status')}):\n{engine.logs(container_id)}")
        time.sleep(0.2)


def test_the_image_serves_its_release_read_only_as_user_10001(
    build, image_repo: Path, docker_engine: DockerEngine, container_stub: ContainerStub
) -> None:
    result = build(image_repo)
    plan = result.plan
    assert plan.base_image.startswith("llmops-test/python") and plan.python == BASE_PYTHON
    image = docker_engine.image(plan.reference)
    assert image is not None and image.id == result.image_id
    assert image.labels[RELEASE_ANNOTATION] == plan.release
    key = f"stub-key-{uuid.uuid4().hex}"
    container = docker_engine.run(
        plan.reference,
        environment={
            ENV_ENVIRONMENT: ENV,
            ENV_MODEL_URL: container_stub.url,
            ENV_API_KEY_VAR: "STUB_KEY",
            "STUB_KEY": key,
        },
        ports={"8080/tcp": None},
        read_only=True,
        tmpfs={"/tmp": "rw,size=16m,mode=1777"},
    )
    client = docker.from_env()
    try:
        base = f"http://127.0.0.1:{container.ports['8080/tcp']}"
        wait_healthy(docker_engine, container.id, base)
        reply = httpx.post(
            f"{base}/v1/apps/{APP}/invoke",
            json={"inputs": {"text": "The disk of db-7 is full since 02:10 UTC."}},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["release"] == plan.release
        assert body["output"].startswith("echo:") and "db-7" in body["output"]

        # the smoke eval of the served image passes (POST /v1/apps/APP/invoke per case)
        proc = subprocess.run(
            [sys.executable, "-m", "llmops", "eval", APP, "--suite", "container",
             "--endpoint", base, "--path", str(image_repo)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr

        # it runs as 10001, and its root filesystem is read-only
        running = client.containers.get(container.id)
        code, out = running.exec_run(["python3", "-c", "import os; print(os.getuid(), os.getgid())"])
        assert (code, out.decode().split()) == (0, ["10001", "10001"])
        # even root cannot write outside the tmpfs; the server's own files go to /tmp
        write = ["python3", "-c", "open('/srv/llmops/release.json', 'a')"]
        code, out = running.exec_run(write, user="0")
        assert code != 0 and b"Read-only file system" in out
        code, out = running.exec_run(["python3", "-c", "open('/tmp/probe', 'w')"])
        assert code == 0, out
        assert running.attrs["HostConfig"]["ReadonlyRootfs"] is True

        logs = docker_engine.logs(container.id, tail=200)
        assert f'"environment": "{ENV}"' in logs and container_stub.url in logs
        assert key not in logs
    finally:
        docker_engine.remove_container(container.id)
        client.close()


def test_a_prompt_only_change_rebuilds_only_the_last_layer(
    build, image_repo: Path, docker_engine: DockerEngine
) -> None:
    change_prompt(image_repo, f"Revision {uuid.uuid4().hex}.")
    first = build(image_repo)
    assert first.built
    change_prompt(image_repo, "Prefer short words.")
    second = build(image_repo)
    assert second.built and second.plan.release != first.plan.release
    old = docker_engine.image(first.plan.reference)
    new = docker_engine.image(second.plan.reference)
    assert old is not None and new is not None
    assert len(new.layers) == len(old.layers)
    assert new.layers[:-1] == old.layers[:-1]
    assert new.layers[-1] != old.layers[-1]
    # every step before the bundle came from the cache (FROM is never reported as cached)
    assert second.cached_steps == second.steps - 3


def test_an_unchanged_release_is_neither_rebuilt_nor_pushed_again(
    build, image_repo: Path, registry: str, docker_engine: DockerEngine
) -> None:
    change_prompt(image_repo, f"Push revision {uuid.uuid4().hex}.")
    first = build(image_repo, push=True)
    assert (first.builds, first.pushes) == (1, 1)
    plan = first.plan
    assert first.digest is not None and first.image == f"{plan.repository}@{first.digest}"
    # the registry itself serves that manifest digest for the tag
    name = plan.repository.split("/", 1)[1]
    head = httpx.head(
        f"http://{registry}/v2/{name}/manifests/{plan.tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert head.status_code == 200 and head.headers["Docker-Content-Digest"] == first.digest

    again = build(image_repo, push=True)
    assert (again.builds, again.pushes) == (0, 0) and again.recorded is None
    assert again.plan.build == "skip" and again.plan.push == "skip"
    local_only = build(image_repo)
    assert (local_only.builds, local_only.pushes) == (0, 0) and local_only.recorded is None
    # without the local image the registry's copy is enough: still nothing to do
    assert docker_engine.remove_image(plan.reference)
    remote = build(image_repo, push=True)
    assert (remote.builds, remote.pushes) == (0, 0) and remote.recorded is None

    assert built_entries(image_repo, plan.release) == [
        {"image": first.image, "tag": plan.reference, "imageId": first.image_id}
    ]


def test_a_local_build_is_recorded_by_tag_then_by_digest_once_pushed(
    build, image_repo: Path, registry: str
) -> None:
    change_prompt(image_repo, f"Local revision {uuid.uuid4().hex}.")
    local = build(image_repo)
    assert local.built and local.image == local.plan.reference
    pushed = build(image_repo, push=True)
    assert (pushed.builds, pushed.pushes) == (0, 1)
    assert built_entries(image_repo, local.plan.release) == [
        {"image": local.plan.reference, "tag": local.plan.reference, "imageId": local.image_id},
        {"image": pushed.image, "tag": local.plan.reference, "imageId": local.image_id},
    ]


def test_a_failing_build_names_the_step_and_its_log(
    build, image_repo: Path, docker_engine: DockerEngine, base_image: str, registry_prefix: str
) -> None:
    broken = f"{registry_prefix}/broken-python:1"
    dockerfile = (
        f"FROM {base_image}\n"
        """RUN ["python3", "-c", "import shutil; shutil.rmtree('/usr/lib/python3.11/venv')"]\n"""
    )
    docker_engine.build(make_context({"Dockerfile": dockerfile.encode()}).data, broken)
    change_prompt(image_repo, f"Broken revision {uuid.uuid4().hex}.")
    with pytest.raises(BuildFailed) as info:
        build(image_repo, base_image=broken)
    failed = info.value
    assert failed.step.startswith("4/") and "python3 -m venv" in failed.step
    assert "No module named venv" in "\n".join(failed.tail)
    assert "failed at step 4/" in failed.message and "--python must match" in failed.message
    release = api.release_list(image_repo)[-1].release_id
    assert built_entries(image_repo, release) == []

    # the CLI: exit 1, the step and the log's tail, no traceback
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "build", APP, "--path", str(image_repo), "--env", ENV,
         "--base-image", broken, "--python", BASE_PYTHON, "-q"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "failed at step 4/" in proc.stderr and "No module named venv" in proc.stderr
    assert "Traceback" not in proc.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_registry_is_one_line_exit_2(image_repo: Path, docker_engine: DockerEngine) -> None:
    dead = f"127.0.0.1:{free_port()}"
    (image_repo / "environments" / "nowhere.yaml").write_text(
        "apiVersion: llmops.dev/v1\nkind: Environment\nmetadata: {name: nowhere}\n"
        f"spec:\n  target: {{kind: docker}}\n  registry: {dead}/apps\n  releases: {{}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "build", APP, "--path", str(image_repo),
         "--env", "nowhere", "--push"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the registry {dead}")


def test_dry_run_prints_the_plan_and_does_nothing(
    image_repo: Path, registry: str, docker_engine: DockerEngine
) -> None:
    import json

    change_prompt(image_repo, f"Dry revision {uuid.uuid4().hex}.")
    proc = subprocess.run(
        [sys.executable, "-m", "llmops", "build", APP, "--path", str(image_repo), "--env", ENV,
         "--push", "--dry-run", "-o", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert (plan["build"], plan["push"], plan["dryRun"]) == ("build", "push", True)
    assert plan["tag"].endswith(":" + plan["release"].split(":")[1])
    assert plan["dockerfile"].splitlines()[1] == "FROM python:3.12-slim"
    assert docker_engine.image(plan["tag"]) is None
    assert archive_for(api.load(image_repo)).entries() == []
