"""service.locks: one holder at a time, whether the others are threads or processes,
and a holder that dies leaves no lock behind."""

from __future__ import annotations

import subprocess
import sys
import threading

from service.locks import exclusive

# Another worker: takes the lock, says so, and keeps it until it is killed.
_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


def _try(path) -> bool:
    with exclusive(path, 0) as got:
        return got


def test_a_held_lock_is_refused_to_other_threads_until_released(tmp_path):
    path = tmp_path / "build.lock"
    with exclusive(path, 0) as got:
        assert got
        seen = []
        thread = threading.Thread(target=lambda: seen.append(_try(path)))
        thread.start()
        thread.join()
        assert seen == [False]
    assert _try(path)


def test_the_lock_of_a_killed_process_is_released(tmp_path):
    path = tmp_path / "build.lock"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        assert not _try(path)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with exclusive(path, 30) as got:  # waits only if the kernel were slow to release it
        assert got
