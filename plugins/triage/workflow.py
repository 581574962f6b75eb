"""Triage on FiftyOne views: calibrate, assign queues, report.

The FiftyOne edges of :mod:`.calibration`, :mod:`.queues` and
:mod:`.report`: labels and their signals are read in bulk, matched to
verified labels with FiftyOne's own ``evaluate_detections``, and the queue
attributes written back with one bulk update per sample.

Attributes written on ``{label_field}.detections`` by :func:`assign_queues`
(a public contract): ``queue`` (``green`` / ``yellow`` / ``red``),
``p_correct`` (cross-fitted P(label is correct)) and ``review_rank`` (1 =
look first; yellow labels only, None elsewhere). Labels that carry a human
decision (``review`` is ``accepted`` or ``rejected``) are never written.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import math
from typing import Iterator, Sequence

import numpy as np

from ..common import bulk, provenance, split_scan, temp_evals
from ..common.fields import check_detections_field
from ..common.progress import Progress
from ..common.progress import run as run_progress
from ..review.decisions import HUMAN_DECISIONS, is_decided
from . import calibration as cal_mod
from . import model, queues
from .report import CENTS_PER_BOX, SECONDS_PER_BOX, USD_PER_GPU_HOUR, build_report, report_from_rows

logger = logging.getLogger(__name__)

#: signals used by default when present on the verified labels
DEFAULT_SIGNALS = ("confidence", "margin")
OPTIONAL_SIGNALS = ("hardness", "knn_agreement", "rer", "clip_agreement", "consensus", "uncertainty")
#: share of the verified labels on which an optional signal must be present
#: to be used by default
PRESENT_SHARE = 0.5
QUEUE_ATTRS = ("queue", "p_correct", "review_rank")
METHOD = "calibrate_triage"
#: samples per bulk write (progress granularity)
WRITE_CHUNK = 5000


def _flatten(per_sample: list, fill=None) -> list:
    return list(itertools.chain.from_iterable(v if v else [] for v in per_sample))


def _floats(per_sample: list) -> np.ndarray:
    nan = math.nan
    flat = _flatten(per_sample)
    return np.fromiter(
        (v if isinstance(v, (int, float)) and v is not True and v is not False else nan for v in flat),
        dtype=np.float64,
        count=len(flat),
    )


def read_labels(sample_collection, label_field: str, attrs: Sequence[str] = ()) -> dict:
    """Bulk read of every label of ``label_field`` in the view.

    Returns:
        dict of flat, aligned arrays: ``label_id`` (``ObjectId``: bulk
        writes take them as they are, converting a million strings back
        costs seconds), ``sample_id`` (str), ``label``,
        ``review`` and one float array per name in ``attrs`` (NaN where
        missing); ``queue`` when asked for
    """
    root = f"{label_field}.detections"
    text_attrs = [a for a in attrs if a in ("queue",)]
    float_attrs = [a for a in attrs if a not in text_attrs]
    paths = ["id", f"{root}._id", f"{root}.label", f"{root}.review"]
    paths += [f"{root}.{a}" for a in text_attrs + float_attrs]
    values = sample_collection.values(paths)
    sids, lids, labs, revs = values[:4]
    counts = [len(v) if v else 0 for v in lids]
    out = dict(
        sample_id=np.repeat(np.asarray(sids, dtype=object), counts),
        label_id=np.asarray(_flatten(lids), dtype=object),
        label=np.asarray([l if isinstance(l, str) else "" for l in _flatten(labs)], dtype=object),
        review=np.asarray(_flatten(revs), dtype=object),
    )
    for name, vals in zip(text_attrs, values[4 : 4 + len(text_attrs)]):
        out[name] = np.asarray(_flatten(vals), dtype=object)
    for name, vals in zip(float_attrs, values[4 + len(text_attrs) :]):
        out[name] = _floats(vals)
    return out


def _present_signals(labels: dict, candidates: Sequence[str]) -> list[str]:
    n = len(labels["label_id"])
    return [s for s in candidates if n and np.isfinite(labels[s]).mean() >= PRESENT_SHARE]


def _replace_own_run(dataset, key: str, method: str) -> None:
    if not dataset.has_run(key):
        return
    cfg = dataset.get_run_info(key).config
    if getattr(cfg, "stoplight_method", None) != method:
        raise ValueError(
            f"Parameter 'calibration_key': run {key!r} on dataset '{dataset.name}' is not a "
            f"{method} run; choose another key"
        )
    dataset.delete_run(key)


def load_calibration(dataset, calibration_key: str) -> dict:
    """The calibration stored by :func:`calibrate_triage` under a key."""
    if not calibration_key or not dataset.has_run(calibration_key):
        raise ValueError(
            f"Parameter 'calibration_key': no run {calibration_key!r} on dataset '{dataset.name}'; "
            "run calibrate_triage first"
        )
    cfg = dataset.get_run_info(calibration_key).config
    if getattr(cfg, "stoplight_method", None) != METHOD:
        raise ValueError(f"Parameter 'calibration_key': run {calibration_key!r} is not a {METHOD} run")
    results = provenance.load_run_results(dataset, calibration_key)
    calibration = getattr(results, "calibration", None) if results is not None else None
    if not calibration:
        raise ValueError(
            f"Parameter 'calibration_key': run {calibration_key!r} has no calibration "
            f"(status {getattr(cfg, 'status', None)!r})"
        )
    return calibration


def iter_calibrate_triage(
    sample_collection,
    label_field: str = "autolabels",
    gt_field: str | None = "ground_truth",
    target_precision: float = 0.95,
    confidence_level: float = 0.95,
    red_max_precision: float = 0.2,
    guarantee: str = "pac",
    iou: float = 0.5,
    signals: Sequence[str] | str | None = None,
    calibration_key: str = "triage",
    use_reviews: bool = True,
    folds: int = 5,
    shrinkage: float = 1.0,
) -> Iterator[Progress]:
    """Generator form of :func:`calibrate_triage` (yields progress, returns
    the summary)."""
    cal_mod.check_params(target_precision, confidence_level, red_max_precision, guarantee, folds, shrinkage)
    if not (isinstance(iou, (int, float)) and 0.0 < iou <= 1.0):
        raise ValueError(f"Parameter 'iou' must be in (0, 1]; got {iou!r}")
    if not calibration_key or not str(calibration_key).isidentifier():
        raise ValueError(f"Parameter 'calibration_key' must be a valid identifier; got {calibration_key!r}")
    check_detections_field(sample_collection, label_field, "label_field")
    if gt_field:
        if gt_field == label_field:
            raise ValueError("Parameter 'gt_field' must differ from 'label_field'")
        check_detections_field(sample_collection, gt_field, "gt_field")
    elif not use_reviews:
        raise ValueError("Give 'gt_field' (verified labels) or set 'use_reviews': nothing to calibrate on")
    if isinstance(signals, str):
        signals = [s for s in signals.replace(",", " ").split() if s]
    dataset = sample_collection._dataset
    candidates = list(signals) if signals else list(DEFAULT_SIGNALS + OPTIONAL_SIGNALS)
    for s in candidates:
        if not s.isidentifier():
            raise ValueError(f"Parameter 'signals': {s!r} is not a label attribute name")
    stages = 4
    yield Progress(0, stages, "Matching auto-labels to verified labels")

    # ---------------------------------------------- verified labels (gt)
    verified = []
    gt_sample_ids: set = set()
    if gt_field:
        cal_view = sample_collection.exists(gt_field)
        root = f"{label_field}.detections"
        temp_evals.delete_orphans(dataset)  # left by a killed run
        eval_key = temp_evals.new_key()
        try:
            if len(cal_view):
                cal_view.evaluate_detections(
                    label_field, gt_field=gt_field, eval_key=eval_key, iou=iou,
                    classwise=True, progress=False,
                )
                gt_labels = read_labels(cal_view, label_field, candidates)
                outcome = np.asarray(_flatten(cal_view.values(f"{root}.{eval_key}")), dtype=object)
                gt_labels["correct"] = outcome == "tp"
                verified.append(gt_labels)
                gt_sample_ids = set(cal_view.values("id"))
        finally:
            if eval_key in dataset.list_evaluations():
                dataset.delete_evaluation(eval_key)
    yield Progress(1, stages, "Reading reviewed labels")

    # ------------------------------------------- verified labels (reviews)
    num_from_reviews = 0
    if use_reviews:
        from fiftyone import ViewField as F

        reviewed = dataset.filter_labels(label_field, F("review").is_in(list(HUMAN_DECISIONS)))
        rev = read_labels(reviewed, label_field, candidates)
        keep = np.array([sid not in gt_sample_ids for sid in rev["sample_id"]], dtype=bool)
        rev = {k: v[keep] for k, v in rev.items()}
        rev["correct"] = rev["review"] == "accepted"
        num_from_reviews = int(keep.sum())
        verified.append(rev)
    if not verified or sum(len(v["label_id"]) for v in verified) == 0:
        where = f"no auto-label in '{label_field}' on the samples of the target view that have '{gt_field}'" if gt_field else "no reviewed label"
        raise ValueError(f"The calibration set holds no verified auto-labels: {where}")
    data = {k: np.concatenate([v[k] for v in verified]) for k in verified[0]}
    num_from_gt = len(data["label_id"]) - num_from_reviews

    if signals:
        missing = [s for s in candidates if not np.isfinite(data[s]).any()]
        if missing:
            raise ValueError(
                f"Parameter 'signals': {missing} are on no verified label of '{label_field}' "
                "(run score_labels first, or leave 'signals' empty to use what is present)"
            )
        used = candidates
    else:
        used = _present_signals(data, candidates)
    yield Progress(2, stages, "Fitting and certifying")

    x = model.prepare_features(data, used)
    calibration = cal_mod.calibrate(
        x, data["correct"], data["label"].tolist(), data["sample_id"].tolist(), used,
        target_precision=target_precision, confidence_level=confidence_level,
        red_max_precision=red_max_precision, guarantee=guarantee, folds=folds, shrinkage=shrinkage,
    )
    yield Progress(3, stages, "Storing the calibration")

    _replace_own_run(dataset, calibration_key, METHOD)
    record = provenance.start_run(
        dataset, calibration_key, method=METHOD, label_field=label_field, gt_field=gt_field,
        target_precision=target_precision, confidence_level=confidence_level,
        red_max_precision=red_max_precision, guarantee=guarantee, iou=iou, signals=used,
        use_reviews=bool(use_reviews), folds=folds, shrinkage=shrinkage,
    )
    summary = dict(
        run_key=calibration_key,
        status="completed",
        num_verified_labels=calibration["num_verified"],
        num_verified_correct=calibration["num_correct"],
        num_from_gt=num_from_gt,
        num_from_reviews=num_from_reviews,
        num_green_classes=sum(v["green_threshold"] is not None for v in calibration["per_class"].values()),
        num_classes=len(calibration["classes"]),
        signals=used,
        oof_auroc=calibration["oof_auroc"],
        thresholds={
            c: dict(green=v["green_threshold"], red=v["red_threshold"], no_green_reason=v["no_green_reason"],
                    more_labels_needed=v["more_labels_needed"])
            for c, v in calibration["per_class"].items()
        },
        calibration=calibration,
    )
    provenance.finish_run(dataset, calibration_key, record, summary)
    yield Progress(stages, stages, "Calibrated")
    return summary


def calibrate_triage(sample_collection, label_field: str = "autolabels", gt_field: str | None = "ground_truth",
                     target_precision: float = 0.95, confidence_level: float = 0.95,
                     red_max_precision: float = 0.2, guarantee: str = "pac", iou: float = 0.5,
                     signals: Sequence[str] | str | None = None, calibration_key: str = "triage",
                     use_reviews: bool = True, folds: int = 5, shrinkage: float = 1.0,
                     progress=False) -> dict:
    """Learns P(label is correct | signals) and certifies green/red thresholds.

    The target view is the calibration set: its samples that have
    ``gt_field`` hold verified labels. Auto-labels there are matched to them
    with ``evaluate_detections(iou=iou, classwise=True)`` (a match of the
    same class is correct, anything else wrong). With ``use_reviews``,
    auto-labels anywhere in the dataset that a person accepted (correct) or
    rejected (wrong) count as verified too. Example usage::

        from stoplight.plugins.triage.workflow import calibrate_triage, assign_queues

        cal = calibrate_triage(ds.match_tags("verified"), "autolabels", "ground_truth")
        summary = assign_queues(ds, "autolabels")
        print(summary["report"]["queues"]["green"])

    Args:
        sample_collection: the calibration set (a view)
        label_field: the auto-labels (``fo.Detections``)
        gt_field: the verified labels on those samples (``fo.Detections``)
        target_precision: green precision to guarantee per class
        confidence_level: probability that the PAC guarantee holds
        red_max_precision: certified upper bound on the red labels' precision
        guarantee: ``"pac"`` (default) or ``"expected"``; see README
        iou: least IoU of a match with a verified label
        signals: label attributes to use; default ``confidence``, ``margin``
            and every score of ``score_labels`` present on at least half of
            the verified labels
        calibration_key: run key under which the calibration is stored
            (re-running with the same key replaces it)
        use_reviews: count human accept/reject decisions as verified labels
        folds: cross-fitting folds
        shrinkage: how strongly rare classes borrow from the all-class model
        progress: progress bar (True), none (False), or a callable

    Returns:
        the summary, including ``calibration`` (the full stored dict)
    """
    gen = iter_calibrate_triage(
        sample_collection, label_field=label_field, gt_field=gt_field, target_precision=target_precision,
        confidence_level=confidence_level, red_max_precision=red_max_precision, guarantee=guarantee,
        iou=iou, signals=signals, calibration_key=calibration_key, use_reviews=use_reviews, folds=folds,
        shrinkage=shrinkage,
    )
    return run_progress(gen, progress)


def _declare_attrs(dataset, label_field: str) -> None:
    import fiftyone as fo

    for attr, kind in (("queue", fo.StringField), ("p_correct", fo.FloatField), ("review_rank", fo.IntField)):
        path = f"{label_field}.detections.{attr}"
        if not dataset.has_field(path):
            dataset.add_sample_field(path, kind)


def _labeling_gpu_hours(dataset, label_field: str) -> float:
    """Wall-clock hours of the completed zero_shot_detect runs on the field."""
    total = 0.0
    for key in dataset.list_runs():
        try:
            cfg = dataset.get_run_info(key).config
        except Exception:  # a run of another tool
            continue
        if getattr(cfg, "stoplight_method", None) != "zero_shot_detect":
            continue
        if getattr(cfg, "label_field", None) != label_field:
            continue
        try:
            t0 = datetime.datetime.fromisoformat(cfg.started_at)
            t1 = datetime.datetime.fromisoformat(cfg.ended_at)
        except (TypeError, ValueError, AttributeError):
            continue
        total += max(0.0, (t1 - t0).total_seconds()) / 3600.0
    return total


def iter_assign_queues(
    sample_collection,
    label_field: str = "autolabels",
    calibration_key: str = "triage",
    diversity_attr: str | None = "embedding",
    num_groups: int = 16,
    run_key: str | None = None,
    **report_params,
) -> Iterator[Progress]:
    """Generator form of :func:`assign_queues`."""
    check_detections_field(sample_collection, label_field, "label_field")
    dataset = sample_collection._dataset
    calibration = load_calibration(dataset, calibration_key)
    run_key = run_key or provenance.new_run_key(f"{label_field}_queues")
    yield Progress(0, 1, "Reading labels")
    labels = read_labels(sample_collection, label_field, calibration["signals"])
    n = len(labels["label_id"])
    x = model.prepare_features(labels, calibration["signals"])
    folds = model.fold_of(labels["sample_id"].tolist(), calibration["folds"])
    p = cal_mod.score_labels(calibration, x, labels["label"].tolist(), folds) if n else np.zeros(0)
    q = queues.assign(calibration, p, labels["label"], folds) if n else np.zeros(0, dtype=object)
    decided = is_decided(labels["review"])
    free = ~decided

    rank = np.full(n, None, dtype=object)
    yellow = np.nonzero(free & (q == queues.YELLOW))[0]
    groups = labels["label"][yellow].astype(str)
    if len(yellow) and diversity_attr and dataset.has_field(f"{label_field}.detections.{diversity_attr}"):
        from ..scoring.embeddings import load_label_embeddings

        lids, _, emb = load_label_embeddings(sample_collection, label_field, diversity_attr)
        if len(lids):
            pos = {lid: i for i, lid in enumerate(lids)}
            rows = np.array([pos.get(str(l), -1) for l in labels["label_id"][yellow]])
            cluster = np.full(len(yellow), -1)
            have = rows >= 0
            if have.any():
                cluster[have] = queues.embedding_groups(emb[rows[have]], num_groups)
            groups = np.char.add(np.char.add(groups, "|"), cluster.astype(str))
    rank[yellow] = queues.review_rank(p[yellow], groups)

    record = provenance.start_run(
        dataset, run_key, method="assign_queues", label_field=label_field,
        calibration_key=calibration_key, diversity_attr=diversity_attr, num_groups=num_groups,
    )
    status = "failed"
    written = 0
    try:
        _declare_attrs(dataset, label_field)
        idx = np.nonzero(free)[0]
        sids = labels["sample_id"][idx]
        boundaries = np.r_[0, np.flatnonzero(sids[1:] != sids[:-1]) + 1, len(idx)]
        n_samples = len(boundaries) - 1
        for c0 in range(0, n_samples, WRITE_CHUNK):
            a, b = boundaries[c0], boundaries[min(c0 + WRITE_CHUNK, n_samples)]
            part = idx[a:b]
            bulk.write_label_attrs(
                sample_collection, f"{label_field}.detections", labels["sample_id"][part],
                labels["label_id"][part],
                {"queue": q[part].tolist(), "p_correct": [round(float(v), 6) for v in p[part]],
                 "review_rank": [None if r is None else int(r) for r in rank[part]]},
            )
            written += len(part)
            yield Progress(written, max(len(idx), 1), "Writing queues")
        status = "completed"
    except (GeneratorExit, KeyboardInterrupt):
        status = "interrupted"
        raise
    finally:
        counts = {f"num_{name}": int(((q == name) & free).sum()) for name in queues.QUEUES}
        summary = dict(
            run_key=run_key, status=status, calibration_key=calibration_key, label_field=label_field,
            num_labels=n, num_written=written, num_human_decided=int(decided.sum()), **counts,
        )
        provenance.finish_run(dataset, run_key, record, summary)
    # labels with a human decision keep their stored queue in the report
    stored = read_labels(sample_collection, label_field, ["queue", "p_correct"]) if decided.any() else None
    final_q = q.copy()
    final_p = p.copy()
    if stored is not None:
        final_q[decided] = stored["queue"][decided]
        final_p[decided] = stored["p_correct"][decided]
    summary["report"] = build_report(
        calibration, labels["label"], final_q, final_p, labels["review"],
        gpu_hours=report_params.pop("gpu_hours", None) or _labeling_gpu_hours(dataset, label_field),
        **report_params,
    )
    return summary


def assign_queues(sample_collection, label_field: str = "autolabels", calibration_key: str = "triage",
                  diversity_attr: str | None = "embedding", num_groups: int = 16, run_key: str | None = None,
                  seconds_per_box: float = SECONDS_PER_BOX, cents_per_box: float = CENTS_PER_BOX,
                  usd_per_gpu_hour: float = USD_PER_GPU_HOUR, gpu_hours: float | None = None,
                  progress=False) -> dict:
    """Writes ``queue``, ``p_correct`` and ``review_rank`` on every label.

    Labels with a human decision keep everything they have. Yellow labels
    get ``review_rank``: most informative first, interleaved across classes
    and (when ``diversity_attr`` embeddings exist) ``num_groups`` embedding
    clusters per run.

    Args:
        sample_collection: the labels to triage (a dataset or view)
        label_field: the auto-labels
        calibration_key: the :func:`calibrate_triage` run to apply
        diversity_attr: label attribute with embeddings for diverse review
            order (None: classes only)
        num_groups: embedding clusters for the review order
        run_key: key of this run's record; None generates one
        seconds_per_box: review time per yellow label (report)
        cents_per_box: price of drawing a box by hand (report)
        usd_per_gpu_hour: GPU price (report)
        gpu_hours: GPU time of the labeling; None sums the wall time of the
            ``zero_shot_detect`` runs on ``label_field``
        progress: progress bar (True), none (False), or a callable

    Returns:
        the summary with counts per queue and ``report`` (see
        :func:`.report.build_report`)
    """
    gen = iter_assign_queues(
        sample_collection, label_field=label_field, calibration_key=calibration_key,
        diversity_attr=diversity_attr, num_groups=num_groups, run_key=run_key,
        seconds_per_box=seconds_per_box, cents_per_box=cents_per_box,
        usd_per_gpu_hour=usd_per_gpu_hour, gpu_hours=gpu_hours,
    )
    return run_progress(gen, progress)


def label_cells(sample_collection, label_field: str, parts: int | None = None) -> list[dict]:
    """Labels per (class, queue, review state) with P(correct) sums, from one
    MongoDB aggregation over the collection's own pipeline (views and
    filters apply); on a large whole dataset one per ``_id`` range, run
    concurrently and summed (:func:`..common.split_scan.aggregate`).

    Args:
        sample_collection: a dataset or view
        label_field: a label list field, e.g. ``"autolabels"``
        parts: concurrent ``_id`` ranges on a large whole dataset (default:
            the machine's cores, at most 4; 1: one aggregation)

    Returns:
        ``{label, queue, review, n, p_sum, p_n, p_min}`` rows: ``queue`` as
        stored (None when missing or not a string), ``review``
        ``accepted``, ``rejected`` or ``pending``
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
            "_id": {"l": f"{lab}.label", "q": f"{lab}.queue", "r": f"{lab}.review"},
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
        out.append(dict(
            label=label if isinstance(label, str) or label is None else str(label),
            queue=queue if isinstance(queue, str) else None,
            review=review if isinstance(review, str) and review in HUMAN_DECISIONS else "pending",
            n=d["n"], p_sum=d["p_sum"], p_n=d["p_n"],
            p_min=d.get("p_min") if isinstance(d.get("p_min"), (int, float)) else None,
        ))
    return out


def merge_cells(cells) -> list[dict]:
    """Cells with equal ``(label, queue, review)`` summed (``p_min``: the
    smallest)."""
    merged: dict[tuple, dict] = {}
    for c in cells:
        k = (c["label"], c["queue"], c["review"])
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


def triage_report(sample_collection, label_field: str = "autolabels", calibration_key: str = "triage",
                  seconds_per_box: float = SECONDS_PER_BOX, cents_per_box: float = CENTS_PER_BOX,
                  usd_per_gpu_hour: float = USD_PER_GPU_HOUR, gpu_hours: float | None = None,
                  cells: list[dict] | None = None) -> dict:
    """The report of :func:`.report.build_report` for the labels as stored now
    (queues and review decisions), without changing anything. Counted by
    one database aggregation (:func:`label_cells`), not a Python loop;
    ``cells``: its rows when the caller has them already (the panel counts
    from the same rows)."""
    check_detections_field(sample_collection, label_field, "label_field")
    dataset = sample_collection._dataset
    calibration = load_calibration(dataset, calibration_key)
    return report_from_rows(
        calibration, cells if cells is not None else label_cells(sample_collection, label_field),
        seconds_per_box=seconds_per_box, cents_per_box=cents_per_box, usd_per_gpu_hour=usd_per_gpu_hour,
        gpu_hours=gpu_hours if gpu_hours is not None else _labeling_gpu_hours(dataset, label_field),
    )
