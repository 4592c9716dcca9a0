"""Containers of the ``docker`` deploy target on the local Docker Engine, through the docker
SDK: run one with its labels, limits and published ports, list them by label, inspect,
stop, remove, read a log tail, and make sure an image is there.

Used by ``llmops.deploy.docker`` (which plans and orchestrates and never imports docker).
Every docker-py exception becomes an ``llmops.domain.errors`` value with one line saying
what was tried and how to fix it (``ExternalError``, exit 2); an engine that does not
answer says so in the words ``llmops.adapters.docker_engine`` uses.

Environment values reach the engine only in the create request (Docker keeps them in the
container's configuration, like ``docker run -e``); they are never written to a file or
a label here, and :class:`ContainerSpec` keeps them out of its ``repr``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops.adapters.docker_engine import call_engine, explain, first_line, open_client
from llmops.adapters.process import HttpAnswer, probe
from llmops.domain.errors import ExternalError

if TYPE_CHECKING:
    import docker

__all__ = ["ContainerEngine", "ContainerInfo", "ContainerSpec", "HttpAnswer", "probe"]

#: published ports listen here only
PUBLISH_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """One container to run, detached, with everything the deploy target sets."""

    name: str
    image: str
    labels: Mapping[str, str]
    #: container port → host port, published on 127.0.0.1
    ports: Mapping[int, int]
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)
    user: str | None = None
    read_only: bool = False
    #: mount point → tmpfs options (``{"/tmp": "rw,nosuid,nodev,size=64m"}``)
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    #: hard memory limit in bytes (swap off: the same as the limit); None: no limit
    memory: int | None = None
    #: relative CPU weight (1024 = one CPU's share); None: the engine's default
    cpu_shares: int | None = None
    #: ``no``, ``always``, ``unless-stopped`` or ``on-failure``
    restart: str = "no"
    #: host name → address (``host-gateway``: the host as the containers see it)
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A container as the engine reports it."""

    id: str
    name: str
    #: the reference it was created from (``Config.Image``)
    image: str
    labels: Mapping[str, str]
    #: ``created``, ``running``, ``restarting``, ``paused``, ``exited``, ``dead``…
    status: str
    running: bool
    restarting: bool
    exit_code: int
    restart_count: int
    oom_killed: bool
    started_at: str
    #: container port → host port, for published TCP ports
    ports: Mapping[int, int] = field(default_factory=dict)
    error: str = ""

    @property
    def up(self) -> bool:
        """Running, and not between two restarts."""
        return self.running and not self.restarting

    def describe(self) -> str:
        """What state it is in, in a few words (``exited with code 1, out of memory``)."""
        if self.up:
            restarts = f" after {self.restart_count} restarts" if self.restart_count else ""
            return f"running{restarts}"
        words = [f"{self.status}"]
        if self.status in ("exited", "restarting", "dead"):
            words = [f"{self.status} (last exit code {self.exit_code})"]
        if self.oom_killed:
            words.append("killed: out of memory")
        if self.restart_count:
            words.append(f"restarted {self.restart_count} times")
        if self.error:
            words.append(self.error)
        return ", ".join(words)




