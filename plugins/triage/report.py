"""The triage report: what each queue holds, how good it is, what it costs.

Pure function of label arrays and a calibration; the operator returns it,
the SDK gets it as a dict, the verification panel draws it.

Two kinds of precision appear, and the report keeps them apart:

- ``verified_precision`` with ``interval``: measured on the verified
  calibration labels that fall in the queue (their cross-fitted scores), with
  a two-sided Clopper–Pearson interval at the calibration's confidence level;
  for green under the PAC guarantee, ``certified_lower`` is the bound that
  was certified;
- ``expected_precision``: the mean P(correct) the model gives the queue's
  labels in the triaged view — an estimate, not a guarantee.

Decisions made one label at a time (``accepted``, ``rejected``,
``corrected``) are kept apart from bulk ones (``bulk_accepted``,
``bulk_rejected``: a whole queue, class or cluster decided at once,
``review_bulk``): a bulk accept is not a human check, so its labels keep
their model-expected precision in the final figures instead of counting as
certainly right.

Costs: labeling by hand costs ``cents_per_box`` per box; auto-labeling
costs the GPU time plus a person looking at every yellow label, priced —
conservatively — like drawing it (``cents_per_box``); reviewing takes
``seconds_per_box`` per yellow label. Red labels are dropped; green and
accepted labels make the final dataset, whose expected precision assumes
people judge the yellow labels correctly.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import guarantees
from .queues import GREEN, QUEUES, RED, YELLOW
from ..common.costs import CENTS_PER_BOX, SECONDS_PER_BOX, USD_PER_GPU_HOUR, check_costs


def _interval(k: int, n: int, confidence: float) -> list[float] | None:
    if n == 0:
        return None
    lo, hi = guarantees.clopper_pearson(k, n, (1 - confidence) / 2)
    return [round(float(lo), 4), round(float(hi), 4)]


def _verified_in_queue(calibration: dict, cls: str, queue: str, green_min_p: float | None) -> tuple[int, int]:
    """(n, correct) of the class's verified labels whose cross-fitted score
    falls in ``queue`` under the class's thresholds."""
    ver = calibration.get("verified", {}).get(cls)
    if not ver:
        return 0, 0
    s = np.asarray(ver["scores"], dtype=np.float64)
    y = np.asarray(ver["correct"], dtype=bool)
    info = calibration["per_class"][cls]
    red_t = info.get("red_threshold")
    green_t = info.get("green_threshold") if calibration["guarantee"] == "pac" else green_min_p
    is_red = s <= red_t if red_t is not None else np.zeros(len(s), bool)
    is_green = (s >= green_t) & ~is_red if green_t is not None else np.zeros(len(s), bool)
    m = {GREEN: is_green, RED: is_red, YELLOW: ~is_green & ~is_red}[queue]
    return int(m.sum()), int(y[m].sum())


#: review states of the cell table (anything else counts as pending); the
#: ``bulk_`` ones are decisions made for a group at once (``review_bulk``)
REVIEWS = ("pending", "accepted", "rejected", "corrected", "bulk_accepted", "bulk_rejected")


def review_cell(review, bulk=None) -> str:
    """The :data:`REVIEWS` state of a label's ``review`` and ``review_bulk``."""
    if review in ("accepted", "rejected"):
        return f"bulk_{review}" if bulk is True else review
    return review if review == "corrected" else "pending"


class Cells:
    """Label counts and P(correct) sums per (class, queue, review state).

    Everything the report needs, so that it can be built from arrays of
    labels (:func:`build_report`) or from one database aggregation
    (:func:`report_from_rows`) at the same cost whatever the label count.
    Queue index ``len(QUEUES)`` holds unassigned labels.
    """

    def __init__(self, class_names: list[str]):
        self.class_names = class_names
        shape = (len(class_names), len(QUEUES) + 1, len(REVIEWS))
        self.n = np.zeros(shape)
        self.p_sum = np.zeros(shape)
        self.p_n = np.zeros(shape)
        self.green_min = np.full(len(class_names), np.inf)


