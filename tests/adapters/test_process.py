"""``llmops.adapters.process`` with real files, processes, sockets and HTTP servers."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import socketserver
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.adapters import process
from llmops.domain.errors import ExternalError

SLEEPER = "import time\nwhile True:\n    time.sleep(0.1)\n"


@pytest.fixture
def spawned() -> Iterator[list[int]]:
    """PIDs a test started; SIGKILLed afterwards if still running."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if process.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            process.wait_exit(pid, 5)


def test_write_atomic_replaces_whole_files_private(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.json"
    process.write_json_atomic(path, {"b": 1, "a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    process.write_atomic(path, b"{}", mode=0o644)
    assert path.read_bytes() == b"{}" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temp files left
    assert process.read_json(path) == {}
    assert process.read_json(tmp_path / "missing.json") is None
    path.write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        process.read_json(path)
    path.write_text("{")
    with pytest.raises(ValueError):
        process.read_json(path)


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert process.log_tail(log) == ""
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.log_tail(log, 3) == "line 97\nline 98\nline 99"


def test_rotate_if_large_keeps_the_writer_appending(tmp_path: Path) -> None:
    log = tmp_path / "blue.log"
    assert not process.rotate_if_large(log, 10)  # no file
    with log.open("ab") as writer:
        writer.write(b"0123456789")
        writer.flush()
        assert not process.rotate_if_large(log, 10)
        writer.write(b"abc")
        writer.flush()
        assert process.rotate_if_large(log, 10)
        writer.write(b"next\n")
        writer.flush()
    assert (tmp_path / "blue.log.1").read_bytes() == b"0123456789abc"
    assert log.read_bytes() == b"next\n"


def test_file_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with process.file_lock(lock):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    with (
        pytest.raises(ExternalError, match="locked by another llmops process"),
        process.file_lock(lock, timeout=0.2),
    ):
        pass
    release.set()
    thread.join(10)
    with process.file_lock(lock, timeout=1):
        pass


def test_socket_paths_stay_short(tmp_path: Path) -> None:
    assert process.socket_path(tmp_path) == tmp_path / "control.sock"
    long_dir = tmp_path / ("x" * 120)
    path = process.socket_path(long_dir)
    assert len(str(path)) <= 100 and path.parent != long_dir
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert process.socket_path(long_dir) == path  # the same directory, the same socket
    assert process.socket_path(tmp_path / ("y" * 120)) != path


def test_spawned_processes_are_detached_owned_and_terminated(
    tmp_path: Path, spawned: list[int]
) -> None:
    log = tmp_path / "logs" / "sleeper.log"
    argv = [sys.executable, "-c", "print('up', flush=True)\n" + SLEEPER, "marker-42"]
    pid = process.spawn_detached(argv, env={"PATH": os.environ["PATH"]}, cwd=tmp_path, log=log)
    spawned.append(pid)
    assert process.pid_alive(pid)
    assert os.getsid(pid) == pid  # its own session: it outlives this process's terminal
    deadline = time.monotonic() + 10
    while "up" not in process.log_tail(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.log_tail(log) == "up"
    assert process.cmdline(pid) == argv
    assert process.owns(pid, ["marker-42"])
    assert not process.owns(pid, ["marker-43"])
    # a PID whose argv does not match is never signalled
    assert process.terminate(pid, ["marker-43"]) is False and process.pid_alive(pid)
    assert process.terminate(pid, ["marker-42"], timeout=5) is True
    assert not process.pid_alive(pid)
    assert process.terminate(pid, ["marker-42"]) is False


def test_a_process_ignoring_sigterm_is_killed(tmp_path: Path, spawned: list[int]) -> None:
    code = (
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('armed', flush=True)\n"
    )
    argv = [sys.executable, "-c", code + SLEEPER, "stubborn"]
    log = tmp_path / "s.log"
    pid = process.spawn_detached(argv, env={"PATH": os.environ["PATH"]}, cwd=tmp_path, log=log)
    spawned.append(pid)
    deadline = time.monotonic() + 10
    while "armed" not in process.log_tail(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.terminate(pid, ["stubborn"], timeout=0.5) is True
    assert not process.pid_alive(pid)


def test_spawn_failure_is_an_external_error(tmp_path: Path) -> None:
    with pytest.raises(ExternalError, match="cannot start"):
        process.spawn_detached(
            [str(tmp_path / "nope")], env={}, cwd=tmp_path, log=tmp_path / "x.log"
        )


def test_zombies_and_unknown_pids_are_not_alive(spawned: list[int]) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    spawned.append(child.pid)
    deadline = time.monotonic() + 10
    # exited but not reaped by its parent (this process): a zombie is not alive
    while process.pid_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process.pid_alive(child.pid)
    assert Path(f"/proc/{child.pid}").exists() or not sys.platform.startswith("linux")
    child.wait()
    assert not process.pid_alive(None) and not process.pid_alive(0)
    assert process.cmdline(child.pid) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_orphan_safe_children_die_with_their_parent(tmp_path: Path, spawned: list[int]) -> None:
    """A parent starts an orphan-safe child and is then SIGKILLed: the child goes too."""
    parent_code = (
        "import subprocess, sys, time\n"
        "from llmops.adapters.process import orphan_safe\n"
        f"child = subprocess.Popen(orphan_safe([sys.executable, '-c', {SLEEPER!r}, 'orphan-7']))\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True
    )
    spawned.append(parent.pid)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    spawned.append(child_pid)
    exec_d = [sys.executable, "-c", SLEEPER, "orphan-7"]  # the wrapper execs: same PID
    deadline = time.monotonic() + 10
    while process.cmdline(child_pid) != exec_d and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.cmdline(child_pid) == exec_d and process.owns(child_pid, ["orphan-7"])
    parent.kill()
    parent.wait(10)
    assert process.wait_exit(child_pid, 10), "the child outlived its parent"


def test_orphan_safe_is_the_same_command_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert process.orphan_safe(["a", "b"]) == ["a", "b"]


def test_port_free() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not process.port_free(port)
    assert process.port_free(port)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"got": json.loads(data), "type": self.headers["Content-Type"]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_http_probe() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        answer, why = process.probe(f"http://127.0.0.1:{port}/healthz")
        assert answer is not None and answer.status == 200 and why == ""
        assert answer.json() == {"path": "/healthz"}
        answer, _ = process.probe(f"http://127.0.0.1:{port}/missing")
        assert answer is not None and answer.status == 404
    finally:
        server.shutdown()
        server.server_close()
    answer, why = process.probe(f"http://127.0.0.1:{port}/healthz", timeout=1)
    assert answer is None and why.startswith(f"GET http://127.0.0.1:{port}/healthz: ")
    with pytest.raises(ValueError, match="only http"):
        process.http_request("https://example/")


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _UnixHandler(_Handler):
    def address_string(self) -> str:
        return "unix"


def test_control_client_speaks_json_over_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    client = process.ControlClient(path)
    assert not client.answers()
    with pytest.raises(ExternalError, match="does not answer"):
        client.request("GET", "/status")
    server = _UnixHTTPServer(str(path), _UnixHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert client.request("GET", "/status") == (200, {"path": "/status"})
        assert client.answers()
        status, doc = client.request("PUT", "/backends/blue", {"port": 1})
        assert status == 200 and doc == {"got": {"port": 1}, "type": "application/json"}
    finally:
        server.shutdown()
        server.server_close()
