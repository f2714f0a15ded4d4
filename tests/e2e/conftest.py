"""Helpers for end-to-end tests: real processes, real ports, real HTTP.

Processes are started as ``python -m service.cli ...`` with the repository on
PYTHONPATH (the package need not be installed) and a private instance folder.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive ports that are free right now."""
    for _ in range(200):
        first = random.randint(20000, 60000 - count)
        if all(_bindable(host, first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no block of {count} free ports found")


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_until_serving(proc: subprocess.Popen | None, url: str, *, what: str,
                       log: Path | None = None, timeout: float = 60.0,
                       deadline: float | None = None, status: int | None = None,
                       http: requests.Session | None = None, **params) -> requests.Response:
    """Ask ``url`` until the server answers (with ``status``, if given); fails at once when
    ``proc`` has exited (showing ``log``), or after ``timeout`` seconds (or at ``deadline``)."""
    deadline = deadline if deadline is not None else time.monotonic() + timeout
    get = (http or requests).get
    while True:
        if proc is not None:
            assert proc.poll() is None, (log.read_text() if log is not None
                                         else f"{what} exited ({proc.returncode})")
        try:
            response = get(url, params=params or None, timeout=2)
            if status is None or response.status_code == status:
                return response
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{what} did not come up"
        time.sleep(0.1)


def cli_env(instance: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout, a private instance folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ATLAS_") and k != "DATABASE_URL"}
    env.update(ATLAS_INSTANCE=str(instance), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *args]


def descendants(pid: int) -> set[int]:
    """All processes below ``pid`` (children, grandchildren...), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 is the parent pid; the command name (field 2) may contain spaces.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """True while a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class LineReader:
    """Reads a process's stdout in a thread so tests can wait for a line with a timeout."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(proc,), daemon=True)
        self._thread.start()

    def _pump(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float) -> list[str]:
        """Lines read so far once one contains ``text``; AssertionError on timeout or EOF."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} within {timeout} s:\n"
                                     + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"output ended without {text!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if text in line:
                return list(self.lines)

    def rest(self, timeout: float = 5) -> list[str]:
        self._thread.join(timeout)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return self.lines


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; any still running at the end are killed with their children."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            below = descendants(proc.pid)
            proc.kill()
            proc.wait()
            for pid in below:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if proc.stdout:
            proc.stdout.close()
