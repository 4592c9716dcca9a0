"""Local processes for the ``local`` deploy target: spawn detached processes, tell whether a
PID is still one of ours, stop it, probe HTTP health, talk to a supervisor's control
socket, and write state files atomically.

Called by ``llmops.deploy.local`` (the deploying CLI) and ``llmops.adapters.supervisor``
(the long-lived process per app). This is the only module of the local target that runs
``subprocess``, sends signals or makes HTTP requests; the planning above it stays pure.

PIDs read back from state files are never trusted on their own: a PID is "ours" only
while the process is alive (not a zombie) and its command line still carries the
markers it was started with (the state directory, the bundle file, the port), so a
recycled PID is never signalled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmops.domain.errors import ExternalError

#: Longest unix socket path the kernel accepts is 107 bytes on Linux, 103 on macOS.
_MAX_SOCKET_PATH = 100

#: Run by the Python interpreter in front of a backend's argv on Linux: ask the kernel to
#: SIGTERM the backend when its parent (the supervisor) dies, even by SIGKILL, then exec
#: the real command (same PID). Exits at once if the parent is already gone.
_PDEATHSIG = (
    "import ctypes,os,signal,sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(70)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)

#: Children this process spawned, by PID, so they are reaped (no zombies) when polled.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


# --- files -------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a part:
    a temp file in the same directory, fsync, rename over, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_json_atomic(path: Path, document: Mapping[str, Any]) -> None:
    write_atomic(path, (json.dumps(document, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file does not exist.

    Raises ``ValueError`` when it exists but is not a JSON object."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    document = json.loads(data)
    if not isinstance(document, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return document


def log_tail(path: Path, lines: int = 20, max_bytes: int = 16384) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def rotate_if_large(path: Path, limit: int) -> bool:
    """When ``path`` is over ``limit`` bytes, copy it to ``<name>.1`` and empty it in
    place (its writer appends, so it carries on at the start). True when rotated."""
    try:
        if path.stat().st_size <= limit:
            return False
        shutil.copyfile(path, path.with_name(path.name + ".1"))
        with path.open("r+b") as handle:
            handle.truncate(0)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = 60.0) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block; wait
    up to ``timeout`` seconds for another holder, then ``ExternalError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ExternalError(
                        f"{path} is locked by another llmops process for over {timeout:g}s; "
                        "wait for it to finish, or stop it"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def socket_path(directory: Path, name: str = "control.sock") -> Path:
    """Where a unix socket for ``directory`` goes: inside it when the path is short
    enough for the kernel, else in a private (0700) directory under the temp dir named by
    a hash of ``directory``."""
    inside = directory / name
    if len(os.fsencode(str(inside))) <= _MAX_SOCKET_PATH:
        return inside
    private = Path(tempfile.gettempdir()) / f"llmops-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    if private.stat().st_uid != os.getuid() or private.stat().st_mode & 0o077:
        raise ExternalError(f"{private} must be a directory only you can use (mode 0700)")
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:20]
    return private / f"{digest}.sock"


# --- processes ---------------------------------------------------------------------------


def spawn_detached(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path) -> int:
    """Start ``argv`` in a new session (it survives this process and its terminal), stdin
    from /dev/null, stdout and stderr appended to ``log``; return its PID."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        try:
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ExternalError(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc
    _CHILDREN[proc.pid] = proc
    return proc.pid


def orphan_safe(argv: Sequence[str], python: str = sys.executable) -> list[str]:
    """``argv`` wrapped so that, on Linux, the process gets SIGTERM when the process that
    started it dies (even by SIGKILL). Elsewhere ``argv`` unchanged."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [python, "-c", _PDEATHSIG, str(os.getpid()), *argv]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` runs (a zombie does not; our own children are reaped here)."""
    if pid is None or pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def cmdline(pid: int) -> list[str] | None:
    """The argv of ``pid``; None when it cannot be read (gone, or not ours to read)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if Path("/proc/self/cmdline").exists():
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
    try:
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return text.split() if text else None


def owns(pid: int | None, markers: Sequence[str]) -> bool:
    """``pid`` is alive and its argv contains every one of ``markers`` as an argument."""
    if not pid_alive(pid):
        return False
    assert pid is not None
    argv = cmdline(pid)
    return argv is not None and all(marker in argv for marker in markers)


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit; True when it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def terminate(pid: int | None, markers: Sequence[str], timeout: float = 15.0) -> bool:
    """Stop ``pid`` if it is ours (see :func:`owns`): SIGTERM, then SIGKILL after
    ``timeout`` seconds. True when something was stopped."""
    if pid is None or not owns(pid, markers):
        return False
    send_signal(pid, signal.SIGTERM)
    if not wait_exit(pid, timeout):
        send_signal(pid, signal.SIGKILL)
        wait_exit(pid, 5.0)
    return True


def send_signal(pid: int, sig: int) -> None:
    """Signal ``pid``; a process already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be listened on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


# --- HTTP --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A small HTTP answer: status and body (bodies are read whole; these are probes)."""

    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 2.0,
) -> HttpAnswer:
    """One plain-HTTP request to a local ``http://host:port/path`` URL.

    Raises ``OSError`` (refused, reset, timeout) or ``http.client.HTTPException``."""
    if not url.startswith("http://"):
        raise ValueError(f"only http:// URLs are probed, not {url!r}")
    hostport, _, path = url.removeprefix("http://").partition("/")
    host, _, port = hostport.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, "/" + path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return HttpAnswer(response.status, response.read())
    finally:
        conn.close()


def probe(url: str, timeout: float = 2.0) -> tuple[HttpAnswer | None, str]:
    """GET ``url``: the answer, or None and why not (one line)."""
    try:
        return http_request(url, timeout=timeout), ""
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, f"GET {url}: {reason or type(exc).__name__}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    """JSON over HTTP on a supervisor's unix control socket."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, Any]]:
        """``(status, document)``; ``ExternalError`` when the supervisor does not answer."""
        conn = _UnixConnection(self.path, timeout)
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            raise ExternalError(
                f"the supervisor at {self.path} does not answer ({exc}); `llmops apply` restarts it"
            ) from exc
        finally:
            conn.close()
        try:
            document = json.loads(data) if data else {}
        except ValueError:
            document = {"error": data.decode("utf-8", "replace")[:300]}
        if not isinstance(document, dict):
            document = {"value": document}
        return status, document

    def answers(self, timeout: float = 1.0) -> bool:
        try:
            status, _ = self.request("GET", "/status", timeout=timeout)
        except ExternalError:
            return False
        return status == 200
