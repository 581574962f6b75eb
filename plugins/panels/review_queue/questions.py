"""The review surface's questions: which labels to ask about, in which
order, and what a question shows.

Order: an ordered list of *question sources* (:data:`SOURCES`). The first
source fills the batch first; the next one tops it up with labels the
earlier ones did not give, and so on: :func:`audit_questions` (the
questions of the field's running audit of a candidate green set, in the
order the audit asks them), then :func:`yellow_by_review_rank` (the open
yellow labels of the view, most informative first).

A source is a function ``source(view, label_field, limit, exclude)``
returning at most ``limit`` rows ``{"label_id", "sample_id"}`` in the
order to ask them, none of whose ids is in ``exclude`` (labels the surface
already holds, answered or skipped), and carrying the attribute ``name``
(shown with each question: why it is asked).

A question (:func:`question_details`) is the label as stored now: class,
box, P(correct), review rank and state, the image's path, and each triage
signal's value and effect on P(correct) (:mod:`...triage.explain`).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np

from ...common.fo_private import root_dataset, view_dataset
from ...review.decisions import HUMAN_DECISIONS, label_list_path
from ...triage import explain, model
from ...triage.workflow import load_calibration
from ..shared import count_cache

#: most ids a request may ask to leave out (the surface's own labels)
MAX_EXCLUDE = 5_000
#: most questions per request
MAX_LIMIT = 100

QuestionSource = Callable[..., list]


def yellow_by_review_rank(view, label_field: str, limit: int, exclude: Iterable[str] = ()) -> list[dict]:
    """The view's open yellow labels in ``review_rank`` order (1 = ask
    first; ties by label id), leaving out ``exclude``.

    The whole dataset's list is stored and kept up to date from the
    samples written since (:func:`..shared.count_cache.next_yellow_cached`), so
    asking again after each batch of answers costs little; any other view
    (a drill-down, App filters) runs the query.
    """
    exclude = set(exclude)
    rows = count_cache.next_yellow_cached(view, label_field, limit + len(exclude))
    return [dict(label_id=r["label_id"], sample_id=r["sample_id"]) for r in rows if r["label_id"] not in exclude][
        :limit
    ]


yellow_by_review_rank.name = "yellow"


def audit_questions(view, label_field: str, limit: int, exclude: Iterable[str] = ()) -> list[dict]:
    """The questions of the field's running audit (:mod:`...triage.green_audit`)
    still to answer, in the order the audit asks them, those of the view.
    Their answers certify a green set: they come before anything else."""
    from ...triage.green_audit import find_audit, peek_audit

    dataset = view_dataset(view)
    key = find_audit(dataset, label_field)
    state = peek_audit(dataset, key) if key else None
    if not state or state["status"] != "needs_answers":
        return []
    exclude = set(exclude)
    pending = [p for p in state["pending"] if p["label_id"] not in exclude]
    if not pending:
        return []
    in_view = set(view.select(list({p["sample_id"] for p in pending})).values(
        f"{label_field}.detections.id", unwind=True))
    return [dict(label_id=p["label_id"], sample_id=p["sample_id"]) for p in pending if p["label_id"] in in_view][
        :limit
    ]


audit_questions.name = "audit"

def missing_candidates(view, label_field: str, limit: int, exclude: Iterable[str] = ()) -> list[dict]:
    """The view's open candidates of missed objects (``label_field`` is a
    candidates field, :mod:`...review.missing`), most likely objects first:
    by ``p_correct`` when scored and triaged, else by ``confidence``
    (candidates without either last; ties by label id)."""
    exclude = set(exclude)
    list_path = label_list_path(root_dataset(view), label_field)
    sids, *cols = view.values(["id", *[f"{list_path}.{a}" for a in ("id", "review", "p_correct", "confidence")]])
    rows = []
    for sid, ids, review, p, conf in zip(sids, *cols):
        for lid, r, pc, c in zip(ids or [], review or [], p or [], conf or []):
            if r in HUMAN_DECISIONS or lid in exclude:
                continue
            score = pc if _num(pc) is not None else c if _num(c) is not None else -1.0
            rows.append((-score, lid, sid))
    rows.sort()
    return [dict(label_id=lid, sample_id=sid) for _, lid, sid in rows[:limit]]


missing_candidates.name = "missing"


def missing_stats(view, label_field: str) -> dict:
    """:func:`review_stats` of a candidates field: ``open_yellow`` holds the
    open candidates (what the surface asks about), ``expected_wrong`` the
    sum of ``1 - confidence`` over them (none for candidates without one:
    verified objects), ``decided`` the answered ones."""
    list_path = label_list_path(root_dataset(view), label_field)
    review, conf = view.values([f"{list_path}.review", f"{list_path}.confidence"], unwind=True)
    open_ = [c for r, c in zip(review, conf) if r not in HUMAN_DECISIONS]
    return dict(open_yellow=len(open_), expected_wrong=round(float(sum(1 - _num(c) for c in open_ if _num(c) is not None)), 2),
                decided=len(review) - len(open_))


#: question sources, asked in this order (see the module docstring)
SOURCES: tuple[QuestionSource, ...] = (audit_questions, yellow_by_review_rank)


def next_questions(
    view,
    label_field: str,
    limit: int = 20,
    exclude: Iterable[str] = (),
    sources: Sequence[QuestionSource] = SOURCES,
) -> list[dict]:
    """The next ``limit`` labels to ask about: each source in turn, after
    the labels of the sources before it.

    Returns:
        ``{"label_id", "sample_id", "source"}`` rows, ``source`` the name of
        the source that gave the label
    """
    check_request(limit, exclude)
    taken = set(exclude)
    out: list[dict] = []
    for source in sources:
        if len(out) >= limit:
            break
        for row in source(view, label_field, limit - len(out), taken):
            if row["label_id"] in taken:
                continue
            taken.add(row["label_id"])
            out.append(dict(label_id=row["label_id"], sample_id=row["sample_id"], source=source.name))
    return out


def check_request(limit, exclude) -> None:
    """Raises ValueError for a ``limit`` or ``exclude`` a request may not
    ask for (both come from the App, i.e. from anyone)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"Parameter 'limit' must be an integer in [1, {MAX_LIMIT}]; got {limit!r}")
    if isinstance(exclude, (str, bytes)) or not all(isinstance(i, str) for i in exclude):
        raise ValueError("Parameter 'exclude' must be a list of label ids")
    if len(exclude) > MAX_EXCLUDE:
        raise ValueError(f"Parameter 'exclude' holds {len(exclude)} ids; at most {MAX_EXCLUDE}")


