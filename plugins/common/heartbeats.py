"""Heartbeats of running runs, stamped with the database's clock.

A run that is killed (SIGKILL, out of memory, a lost machine) or that ends
while the database is gone cannot record its end. Checking its process id
only works on the host that ran it, and not even there when the process
lives on (an App server runs many runs). So while a run is running, one
daemon thread per process stamps ``at`` of the run's heartbeat document
(``stoplight_runs.heartbeats``, ``_id`` = ``<dataset id>:<run key>``) every
:func:`interval` seconds with MongoDB's ``$currentDate``: the database's
clock, never a worker's. A run whose heartbeat is older than :func:`stale_after`
by the database's clock stopped without recording its end.

``STOPLIGHT_HEARTBEAT_S`` (default 30) and ``STOPLIGHT_RUN_STALE_S``
(default 300, at least three beats) set the two durations.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading

from .fo_private import dataset_id

logger = logging.getLogger(__name__)

COLLECTION = "stoplight_runs.heartbeats"

_lock = threading.Lock()
_active: set[str] = set()
_thread: threading.Thread | None = None
_wake = threading.Event()


def interval() -> float:
    return float(os.environ.get("STOPLIGHT_HEARTBEAT_S", 30))


def stale_after() -> float:
    return max(float(os.environ.get("STOPLIGHT_RUN_STALE_S", 300)), 3 * interval())


def _coll():
    import fiftyone.core.odm.database as fod

    return fod.get_db_conn()[COLLECTION]


def beat_id(dataset, run_key: str) -> str:
    return f"{dataset_id(dataset)}:{run_key}"


def start(dataset, run_key: str, **owner) -> None:
    """Stamps a run's first heartbeat and keeps stamping it until :func:`stop`."""
    hid = beat_id(dataset, run_key)
    _coll().update_one({"_id": hid}, {"$set": dict(owner), "$currentDate": {"at": True}}, upsert=True)
    global _thread
    with _lock:
        _active.add(hid)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="stoplight-heartbeats", daemon=True)
            _thread.start()
    _wake.set()  # the loop re-reads interval()


def stop(dataset, run_key: str, delete: bool = True) -> None:
    """Stops stamping a run's heartbeat (locally, always) and deletes its
    document (``delete``, when the database is there to ask)."""
    hid = beat_id(dataset, run_key)
    with _lock:
        _active.discard(hid)
    if delete:
        try:
            _coll().delete_one({"_id": hid})
        except Exception as e:  # noqa: BLE001 - the beat is stopped anyway
            logger.debug("Could not delete heartbeat %s: %s", hid, e)


def last_beats(dataset, run_keys) -> dict[str, datetime.datetime]:
    """``{run_key: time of its last heartbeat}`` of the runs that have one."""
    ids = {beat_id(dataset, k): k for k in run_keys}
    if not ids:
        return {}
    return {ids[d["_id"]]: d["at"] for d in _coll().find({"_id": {"$in": list(ids)}}, {"at": 1})}


def _loop() -> None:
    while True:
        _wake.wait(interval())
        _wake.clear()
        with _lock:
            ids = list(_active)
        if not ids:
            continue
        try:
            _coll().update_many({"_id": {"$in": ids}}, {"$currentDate": {"at": True}})
        except Exception as e:  # noqa: BLE001 - the database may be away; retried next beat
            logger.debug("Heartbeat failed: %s", e)
