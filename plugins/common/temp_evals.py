"""Temporary FiftyOne evaluations that survive their run only if it is killed.

Scoring and triage match labels with ``evaluate_detections`` under a
temporary key and delete it in a ``finally``; a run killed with SIGKILL
never gets there. The key names the host and process that created it, so
the next run on the same host can delete evaluations whose process is gone
(keys of other hosts are left alone: a live run elsewhere may own them).
"""

from __future__ import annotations

import os
import uuid

from . import owner

PREFIX = "stoplight_tmp_"


def new_key() -> str:
    """A fresh temporary evaluation key owned by this process."""
    return f"{PREFIX}{owner.host_id()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def delete_orphans(dataset) -> list[str]:
    """Deletes this host's temporary evaluations whose process has exited;
    returns their keys."""
    host = owner.host_id()
    gone = []
    dataset.reload()  # the killed run registered its key from another process
    for key in dataset.list_evaluations():
        if not key.startswith(PREFIX):
            continue
        parts = key[len(PREFIX):].split("_")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid != os.getpid() and not owner.process_alive(pid):
            dataset.delete_evaluation(key)
            gone.append(key)
    return gone