def build_report(
    calibration: dict,
    labels: Sequence[str],
    queue: Sequence[str | None],
    p_correct: np.ndarray,
    review: Sequence[str | None],
    seconds_per_box: float = SECONDS_PER_BOX,
    cents_per_box: float = CENTS_PER_BOX,
    usd_per_gpu_hour: float = USD_PER_GPU_HOUR,
    gpu_hours: float = 0.0,
    bulk: Sequence | None = None,
) -> dict:
    """Per-queue and per-class counts, precision, workload and cost.

    Args:
        calibration: a :func:`.calibration.calibrate` result
        labels: ``(N,)`` class of each label of the triaged view
        queue: ``(N,)`` its queue (None when unassigned)
        p_correct: ``(N,)`` its P(correct) (NaN when unassigned)
        review: ``(N,)`` its review state (None / "pending" / "accepted" /
            "rejected" / "corrected")
        seconds_per_box: time a person needs to check one yellow label
        cents_per_box: price of drawing one box by hand
        usd_per_gpu_hour: GPU price
        gpu_hours: GPU time spent auto-labeling the view
        bulk: ``(N,)`` its ``review_bulk`` (True: decided in bulk)

    Returns:
        dict with ``totals``, ``queues`` (per queue), ``classes`` (per class
        and queue), ``workload``, ``cost``, ``final`` and ``notes``
    """
    check_costs(seconds_per_box=seconds_per_box, cents_per_box=cents_per_box,
                 usd_per_gpu_hour=usd_per_gpu_hour, gpu_hours=gpu_hours)
    labels = np.asarray(labels, dtype=object)
    p = np.asarray(p_correct, dtype=np.float64)
    names = sorted(set(labels.tolist()) | set(calibration["per_class"]))
    cells = Cells(names)
    # integer codes: every sum is one bincount (object comparisons per class
    # and queue cost seconds at 1M labels)
    lab = np.searchsorted(np.asarray(names, dtype=object), labels) if len(labels) else np.zeros(0, int)
    qcode = {q: i for i, q in enumerate(QUEUES)}
    qc = np.fromiter((qcode.get(q, len(QUEUES)) for q in queue), dtype=np.int64, count=len(labels))
    rcode = {r: i for i, r in enumerate(REVIEWS)}
    bulk = [None] * len(labels) if bulk is None else bulk
    rc = np.fromiter((rcode[review_cell(r, b)] for r, b in zip(review, bulk)), dtype=np.int64, count=len(labels))
    cell = (lab * (len(QUEUES) + 1) + qc) * len(REVIEWS) + rc
    size = cells.n.size
    finite = np.isfinite(p)
    cells.n[:] = np.bincount(cell, minlength=size).reshape(cells.n.shape)
    cells.p_sum[:] = np.bincount(cell, weights=np.where(finite, p, 0.0), minlength=size).reshape(cells.n.shape)
    cells.p_n[:] = np.bincount(cell, weights=finite.astype(float), minlength=size).reshape(cells.n.shape)
    g = (qc == qcode[GREEN]) & finite
    np.minimum.at(cells.green_min, lab[g], p[g])
    return report_from_cells(calibration, cells, seconds_per_box, cents_per_box, usd_per_gpu_hour, gpu_hours)


def report_from_rows(calibration: dict, rows: Sequence[dict], seconds_per_box: float = SECONDS_PER_BOX,
                     cents_per_box: float = CENTS_PER_BOX, usd_per_gpu_hour: float = USD_PER_GPU_HOUR,
                     gpu_hours: float = 0.0) -> dict:
    """:func:`build_report` from aggregated rows ``{label, queue, review, n,
    p_sum, p_n, p_min}`` (one per class, queue and review state present)."""
    check_costs(seconds_per_box=seconds_per_box, cents_per_box=cents_per_box,
                 usd_per_gpu_hour=usd_per_gpu_hour, gpu_hours=gpu_hours)
    names = sorted({r["label"] if isinstance(r["label"], str) else "" for r in rows} | set(calibration["per_class"]))
    index = {c: i for i, c in enumerate(names)}
    cells = Cells(names)
    for r in rows:
        c = index[r["label"] if isinstance(r["label"], str) else ""]
        q = QUEUES.index(r["queue"]) if r["queue"] in QUEUES else len(QUEUES)
        v = REVIEWS.index(review_cell(r["review"], r.get("bulk")))
        cells.n[c, q, v] += r["n"]
        cells.p_sum[c, q, v] += r.get("p_sum") or 0.0
        cells.p_n[c, q, v] += r.get("p_n") or 0
        if q == 0 and r.get("p_min") is not None:
            cells.green_min[c] = min(cells.green_min[c], r["p_min"])
    return report_from_cells(calibration, cells, seconds_per_box, cents_per_box, usd_per_gpu_hour, gpu_hours)


