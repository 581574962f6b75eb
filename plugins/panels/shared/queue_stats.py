"""Counts of auto-labels by queue, class and review state, from MongoDB.

The verification panel redraws on every view and selection change, so its
numbers come from database aggregations over the view's own pipeline (one
``$unwind`` + ``$group`` for all counts, shared with the triage report; one
sorted ``$limit`` for the next yellow labels), never from a Python loop over
labels. On a large whole dataset each runs as concurrent aggregations over
``_id`` ranges (:mod:`...common.split_scan`) whose few result rows are
merged. The functions that turn those rows into tables are pure.

Review states: a label whose ``review`` is missing, None or anything other
than ``accepted`` / ``rejected`` / ``corrected`` counts as ``pending``;
decisions made in bulk (``review_bulk``) are counted apart as well. Labels without a
``queue`` (not triaged yet) count as ``unassigned``.
"""

from __future__ import annotations

from typing import Any, Sequence

from ...review.decisions import label_list_path
from ...common import split_scan
from ...common.fo_private import build_view, root_dataset, view_stages
from ...common.label_vocab import HUMAN_DECISIONS, QUEUES, REVIEW_STATES, UNASSIGNED
from ...common.label_cells import label_cells


def count_labels(sample_collection, label_field: str, parts: int | None = None) -> list[dict]:
    """Number of labels per (class, queue, review state) in the collection.

    The rows of :func:`...common.label_cells.label_cells` (one aggregation over
    the collection's pipeline, so views, label filters and App sidebar
    filters apply; concurrent ``_id`` ranges on a large whole dataset),
    as counts (:func:`rows_from_cells`); the arguments are
    :func:`...common.label_cells.label_cells`'s.

    Returns:
        rows ``{"label", "queue", "review", "bulk", "count"}``, ``queue``
        one of :data:`QUEUES` or ``"unassigned"``, ``review`` one of
        :data:`REVIEW_STATES`, ``bulk`` whether decided in bulk

    Raises:
        ValueError: if ``label_field`` is not a label list field
    """
    label_list_path(sample_collection, label_field)
    return rows_from_cells(label_cells(sample_collection, label_field, parts=parts))


def rows_from_cells(cells: Sequence[dict]) -> list[dict]:
    """:func:`count_labels` rows from :func:`...common.label_cells.label_cells`
    rows: a missing or unknown queue counts as ``"unassigned"``."""
    counts: dict[tuple, int] = {}
    for c in cells:
        q = c["queue"] if c["queue"] in QUEUES else UNASSIGNED
        r = c["review"] if c["review"] in REVIEW_STATES else "pending"
        k = (c["label"], q, r, bool(c.get("bulk")) and r != "pending")
        counts[k] = counts.get(k, 0) + int(c["n"])
    return [dict(label=l, queue=q, review=r, bulk=b, count=n) for (l, q, r, b), n in counts.items()]


def summarize_counts(rows: Sequence[dict]) -> dict:
    """Tables of :func:`count_labels` rows.

    Args:
        rows: ``{"label", "queue", "review", "count"}`` dicts (and
            ``bulk``)

    Returns:
        dict with

        - ``total``, ``accepted``, ``rejected``, ``corrected``, ``bulk``
          (decided in bulk: nobody looked at each), ``pending``,
          ``decided`` and ``progress`` (decided / total, None when empty)
        - ``queues``: ``{queue: {count, accepted, rejected, corrected,
          bulk, pending}}`` for each of green, yellow, red and unassigned
        - ``classes``: sorted class names (None as ``"(none)"``)
        - ``by_class``: ``{class: {green, yellow, red, unassigned, total,
          accepted, rejected, corrected, bulk, pending}}``
        - ``yellow_open``: yellow labels nobody decided
    """
    zero = dict(accepted=0, rejected=0, corrected=0, bulk=0, pending=0)
    queues = {q: dict(count=0, **zero) for q in (*QUEUES, UNASSIGNED)}
    by_class: dict[str, dict] = {}
    for row in rows:
        n = int(row["count"])
        q = row["queue"] if row["queue"] in queues else UNASSIGNED
        r = row["review"] if row["review"] in REVIEW_STATES else "pending"
        cls = "(none)" if row["label"] is None else str(row["label"])
        bulk = n if row.get("bulk") and r != "pending" else 0
        queues[q]["count"] += n
        queues[q][r] += n
        queues[q]["bulk"] += bulk
        c = by_class.setdefault(cls, dict(green=0, yellow=0, red=0, unassigned=0, total=0, **zero))
        c[q] += n
        c["total"] += n
        c[r] += n
        c["bulk"] += bulk
    total = sum(v["count"] for v in queues.values())
    accepted, rejected, corrected, bulk = (sum(v[k] for v in queues.values())
                                           for k in ("accepted", "rejected", "corrected", "bulk"))
    decided = accepted + rejected + corrected
    return dict(
        total=total,
        accepted=accepted,
        rejected=rejected,
        corrected=corrected,
        bulk=bulk,
        pending=total - decided,
        decided=decided,
        progress=decided / total if total else None,
        queues=queues,
        classes=sorted(by_class),
        by_class={c: by_class[c] for c in sorted(by_class)},
        yellow_open=queues["yellow"]["pending"],
    )


