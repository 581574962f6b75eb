"""One aggregation over a whole dataset, run as a few concurrent ones over
``_id`` ranges.

MongoDB runs each aggregation on one core. The panels' counts read every
label of the dataset (an ``$unwind`` + ``$group`` over 1M labels takes
0.7 s on one core), so on a large dataset the pipeline runs once per
``_id`` range, the ranges at once on a few threads, and the caller merges
the partial results (sums of counts, the best rows of sorted limits).

A range ``$match`` put first uses the ``_id`` index. It cannot change
what the pipeline sees when every stage of the view looks at one sample at
a time (matches, label filters, field selections: the App's sidebar
filters); a view with any other stage (limits, skips, takes, groups,
similarity sorts) runs as one aggregation, as does a grouped or generated
dataset (:func:`splittable`).
"""

from __future__ import annotations

import concurrent.futures
import os
import threading

import pymongo.errors

from . import fo_private

#: datasets with fewer samples run one aggregation (~0.1 s at 20k samples)
MIN_SAMPLES = 20_000
#: at most this many concurrent range aggregations
MAX_PARTS = 4

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def whole_dataset(sample_collection):
    """The dataset when ``sample_collection`` is all of a plain dataset
    (the dataset, or a view without stages), else None. Grouped datasets
    show one slice and generated ones are views in disguise: None."""
    import fiftyone.core.dataset as fod
    import fiftyone.core.view as fov

    if isinstance(sample_collection, fod.Dataset):
        dataset = sample_collection
    elif type(sample_collection) is fov.DatasetView and not fo_private.stage_objects(sample_collection):
        dataset = fo_private.view_dataset(sample_collection)
    else:
        return None
    if dataset.media_type == "group" or fo_private.is_generated(dataset):
        return None
    return dataset


#: view stages that look at one sample at a time (a range of samples
#: gives the same samples out, in any order)
PER_SAMPLE_STAGES = frozenset({
    "Exclude", "ExcludeFields", "ExcludeLabels", "Exists", "FilterField", "FilterLabels", "Match",
    "MatchLabels", "MatchTags", "Select", "SelectFields", "SelectLabels", "SortBy",
})


def splittable(sample_collection):
    """The dataset of ``sample_collection`` when its samples can be read in
    ``_id`` ranges: a plain dataset, or a view of one whose stages are all
    in :data:`PER_SAMPLE_STAGES`; else None."""
    import fiftyone.core.view as fov

    dataset = whole_dataset(sample_collection)
    if dataset is not None:
        return dataset
    if type(sample_collection) is not fov.DatasetView:
        return None
    if any(type(stage).__name__ not in PER_SAMPLE_STAGES for stage in fo_private.stage_objects(sample_collection)):
        return None
    return whole_dataset(fo_private.view_dataset(sample_collection))


def default_parts() -> int:
    """Concurrent ranges: the machine's cores, at most :data:`MAX_PARTS`."""
    return max(1, min(MAX_PARTS, os.cpu_count() or 1))


def id_ranges(dataset, parts: int) -> list[dict]:
    """``$match`` filters of ``parts`` consecutive ``_id`` ranges holding
    about the same number of samples, together all of them (the first and
    last open-ended, so samples added meanwhile are in one of them)."""
    return range_matches(id_cuts(dataset, parts))


def id_cuts(dataset, parts: int) -> list:
    """The ``parts - 1`` sample ids that cut the dataset's ``_id`` order into
    ``parts`` ranges of about equal size (fewer when there are fewer
    samples). One walk of the ``_id`` index: ~10 ms per 100k samples."""
    coll = fo_private.sample_collection(dataset)
    n = coll.estimated_document_count()
    cuts: list = []
    done = 0
    for pos in sorted({n * i // parts for i in range(1, parts)} - {0}):
        # each cut skips from the previous one: the index is walked once
        query = {"_id": {"$gt": cuts[-1]}} if cuts else {}
        skip = pos - done - (1 if cuts else 0)
        with coll.find(query, {"_id": 1}).sort("_id", 1).skip(max(0, skip)).limit(1) as cursor:
            doc = next(cursor, None)
        if doc is None:
            break
        cuts.append(doc["_id"])
        done = pos
    return cuts


def range_matches(cuts: list) -> list[dict]:
    """``$match`` filters of the ranges between ``cuts``: ``_id < cuts[0]``,
    ``cuts[i - 1] <= _id < cuts[i]``, ..., ``_id >= cuts[-1]`` (range ``i``
    holds the ids that ``bisect.bisect_right(cuts, id)`` maps to ``i``)."""
    bounds = [None, *cuts, None]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        cond = {}
        if lo is not None:
            cond["$gte"] = lo
        if hi is not None:
            cond["$lt"] = hi
        out.append({"_id": cond} if cond else {})
    return out


def map_ranges(sample_collection, pipeline: list[dict], matches: list[dict]) -> list[list[dict]]:
    """The results of ``pipeline`` on each ``_id`` range of
    ``sample_collection`` (:func:`splittable`; ``matches`` from
    :func:`range_matches`), run concurrently, in order."""
    coll = fo_private.sample_collection(fo_private.view_dataset(sample_collection))
    view_stages = fo_private.view_pipeline(sample_collection)

    def run(match):
        return list(coll.aggregate([{"$match": match}, *view_stages, *pipeline], allowDiskUse=True))

    return list(executor().map(run, matches))


def aggregate(sample_collection, pipeline: list[dict], parts: int | None = None) -> list[dict]:
    """The results of ``pipeline`` on ``sample_collection``: one aggregation,
    or, on a dataset (or a view of per-sample stages, :func:`splittable`)
    of at least :data:`MIN_SAMPLES` samples, one per ``_id`` range run
    concurrently, their results concatenated (the caller merges them: each
    range's groups, sorts and limits are its own).

    Args:
        sample_collection: a dataset or view
        pipeline: aggregation stages after the collection's own
        parts: number of ranges (default :func:`default_parts`); 1 never splits

    Raises:
        ValueError: if ``parts`` is not an integer >= 1
    """
    if parts is None:
        parts = default_parts()
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"Parameter 'parts' must be an integer >= 1; got {parts!r}")
    dataset = splittable(sample_collection) if parts > 1 else None
    if dataset is None or fo_private.sample_collection(dataset).estimated_document_count() < MIN_SAMPLES:
        return list(fo_private.aggregate_view(sample_collection, pipeline))
    ranges = id_ranges(dataset, parts)
    if len(ranges) == 1:
        return list(fo_private.aggregate_view(sample_collection, pipeline))
    try:
        return [row for part in map_ranges(sample_collection, pipeline, ranges) for row in part]
    except pymongo.errors.OperationFailure:
        # a stage MongoDB wants first ($text in a match): one aggregation
        return list(fo_private.aggregate_view(sample_collection, pipeline))


def executor() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that run range aggregations (:func:`default_parts`)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            # one thread per core: more only queue up inside MongoDB
            _pool = concurrent.futures.ThreadPoolExecutor(default_parts(), thread_name_prefix="stoplight-scan")
        return _pool