def report_from_cells(calibration: dict, cells: Cells, seconds_per_box: float, cents_per_box: float,
                      usd_per_gpu_hour: float, gpu_hours: float) -> dict:
    """The report of a :class:`Cells` table (see :func:`build_report`)."""
    conf = calibration["confidence_level"]
    names = cells.class_names
    acc, rej, cor = REVIEWS.index("accepted"), REVIEWS.index("rejected"), REVIEWS.index("corrected")
    bacc, brej = REVIEWS.index("bulk_accepted"), REVIEWS.index("bulk_rejected")
    n2, ps2, pn2 = cells.n.sum(axis=2), cells.p_sum.sum(axis=2), cells.p_n.sum(axis=2)
    qcode = {q: i for i, q in enumerate(QUEUES)}

    def block(rows: list[int], q: str, cls: str | None) -> dict:
        j = qcode[q]
        pn, ps = pn2[rows, j].sum(), ps2[rows, j].sum()
        out = dict(
            count=int(n2[rows, j].sum()),
            accepted=int(cells.n[rows, j, acc].sum()),
            rejected=int(cells.n[rows, j, rej].sum()),
            corrected=int(cells.n[rows, j, cor].sum()),
            bulk_accepted=int(cells.n[rows, j, bacc].sum()),
            bulk_rejected=int(cells.n[rows, j, brej].sum()),
            expected_precision=round(float(ps / pn), 4) if pn else None,
            expected_wrong=round(float(pn - ps), 1),
        )
        n = k = 0
        for r in rows:
            c = names[r]
            if c in calibration["per_class"]:
                gmin = float(cells.green_min[r]) if np.isfinite(cells.green_min[r]) else None
                dn, dk = _verified_in_queue(calibration, c, q, gmin)
                n, k = n + dn, k + dk
        out["verified"] = n
        out["verified_precision"] = round(k / n, 4) if n else None
        out["interval"] = _interval(k, n, conf)
        scope = calibration.get("scope", "class")
        if q == GREEN and calibration["guarantee"] == "pac" and (cls is None) == (scope == "overall"):
            info = calibration["per_class"].get(cls, {}) if cls is not None else calibration["overall"]
            out["certified_lower"] = info.get("green", {}).get("lower") if info.get("green_threshold") is not None else None
            out["threshold"] = info.get("green_threshold")
        if q == RED and cls is not None:
            out["threshold"] = calibration["per_class"].get(cls, {}).get("red_threshold")
        return out

    everything = list(range(len(names)))
    queues = {q: block(everything, q, None) for q in QUEUES}
    classes = {}
    for r, c in enumerate(names):
        info = calibration["per_class"].get(c)
        classes[c] = dict(
            count=int(n2[r].sum()),
            queues={q: block([r], q, c) for q in QUEUES},
            num_verified=info["num_verified"] if info else 0,
            no_green_reason=(info or {}).get("no_green_reason", "not in the calibration set"),
            more_labels_needed=(info or {}).get("more_labels_needed"),
        )

    g, y, rd = (qcode[q] for q in (GREEN, YELLOW, RED))
    pend = REVIEWS.index("pending")
    n_total = int(cells.n.sum())
    n_acc, n_rej, n_cor = (int(cells.n[:, :, i].sum()) for i in (acc, rej, cor))
    n_bacc, n_brej = int(cells.n[:, :, bacc].sum()), int(cells.n[:, :, brej].sum())
    n_yellow = int(n2[:, y].sum())
    yellow_open = int(cells.n[:, y, pend].sum())
    hours = n_yellow * seconds_per_box / 3600.0
    manual = n_total * cents_per_box / 100.0
    auto = gpu_hours * usd_per_gpu_hour + n_yellow * cents_per_box / 100.0

    # final dataset: green nobody decided and bulk-accepted labels (as the
    # model expects them: nobody checked them) + labels people accepted or
    # corrected one at a time + (expected) correct open yellow
    keep_green_n = float(cells.n[:, g, pend].sum())
    keep_green_p = float(cells.p_sum[:, g, pend].sum())
    bulk_p = float(_expected_correct(cells, bacc))
    open_yellow_p = float(cells.p_sum[:, y, pend].sum())
    exp_correct = keep_green_p + bulk_p + n_acc + n_cor + open_yellow_p
    exp_size = keep_green_n + n_bacc + n_acc + n_cor + open_yellow_p
    return dict(
        guarantee=calibration["guarantee"],
        scope=calibration.get("scope", "class"),
        target_precision=calibration["target_precision"],
        confidence_level=conf,
        totals=dict(
            labels=n_total,
            unassigned=int(n2[:, len(QUEUES)].sum()),
            accepted=n_acc,
            rejected=n_rej,
            corrected=n_cor,
            bulk_accepted=n_bacc,
            bulk_rejected=n_brej,
            pending=n_total - n_acc - n_rej - n_cor - n_bacc - n_brej,
        ),
        queues=queues,
        classes=classes,
        workload=dict(
            yellow=n_yellow,
            yellow_open=yellow_open,
            # four decimals: the panel rounds again to tenths, and 0.151 h
            # rounded to 0.15 first would show as 0.1
            hours=round(hours, 4),
            hours_open=round(yellow_open * seconds_per_box / 3600.0, 4),
            seconds_per_box=seconds_per_box,
        ),
        cost=dict(
            manual_usd=round(manual, 2),
            auto_usd=round(auto, 2),
            savings_usd=round(manual - auto, 2),
            savings_share=round(1 - auto / manual, 4) if manual > 0 else None,
            cents_per_box=cents_per_box,
            usd_per_gpu_hour=usd_per_gpu_hour,
            gpu_hours=round(gpu_hours, 4),
        ),
        final=dict(
            expected_labels=round(exp_size, 1),
            expected_precision=round(exp_correct / exp_size, 4) if exp_size > 0 else None,
            checked_by_people=n_acc + n_cor,
            bulk_accepted=n_bacc,
            dropped_red=int(n2[:, rd].sum()),
            expected_correct_dropped=round(float(ps2[:, rd].sum()), 1),
        ),
        notes=_notes(calibration),
    )


