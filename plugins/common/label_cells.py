"""Label counts per (class, queue, review state): one MongoDB aggregation.

The triage report and the panels' counts read the same cells: labels per
class, stored queue and review state (and whether the decision was made in
bulk), with the sums of their P(correct). The aggregation runs over the
collection's own pipeline, so views, label filters and the App's sidebar
filters apply.
"""

from __future__ import annotations

from . import split_scan
from .label_vocab import BULK_ATTR, HUMAN_DECISIONS


def label_cells(sample_collection, label_field: str, parts: int | None = None) -> list[dict]:
    """Labels per (class, queue, review state) with P(correct) sums, from one
    MongoDB aggregation over the collection's own pipeline (views and
    filters apply); on a large whole dataset one per ``_id`` range, run
    concurrently and summed (:func:`.split_scan.aggregate`).

    Args:
        sample_collection: a dataset or view
        label_field: a label list field, e.g. ``"autolabels"``
        parts: concurrent ``_id`` ranges on a large whole dataset (default:
            the machine's cores, at most 4; 1: one aggregation)

    Returns:
        ``{label, queue, review, bulk, n, p_sum, p_n, p_min}`` rows:
        ``queue`` as stored (None when missing or not a string), ``review``
        ``accepted``, ``rejected``, ``corrected`` or ``pending``, ``bulk``
        whether the decision was made in bulk (``review_bulk``)
    """
    docs = split_scan.aggregate(sample_collection, cells_pipeline(label_field), parts=parts)
    return merge_cells(cells_from_groups(docs))


def cells_pipeline(label_field: str) -> list[dict]:
    """The aggregation stages of :func:`label_cells` (one group per stored
    class, queue and review value)."""
    lab = "$_l.detections"
    return [
        # project the list alone first: only labels travel through the unwind
        {"$project": {"_l": f"${label_field}"}},
        {"$unwind": lab},
        # raw values grouped (review states are folded in Python, a few
        # rows): an expression per label costs ~0.1 s per 1M labels
        {"$group": {
            "_id": {"l": f"{lab}.label", "q": f"{lab}.queue", "r": f"{lab}.review", "b": f"{lab}.{BULK_ATTR}"},
            "n": {"$sum": 1},
            "p_sum": {"$sum": f"{lab}.p_correct"},  # $sum skips what is not a number
            "p_n": {"$sum": {"$cond": [{"$isNumber": f"{lab}.p_correct"}, 1, 0]}},
            "p_min": {"$min": f"{lab}.p_correct"},
        }},
    ]


def cells_from_groups(docs) -> list[dict]:
    """:func:`label_cells` rows from the groups of :func:`cells_pipeline`
    (not merged: equal keys may repeat)."""
    out = []
    for d in docs:
        key = d["_id"]
        label, queue, review = key.get("l"), key.get("q"), key.get("r")
        review = review if isinstance(review, str) and review in HUMAN_DECISIONS else "pending"
        out.append(dict(
            label=label if isinstance(label, str) or label is None else str(label),
            queue=queue if isinstance(queue, str) else None,
            review=review,
            bulk=key.get("b") is True and review in ("accepted", "rejected"),
            n=d["n"], p_sum=d["p_sum"], p_n=d["p_n"],
            p_min=d.get("p_min") if isinstance(d.get("p_min"), (int, float)) else None,
        ))
    return out


def merge_cells(cells) -> list[dict]:
    """Cells with equal ``(label, queue, review, bulk)`` summed (``p_min``:
    the smallest)."""
    merged: dict[tuple, dict] = {}
    for c in cells:
        k = (c["label"], c["queue"], c["review"], bool(c.get("bulk")))
        m = merged.get(k)
        if m is None:
            merged[k] = dict(c)
            continue
        m["n"] += c["n"]
        m["p_sum"] += c["p_sum"]
        m["p_n"] += c["p_n"]
        if c["p_min"] is not None and (m["p_min"] is None or c["p_min"] < m["p_min"]):
            m["p_min"] = c["p_min"]
    return list(merged.values())
