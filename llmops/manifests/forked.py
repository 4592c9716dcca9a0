"""Spread independent jobs over forked copies of this process, this one included.

Called by ``llmops.manifests.repository`` to check the apps of a large repository on
every core. Lighter than ``multiprocessing.Pool``: no pool threads, no imports, and
the calling process works too instead of waiting. Jobs are handed out in chunks through
a pipe (each read of one 2-byte chunk number is atomic), so a busy or slow process
simply takes fewer chunks. Only for a single-threaded process, such as the CLI.

A child sends each chunk's results as soon as they are done: a length-prefixed pickle
on its own pipe. This process takes them in between its own chunks, so turning them
into results overlaps the children's work instead of following it. Any chunk a child
does not return (it crashed, or raised) is redone here, so an error in the work is
raised here, as it would be without children.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Most chunks handed out; their numbers must fit in the task pipe at once.
MAX_CHUNKS = 4096
#: Pipe buffer asked for on Linux (F_SETPIPE_SZ), so a child rarely waits to send.
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031
_LENGTH = 8


def can_fork() -> bool:
    return hasattr(os, "fork") and sys.platform != "win32"


def forked_map(
    items: Sequence[T],
    here: Callable[[T], R],
    there: Callable[[T], Any],
    back: Callable[[Any], R],
    *,
    processes: int,
    chunk: int = 8,
) -> list[R]:
    """``[here(item) for item in items]``, computed by this process and ``processes - 1``
    forked children. A child computes ``there(item)`` (a picklable form) and this
    process turns it into the result with ``back``. Items are handed out ``chunk`` at a
    time (fewer when there are few): small chunks even out the processes' finish."""
    count = len(items)
    if processes < 2 or count < 2 or not can_fork():
        return [here(item) for item in items]
    size = max(1, min(chunk, -(-count // (processes * 4))), -(-count // MAX_CHUNKS))
    bounds = [(start, min(start + size, count)) for start in range(0, count, size)]
    task_read, task_write = os.pipe()
    try:
        os.write(task_write, b"".join(i.to_bytes(2, "big") for i in range(len(bounds))))
    finally:
        os.close(task_write)
    children: list[_Child] = []
    results: list[Any] = [None] * len(bounds)
    done = [False] * len(bounds)

    def receive(child: _Child, *, wait: bool) -> None:
        for index, packed in child.frames(wait=wait):
            if not done[index]:
                results[index] = [back(value) for value in packed]
                done[index] = True

    try:
        for _ in range(processes - 1):
            child = _spawn(task_read, bounds, items, there)
            if child is None:
                break
            children.append(child)
        for index in _take(task_read):
            start, end = bounds[index]
            results[index] = [here(item) for item in items[start:end]]
            done[index] = True
            for child in children:
                receive(child, wait=False)
        while children:
            child = children[0]
            receive(child, wait=True)
            child.reap()
            children.pop(0)
    finally:
        os.close(task_read)
        for child in children:  # only on an error here: stop the rest
            child.stop()
    for index, (start, end) in enumerate(bounds):
        if not done[index]:
            results[index] = [here(item) for item in items[start:end]]
    return [result for chunk in results for result in chunk]


def _take(task_read: int) -> Iterator[int]:
    """Chunk numbers from the task pipe until it is empty."""
    while True:
        data = os.read(task_read, 2)
        if len(data) < 2:
            return
        yield int.from_bytes(data, "big")


def _spawn(
    task_read: int,
    bounds: list[tuple[int, int]],
    items: Sequence[Any],
    there: Callable[[Any], Any],
) -> _Child | None:
    result_read, result_write = os.pipe()
    with contextlib.suppress(OSError, ImportError):
        import fcntl

        fcntl.fcntl(result_write, _F_SETPIPE_SZ, _PIPE_BYTES)
    try:
        pid = os.fork()
    except OSError:
        os.close(result_read)
        os.close(result_write)
        return None
    if pid == 0:  # the child: compute, send, and leave without any cleanup of the parent's
        code = 1
        try:
            os.close(result_read)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            import pickle

            for index in _take(task_read):
                start, end = bounds[index]
                done = [there(item) for item in items[start:end]]
                frame = pickle.dumps((index, done), protocol=pickle.HIGHEST_PROTOCOL)
                _write_all(result_write, len(frame).to_bytes(_LENGTH, "big") + frame)
            code = 0
        finally:
            os._exit(code)
    os.close(result_write)
    os.set_blocking(result_read, False)
    return _Child(pid, result_read)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Child:
    """A forked child and the frames it has sent so far."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self.fd = fd
        self.buffer = bytearray()
        self.broken = False

    def frames(self, *, wait: bool) -> Iterator[tuple[int, list[Any]]]:
        """The complete frames received so far; with ``wait``, every frame until the
        child closes its pipe. Nothing more once a frame does not unpickle."""
        import pickle

        if wait:
            os.set_blocking(self.fd, True)
        while True:
            try:
                data = os.read(self.fd, _PIPE_BYTES)
            except BlockingIOError:
                data = None
            if data:
                self.buffer += data
            while not self.broken and len(self.buffer) >= _LENGTH:
                size = int.from_bytes(self.buffer[:_LENGTH], "big")
                if len(self.buffer) < _LENGTH + size:
                    break
                frame = bytes(self.buffer[_LENGTH : _LENGTH + size])
                del self.buffer[: _LENGTH + size]
                try:
                    index, packed = pickle.loads(frame)
                except Exception:
                    self.broken = True
                    break
                yield index, packed
            if not wait or not data:
                return

    def reap(self) -> None:
        os.close(self.fd)
        os.waitpid(self.pid, 0)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGTERM)
            os.waitpid(self.pid, 0)
        with contextlib.suppress(OSError):
            os.close(self.fd)
