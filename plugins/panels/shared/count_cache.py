"""Stored label counts (and next yellow labels) of a whole dataset, reused
while its samples are unchanged.

The verification panel asks for the counts of every label by class, queue
and review state (:func:`...common.label_cells.label_cells`, which the triage
report shares) and for the next yellow labels
(:func:`.queue_stats.next_yellow`) on every view change, drill-down click
and decision, mostly for the whole dataset. Both read every label (at 1M
labels on 2 cores: 0.54 s and 0.30 s as concurrent range aggregations,
:mod:`...common.split_scan`). So the whole dataset's results are stored, one
document per ``(dataset, label field, result)`` in the
``stoplight_panel_counts`` collection of FiftyOne's database, together with
a *token* of the samples they were computed from::

    {_id: "<dataset id>/<label field>/cells", token: {samples, last_modified_at},
     rows, cuts, buckets: [{samples, cells}, ...]}
    {_id: "<dataset id>/<label field>/next_yellow", token, entries, threshold}

A stored result is served as is only when the token read now is
identical: the number of samples and the largest ``last_modified_at`` of
any sample (both answered by indexes FiftyOne keeps on every dataset,
~1 ms). Every FiftyOne sample write (``set_values``, ``set_label_values``,
``tag_labels``, ``delete_labels``, ``save``, field renames and deletions,
adding samples) and every write of this project (``plugins/common/bulk.py``,
the review core) sets ``last_modified_at`` to the writer's clock; deleting
samples changes the count. Otherwise only what changed is read again: the
samples whose ``last_modified_at`` is newer than the stored token (an
index range). The counts are kept per ``_id`` range (``cuts``), and the
ranges holding such a sample, or holding fewer samples than stored
(deletions leave no trace), are counted again (:func:`label_cells_cached`);
the next yellow labels are brought up to date from those samples
(:func:`next_yellow_cached`). A review decision thus costs a look at the
ranges it touched, not at every label.

Why no stale count can be shown:

- the token is read *before* the aggregation, so a write during the
  aggregation makes the stored token older than the data: the next read
  reads that sample again;
- a result is served on its token alone only when, as it was stored, the
  newest write was at least ``settle_s`` seconds old by this machine's
  clock ("settled"). Two writes in the same millisecond, or a writer whose
  clock runs behind this one by less than ``settle_s``, can therefore not
  hide behind an unchanged maximum. A result computed sooner is stored
  too, with ``since`` = ``settle_s`` before now: the next look reads again
  every sample written after that, so the same writes cannot hide below
  it either (:func:`_store`). (A writer whose clock is more than
  ``settle_s`` behind could: keep machines' clocks in sync, as NTP does
  to milliseconds.)
- only the dataset itself (or its view without stages) is stored: any
  other view, grouped datasets and generated datasets (patches, frames,
  clips) always run the aggregation.

The database is reached through :mod:`...common.sample_changes` (the
token, the samples written since, counts and aggregations per range) and
:mod:`...common.stored_results` (the stored documents).

Writes that bypass FiftyOne (raw ``pymongo`` updates of sample documents
without ``last_modified_at``) are not seen: FiftyOne itself assumes they
do not happen.
"""

from __future__ import annotations

import bisect
import datetime

from ...review.decisions import label_list_path
from ...common import split_scan, stored_results
from ...common.db_clock import db_now
from ...common.fo_private import dataset_id
from ...common.label_cells import cells_from_groups, cells_pipeline, label_cells, merge_cells
from ...common.sample_changes import (
    aggregate_samples,
    change_token,
    changed_since,
    count_samples,
    existing_sample_ids,
)
from .queue_stats import next_yellow, rows_from_cells

COLLECTION = "stoplight_panel_counts"
#: a result is stored only when the newest sample write is this old (s)
SETTLE_S = 5.0
#: rows above this are not stored (the document limit is 16 MB)
MAX_STORED_ROWS = 50_000
#: the stored counts are kept per _id range of about this many samples
BUCKET_SAMPLES = 1_500
#: ... and in at most this many ranges
MAX_BUCKETS = 128
#: open yellow labels stored for the next-yellow list
NEXT_DEPTH = 200
#: more changed samples than this: the next-yellow list is computed again
MAX_DELTA_SAMPLES = 10_000


