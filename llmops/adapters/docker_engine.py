"""The Docker Engine through the docker SDK: build, inspect, push and run images.

Used by ``llmops.ops.build`` (and the tests' fixtures). The only module that imports
``docker`` for images. Every docker-py exception becomes an ``llmops.domain.errors``
value with one line saying what was tried and how to fix it; a failed build becomes
:class:`BuildFailed`, naming the failing step and the tail of its log.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops.domain.errors import ExternalError, LlmopsError

if TYPE_CHECKING:
    import docker

DEFAULT_HOST = "unix:///var/run/docker.sock"
#: how many log lines of the failing step a BuildFailed carries
TAIL_LINES = 20
_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

OnLine = Callable[[str], None]


class BuildFailed(LlmopsError):
    """``docker build`` failed at one step; ``step`` names it, ``tail`` is its log's end."""

    exit_code = 1

    def __init__(self, message: str, step: str, tail: Sequence[str]) -> None:
        super().__init__(message)
        self.step = step
        self.tail = tuple(tail)


@dataclass(frozen=True, slots=True)
class BuildOutput:
    """What one build did: the image, how many steps ran and how many the cache answered."""

    image_id: str
    steps: int
    cached: int
    log: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LocalImage:
    """An image in the local engine."""

    id: str
    tags: tuple[str, ...]
    labels: Mapping[str, str]
    #: the diff ids of its filesystem layers, base first
    layers: tuple[str, ...]
    repo_digests: tuple[str, ...] = ()
    size: int = 0


@dataclass(frozen=True, slots=True)
class Container:
    """A container this adapter started."""

    id: str
    name: str
    #: container port → host port, for published ports
    ports: Mapping[str, int] = field(default_factory=dict)


def engine_host(environ: Mapping[str, str] | None = None) -> str:
    """The engine address the SDK will use: ``$DOCKER_HOST`` or the default socket."""
    env = os.environ if environ is None else environ
    return env.get("DOCKER_HOST") or DEFAULT_HOST


def unreachable_message(host: str) -> str:
    return f"cannot reach the Docker Engine at {host}: start dockerd or set DOCKER_HOST"


def registry_host(reference: str) -> str:
    """The registry a reference points at (``docker.io`` when it names none)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def first_line(text: object) -> str:
    """The first non-blank line of ``text``, stripped."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else str(text)


def explain(exc: Exception) -> str:
    """The first line of what the engine (or the SDK) said about ``exc``."""
    explanation = getattr(exc, "explanation", None)
    return first_line(explanation or exc)




def open_client(host: str | None, timeout: float) -> tuple[Any, str]:
    """A pinged docker SDK client and the address it talks to: ``$DOCKER_HOST`` and its
    TLS settings (like the docker CLI) unless ``host`` is given. ``ExternalError`` (one
    line, exit 2) when nobody answers. Shared by the build and the container adapters."""
    import docker
    import docker.errors

    address = host or engine_host()
    try:
        if host is None:
            client = docker.from_env(timeout=int(timeout))
        else:
            client = docker.DockerClient(base_url=address, timeout=int(timeout))
    except (docker.errors.DockerException, OSError, ValueError) as exc:
        raise ExternalError(unreachable_message(address)) from exc
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        client.close()
        raise ExternalError(unreachable_message(address)) from exc
    return client, address


