"""The Docker Engine adapter against the real engine and registry: builds stream and use
the cache, failures name their step, pushes return the registry's digest, containers run
with published ports; an engine or registry that does not answer is one line, exit 2."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmops.adapters.docker_engine import (
    BuildFailed,
    DockerEngine,
    _BuildLog,
    engine_host,
    registry_host,
    unreachable_message,
)
from llmops.build.context import make_context
from llmops.domain.errors import ExternalError


@pytest.mark.parametrize(
    ("reference", "host"),
    [
        ("127.0.0.1:5000/apps/a:1", "127.0.0.1:5000"),
        ("localhost/a:1", "localhost"),
        ("registry.example.com/team/a@sha256:" + "0" * 64, "registry.example.com"),
        ("llmops/summarizer:1", "docker.io"),
        ("python:3.12-slim", "docker.io"),
    ],
)
def test_registry_host(reference: str, host: str) -> None:
    assert registry_host(reference) == host


def test_an_engine_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    dead = f"unix://{tmp_path}/docker.sock"
    with pytest.raises(ExternalError) as info:
        DockerEngine.connect(dead, timeout=5)
    assert info.value.exit_code == 2
    assert info.value.message == (
        f"cannot reach the Docker Engine at {dead}: start dockerd or set DOCKER_HOST"
    )
    assert engine_host({"DOCKER_HOST": dead}) == dead
    assert unreachable_message(engine_host({})).startswith(
        "cannot reach the Docker Engine at unix:///var/run/docker.sock"
    )


def test_build_output_is_read_in_whole_lines_whatever_the_chunks() -> None:
    seen: list[str] = []
    log = _BuildLog(seen.append)
    log.feed("Step 1/2 : FROM base\n ---> Using ca")
    log.feed("che\nStep 2/2 : RUN x\nline 3")
    log.feed("9\n\x1b[91mit broke\x1b[0m\n")
    log.feed("no newline at the end")
    log.flush()
    assert seen == [
        "Step 1/2 : FROM base", " ---> Using cache", "Step 2/2 : RUN x",
        "line 39", "it broke", "no newline at the end",
    ]  # fmt: skip
    assert (log.step, log.total, log.cached) == ("2/2 (RUN x)", 2, 1)
    assert log.step_log == ["line 39", "it broke", "no newline at the end"]


# --- the real engine --------------------------------------------------------------------


@pytest.fixture
def tags(docker_engine: DockerEngine) -> Iterator[list[str]]:
    """Image tags a test made; removed afterwards."""
    made: list[str] = []
    yield made
    for tag in made:
        docker_engine.remove_image(tag)


def _tag(name: str) -> str:
    return f"llmops-test/adapter-{name}:{uuid.uuid4().hex[:12]}"


@pytest.mark.docker
def test_build_streams_progress_and_uses_the_cache(
    docker_engine: DockerEngine, base_image: str, tags: list[str]
) -> None:
    payload = uuid.uuid4().hex.encode()
    dockerfile = (
        f"FROM {base_image}\n"
        "COPY payload.txt /payload.txt\n"
        'RUN ["python3", "-c", "print(open(\'/payload.txt\').read())"]\n'
        "LABEL purpose=adapter-test\n"
    )
    context = make_context({"Dockerfile": dockerfile.encode(), "payload.txt": payload}).data
    seen: list[str] = []
    first_tag, second_tag = _tag("cache"), _tag("cache")
    tags.extend([first_tag, second_tag])
    first = docker_engine.build(context, first_tag, on_line=seen.append)
    assert first.steps == 4 and first.cached == 0
    assert seen[0].startswith(f"Step 1/4 : FROM {base_image}")
    assert payload.decode() in seen  # the RUN step's own output is streamed
    image = docker_engine.image(first_tag)
    assert image is not None and image.id == first.image_id
    assert image.labels["purpose"] == "adapter-test" and first_tag in image.tags
    second = docker_engine.build(context, second_tag)
    assert second.cached == 3 and second.image_id == first.image_id


@pytest.mark.docker
def test_a_failing_step_is_named_with_its_log_tail(
    docker_engine: DockerEngine, base_image: str, tags: list[str]
) -> None:
    dockerfile = (
        f"FROM {base_image}\n"
        # one stream (stderr) so the order of the lines is the order they were written:
        # the engine may interleave a step's stdout and stderr
        'RUN ["python3", "-c", "import sys; [print(f\'line {i}\', file=sys.stderr, flush=True) '
        "for i in range(40)]; sys.exit('it broke here')\"]\n"
    )
    tag = _tag("fail")
    tags.append(tag)
    with pytest.raises(BuildFailed) as info:
        docker_engine.build(make_context({"Dockerfile": dockerfile.encode()}).data, tag)
    failed = info.value
    assert failed.exit_code == 1
    assert failed.step.startswith("2/2 (RUN") and "sys.exit" in failed.step
    assert len(failed.tail) == 20 and "it broke here" in failed.tail
    assert "line 39" in failed.tail and "line 5" not in failed.tail
    assert not any("\x1b" in line for line in failed.tail)
    assert failed.message.startswith("the image build failed at step 2/2 (RUN")
    assert docker_engine.image(tag) is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.docker
def test_push_returns_the_digest_the_registry_reports(
    docker_engine: DockerEngine, base_image: str, registry: str, tags: list[str]
) -> None:
    repository = f"{registry}/llmops-test-adapter/push-{uuid.uuid4().hex[:8]}"
    docker_engine.tag(base_image, repository, "v1")
    tags.append(f"{repository}:v1")
    assert docker_engine.registry_digest(f"{repository}:v1") is None
    lines: list[str] = []
    digest = docker_engine.push(repository, "v1", on_line=lines.append)
    assert digest.startswith("sha256:") and len(digest) == 71
    assert docker_engine.registry_digest(f"{repository}:v1") == digest
    # each layer is reported: uploaded, already there, or mounted from another repository
    assert any(w in line for line in lines for w in ("Pushed", "already exists", "Mounted from"))
    name = repository.split("/", 1)[1]
    head = httpx.head(
        f"http://{registry}/v2/{name}/manifests/v1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert head.headers["Docker-Content-Digest"] == digest


@pytest.mark.docker
def test_an_unreachable_registry_is_one_line(
    docker_engine: DockerEngine, base_image: str, tags: list[str]
) -> None:
    dead = f"127.0.0.1:{_free_port()}"
    with pytest.raises(ExternalError) as info:
        docker_engine.registry_digest(f"{dead}/apps/a:1")
    assert info.value.message.startswith(f"cannot reach the registry {dead} for {dead}/apps/a:1")
    assert "\n" not in info.value.message
    docker_engine.tag(base_image, f"{dead}/apps/a", "1")
    tags.append(f"{dead}/apps/a:1")
    with pytest.raises(ExternalError, match=f"cannot reach the registry {dead}"):
        docker_engine.push(f"{dead}/apps/a", "1")


@pytest.mark.docker
def test_run_publishes_a_port_and_removes_the_container(
    docker_engine: DockerEngine, base_image: str
) -> None:
    container = docker_engine.run(
        base_image,
        command=["python3", "-m", "http.server", "8000", "--bind", "0.0.0.0"],
        ports={"8000/tcp": None},
        user="10001",
        read_only=True,
        labels={"llmops.dev/test": "adapter"},
    )
    try:
        url = f"http://127.0.0.1:{container.ports['8000/tcp']}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, docker_engine.logs(container.id)
            time.sleep(0.1)
        assert docker_engine.container_state(container.id)["Running"] is True
        assert "GET / HTTP" in docker_engine.logs(container.id)
    finally:
        docker_engine.remove_container(container.id)
    docker_engine.remove_container(container.id)  # gone already: nothing to do
    with pytest.raises(ExternalError, match="refused to inspect container"):
        docker_engine.container_state(container.id)
