"""Helpers for the local target's tests: blocks of free ports, and killing by PID every
process a state directory names, so no test leaves a supervisor or backend behind."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
from pathlib import Path

from llmops.adapters import process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(width: int = 40) -> int:
    """A base port whose next ``width`` ports are all free right now, below Linux's
    ephemeral range (32768 and up): a port there can be taken between this check and its
    use by any outgoing connection's local end (a Docker bind failed on one in CI)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32768 - width, 10)
        if all(process.port_free(base + i) for i in range(width)):
            return base
    raise RuntimeError(f"no block of {width} free ports found")


def recorded_pids(state_root: Path) -> list[tuple[int, tuple[str, ...]]]:
    """Every (pid, markers) the state files under ``state_root`` record."""
    found: list[tuple[int, tuple[str, ...]]] = []
    for path in state_root.rglob("state.json"):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        pid = (doc.get("supervisor") or {}).get("pid")
        if pid:
            found.append((int(pid), ("llmops.adapters.supervisor", str(path.parent))))
        for backend in (doc.get("backends") or {}).values():
            if backend.get("pid"):
                found.append((int(backend["pid"]), (backend["bundle"], str(backend["port"]))))
    return found


def kill_recorded(state_root: Path, extra: list[int] | None = None) -> None:
    """SIGKILL every live process the state files name (checked by its argv), and the
    PIDs in ``extra`` that are still ours."""
    for pid, markers in recorded_pids(state_root):
        if process.owns(pid, markers):
            os.kill(pid, signal.SIGKILL)
            process.wait_exit(pid, 5.0)
    for pid in extra or []:
        if process.pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            process.wait_exit(pid, 5.0)
