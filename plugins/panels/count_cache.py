"""Stored label counts (and next yellow labels) of a whole dataset, reused
while its samples are unchanged.

:func:`.queue_stats.count_labels` reads every label: one aggregation that
costs 0.75-1.4 s at 1M labels on a shared 2-core machine (projecting only
the needed attributes or grouping on plain arrays did not come close to
0.5 s; see ``benchmarks/bench_panels.py --variants``). The verification panel asks for the same
counts on every view change, drill-down click and decision, mostly for the
whole dataset; the next yellow labels (:func:`.queue_stats.next_yellow`,
a sorted ``$limit`` over every label, 1.7-2.8 s at 1M) likewise. So the whole
dataset's results are stored, one document per ``(dataset, label field,
result)`` in the ``stoplight_panel_counts`` collection of FiftyOne's
database, together with a *token* of the samples they were computed from::

    {_id: "<dataset id>/<label field>/counts", token: {samples, last_modified_at}, rows}

A stored count is used only when the token read now is identical: the
number of samples and the largest ``last_modified_at`` of any sample (both
answered by indexes FiftyOne keeps on every dataset, ~1 ms). Every FiftyOne
sample write (``set_values``, ``set_label_values``, ``tag_labels``,
``delete_labels``, ``save``, field renames and deletions, adding samples)
and every write of this project (``plugins/common/bulk.py``, the review
core) sets ``last_modified_at`` to the writer's clock; deleting samples
changes the count. Otherwise the aggregation runs and its result is stored.

Why no stale count can be shown:

- the token is read *before* the aggregation, so a write during the
  aggregation makes the stored token older than the data: the next read
  recomputes;
- a result is stored only when the newest write is at least ``settle_s``
  seconds old by this machine's clock. Two writes in the same millisecond,
  or a writer whose clock runs behind this one by less than ``settle_s``,
  can therefore not hide behind an unchanged maximum. (A writer whose clock
  is more than ``settle_s`` behind could: keep machines' clocks in sync,
  as NTP does to milliseconds.)
- only the dataset itself (or its view without stages) is stored: any
  other view, grouped datasets and generated datasets (patches, frames,
  clips) always run the aggregation.

Writes that bypass FiftyOne (raw ``pymongo`` updates of sample documents
without ``last_modified_at``) are not seen: FiftyOne itself assumes they
do not happen.
"""

from __future__ import annotations

import datetime
import logging

import pymongo.errors

from ..review.decisions import label_list_path
from .queue_stats import count_labels, next_yellow

logger = logging.getLogger(__name__)

COLLECTION = "stoplight_panel_counts"
#: a result is stored only when the newest sample write is this old (s)
SETTLE_S = 5.0
#: rows above this are not stored (the document limit is 16 MB)
MAX_STORED_ROWS = 50_000


def count_labels_cached(sample_collection, label_field: str, settle_s: float = SETTLE_S) -> list[dict]:
    """:func:`.queue_stats.count_labels`, served from the stored counts when
    ``sample_collection`` is a whole dataset whose samples did not change
    since they were counted.

    Args:
        sample_collection: a dataset or view
        label_field: a label list field, e.g. ``"autolabels"``
        settle_s: store a new result only when the newest sample write is at
            least this many seconds old (see the module docstring)

    Returns:
        the rows of :func:`.queue_stats.count_labels`, equal to what it
        returns now

    Raises:
        ValueError: if ``label_field`` is not a label list field, or
            ``settle_s`` is negative
    """
    return _cached(sample_collection, label_field, "counts", lambda sc: count_labels(sc, label_field), settle_s)


def next_yellow_cached(
    sample_collection, label_field: str, limit: int = 10, settle_s: float = SETTLE_S
) -> list[dict]:
    """:func:`.queue_stats.next_yellow`, stored and served like
    :func:`count_labels_cached` (the same token: any write retires it).

    Raises:
        ValueError: as :func:`.queue_stats.next_yellow` and
            :func:`count_labels_cached`
    """
    return _cached(
        sample_collection, label_field, f"next_yellow_{limit}",
        lambda sc: next_yellow(sc, label_field, limit), settle_s,
    )


def forget_counts(dataset) -> int:
    """Deletes the stored counts and next yellow labels of ``dataset`` (all
    label fields).

    Never needed for correctness (a stale count is never used); frees the
    documents, e.g. when a dataset is deleted.

    Returns:
        the number of documents deleted
    """
    prefix = f"{dataset._doc.id}/"
    return _coll().delete_many({"_id": {"$regex": f"^{prefix}"}}).deleted_count


def _cached(sample_collection, label_field: str, what: str, compute, settle_s: float) -> list[dict]:
    """``compute(sample_collection)``, or its stored result when that was
    computed from the same samples of the whole dataset (module docstring)."""
    if isinstance(settle_s, bool) or not isinstance(settle_s, (int, float)) or settle_s < 0:
        raise ValueError(f"Parameter 'settle_s' must be a number >= 0; got {settle_s!r}")
    label_list_path(sample_collection, label_field)
    dataset = _whole_dataset(sample_collection)
    if dataset is None:
        return compute(sample_collection)
    key = f"{dataset._doc.id}/{label_field}/{what}"
    coll = _coll()
    # read before computing: a write meanwhile leaves an older token
    token = _token(dataset)
    stored = coll.find_one({"_id": key})
    if stored is not None and stored.get("token") == token:
        return stored["rows"]
    rows = compute(dataset)
    newest = token["last_modified_at"]
    settled = newest is None or (_now() - newest).total_seconds() >= settle_s
    try:
        if settled and len(rows) <= MAX_STORED_ROWS:
            coll.replace_one({"_id": key}, {"token": token, "rows": rows, "computed_at": _now()}, upsert=True)
        elif stored is not None:
            coll.delete_one({"_id": key, "token": stored.get("token")})
    except pymongo.errors.PyMongoError as e:
        # storing only saves time later (e.g. a read-only database user)
        logger.warning("Panel results '%s' not stored: %s", key, e)
    return rows


def _whole_dataset(sample_collection):
    """The dataset when ``sample_collection`` is all of a plain dataset, else None."""
    import fiftyone.core.dataset as fod
    import fiftyone.core.view as fov

    if isinstance(sample_collection, fod.Dataset):
        dataset = sample_collection
    elif type(sample_collection) is fov.DatasetView and not sample_collection._stages:
        dataset = sample_collection._dataset
    else:
        return None
    # grouped datasets show one slice, generated ones are views in disguise
    if dataset.media_type == "group" or getattr(dataset, "_is_generated", False):
        return None
    return dataset


def _token(dataset) -> dict:
    """The number of samples and the newest ``last_modified_at`` (both from
    FiftyOne's default indexes)."""
    coll = dataset._sample_collection
    with coll.find({}, {"last_modified_at": 1}).sort("last_modified_at", -1).limit(1) as cursor:
        newest = next(cursor, None)
    return dict(
        samples=coll.count_documents({}),
        last_modified_at=None if newest is None else newest.get("last_modified_at"),
    )


def _coll():
    from fiftyone.core.odm.database import get_db_conn

    return get_db_conn()[COLLECTION]


def _now() -> datetime.datetime:
    # naive UTC, as FiftyOne stores last_modified_at
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
