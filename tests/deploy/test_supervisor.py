"""The local target's supervisor as a real process (``python -m llmops.adapters.supervisor``)
with small real HTTP backends: proxying, blue/green switching over keep-alive, draining,
crash restarts, refusals, secrets kept out of files, and a clean SIGTERM.

The supervisor lives in ``llmops.adapters`` (it runs processes and HTTP); these tests sit
with the local target they serve."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from local_kit import free_port_block, kill_recorded

from llmops.adapters import process
from llmops.adapters.supervisor import (
    BACKOFF_CAP,
    COLOUR_HEADER,
    _never_sent,
    forward_headers,
    restart_delay,
)

#: A tiny backend: GET answers who it is; /slow?s=N sleeps; /crash and /flaky fail on purpose; /stream?gate=F sends one chunk,
#: and the second once file F exists; /secret answers the sha256 of $SECRET_TOKEN; POST echoes the body. SIGTERM
#: shuts it down after the requests in flight.
BACKEND = r"""
import hashlib, http.server, json, os, signal, sys, threading, time, urllib.parse
name, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def send(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", name)
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/slow":
            time.sleep(float(query["s"][0]))
        if url.path == "/stream":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            gate = query["gate"][0]
            for i in range(2):
                deadline = time.monotonic() + 20
                while i and not os.path.exists(gate) and time.monotonic() < deadline:
                    time.sleep(0.02)
                data = f"part{i}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if url.path == "/secret":
            value = os.environ.get("SECRET_TOKEN", "")
            return self.send(200, {"sha": hashlib.sha256(value.encode()).hexdigest()})
        if url.path == "/status":
            return self.send(int(query["code"][0]), {"name": name})
        if url.path == "/crash":
            # counts its calls in file F, and dies
            with open(query["f"][0], "a") as calls:
                calls.write("x")
            os._exit(3)
        if url.path == "/flaky":
            # the first process to serve it (it claims file F) drops each such connection
            # and, from its second call on, exits 0.3 s later: dying, it still accepts
            claim = query["f"][0]
            try:
                fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
            except FileExistsError:
                pass
            with open(claim) as owner:
                mine = owner.read() == str(os.getpid())
            if mine:
                with open(claim + ".calls", "a") as calls:
                    calls.write("x")
                if os.path.getsize(claim + ".calls") >= 2:
                    threading.Timer(0.3, os._exit, (3,)).start()
                self.close_connection = True
                return
            return self.send(200, {"name": name, "pid": os.getpid()})
        self.send(200, {"name": name, "pid": os.getpid(), "path": self.path,
                        "conn": self.headers.get("Connection"), "hop": self.headers.get("X-Hop")})
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send(201, {"name": name, "body": body.decode(), "type": self.headers.get("Content-Type")})
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
server.daemon_threads = False
def stop(*_):
    threading.Thread(target=server.shutdown).start()
signal.signal(signal.SIGTERM, stop)
server.serve_forever()
server.server_close()
"""

SECRET = "s3cr3t-value-never-in-files-0042"


@dataclass
class Sup:
    """A running supervisor under test."""

    dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    control: process.ControlClient
    script: Path

    def state(self) -> dict[str, Any]:
        doc = process.read_json(self.dir / "state.json")
        assert doc is not None
        return doc

    def start(self, colour: str, name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        port = self.colour_port(colour)
        spec = {
            "port": port,
            "argv": [sys.executable, str(self.script), name, str(port)],
            "env": {"PATH": os.environ.get("PATH", ""), **(env or {})},
            "release": f"demo@sha256:{hashlib.sha256(name.encode()).hexdigest()}",
            "fingerprint": name,
            "bundle": str(self.script),
        }
        code, doc = self.control.request("PUT", f"/backends/{colour}", spec)
        assert code == 200, doc
        wait_until(lambda: _answers(port), f"{name} to listen on {port}")
        return doc

    def colour_port(self, colour: str) -> int:
        return self.port + (1 if colour == "blue" else 2)

    def switch(self, colour: str) -> None:
        code, doc = self.control.request("PUT", "/active", {"colour": colour})
        assert code == 200, doc

    def get(self, path: str = "/", timeout: float = 15.0) -> tuple[int, dict[str, Any], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read()), resp.getheader(COLOUR_HEADER) or ""
        finally:
            conn.close()


def _answers(port: int) -> bool:
    answer, _ = process.probe(f"http://127.0.0.1:{port}/", timeout=1.0)
    return answer is not None


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Callable[[], Sup]]:
    started: list[Sup] = []

    def start() -> Sup:
        directory = tmp_path / f"app{len(started)}"
        directory.mkdir()
        script = tmp_path / "backend.py"
        script.write_text(BACKEND)
        port = free_port_block(10)
        sock = process.socket_path(directory)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmops.adapters.supervisor",
                "--dir",
                str(directory),
                "--app",
                "demo",
                "--env",
                "dev",
                "--port",
                str(port),
                "--control",
                str(sock),
                "--connect-wait",
                "15",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(directory / "supervisor.log").open("ab"),
            start_new_session=True,
        )
        sup = Sup(directory, port, proc, process.ControlClient(sock), script)
        started.append(sup)
        wait_until(lambda: sup.control.answers() or proc.poll() is not None, "the supervisor")
        assert proc.poll() is None, (directory / "supervisor.log").read_text()
        return sup

    yield start
    for sup in started:
        if sup.proc.poll() is None:
            sup.proc.send_signal(signal.SIGTERM)
            try:
                sup.proc.wait(20)
            except subprocess.TimeoutExpired:
                sup.proc.kill()
                sup.proc.wait(5)
        kill_recorded(sup.dir)


def test_restart_delay_backs_off_and_caps() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert restart_delay(30) == BACKOFF_CAP


def test_a_request_whose_session_closed_as_it_connected_was_never_sent() -> None:
    """The race CI met: the backend exits and its session is closed just as a request's
    connection opens. aiohttp then fails the request before writing a byte, and the proxy
    must know it can send it again; a connection refused or a server that answers
    garbage is not that case."""
    import asyncio

    import aiohttp

    async def scenario() -> tuple[bool, bool, bytes, bool]:
        received = bytearray()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.extend(await reader.read(65536))
            writer.write(b"not http at all\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/"
        trace = aiohttp.TraceConfig()
        sessions: list[aiohttp.ClientSession] = []

        async def close_it(session: Any, context: Any, params: Any) -> None:
            await sessions[0].close()

        trace.on_connection_create_end.append(close_it)
        async with aiohttp.ClientSession(trace_configs=[trace]) as closing:
            sessions.append(closing)
            try:
                await closing.get(url)
            except aiohttp.ClientError as exc:
                closed_race = _never_sent(exc, closing)
        async with aiohttp.ClientSession() as plain:
            try:
                await plain.get(url)
            except aiohttp.ClientError as exc:
                garbage = _never_sent(exc, plain)
            server.close()
            await server.wait_closed()
            try:
                await plain.get(url)
            except aiohttp.ClientError as exc:
                refused = _never_sent(exc, plain)
        return closed_race, garbage, bytes(received), refused

    closed_race, garbage, received, refused = asyncio.run(scenario())
    assert closed_race is True
    # the garbage answer came after the request was sent: that one did leave
    assert received.startswith(b"GET / HTTP/1.1") and garbage is False
    assert refused is False


def test_hop_by_hop_headers_are_not_forwarded() -> None:
    from multidict import CIMultiDict

    headers = CIMultiDict(
        [
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Host", "example"),
            ("Content-Length", "3"),
            ("Authorization", "Bearer t"),
            ("X-Keep", "a"),
            ("X-Keep", "b"),
        ]
    )
    assert forward_headers(headers) == [
        ("Authorization", "Bearer t"),
        ("X-Keep", "a"),
        ("X-Keep", "b"),
    ]


def test_proxies_to_the_active_colour_and_switches_per_request(
    supervisor: Callable[[], Sup],
) -> None:
    sup = supervisor()
    status, body, _ = sup.get()
    assert status == 503 and body["error"]["type"] == "unavailable"

    sup.start("blue", "one")
    sup.switch("blue")
    status, body, colour = sup.get("/a/b?x=1&y=%20z")
    assert (status, body["name"], body["path"], colour) == (200, "one", "/a/b?x=1&y=%20z", "blue")
    assert sup.get("/status?code=418")[0] == 418

    # POST bodies and content types pass; a keep-alive connection moves colour per request
    conn = http.client.HTTPConnection("127.0.0.1", sup.port, timeout=15)
    conn.request("POST", "/x", body=b'{"q": 1}', headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    posted = json.loads(resp.read())
    assert resp.status == 201 and posted == {
        "name": "one",
        "body": '{"q": 1}',
        "type": "application/json",
    }
    sup.start("green", "two")
    sup.switch("green")
    conn.request("GET", "/", headers={"Connection": "keep-alive, X-Hop", "X-Hop": "1"})
    resp = conn.getresponse()
    after = json.loads(resp.read())
    assert after["name"] == "two" and resp.getheader(COLOUR_HEADER) == "green"
    assert resp.getheader("Server", "").startswith("BaseHTTP")  # the backend's, forwarded
    assert after["hop"] is None  # named in Connection: not forwarded
    conn.close()

    state = sup.state()
    assert state["active"] == "green"
    assert set(state["backends"]) == {"blue", "green"}
    assert state["supervisor"]["pid"] == sup.proc.pid


def test_stopping_the_old_colour_waits_for_requests_in_flight(
    supervisor: Callable[[], Sup],
) -> None:
    sup = supervisor()
    sup.start("blue", "one")
    sup.switch("blue")
    results: list[tuple[int, str]] = []

    def slow() -> None:
        status, body, _ = sup.get("/slow?s=1.5")
        results.append((status, body["name"]))

    thread = threading.Thread(target=slow)
    thread.start()
    wait_until(
        lambda: sup.state()["backends"]["blue"]["inflight"] == 1 or not thread.is_alive(),
        "in flight",
    )
    sup.start("green", "two")
    sup.switch("green")
    blue_pid = sup.state()["backends"]["blue"]["pid"]
    code, doc = sup.control.request("DELETE", "/backends/blue?drain=30&timeout=30", timeout=60)
    thread.join(20)
    assert code == 200 and "blue" not in doc["backends"]
    assert results == [(200, "one")]
    assert not process.pid_alive(blue_pid)
    assert sup.get()[1]["name"] == "two"


def test_streamed_answers_are_forwarded_as_they_come(supervisor: Callable[[], Sup]) -> None:
    sup = supervisor()
    sup.start("blue", "one")
    sup.switch("blue")
    gate = sup.dir / "gate"
    conn = http.client.HTTPConnection("127.0.0.1", sup.port, timeout=15)
    conn.request("GET", f"/stream?gate={gate}")
    resp = conn.getresponse()
    # the backend sends its second chunk only after the client has read the first: a
    # proxy that buffered the answer would time this read out
    first = resp.read1()
    gate.touch()
    rest = resp.read()
    conn.close()
    assert first == b"part0\n" and rest == b"part1\n"


def test_a_killed_backend_is_restarted_and_requests_wait_for_it(
    supervisor: Callable[[], Sup],
) -> None:
    sup = supervisor()
    sup.start("blue", "one")
    sup.switch("blue")
    old_pid = sup.state()["backends"]["blue"]["pid"]
    os.kill(old_pid, signal.SIGKILL)
    # a request sent right away waits for the restart instead of failing
    status, body, _ = sup.get("/", timeout=30)
    assert (status, body.get("name")) == (200, "one"), body
    assert body["pid"] != old_pid
    wait_until(lambda: sup.state()["backends"]["blue"]["restarts"] == 1, "the restart in the state")
    backend = sup.state()["backends"]["blue"]
    assert backend["status"] == "running" and backend["pid"] == body["pid"]
    assert backend["exit_code"] == -signal.SIGKILL


def test_a_get_cut_off_by_a_dying_backend_waits_for_the_restart(
    supervisor: Callable[[], Sup], tmp_path: Path
) -> None:
    """The backend closes the connection under a request, and again under the retry, and
    then exits (as a process being killed still accepts connections for a moment): the
    request waits for the restart and is answered there, instead of a 502."""
    sup = supervisor()
    sup.start("blue", "one")
    sup.switch("blue")
    old_pid = sup.state()["backends"]["blue"]["pid"]
    claim = tmp_path / "flaky-owner"
    status, body, _ = sup.get(f"/flaky?f={claim}", timeout=30)
    assert (status, body.get("name")) == (200, "one"), body
    assert claim.read_text() == str(old_pid) and body["pid"] != old_pid
    # sent twice to the dying process, then once to its restart
    assert Path(f"{claim}.calls").read_text() == "xx"
    assert sup.state()["backends"]["blue"]["restarts"] == 1


def test_a_get_that_kills_every_backend_is_not_sent_again_and_again(
    supervisor: Callable[[], Sup], tmp_path: Path
) -> None:
    """A request that crashes the backend each time gets a 502 after at most two more
    tries; nothing keeps crashing the restarted backends until the deadline."""
    sup = supervisor()
    sup.start("blue", "one")
    sup.switch("blue")
    calls = tmp_path / "crash-calls"
    status, body, _ = sup.get(f"/crash?f={calls}", timeout=30)
    assert status == 502 and body["error"]["type"] == "bad_gateway", body
    assert 2 <= len(calls.read_text()) <= 3
    # the backend is brought back all the same
    wait_until(lambda: sup.state()["backends"]["blue"]["status"] == "running", "the restart")
    wait_until(lambda: sup.get("/")[0] == 200, "an answer after the crashes")


def test_an_inactive_backend_that_exits_is_left_exited(supervisor: Callable[[], Sup]) -> None:
    sup = supervisor()
    sup.start("blue", "one")
    sup.switch("blue")
    sup.start("green", "two")
    green_pid = sup.state()["backends"]["green"]["pid"]
    os.kill(green_pid, signal.SIGKILL)
    wait_until(lambda: sup.state()["backends"]["green"]["status"] == "exited", "exited")
    time.sleep(1.0)  # longer than the first backoff: still not restarted
    green = sup.state()["backends"]["green"]
    assert green["status"] == "exited" and green["pid"] is None and green["restarts"] == 0
    code, doc = sup.control.request("PUT", "/active", {"colour": "green"})
    assert code == 409 and "no running green" in doc["error"]


def test_refusals(supervisor: Callable[[], Sup]) -> None:
    sup = supervisor()
    sup.start("blue", "one")
    sup.switch("blue")
    code, doc = sup.control.request("PUT", "/backends/blue", {"port": 1, "argv": ["x"]})
    assert code == 409 and "active" in doc["error"]
    code, doc = sup.control.request("DELETE", "/backends/blue")
    assert code == 409 and "active" in doc["error"]
    code, doc = sup.control.request("PUT", "/backends/purple", {"port": 1, "argv": ["x"]})
    assert code == 404
    code, doc = sup.control.request("PUT", "/backends/green", {"port": "x", "argv": ["x"]})
    assert code == 400
    # the green port is taken by someone else
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", sup.colour_port("green")))
        squatter.listen()
        spec = {"port": sup.colour_port("green"), "argv": [sys.executable, "-c", "pass"]}
        code, doc = sup.control.request("PUT", "/backends/green", spec)
    assert code == 409 and "in use" in doc["error"]
    assert sup.get()[1]["name"] == "one"


def test_secrets_reach_the_backend_but_no_file(supervisor: Callable[[], Sup]) -> None:
    sup = supervisor()
    sup.start("blue", "one", env={"SECRET_TOKEN": SECRET})
    sup.switch("blue")
    assert sup.get("/secret")[1]["sha"] == hashlib.sha256(SECRET.encode()).hexdigest()
    state = sup.state()
    assert state["backends"]["blue"]["env_names"] == ["PATH", "SECRET_TOKEN"]
    _, status = sup.control.request("GET", "/status")
    assert SECRET not in json.dumps(status)
    for path in sup.dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_sigterm_stops_backends_and_exits_cleanly(supervisor: Callable[[], Sup]) -> None:
    sup = supervisor()
    sup.start("blue", "one")
    sup.switch("blue")
    pid = sup.state()["backends"]["blue"]["pid"]
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.proc.wait(30) == 0
    assert not process.pid_alive(pid)
    state = sup.state()
    assert state["stopped"] is True and state["backends"]["blue"]["status"] == "stopped"
    assert not sup.control.path.exists()
    assert process.port_free(sup.port)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_backends_die_with_a_killed_supervisor(supervisor: Callable[[], Sup]) -> None:
    sup = supervisor()
    sup.start("blue", "one")
    sup.switch("blue")
    pid = sup.state()["backends"]["blue"]["pid"]
    sup.proc.kill()
    sup.proc.wait(10)
    assert process.wait_exit(pid, 10.0), "the backend outlived its supervisor"


def test_a_taken_stable_port_stops_the_supervisor_at_start(tmp_path: Path) -> None:
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "llmops.adapters.supervisor",
                "--dir",
                str(tmp_path),
                "--app",
                "demo",
                "--env",
                "dev",
                "--port",
                str(port),
                "--control",
                str(tmp_path / "c.sock"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 3
    assert "cannot listen" in result.stderr
    assert not (tmp_path / "state.json").exists()
