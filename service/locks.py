"""The inter-process lock that dump builds and SPARQL mirror updates run under.

gunicorn runs several worker processes (each with threads), and a dump or the
mirror must be rebuilt by one of them at a time. ``fcntl.flock`` is used, not
``fcntl.lockf``: POSIX record locks (lockf/fcntl) belong to the process, so a
second thread of the same worker would be granted a lock it already holds, and
closing any descriptor of the file drops them. An flock belongs to the open
file description, so it also excludes other threads of one process. Either
way the kernel releases the lock when its holder dies, so a worker killed in
the middle of a build (gunicorn's timeout) never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["POLL_SECONDS", "exclusive"]

# How often a waiting caller tries again: flock cannot wait with a timeout.
POLL_SECONDS = 0.05


@contextmanager
def exclusive(path: str | os.PathLike, wait: float) -> Iterator[bool]:
    """An exclusive flock on ``path`` (created if missing), waiting up to ``wait``
    seconds (0: only try once, ``float("inf")``: until it is free); yields whether
    it was got. Released when the block ends."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    got = False
                    break
                time.sleep(POLL_SECONDS)
        try:
            yield got
        finally:
            if got:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