def question_details(dataset, label_field: str, rows: Sequence[dict], calibration: dict | None = None) -> list[dict]:
    """What the surface shows for each row of :func:`next_questions`, in
    the same order; rows whose label is gone are dropped.

    Args:
        dataset: the dataset
        label_field: the label list field
        rows: ``{"label_id", "sample_id", "source"}`` rows
        calibration: the triage calibration (its signals are explained);
            None: no signals

    Returns:
        dicts ``label_id``, ``sample_id``, ``source``, ``filepath``,
        ``label``, ``bounding_box`` (relative ``[x, y, w, h]``),
        ``confidence``, ``p_correct``, ``review_rank``, ``queue``,
        ``review``, ``signals`` (``{name, value, effect, flagged}``, most
        damning first; empty without a calibration)
    """
    if not rows:
        return []
    list_path = label_list_path(dataset, label_field)
    signals = list(calibration["signals"]) if calibration else []
    attrs = ["_id", "label", "bounding_box", "confidence", "p_correct", "review_rank", "queue", "review", *signals]
    sample_ids = list(dict.fromkeys(r["sample_id"] for r in rows))
    view = dataset.select(sample_ids)
    values = view.values(["id", "filepath", *[f"{list_path}.{a}" for a in attrs]])
    found: dict[str, dict] = {}
    for sid, filepath, *cols in zip(*values):
        for lab in zip(*[c or [] for c in cols]):
            d = dict(zip(attrs, lab))
            found[str(d["_id"])] = dict(d, sample_id=sid, filepath=filepath)
    out = []
    for r in rows:
        d = found.get(r["label_id"])
        if d is None or d["sample_id"] != r["sample_id"]:
            continue
        out.append(dict(
            label_id=r["label_id"], sample_id=r["sample_id"], source=r.get("source"), filepath=d["filepath"],
            label=d["label"], bounding_box=[float(v) for v in d["bounding_box"] or []],
            confidence=_num(d["confidence"]), p_correct=_num(d["p_correct"]),
            review_rank=d["review_rank"], queue=d["queue"],
            review=d["review"] if d["review"] in HUMAN_DECISIONS else "pending",
            signals=[], _raw=[d.get(s) for s in signals],
        ))
    if calibration and out:
        raw = np.array([[_num(v) if _num(v) is not None else np.nan for v in q["_raw"]] for q in out], dtype=float)
        x = model.prepare_features({s: raw[:, j] for j, s in enumerate(signals)}, signals)
        folds = model.fold_of([q["sample_id"] for q in out], calibration["folds"])
        effects = explain.signal_effects(calibration, x, [q["label"] for q in out], folds)
        for q, rows_ in zip(out, explain.explain(signals, raw, effects)):
            q["signals"] = rows_
    for q in out:
        del q["_raw"]
    return out


def review_stats(view, label_field: str) -> dict:
    """What is left in the view: ``open_yellow`` (yellow labels nobody
    decided) and ``expected_wrong`` (the sum of ``1 - P(correct)`` over
    them: how many of them the triage expects to be wrong), plus
    ``decided`` (labels of the view a person accepted or rejected).

    One aggregation (stored for the whole dataset,
    :func:`..shared.count_cache.label_cells_cached`).
    """
    cells = count_cache.label_cells_cached(view, label_field)
    open_cells = [c for c in cells if c["queue"] == "yellow" and c["review"] == "pending"]
    return dict(
        open_yellow=int(sum(c["n"] for c in open_cells)),
        expected_wrong=round(float(sum(c["p_n"] - c["p_sum"] for c in open_cells)), 2),
        decided=int(sum(c["n"] for c in cells if c["review"] in HUMAN_DECISIONS)),
    )


def load_calibration_or_none(dataset, calibration_key: str | None) -> dict | None:
    """The calibration under ``calibration_key``, or None when there is none."""
    if not calibration_key:
        return None
    try:
        return load_calibration(dataset, calibration_key)
    except ValueError:
        return None


def _num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) else None