def next_yellow(sample_collection, label_field: str, limit: int = 10, parts: int | None = None) -> list[dict]:
    """The first open yellow labels in ``review_rank`` order (1 = look first).

    Open: nobody accepted or rejected it yet. One aggregation: each sample's
    open yellow labels are picked out of its list before anything is
    unwound (a third of the labels at most), then a sorted ``$limit``
    (MongoDB keeps only the top ``limit`` while sorting); on a large whole
    dataset one per ``_id`` range, concurrently, the best of their rows
    kept. Ties of ``review_rank`` go by label id.

    Args:
        sample_collection: a dataset or view
        label_field: a label list field
        limit: how many labels
        parts: as in :func:`count_labels`

    Returns:
        ``{"rank", "label_id", "sample_id", "label", "p_correct"}`` dicts
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"Parameter 'limit' must be an integer >= 1; got {limit!r}")
    list_path = label_list_path(sample_collection, label_field)
    pipeline = [
        {"$project": {"_l": {"$filter": {"input": f"${list_path}", "cond": open_yellow_expr("$$this")}}}},
        {"$unwind": "$_l"},
        {"$sort": {"_l.review_rank": 1, "_l._id": 1}},
        {"$limit": limit},
        {"$project": {"_l._id": 1, "_l.label": 1, "_l.p_correct": 1, "_l.review_rank": 1}},
    ]
    docs = split_scan.aggregate(sample_collection, pipeline, parts=parts)
    docs.sort(key=lambda d: (d["_l"]["review_rank"], d["_l"]["_id"]))
    return [_next_row(d["_l"], d["_id"]) for d in docs[:limit]]


def open_yellow_expr(label: str) -> dict:
    """Aggregation expression: the label (e.g. ``"$$this"``) is yellow,
    nobody decided it and it has a numeric ``review_rank``."""
    return {
        "$and": [
            {"$eq": [f"{label}.queue", "yellow"]},
            {"$not": [{"$in": [f"{label}.review", list(HUMAN_DECISIONS)]}]},
            {"$isNumber": f"{label}.review_rank"},
        ]
    }


def _next_row(label: dict, sample_id) -> dict:
    return dict(
        rank=int(label["review_rank"]),
        label_id=str(label["_id"]),
        sample_id=str(sample_id),
        label=label.get("label"),
        p_correct=label.get("p_correct"),
    )


def drilldown_filter(queue: str | None = None, label: str | None = None, review: str | None = None):
    """The label filter (a ``ViewExpression`` on each label) for a queue,
    class and/or review state; None when all three are None.

    Raises:
        ValueError: for an unknown queue or review state
    """
    from fiftyone import ViewField as F

    if queue is not None and queue not in (*QUEUES, UNASSIGNED):
        raise ValueError(f"Parameter 'queue' must be one of {(*QUEUES, UNASSIGNED)}; got {queue!r}")
    if review is not None and review not in REVIEW_STATES:
        raise ValueError(f"Parameter 'review' must be one of {REVIEW_STATES}; got {review!r}")
    terms = []
    if queue == UNASSIGNED:
        terms.append(~F("queue").is_in(list(QUEUES)))
    elif queue is not None:
        terms.append(F("queue") == queue)
    if label is not None:
        terms.append(F("label") == label)
    if review == "pending":
        terms.append(~F("review").is_in(list(HUMAN_DECISIONS)))
    elif review is not None:
        terms.append(F("review") == review)
    if not terms:
        return None
    expr = terms[0]
    for t in terms[1:]:
        expr = expr & t
    return expr


def drilldown_view(sample_collection, label_field: str, queue=None, label=None, review=None):
    """``sample_collection`` showing exactly the labels of a queue, class
    and/or review state (and only the samples that have one).

    Raises:
        ValueError: if nothing is chosen, or for an unknown queue or state
    """
    label_list_path(sample_collection, label_field)
    expr = drilldown_filter(queue, label, review)
    if expr is None:
        raise ValueError("Choose a queue, a class or a review state")
    return sample_collection.filter_labels(label_field, expr, only_matches=True)


def drill_view(sample_collection, label_field: str, drill: dict):
    """``sample_collection`` narrowed by a panel's drill-down: ``drill`` is
    ``{"label_ids": [...]}`` (exactly those labels, e.g. a lasso on the
    label map) or ``{"queue", "label", "review"}`` (:func:`drilldown_view`).
    """
    if drill.get("label_ids") is not None:
        label_list_path(sample_collection, label_field)
        return sample_collection.select_labels(ids=list(drill["label_ids"]), fields=label_field)
    return drilldown_view(sample_collection, label_field, **_drill_args(drill))


def strip_drilldown(view, label_field: str, drill: dict | None):
    """The view without the stage that :func:`drill_view` added for
    ``drill`` (the panel's own click), wherever it sits in the stages (the
    App may append its sidebar filters after it).

    Args:
        view: the App's current view
        label_field: the field the drill-down filtered
        drill: as given to :func:`drill_view` when it was applied, or None

    Returns:
        ``(base_view, found)``: the view without that stage and whether it
        was there (False: the user changed the view since; the view is
        returned as is)
    """
    if not drill:
        return view, False
    try:
        ref = drill_view(root_dataset(view), label_field, drill)
    except ValueError:
        return view, False
    # stage filters are serialized after validation (field-prefixed), so the
    # reference is built on the dataset and compared without stage uuids
    target = view_stages(ref)[-1]
    stages = view_stages(view, include_uuids=True)
    plain = view_stages(view)
    for i in range(len(plain) - 1, -1, -1):
        if plain[i] == target:
            return build_view(root_dataset(view), stages[:i] + stages[i + 1 :]), True
    return view, False


def _drill_args(drill: dict) -> dict[str, Any]:
    return {k: drill.get(k) for k in ("queue", "label", "review")}


def panel_base_view(ctx, label_field: str):
    """The App's view without the panel's own drill-down (the view its
    counts, maps and bulk actions run on). A drill-down the user has since
    removed from the view is forgotten (``ctx.panel.state.drill``)."""
    base, found = strip_drilldown(ctx.view, label_field, ctx.panel.state.drill)
    if ctx.panel.state.drill and not found:
        ctx.panel.state.drill = None
    return base
