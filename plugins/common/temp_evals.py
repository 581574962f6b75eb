"""Temporary FiftyOne evaluations that survive their run only if it is killed.

Scoring and triage match labels with ``evaluate_detections`` under a
temporary key and delete it in a ``finally``; a run killed with SIGKILL
never gets there. The key names the host and process that created it, so
the next run on the same host can delete evaluations whose process is gone
(keys of other hosts are left alone: a live run elsewhere may own them).
"""

from __future__ import annotations

import os
import socket
import uuid
import zlib

PREFIX = "stoplight_tmp_"


def _host() -> str:
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def new_key() -> str:
    """A fresh temporary evaluation key owned by this process."""
    return f"{PREFIX}{_host()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def delete_orphans(dataset) -> list[str]:
    """Deletes this host's temporary evaluations whose process has exited;
    returns their keys."""
    host = _host()
    gone = []
    dataset.reload()  # the killed run registered its key from another process
    for key in dataset.list_evaluations():
        if not key.startswith(PREFIX):
            continue
        parts = key[len(PREFIX):].split("_")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid != os.getpid() and not _alive(pid):
            dataset.delete_evaluation(key)
            gone.append(key)
    return gone
