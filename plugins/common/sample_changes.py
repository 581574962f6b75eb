"""Which samples of a dataset changed since a moment: the queries behind
results that are stored and brought up to date instead of computed again
(the panels' counts, :mod:`plugins.panels.shared.count_cache`).

FiftyOne stamps ``last_modified_at`` on every sample write and
``created_at`` on every added sample, and indexes both; Stoplight's own
writes (:mod:`.bulk`, the review core) stamp ``last_modified_at`` with the
database clock (:mod:`.db_clock`). Deleting samples leaves no stamp: it
shows only in the number of samples (:func:`count_samples`).

Every function reads the dataset's sample documents directly (FiftyOne
has no public query for them); a view's stages are not applied.
"""

from __future__ import annotations

from typing import Iterable

from .fo_private import sample_collection


def change_token(dataset) -> dict:
    """What tells whether the samples changed: their number and the newest
    ``last_modified_at`` (both answered by FiftyOne's default indexes,
    ~1 ms).

    Returns:
        ``{"samples": int, "last_modified_at": datetime | None}`` (None
        for an empty dataset)
    """
    coll = sample_collection(dataset)
    with coll.find({}, {"last_modified_at": 1}).sort("last_modified_at", -1).limit(1) as cursor:
        newest = next(cursor, None)
    return dict(
        samples=coll.count_documents({}),
        last_modified_at=None if newest is None else newest.get("last_modified_at"),
    )


def changed_since(dataset, since, limit: int, with_created: bool = False) -> list | None:
    """The samples written after ``since`` (``last_modified_at`` newer: an
    index range).

    Args:
        dataset: a dataset
        since: a naive UTC datetime
        limit: more changed samples than this answer None
        with_created: return ``{"_id", "created_at"}`` documents instead
            of ids (``created_at`` tells added samples from written ones)

    Returns:
        their ids (or documents), or None when more than ``limit``
    """
    fields = {"_id": 1, "created_at": 1} if with_created else {"_id": 1}
    query = {"last_modified_at": {"$gt": since}}
    with sample_collection(dataset).find(query, fields).limit(limit + 1) as cursor:
        changed = list(cursor) if with_created else [d["_id"] for d in cursor]
    return None if len(changed) > limit else changed


def count_samples(dataset, match: dict | None = None) -> int:
    """The number of samples matching the query ``match`` (all without)."""
    return sample_collection(dataset).count_documents(match or {})


def aggregate_samples(dataset, pipeline: list[dict]) -> Iterable[dict]:
    """The results of ``pipeline`` run on the dataset's sample documents
    (no view stages: put a ``$match`` first to use an index)."""
    return sample_collection(dataset).aggregate(pipeline)


def existing_sample_ids(dataset, sample_ids: list) -> set:
    """Those of ``sample_ids`` (ObjectIds) still in the dataset."""
    if not sample_ids:
        return set()
    return {d["_id"] for d in sample_collection(dataset).find({"_id": {"$in": list(sample_ids)}}, {"_id": 1})}
