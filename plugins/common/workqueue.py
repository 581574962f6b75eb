"""A work queue in MongoDB for runs split over several workers.

A *group* is one scale-out run on one dataset: its samples are cut into
chunks, stored as documents of the ``stoplight_workqueue`` collection of
FiftyOne's database (the one ``FIFTYONE_DATABASE_URI`` points at), shared by
every worker::

    {dataset, group, chunk, sample_ids, status, worker, lease_until, attempts}

``status`` is ``pending``, ``claimed`` or ``done``. A worker claims a chunk
atomically (``find_one_and_update``), so no two workers hold the same chunk;
it renews the lease while it works and marks the chunk ``done`` at the end.
A worker that dies (SIGKILL, power loss) stops renewing: once its lease
has expired another worker claims the chunk again. The work itself must
therefore be idempotent per sample (labeling uses ``overwrite=False``, so
a re-claimed chunk only labels what is still missing).

Functions take the dataset (or its name) and the group; there is no global
state besides the collection.
"""

from __future__ import annotations

import datetime
from typing import Sequence

COLLECTION = "stoplight_workqueue"


def _coll():
    import pymongo
    from fiftyone.core.odm.database import get_db_conn

    coll = get_db_conn()[COLLECTION]
    coll.create_index(
        [("dataset", pymongo.ASCENDING), ("group", pymongo.ASCENDING), ("chunk", pymongo.ASCENDING)],
        unique=True,
    )
    return coll


def _name(dataset) -> str:
    return dataset if isinstance(dataset, str) else dataset.name


def _now() -> datetime.datetime:
    # naive UTC: what pymongo returns by default, so values compare
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def create(dataset, group: str, sample_ids: Sequence[str], chunk_size: int = 64) -> bool:
    """Creates the queue of ``group``: ``sample_ids`` in chunks of ``chunk_size``.

    Idempotent: when the group already has chunks (another worker created
    it, or this is a resumed run), nothing changes, whatever ``sample_ids``
    is now. Two workers creating the same group at once are fine: chunk
    documents are unique per ``(dataset, group, chunk)`` and inserted
    unordered.

    Returns:
        whether this call created the group
    """
    import pymongo.errors

    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"Parameter 'chunk_size' must be a positive integer; got {chunk_size!r}")
    coll = _coll()
    name = _name(dataset)
    if coll.find_one({"dataset": name, "group": group}, {"_id": 1}) is not None:
        return False
    ids = [str(i) for i in sample_ids]
    docs = [
        dict(dataset=name, group=group, chunk=c, sample_ids=ids[i : i + chunk_size],
             status="pending", worker=None, lease_until=None, attempts=0)
        for c, i in enumerate(range(0, len(ids), chunk_size))
    ]
    if not docs:
        return False
    try:
        coll.insert_many(docs, ordered=False)
    except pymongo.errors.BulkWriteError as e:
        if any(err.get("code") != 11000 for err in e.details.get("writeErrors", [])):
            raise
        return False  # another worker created it first
    return True


def claim(dataset, group: str, worker: str, lease_s: float) -> dict | None:
    """Atomically claims a pending chunk, or a claimed one whose lease expired.

    Returns:
        the chunk document (``chunk``, ``sample_ids``, ...) now held by
        ``worker`` until ``lease_until``, or ``None`` if no chunk is free
        now (see :func:`progress` for whether any remain)
    """
    import pymongo

    now = _now()
    return _coll().find_one_and_update(
        {"dataset": _name(dataset), "group": group,
         "$or": [{"status": "pending"}, {"status": "claimed", "lease_until": {"$lt": now}}]},
        {"$set": {"status": "claimed", "worker": worker,
                  "lease_until": now + datetime.timedelta(seconds=lease_s)},
         "$inc": {"attempts": 1}},
        sort=[("chunk", pymongo.ASCENDING)],
        return_document=pymongo.ReturnDocument.AFTER,
    )


def renew(dataset, group: str, chunk: int, worker: str, lease_s: float) -> bool:
    """Extends ``worker``'s lease on ``chunk``.

    Returns:
        ``False`` if the worker no longer holds the chunk (its lease expired
        and another worker claimed it)
    """
    res = _coll().update_one(
        {"dataset": _name(dataset), "group": group, "chunk": chunk,
         "status": "claimed", "worker": worker},
        {"$set": {"lease_until": _now() + datetime.timedelta(seconds=lease_s)}},
    )
    return res.matched_count == 1


def done(dataset, group: str, chunk: int, worker: str) -> bool:
    """Marks ``chunk`` done if ``worker`` still holds it (else returns ``False``:
    the chunk's new holder finishes it)."""
    res = _coll().update_one(
        {"dataset": _name(dataset), "group": group, "chunk": chunk,
         "status": "claimed", "worker": worker},
        {"$set": {"status": "done", "lease_until": None}},
    )
    return res.matched_count == 1


def progress(dataset, group: str) -> dict:
    """Counts of the group's chunks and samples.

    Returns:
        ``{"chunks": n, "pending": n, "claimed": n, "done": n,
        "samples": n, "workers": {worker: chunks claimed or done},
        "next_expiry": earliest lease end of a claimed chunk or None}``
    """
    out = dict(chunks=0, pending=0, claimed=0, done=0, samples=0, workers={}, next_expiry=None)
    for doc in _coll().find({"dataset": _name(dataset), "group": group},
                            {"status": 1, "worker": 1, "lease_until": 1, "sample_ids": 1}):
        out["chunks"] += 1
        out[doc["status"]] += 1
        out["samples"] += len(doc["sample_ids"])
        if doc.get("worker"):
            out["workers"][doc["worker"]] = out["workers"].get(doc["worker"], 0) + 1
        if doc["status"] == "claimed" and doc.get("lease_until") is not None:
            if out["next_expiry"] is None or doc["lease_until"] < out["next_expiry"]:
                out["next_expiry"] = doc["lease_until"]
    return out


def chunks(dataset, group: str) -> list[dict]:
    """The group's chunk documents, in order (for reports and tests)."""
    return list(_coll().find({"dataset": _name(dataset), "group": group}, {"_id": 0}).sort("chunk", 1))


def delete(dataset, group: str) -> int:
    """Deletes the group's queue; returns the number of chunks deleted."""
    return _coll().delete_many({"dataset": _name(dataset), "group": group}).deleted_count