def _info(attrs: Mapping[str, Any]) -> ContainerInfo:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    published: dict[int, int] = {}
    for port, bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
        number, _, proto = str(port).partition("/")
        if bindings and proto in ("tcp", "") and number.isdigit():
            published[int(number)] = int(bindings[0]["HostPort"])
    if not published:  # not running: the requested bindings
        for port, bindings in ((attrs.get("HostConfig") or {}).get("PortBindings") or {}).items():
            number, _, proto = str(port).partition("/")
            if bindings and proto in ("tcp", "") and number.isdigit():
                host = bindings[0].get("HostPort")
                if host and str(host).isdigit():
                    published[int(number)] = int(host)
    return ContainerInfo(
        id=str(attrs["Id"]),
        name=str(attrs.get("Name") or "").lstrip("/"),
        image=str(config.get("Image") or ""),
        labels=dict(config.get("Labels") or {}),
        status=str(state.get("Status") or ""),
        running=bool(state.get("Running")),
        restarting=bool(state.get("Restarting")),
        exit_code=int(state.get("ExitCode") or 0),
        restart_count=int(attrs.get("RestartCount") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        started_at=str(state.get("StartedAt") or ""),
        ports=published,
        error=str(state.get("Error") or ""),
    )


class ContainerEngine:
    """One connection to a Docker Engine, for the deploy target's containers."""

    def __init__(self, client: docker.DockerClient, host: str) -> None:
        self._client = client
        self.host = host

    @classmethod
    def connect(cls, host: str | None = None, timeout: float = 120.0) -> ContainerEngine:
        """Connect and ping; ``ExternalError`` (one line, exit 2) when nobody answers."""
        client, address = open_client(host, timeout)
        return cls(client, address)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ContainerEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        return call_engine(self.host, what, fn)

    def ping(self) -> None:
        self._call("answer a ping", self._client.ping)

    # --- images -----------------------------------------------------------------------
    def has_image(self, reference: str) -> bool:
        import docker.errors

        def inspect() -> bool:
            try:
                api: Any = self._client.api
                api.inspect_image(reference)
            except docker.errors.ImageNotFound:
                return False
            return True

        return bool(self._call(f"inspect image {reference}", inspect))

    def pull(self, reference: str) -> None:
        """Pull ``reference`` (a ``repo@sha256:…`` or ``repo:tag``) from its registry."""
        repository, tag = _split_reference(reference)
        errors: list[str] = []

        def pull() -> None:
            for chunk in self._client.api.pull(repository, tag=tag, stream=True, decode=True):
                if isinstance(chunk, dict) and chunk.get("error"):
                    errors.append(first_line(chunk["error"]))

        self._call(f"pull {reference}", pull)
        if errors or not self.has_image(reference):
            detail = errors[-1] if errors else "the engine reports no image after the pull"
            raise ExternalError(f"cannot pull {reference}: {detail}")

    # --- containers -------------------------------------------------------------------
    def containers(self, labels: Mapping[str, str]) -> tuple[ContainerInfo, ...]:
        """Every container (running or not) carrying all of ``labels``, by name."""
        filters = {"label": [f"{k}={v}" for k, v in sorted(labels.items())]}
        found = self._call(
            "list containers",
            lambda: self._client.api.containers(all=True, filters=filters),
        )
        infos = [self.inspect(str(c["Id"])) for c in found]
        return tuple(sorted((i for i in infos if i is not None), key=lambda i: i.name))

    def attributes(self, name_or_id: str) -> Mapping[str, Any] | None:
        """The engine's whole inspect document of a container, or None when it is gone."""
        import docker.errors

        def get() -> Any:
            try:
                return self._client.api.inspect_container(name_or_id)
            except docker.errors.NotFound:
                return None

        attrs = self._call(f"inspect container {name_or_id}", get)
        return None if attrs is None else dict(attrs)

    def inspect(self, name_or_id: str) -> ContainerInfo | None:
        """The container, or None when there is none by that name or id."""
        attrs = self.attributes(name_or_id)
        return None if attrs is None else _info(attrs)

    def run(self, spec: ContainerSpec) -> ContainerInfo:
        """Create and start ``spec``; a container that cannot start is removed again."""
        import docker.errors

        api: Any = self._client.api
        host_config = api.create_host_config(
            port_bindings={f"{c}/tcp": (PUBLISH_HOST, h) for c, h in spec.ports.items()},
            read_only=spec.read_only,
            tmpfs=dict(spec.tmpfs),
            mem_limit=spec.memory,
            memswap_limit=spec.memory,
            cpu_shares=spec.cpu_shares,
            restart_policy={"Name": spec.restart} if spec.restart != "no" else None,
            extra_hosts=dict(spec.extra_hosts),
            init=True,
        )

        def create() -> str:
            try:
                created = api.create_container(
                    spec.image,
                    command=list(spec.command) if spec.command is not None else None,
                    name=spec.name,
                    user=spec.user,
                    environment=dict(spec.environment),
                    labels=dict(spec.labels),
                    ports=[(c, "tcp") for c in spec.ports],
                    host_config=host_config,
                    detach=True,
                )
            except docker.errors.ImageNotFound as exc:
                raise ExternalError(
                    f"the image {spec.image} is not in the Docker Engine: build it "
                    f"(`llmops build`) or push it where the engine can pull it ({explain(exc)})"
                ) from exc
            return str(created["Id"])

        container_id = self._call(f"create container {spec.name}", create)
        try:
            self._call(f"start container {spec.name}", lambda: api.start(container_id))
        except ExternalError:
            with contextlib.suppress(ExternalError):
                self.remove(container_id)
            raise
        found = self.inspect(container_id)
        if found is None:
            raise ExternalError(f"container {spec.name} vanished right after it started")
        return found

    def stop(self, name_or_id: str, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; nothing when it is gone."""
        import docker.errors

        def stop() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self._client.api.stop(name_or_id, timeout=int(timeout))

        self._call(f"stop container {name_or_id}", stop)

    def remove(self, name_or_id: str) -> bool:
        """Remove (killing it if it runs); False when it was not there."""
        import docker.errors

        def rm() -> bool:
            try:
                self._client.api.remove_container(name_or_id, force=True)
            except docker.errors.NotFound:
                return False
            return True

        return bool(self._call(f"remove container {name_or_id}", rm))

    def logs(self, name_or_id: str, tail: int = 20) -> str:
        """The last ``tail`` lines of its stdout and stderr ('' when it is gone)."""
        import docker.errors

        def read() -> bytes:
            try:
                data = self._client.api.logs(name_or_id, stdout=True, stderr=True, tail=tail)
            except docker.errors.NotFound:
                return b""
            return bytes(data)

        data = self._call(f"read the logs of {name_or_id}", read)
        return bytes(data).decode("utf-8", "replace").rstrip("\n")


def _split_reference(reference: str) -> tuple[str, str]:
    """``repo@sha256:…`` → (repo, sha256:…); ``repo:tag`` → (repo, tag); ``repo`` → latest."""
    if "@" in reference:
        repository, _, digest = reference.partition("@")
        return repository, digest
    head, _, last = reference.rpartition("/")
    if ":" in last:
        name, _, tag = last.partition(":")
        return (f"{head}/{name}" if head else name), tag
    return reference, "latest"