def count_labels_cached(sample_collection, label_field: str, settle_s: float = SETTLE_S) -> list[dict]:
    """:func:`.queue_stats.count_labels`, served from the stored counts when
    ``sample_collection`` is a whole dataset whose samples did not change
    since they were counted.

    Args:
        sample_collection: a dataset or view
        label_field: a label list field, e.g. ``"autolabels"``
        settle_s: a result is served on its token alone only when, as it
            was stored, the newest sample write was at least this many
            seconds old (see the module docstring)

    Returns:
        the rows of :func:`.queue_stats.count_labels`, equal to what it
        returns now

    Raises:
        ValueError: if ``label_field`` is not a label list field, or
            ``settle_s`` is negative
    """
    return rows_from_cells(label_cells_cached(sample_collection, label_field, settle_s))


def label_cells_cached(sample_collection, label_field: str, settle_s: float = SETTLE_S) -> list[dict]:
    """:func:`...common.label_cells.label_cells` (the counts and the triage
    report's sums in one aggregation) of a whole dataset, stored and
    brought up to date by ``_id`` range.

    The stored cells are kept per range of about :data:`BUCKET_SAMPLES`
    samples (at most :data:`MAX_BUCKETS` ranges). While the token holds,
    the stored total is served; after writes only the ranges holding a
    sample written since the stored ``since`` (``last_modified_at`` newer,
    an index range; see :func:`_store`) or whose number of samples changed
    (deletions) are counted again, concurrently, and the total is their
    sum: a review decision on a few labels costs a few ranges, not every
    label. When more than half the ranges changed, or one range has grown
    past four times its share (samples added), all are counted again on
    new ranges. Other views always run the aggregation.

    Raises:
        ValueError: as :func:`count_labels_cached`
    """
    _check_settle(settle_s)
    label_list_path(sample_collection, label_field)
    dataset = split_scan.whole_dataset(sample_collection)
    if dataset is None:
        return label_cells(sample_collection, label_field)
    key = f"{dataset_id(dataset)}/{label_field}/cells"
    # read before the samples: a write meanwhile leaves an older token
    token = change_token(dataset)
    head = stored_results.read(COLLECTION, key, {"token": 1, "settled": 1, "rows": 1})
    if head is not None and head.get("settled") and head.get("token") == token:
        return head["rows"]
    stored = stored_results.read(COLLECTION, key) if head is not None else None
    cuts, buckets = None, None
    if stored is not None and _delta_base(stored, token, "buckets"):
        cuts = stored["cuts"]
        buckets = _update_buckets(dataset, label_field, stored, token)
    if buckets is None:
        cuts = split_scan.id_cuts(dataset, _num_buckets(token["samples"]))
        buckets = _count_buckets(dataset, label_field, cuts, range(len(cuts) + 1), [None] * (len(cuts) + 1))
    rows = merge_cells(_cell(c) for b in buckets for c in b["cells"])
    if sum(len(b["cells"]) for b in buckets) <= MAX_STORED_ROWS:
        _store(key, token, settle_s, rows=rows, cuts=cuts, buckets=buckets)
    return rows


