"""Which process on which host owns a run, and whether it is still alive.

Runs and temporary evaluations record their owner so that a later run can
tell the leftovers of a killed process (SIGKILL, out of memory, a lost
machine) from the work of a live one. Only owners on this host can be
checked; anything owned elsewhere is left alone.
"""

from __future__ import annotations

import os
import socket
import zlib


def host_id() -> str:
    """A short stable id of this host (CRC32 of its name, hex)."""
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def process_started(pid: int | None = None) -> float | None:
    """Start time of a process (seconds since the epoch), ``None`` if unknown."""
    try:
        import psutil

        return psutil.Process(pid or os.getpid()).create_time()
    except Exception:  # noqa: BLE001 - no psutil, no such process, no access
        return None


def process_alive(pid: int, started: float | None = None) -> bool:
    """Whether process ``pid`` of this host is running.

    A zombie (killed, not yet reaped by its parent) counts as gone. With
    ``started`` (from :func:`process_started`), a different process that
    reused the pid counts as gone too.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        pass
    if started is not None:
        now_started = process_started(pid)
        if now_started is not None and abs(now_started - started) > 1.0:
            return False
    return True