def _expected_correct(cells: Cells, review: int) -> float:
    """Expected correct labels in a review state: the sum of their
    P(correct) (a label without one counts as wrong: conservative)."""
    return float(cells.p_sum[:, :, review].sum())


def _notes(calibration: dict) -> list[str]:
    notes = []
    conf, target = calibration["confidence_level"], calibration["target_precision"]
    overall = calibration.get("scope", "class") == "overall"
    covered = "the whole green queue (all classes together)" if overall else "each class's green labels"
    if calibration["guarantee"] == "pac":
        notes.append(
            f"Green (PAC, {'overall' if overall else 'per class'}): with probability >= {conf:.0%} over the "
            f"draw of the verified labels, the precision of {covered} is >= {target:.0%}; assumes the "
            "verified labels are a random sample of the triaged labels."
            + (" A single class inside it may be below the target." if overall else "")
        )
    else:
        notes.append(
            f"Green (expected, {'overall' if overall else 'per class'}): the expected share of wrong labels "
            f"among {covered} is <= {1 - target:.0%} (conformal selection with Benjamini-Hochberg). This "
            "bounds the average over calibration draws, not each draw: weaker than PAC, and it selects more."
        )
    if calibration.get("num_from_reviews"):
        notes.append(
            f"{calibration['num_from_reviews']} of the verified labels are reviews (use_reviews): the guarantee "
            "assumes they are a random sample of the triaged labels, which reviews given in review order are not."
        )
    groups = [("The green queue", calibration["overall"])] if overall and "overall" in calibration else [
        (f"Class '{c}'", info) for c, info in calibration["per_class"].items()]
    for who, info in groups:
        if info.get("no_green_reason"):
            notes.append(f"{who} has no green: {info['no_green_reason']}.")
    return notes