def _num_buckets(num_samples: int) -> int:
    return max(1, min(MAX_BUCKETS, num_samples // BUCKET_SAMPLES))


def _count_buckets(dataset, label_field: str, cuts: list, which, buckets: list) -> list:
    """``buckets`` with the ranges ``which`` counted again (concurrently):
    ``{"samples", "cells"}`` per range, cells as compact lists."""
    which = list(which)
    matches = split_scan.range_matches(cuts)
    pipeline = cells_pipeline(label_field)

    def count(i):
        # samples first: one deleted meanwhile is then seen by the next look
        samples = count_samples(dataset, matches[i])
        cells = merge_cells(cells_from_groups(aggregate_samples(dataset, [{"$match": matches[i]}, *pipeline])))
        return dict(samples=samples, cells=[_compact(c) for c in cells])

    out = list(buckets)
    for i, b in zip(which, split_scan.executor().map(count, which)):
        out[i] = b
    return out


def _update_buckets(dataset, label_field: str, stored: dict, token: dict) -> list | None:
    """The stored ranges, those changed since the stored token counted
    again; None when more than half of them (or more than
    :data:`MAX_DELTA_SAMPLES` samples) changed."""
    cuts, buckets = stored["cuts"], stored["buckets"]
    # samples added after the cuts all land in the last range: past four
    # times a range's share it would be counted on every look
    if max(b["samples"] for b in buckets) > 4 * max(BUCKET_SAMPLES, token["samples"] / MAX_BUCKETS):
        return None
    changed = changed_since(dataset, stored["since"], MAX_DELTA_SAMPLES, with_created=True)
    if changed is None:
        return None
    dirty = {bisect.bisect_right(cuts, d["_id"]) for d in changed}
    # deletions leave no last_modified_at: a range that lost samples is
    # dirty. FiftyOne stamps created_at on every added sample, so unless the
    # samples now are those stored plus those added since, each range's
    # count is checked
    added = sum(1 for d in changed if d.get("created_at") is not None and d["created_at"] > stored["since"])
    if token["samples"] != stored["token"]["samples"] + added:
        matches = split_scan.range_matches(cuts)
        for i, b in enumerate(buckets):
            if i not in dirty and count_samples(dataset, matches[i]) != b["samples"]:
                dirty.add(i)
    if len(dirty) > len(buckets) // 2:
        return None
    return _count_buckets(dataset, label_field, cuts, sorted(dirty), buckets)


_CELL_KEYS = ("label", "queue", "review", "n", "p_sum", "p_n", "p_min", "bulk")


def _compact(cell: dict) -> list:
    return [cell.get(k, False) if k == "bulk" else cell[k] for k in _CELL_KEYS]


def _cell(compact: list) -> dict:
    # stored before the bulk flag: 7 values, no bulk decision told apart
    return dict(zip(_CELL_KEYS, compact))


def next_yellow_cached(
    sample_collection, label_field: str, limit: int = 10, settle_s: float = SETTLE_S
) -> list[dict]:
    """:func:`.queue_stats.next_yellow`, kept up to date from the samples
    written since it was stored.

    For a whole dataset the stored list holds the first :data:`NEXT_DEPTH`
    open yellow labels: every open yellow label up to a *threshold*, the
    ``(review_rank, label id)`` of the last one. After writes only the
    samples whose ``last_modified_at`` is newer than the stored ``since``
    are read again (an index range; see :func:`_store`): their stored entries are replaced by their
    open yellow labels up to the threshold, and entries of deleted samples
    are dropped. The result is exact while at least ``limit`` entries
    remain; otherwise, or when more than :data:`MAX_DELTA_SAMPLES` samples
    changed (a re-triage, accept-all-green), the list is computed again.
    Other views always run the query.

    Raises:
        ValueError: as :func:`.queue_stats.next_yellow` and
            :func:`count_labels_cached`
    """
    _check_settle(settle_s)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"Parameter 'limit' must be an integer >= 1; got {limit!r}")
    label_list_path(sample_collection, label_field)
    dataset = split_scan.whole_dataset(sample_collection)
    if dataset is None:
        return next_yellow(sample_collection, label_field, limit)
    key = f"{dataset_id(dataset)}/{label_field}/next_yellow"
    # read before the samples: a write meanwhile leaves an older token
    token = change_token(dataset)
    stored = stored_results.read(COLLECTION, key)
    if stored is not None and stored.get("settled") and stored.get("token") == token:
        entries = stored["entries"]
        if stored.get("threshold") is None or len(entries) >= limit:
            return [_row(e) for e in entries[:limit]]
    entries = None
    if stored is not None and _delta_base(stored, token, "entries"):
        entries = _apply_delta(dataset, label_field, stored)
    if entries is not None and (stored.get("threshold") is None or len(entries) >= limit):
        _store(key, token, settle_s, entries=entries, threshold=stored.get("threshold"))
        return [_row(e) for e in entries[:limit]]
    depth = max(NEXT_DEPTH, limit)
    rows = next_yellow(dataset, label_field, depth)
    entries = [_entry(r) for r in rows]
    threshold = [entries[-1]["rank"], entries[-1]["label_id"]] if len(entries) == depth else None
    _store(key, token, settle_s, entries=entries, threshold=threshold)
    return rows[:limit]


def forget_counts(dataset) -> int:
    """Deletes the stored counts and next yellow labels of ``dataset`` (all
    label fields).

    Never needed for correctness (a stale count is never used); frees the
    documents, e.g. when a dataset is deleted.

    Returns:
        the number of documents deleted
    """
    return stored_results.forget(COLLECTION, f"{dataset_id(dataset)}/")


def _check_settle(settle_s) -> None:
    if isinstance(settle_s, bool) or not isinstance(settle_s, (int, float)) or settle_s < 0:
        raise ValueError(f"Parameter 'settle_s' must be a number >= 0; got {settle_s!r}")


def _store(key: str, token: dict, settle_s: float, **fields) -> None:
    """Stores ``fields`` under ``key`` with ``token`` and ``since``, the
    ``last_modified_at`` after which samples are read again next time.

    Once the newest write is ``settle_s`` old the result is *settled*: the
    token alone vouches for it (served as is while it holds) and ``since``
    is the newest write. Before that, a write landing while the result was
    computed could carry the same millisecond as the newest one (or an
    older one, from a clock behind this one): so the result is not
    served on its token, and ``since`` is ``settle_s`` before now, which
    makes the next look read again every sample written since then."""
    newest = token["last_modified_at"]
    now = _now()
    settled = newest is None or (now - newest).total_seconds() >= settle_s
    since = newest if settled else min(newest, now - datetime.timedelta(seconds=settle_s))
    # storing only saves time later: a failure (e.g. a read-only database
    # user) is logged by stored_results
    stored_results.write(COLLECTION, key, dict(token=token, settled=settled, since=since, computed_at=now, **fields))


def _delta_base(stored: dict, token: dict, part: str) -> bool:
    """Whether a stored result can be brought up to date: it has ``part``
    and a ``since``, and the dataset has samples (an empty dataset's token
    has no newest write)."""
    return part in stored and stored.get("since") is not None and token["last_modified_at"] is not None


def _apply_delta(dataset, label_field: str, stored: dict) -> list[dict] | None:
    """The stored next-yellow entries brought up to date with the samples
    written since (see :func:`next_yellow_cached`); None when more than
    :data:`MAX_DELTA_SAMPLES` samples changed."""
    from .queue_stats import open_yellow_expr

    changed = changed_since(dataset, stored["since"], MAX_DELTA_SAMPLES)
    if changed is None:
        return None
    changed_set = set(changed)
    kept = [e for e in stored["entries"] if e["sample_id"] not in changed_set]
    # deletions leave no last_modified_at: entries of gone samples are dropped
    existing = existing_sample_ids(dataset, list({e["sample_id"] for e in kept}))
    entries = [e for e in kept if e["sample_id"] in existing]
    if changed:
        list_path = label_list_path(dataset, label_field)
        pipeline = [
            {"$match": {"_id": {"$in": changed}}},
            {"$project": {"_l": {"$filter": {"input": f"${list_path}", "cond": open_yellow_expr("$$this")}}}},
            {"$unwind": "$_l"},
        ]
        threshold = stored.get("threshold")
        for d in aggregate_samples(dataset, pipeline):
            lab = d["_l"]
            e = dict(rank=lab["review_rank"], label_id=lab["_id"], sample_id=d["_id"],
                     label=lab.get("label"), p_correct=lab.get("p_correct"))
            if threshold is None or (e["rank"], e["label_id"]) <= tuple(threshold):
                entries.append(e)
    entries.sort(key=lambda e: (e["rank"], e["label_id"]))
    return entries


def _entry(row: dict) -> dict:
    """A next-yellow row as stored (ids as ObjectIds: they sort as MongoDB sorts)."""
    from bson import ObjectId

    return dict(rank=row["rank"], label_id=ObjectId(row["label_id"]), sample_id=ObjectId(row["sample_id"]),
                label=row["label"], p_correct=row["p_correct"])


def _row(entry: dict) -> dict:
    return dict(rank=int(entry["rank"]), label_id=str(entry["label_id"]), sample_id=str(entry["sample_id"]),
                label=entry.get("label"), p_correct=entry.get("p_correct"))


def _now() -> datetime.datetime:
    # the database's clock: Stoplight stamps last_modified_at with it
    # (naive UTC, as FiftyOne stores it), so "how long ago" needs no
    # agreement between this server's clock and the writers'
    return db_now()
