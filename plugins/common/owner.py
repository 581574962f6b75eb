"""Which process on which host owns a run, and whether it is still alive.

Runs and temporary evaluations record their owner so that a later run can
tell the leftovers of a killed process (SIGKILL, out of memory, a lost
machine) from the work of a live one. Only owners on this host (same
kernel boot and PID namespace: :func:`host_id`) can be checked by process
id; anything owned elsewhere is left to the run's heartbeat
(:mod:`.heartbeats`).
"""

from __future__ import annotations

import hashlib
import os
import socket
import zlib


def host_id() -> str:
    """An id of the process-id space this process lives in (16 hex digits).

    Process ids can only be checked by a process that sees the same ones:
    the same kernel boot and the same PID namespace. Containers often share
    a host name (or get the same one), and a hash of the name alone made a
    run in another container look like a dead process of this host. So the
    id hashes the host name with the machine id, the kernel's boot id and
    the inode of this process's PID namespace.
    """
    parts = [socket.gethostname()]
    for path in ("/etc/machine-id", "/proc/sys/kernel/random/boot_id"):
        try:
            with open(path) as f:
                parts.append(f.read().strip())
        except OSError:
            parts.append("")
    try:
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        parts.append("")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def legacy_host_id() -> str:
    """The id older records carry: CRC32 of the host name (hex)."""
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