def call_engine(host: str, what: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, its failures as one-line ``ExternalError``: unreachable, refused, other."""
    import docker.errors
    import requests

    try:
        return fn()
    except requests.exceptions.ConnectionError as exc:
        raise ExternalError(unreachable_message(host)) from exc
    except docker.errors.APIError as exc:
        raise ExternalError(f"the Docker Engine refused to {what}: {explain(exc)}") from exc
    except docker.errors.DockerException as exc:
        raise ExternalError(f"cannot {what}: {explain(exc)}") from exc


class _BuildLog:
    """The build's output as whole lines (a chunk may end mid-line), split by step."""

    def __init__(self, on_line: OnLine | None) -> None:
        self.on_line = on_line
        self.pending = ""
        self.step = ""
        self.total = 0
        self.cached = 0
        self.step_log: list[str] = []
        self.log: list[str] = []

    def feed(self, text: str) -> None:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self._line(line)

    def flush(self) -> None:
        if self.pending:
            self._line(self.pending)
            self.pending = ""

    def _line(self, raw: str) -> None:
        line = _ANSI_RE.sub("", raw).rstrip()
        if not line:
            return
        match = _STEP_RE.match(line)
        if match:
            self.step = f"{match.group(1)}/{match.group(2)} ({match.group(3)})"
            self.total = int(match.group(2))
            self.step_log = []
        else:
            self.step_log.append(line)
        if line.strip() == "---> Using cache":
            self.cached += 1
        self.log.append(line)
        if self.on_line is not None:
            self.on_line(line)


class DockerEngine:
    """One connection to a Docker Engine."""

    def __init__(self, client: docker.DockerClient, host: str) -> None:
        self._client = client
        self.host = host

    @classmethod
    def connect(cls, host: str | None = None, timeout: float = 600) -> DockerEngine:
        """Connect and ping; ``ExternalError`` (one line, exit 2) when nobody answers."""
        client, address = open_client(host, timeout)
        return cls(client, address)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading --------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        return call_engine(self.host, what, fn)

    def architecture(self) -> str:
        """The engine's CPU architecture (``x86_64``, ``aarch64``)."""
        info = self._call("report its info", self._client.info)
        return str(info.get("Architecture") or "x86_64")

    def bridge_gateway(self) -> str:
        """The host's address on the default bridge network (how containers reach it)."""

        def gateway() -> str:
            network: Any = self._client.api.inspect_network("bridge")
            for config in (network.get("IPAM") or {}).get("Config") or []:
                if config.get("Gateway"):
                    return str(config["Gateway"])
            return "172.17.0.1"

        return str(self._call("inspect the bridge network", gateway))

    def image(self, reference: str) -> LocalImage | None:
        """The local image ``reference`` names (tag or id), or None."""
        import docker.errors

        def get() -> Any:
            try:
                api: Any = self._client.api
                return api.inspect_image(reference)
            except docker.errors.ImageNotFound:
                return None

        attrs = self._call(f"inspect image {reference}", get)
        if attrs is None:
            return None
        config = attrs.get("Config") or {}
        return LocalImage(
            id=str(attrs["Id"]),
            tags=tuple(attrs.get("RepoTags") or ()),
            labels=dict(config.get("Labels") or {}),
            layers=tuple((attrs.get("RootFS") or {}).get("Layers") or ()),
            repo_digests=tuple(attrs.get("RepoDigests") or ()),
            size=int(attrs.get("Size") or 0),
        )

    def remove_image(self, reference: str, force: bool = True) -> bool:
        """Remove an image (or one tag of it); False when it was not there.

        Its untagged parents are kept: they are the build cache, and a build running at
        the same time may be stacking a layer on one of them."""
        import docker.errors

        def rm() -> bool:
            try:
                self._client.api.remove_image(reference, force=force, noprune=True)
            except docker.errors.ImageNotFound:
                return False
            return True

        return bool(self._call(f"remove image {reference}", rm))

    def tag(self, reference: str, repository: str, tag: str) -> None:
        self._call(
            f"tag {reference}", lambda: self._client.api.tag(reference, repository, tag)
        )

    # --- building ---------------------------------------------------------------------

    def build(
        self,
        context: bytes,
        tag: str,
        labels: Mapping[str, str] | None = None,
        on_line: OnLine | None = None,
    ) -> BuildOutput:
        """Build the Dockerfile at the root of the tar ``context`` and tag it ``tag``.

        Progress lines go to ``on_line``. Nothing is pulled except a missing ``FROM``
        image. ``BuildFailed`` names the failing step and carries its log's tail.
        """
        import docker.errors
        import requests

        progress = _BuildLog(on_line)
        image_id: str | None = None
        try:
            stream: Iterator[dict[str, Any]] = self._client.api.build(
                fileobj=io.BytesIO(context),
                custom_context=True,
                tag=tag,
                labels=dict(labels or {}),
                decode=True,
                rm=True,
                forcerm=True,
                pull=False,
            )
            for chunk in stream:
                if "error" in chunk:
                    progress.flush()
                    message = first_line(
                        (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                    )
                    tail = [*progress.step_log, message][-TAIL_LINES:]
                    where = f"step {progress.step}" if progress.step else "the start"
                    raise BuildFailed(
                        f"the image build failed at {where}: {message}\n"
                        + "\n".join(f"  | {line}" for line in tail),
                        progress.step,
                        tail,
                    )
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = str(aux["ID"])
                text = chunk.get("stream") or chunk.get("status")
                if text:
                    progress.feed(str(text))
            progress.flush()
        except requests.exceptions.ConnectionError as exc:
            raise ExternalError(unreachable_message(self.host)) from exc
        except docker.errors.APIError as exc:
            raise BuildFailed(
                f"the Docker Engine refused the build: {explain(exc)}",
                progress.step,
                progress.log[-TAIL_LINES:],
            ) from exc
        if image_id is None:
            found = self.image(tag)
            if found is None:
                raise BuildFailed(
                    f"the build of {tag} ended without an image",
                    progress.step,
                    progress.log[-TAIL_LINES:],
                )
            image_id = found.id
        return BuildOutput(image_id, progress.total, progress.cached, tuple(progress.log))

    # --- registries -----------------------------------------------------------------

    def registry_digest(self, reference: str) -> str | None:
        """The manifest digest the registry holds for ``reference``, or None if absent.

        Asked through the engine (distribution inspect), so the engine's registry
        settings and credentials apply. ``ExternalError`` when the registry cannot be
        reached.
        """
        import docker.errors
        import requests

        try:
            api: Any = self._client.api
            data = api.inspect_distribution(reference)
        except docker.errors.NotFound:
            return None
        except requests.exceptions.ConnectionError as exc:
            raise ExternalError(unreachable_message(self.host)) from exc
        except docker.errors.APIError as exc:
            text = explain(exc)
            if "manifest unknown" in text or "name unknown" in text or "not found" in text:
                return None
            raise ExternalError(registry_unreachable(reference, text)) from exc
        digest = (data.get("Descriptor") or {}).get("digest")
        return str(digest) if digest else None

    def push(self, repository: str, tag: str, on_line: OnLine | None = None) -> str:
        """Push ``repository:tag``; return the manifest digest the registry stored."""
        import docker.errors
        import requests

        digest: str | None = None
        try:
            for chunk in self._client.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in chunk:
                    message = first_line(
                        (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                    )
                    raise ExternalError(registry_unreachable(f"{repository}:{tag}", message))
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
                status = chunk.get("status")
                if status and on_line is not None and not chunk.get("progressDetail"):
                    layer = chunk.get("id")
                    on_line(f"{layer}: {status}" if layer else str(status))
        except requests.exceptions.ConnectionError as exc:
            raise ExternalError(unreachable_message(self.host)) from exc
        except docker.errors.APIError as exc:
            raise ExternalError(registry_unreachable(f"{repository}:{tag}", explain(exc))) from exc
        if digest is None:
            digest = self.registry_digest(f"{repository}:{tag}")
        if digest is None:
            raise ExternalError(f"pushed {repository}:{tag} but the registry reports no digest")
        return digest

    # --- running (smoke tests, the docker target) ---------------------------------------

    def run(
        self,
        image: str,
        *,
        name: str | None = None,
        command: Sequence[str] | None = None,
        environment: Mapping[str, str] | None = None,
        ports: Mapping[str, int | None] | None = None,
        labels: Mapping[str, str] | None = None,
        user: str | None = None,
        read_only: bool = False,
        tmpfs: Mapping[str, str] | None = None,
        network: str | None = None,
        extra_hosts: Mapping[str, str] | None = None,
    ) -> Container:
        """Start a detached container; ``ports`` maps ``"8080/tcp"`` to a host port
        (None: any free one) published on 127.0.0.1."""

        bindings: Any = {
            port: ("127.0.0.1", host) if host is not None else ("127.0.0.1",)
            for port, host in (ports or {}).items()
        }

        def start() -> Any:
            containers: Any = self._client.containers
            return containers.run(
                image,
                command=list(command) if command is not None else None,
                name=name,
                detach=True,
                environment=dict(environment or {}),
                ports=bindings,
                labels=dict(labels or {}),
                user=user,
                read_only=read_only,
                tmpfs=dict(tmpfs or {}),
                network=network,
                extra_hosts=dict(extra_hosts or {}),
            )

        container = self._call(f"run {image}", start)
        container.reload()
        published: dict[str, int] = {}
        for port, bindings in (container.attrs["NetworkSettings"].get("Ports") or {}).items():
            if bindings:
                published[port] = int(bindings[0]["HostPort"])
        return Container(container.id, container.name, published)

    def container_state(self, container_id: str) -> Mapping[str, Any]:
        """The ``State`` of a container (``Running``, ``ExitCode``, ``Health``…)."""
        attrs = self._call(
            f"inspect container {container_id}",
            lambda: self._client.api.inspect_container(container_id),
        )
        return dict(attrs.get("State") or {})

    def logs(self, container_id: str, tail: int = 50) -> str:
        data = self._call(
            f"read the logs of {container_id}",
            lambda: self._client.api.logs(container_id, tail=tail),
        )
        return bytes(data).decode("utf-8", "replace")

    def remove_container(self, container_id: str) -> None:
        """Stop and remove a container; nothing when it is gone already."""
        import docker.errors

        def rm() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self._client.api.remove_container(container_id, force=True)

        self._call(f"remove container {container_id}", rm)


def registry_unreachable(reference: str, detail: str) -> str:
    host = registry_host(reference)
    if any(word in detail for word in ("connection refused", "no such host", "i/o timeout", "dial tcp")):
        return (
            f"cannot reach the registry {host} for {reference} ({detail}): start it, "
            "or fix the environment's spec.registry"
        )
    return f"the registry {host} refused {reference}: {detail}"
