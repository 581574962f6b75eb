"""Triage on FiftyOne views: calibrate, assign queues, report.

The FiftyOne edges of :mod:`.calibration`, :mod:`.queues` and
:mod:`.report`: labels and their signals are read in bulk, matched to
verified labels with FiftyOne's own ``evaluate_detections``, and the queue
attributes written back with one bulk update per sample.

Attributes written on ``{label_field}.detections`` by :func:`assign_queues`
(a public contract): ``queue`` (``green`` / ``yellow`` / ``red``),
``p_correct`` (cross-fitted P(label is correct)) and ``review_rank`` (1 =
look first; yellow labels only, None elsewhere). Labels that carry a human
decision (``review`` is ``accepted``, ``rejected`` or ``corrected``) are never
written. :func:`assign_queues` also lays the labels out for the App (the
queue and review state first in the tooltip, a logged copy of class and
box, :mod:`..common.label_docs`), colours the field by queue in the App
(:mod:`..common.app_colors`) and stores the yellow labels' review graph
(:mod:`..common.label_graph`) from which answers re-rank the queue.
"""

from __future__ import annotations

import datetime
import itertools
import logging
import math
from typing import Iterator, Sequence

import numpy as np

from ..common import bulk, label_attrs, label_graph, provenance, temp_evals
from ..common.app_colors import set_queue_colors
from ..common.label_cells import label_cells
from ..common.label_docs import prepare_label_docs
from ..common.label_vocab import ADDED_FROM_ATTR, AUTO_LABEL_ATTR, BULK_ATTR
from ..common.fields import check_detections_field
from ..common.progress import Progress
from ..common.progress import run as run_progress
from ..common.label_vocab import HUMAN_DECISIONS, is_decided
from . import calibration as cal_mod
from . import model, queues
from .verified_recall import calibration_recall
from .report import CENTS_PER_BOX, SECONDS_PER_BOX, USD_PER_GPU_HOUR, build_report, report_from_rows

logger = logging.getLogger(__name__)

#: signals used by default when present on the verified labels
DEFAULT_SIGNALS = ("confidence", "margin")
OPTIONAL_SIGNALS = ("hardness", "knn_agreement", "rer", "clip_agreement", "consensus", "uncertainty")
#: share of the verified labels on which an optional signal must be present
#: to be used by default
PRESENT_SHARE = 0.5
QUEUE_ATTRS = label_attrs.TRIAGE_ATTRS
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
    text_attrs = [a for a in attrs if a in ("queue", AUTO_LABEL_ATTR)]
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
    use_reviews: bool = False,
    folds: int = 5,
    shrinkage: float = 1.0,
    scope: str = "overall",
) -> Iterator[Progress]:
    """Generator form of :func:`calibrate_triage` (yields progress, returns
    the summary)."""
    cal_mod.check_params(target_precision, confidence_level, red_max_precision, guarantee, folds, shrinkage,
                         scope)
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
        cal_view = _without_added(sample_collection.exists(gt_field), label_field)
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
                _as_produced(cal_view, label_field, gt_labels)
                verified.append(gt_labels)
                gt_sample_ids = set(cal_view.values("id"))
        finally:
            if eval_key in dataset.list_evaluations():
                dataset.delete_evaluation(eval_key)
    yield Progress(1, stages, "Reading reviewed labels")

    # ------------------------------------------- verified labels (reviews)
    num_from_reviews = 0
    if use_reviews:
        rev = reviewed_labels(dataset, label_field, candidates, gt_sample_ids)
        num_from_reviews = len(rev["label_id"])
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
        scope=scope,
    )
    # reviews given in review order are not a random sample: the report says
    # when the certified thresholds rest on them
    calibration["num_from_reviews"] = num_from_reviews
    # the verified images (recall is measured on them, with or without labels)
    calibration["verified_sample_ids"] = sorted(gt_sample_ids)
    yield Progress(3, stages, "Storing the calibration")

    _replace_own_run(dataset, calibration_key, METHOD)
    record = provenance.start_run(
        dataset, calibration_key, method=METHOD, label_field=label_field, gt_field=gt_field,
        target_precision=target_precision, confidence_level=confidence_level,
        red_max_precision=red_max_precision, guarantee=guarantee, iou=iou, signals=used,
        use_reviews=bool(use_reviews), folds=folds, shrinkage=shrinkage, scope=scope,
        reviews_assumed_random=bool(num_from_reviews),
    )
    overall = calibration["overall"]
    summary = dict(
        run_key=calibration_key,
        status="completed",
        num_verified_labels=calibration["num_verified"],
        num_verified_correct=calibration["num_correct"],
        num_from_gt=num_from_gt,
        num_from_reviews=num_from_reviews,
        num_green_classes=sum(v["green_threshold"] is not None for v in calibration["per_class"].values()),
        num_classes=len(calibration["classes"]),
        scope=scope,
        green_threshold=overall["green_threshold"] if scope == "overall" else None,
        certified_lower=overall["green"].get("lower") if scope == "overall" and overall["green_threshold"] is not None else None,
        no_green_reason=overall["no_green_reason"] if scope == "overall" else None,
        more_labels_needed=overall["more_labels_needed"] if scope == "overall" else None,
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
                     use_reviews: bool = False, folds: int = 5, shrinkage: float = 1.0,
                     scope: str = "overall", progress=False) -> dict:
    """Learns P(label is correct | signals) and certifies green/red thresholds.

    The target view is the calibration set: its samples that have
    ``gt_field`` hold verified labels. Auto-labels there are matched to them
    with ``evaluate_detections(iou=iou, classwise=True)`` (a match of the
    same class is correct, anything else wrong; a label a person corrected
    is wrong). With ``use_reviews``, auto-labels anywhere in the dataset
    that a person accepted (correct), rejected or corrected (wrong) one at
    a time count as verified too — bulk decisions never do. Reviews given
    in review order are not a random sample of the triaged labels: with
    ``use_reviews`` the certified thresholds *assume* they are (the run
    records ``reviews_assumed_random`` and the report says so). Example
    usage::

        from stoplight.plugins.triage.workflow import calibrate_triage, assign_queues

        cal = calibrate_triage(ds.match_tags("verified"), "autolabels", "ground_truth")
        summary = assign_queues(ds, "autolabels")
        print(summary["report"]["queues"]["green"])

    Args:
        sample_collection: the calibration set (a view)
        label_field: the auto-labels (``fo.Detections``)
        gt_field: the verified labels on those samples (``fo.Detections``)
        target_precision: green precision to guarantee
        confidence_level: probability that the PAC guarantee holds
        red_max_precision: certified upper bound on the red labels' precision
        guarantee: ``"pac"`` (default) or ``"expected"``; see README
        iou: least IoU of a match with a verified label
        signals: label attributes to use; default ``confidence``, ``margin``
            and every score of ``score_labels`` present on at least half of
            the verified labels
        calibration_key: run key under which the calibration is stored
            (re-running with the same key replaces it)
        use_reviews: count human accept/reject/correct decisions (one label
            at a time) as verified labels, assuming them a random sample
            (default False: they steer the review order, not the guarantee)
        folds: cross-fitting folds
        shrinkage: how strongly rare classes borrow from the all-class model
        scope: ``"overall"`` (default): the guarantee covers the precision
            of the whole green queue (one threshold on P(correct), certified
            on all verified labels pooled); ``"class"``: each class's green
            separately (needs many verified labels per class)
        progress: progress bar (True), none (False), or a callable

    Returns:
        the summary, including ``calibration`` (the full stored dict)
    """
    gen = iter_calibrate_triage(
        sample_collection, label_field=label_field, gt_field=gt_field, target_precision=target_precision,
        confidence_level=confidence_level, red_max_precision=red_max_precision, guarantee=guarantee,
        iou=iou, signals=signals, calibration_key=calibration_key, use_reviews=use_reviews, folds=folds,
        shrinkage=shrinkage, scope=scope,
    )
    return run_progress(gen, progress)


def reviewed_labels(dataset, label_field: str, signals: Sequence[str], exclude_samples: set) -> dict:
    """The labels people decided one at a time (not in bulk), outside
    ``exclude_samples``, as verified labels: accepted ones correct,
    rejected and corrected ones wrong, a corrected label under the class
    the detector gave it (:data:`..common.label_vocab.AUTO_LABEL_ATTR`).

    Returns:
        the arrays of :func:`read_labels` plus ``correct``
    """
    from fiftyone import ViewField as F

    decided = F("review").is_in(list(HUMAN_DECISIONS)) & (F(BULK_ATTR) != True)  # noqa: E712
    reviewed = _without_added(dataset.filter_labels(label_field, decided), label_field)
    rev = read_labels(reviewed, label_field, list(signals) + [AUTO_LABEL_ATTR])
    keep = np.array([sid not in exclude_samples for sid in rev["sample_id"]], dtype=bool)
    rev = {k: v[keep] for k, v in rev.items()}
    rev["correct"] = rev["review"] == "accepted"
    _restore_auto_class(rev)
    rev.pop(AUTO_LABEL_ATTR, None)
    return rev


def _without_added(view, label_field: str):
    """The view without the labels a person added from missed-object
    candidates (``added_from``, :mod:`..review.missing`): they are no
    auto-labels, so they must not count as verified ones."""
    if not view._dataset.has_field(f"{label_field}.detections.{ADDED_FROM_ATTR}"):
        return view
    from fiftyone import ViewField as F

    return view.filter_labels(label_field, ~F(ADDED_FROM_ATTR).exists(), only_matches=False)


def _as_produced(cal_view, label_field: str, labels: dict) -> None:
    """Labels of the calibration set a person corrected: wrong, under the
    class the detector gave (their stored class is the corrected one)."""
    if not (labels["review"] == "corrected").any():
        return
    labels[AUTO_LABEL_ATTR] = read_labels(cal_view, label_field, [AUTO_LABEL_ATTR])[AUTO_LABEL_ATTR]
    labels["correct"] = labels["correct"] & (labels["review"] != "corrected")
    _restore_auto_class(labels)
    labels.pop(AUTO_LABEL_ATTR)


def _restore_auto_class(labels: dict) -> None:
    auto = labels.get(AUTO_LABEL_ATTR)
    if auto is None or not len(auto):
        return
    has = np.array([isinstance(a, str) and bool(a) for a in auto], dtype=bool)
    labels["label"] = np.where(has, auto, labels["label"]).astype(object)


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
    graph_k: int = label_graph.DEFAULT_K,
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
    # labels an audit certified stay green (the audit's certificate covers them)
    from .green_audit import certified_label_ids

    audited = certified_label_ids(dataset, label_field, calibration_key) if n else set()
    if audited:
        q[np.fromiter((str(v) in audited for v in labels["label_id"]), dtype=bool, count=n)] = queues.GREEN
    decided = is_decided(labels["review"])
    free = ~decided

    rank = np.full(n, None, dtype=object)
    yellow = np.nonzero(free & (q == queues.YELLOW))[0]
    groups = labels["label"][yellow].astype(str)
    graph_rows = None  # (positions in `yellow`, their embeddings) for the review graph
    if len(yellow) and diversity_attr and dataset.has_field(f"{label_field}.detections.{diversity_attr}"):
        _, lids, emb = bulk.read_label_vectors(sample_collection, f"{label_field}.detections", diversity_attr)
        if len(lids):
            pos = {lid: i for i, lid in enumerate(lids)}
            rows = np.array([pos.get(str(l), -1) for l in labels["label_id"][yellow]])
            cluster = np.full(len(yellow), -1)
            have = rows >= 0
            if have.any():
                cluster[have] = queues.embedding_groups(emb[rows[have]], num_groups)
                graph_rows = (np.nonzero(have)[0], emb[rows[have]])
            groups = np.char.add(np.char.add(groups, "|"), cluster.astype(str))
    rank[yellow] = queues.review_rank(p[yellow], groups)

    # what an audit would certify beyond this green (kept on the run record,
    # which the panel reads; the plan needs the scores computed here)
    from .green_audit import DEFAULT_MAX_CHECKS, plan_for

    audit_plan = plan_for(calibration, p, q, free, calibration["target_precision"],
                          calibration["confidence_level"], DEFAULT_MAX_CHECKS) if n else None
    record = provenance.start_run(
        dataset, run_key, method="assign_queues", label_field=label_field,
        calibration_key=calibration_key, diversity_attr=diversity_attr, num_groups=num_groups,
        audit_plan=audit_plan,
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
                owned=QUEUE_ATTRS,
                # a label a person decides while this run computes is left
                # alone: checked by MongoDB in the write itself
                unless={"review": HUMAN_DECISIONS},
            )
            written += len(part)
            yield Progress(written, max(len(idx), 1), "Writing queues")
        yield Progress(written, max(len(idx), 1), "Preparing the review")
        summary_graph = _prepare_review(dataset, label_field, labels, yellow, p, rank, graph_rows, graph_k)
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
        if status == "completed":
            summary["review_graph"] = summary_graph
        provenance.finish_run(dataset, run_key, record, summary)
    # labels with a human decision keep their stored queue in the report
    stored = read_labels(sample_collection, label_field, ["queue", "p_correct"]) if decided.any() else None
    final_q = q.copy()
    final_p = p.copy()
    in_bulk = None
    if stored is not None:
        final_q[decided] = stored["queue"][decided]
        final_p[decided] = stored["p_correct"][decided]
        if sample_collection.has_field(f"{label_field}.detections.{BULK_ATTR}"):
            in_bulk = _flatten(sample_collection.values(f"{label_field}.detections.{BULK_ATTR}"))
    summary["report"] = build_report(
        calibration, labels["label"], final_q, final_p, labels["review"], bulk=in_bulk,
        gpu_hours=report_params.pop("gpu_hours", None) or _labeling_gpu_hours(dataset, label_field),
        **report_params,
    )
    summary["report"]["audit_plan"] = audit_plan
    summary["report"]["recall"] = calibration_recall(
        sample_collection, label_field, calibration_key, calibration, summary["report"]["workload"]["seconds_per_box"])
    return summary


def assign_queues(sample_collection, label_field: str = "autolabels", calibration_key: str = "triage",
                  diversity_attr: str | None = "embedding", num_groups: int = 16, run_key: str | None = None,
                  graph_k: int = label_graph.DEFAULT_K,
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
        graph_k: neighbours per yellow label in the review graph from which
            answers re-rank the queue (``diversity_attr`` embeddings; 0:
            no graph, answers do not re-rank)
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
        diversity_attr=diversity_attr, num_groups=num_groups, run_key=run_key, graph_k=graph_k,
        seconds_per_box=seconds_per_box, cents_per_box=cents_per_box,
        usd_per_gpu_hour=usd_per_gpu_hour, gpu_hours=gpu_hours,
    )
    return run_progress(gen, progress)


def _prepare_review(dataset, label_field: str, labels: dict, yellow: np.ndarray, p: np.ndarray, rank: np.ndarray,
                    graph_rows, graph_k: int) -> dict:
    """What the review needs after queues are written: the labels laid out
    for the App and snapshotted, the field coloured by queue, and the
    yellow labels' review graph (replacing that of every label assigned)."""
    prepare_label_docs(dataset, f"{label_field}.detections", np.unique(labels["sample_id"]).tolist())
    set_queue_colors(dataset, label_field)
    if graph_rows is None or graph_k < 1:
        return dict(num_labels=0, num_edges=0, seconds=0.0)
    pos, emb = graph_rows
    at = yellow[pos]
    return label_graph.build_label_graph(
        dataset, label_field, labels["label_id"][at], labels["sample_id"][at], labels["label"][at],
        p[at], rank[at].astype(np.int64), emb, replace_ids=labels["label_id"], k=graph_k,
    )


def triage_report(sample_collection, label_field: str = "autolabels", calibration_key: str = "triage",
                  seconds_per_box: float = SECONDS_PER_BOX, cents_per_box: float = CENTS_PER_BOX,
                  usd_per_gpu_hour: float = USD_PER_GPU_HOUR, gpu_hours: float | None = None,
                  cells: list[dict] | None = None) -> dict:
    """The report of :func:`.report.build_report` for the labels as stored now
    (queues and review decisions), without changing anything. Counted by
    one database aggregation (:func:`label_cells`), not a Python loop;
    ``cells``: its rows when the caller has them already (the panel counts
    from the same rows). Adds ``audit`` (where the field's audit stands,
    :func:`.green_audit.peek_audit`) and ``audit_plan`` (what an audit
    could certify, from the latest ``assign_queues`` run) and ``recall`` (on the
    calibration's verified images, :func:`.verified_recall.recall_section`)."""
    from .green_audit import find_audit, peek_audit

    check_detections_field(sample_collection, label_field, "label_field")
    dataset = sample_collection._dataset
    calibration = load_calibration(dataset, calibration_key)
    report = report_from_rows(
        calibration, cells if cells is not None else label_cells(sample_collection, label_field),
        seconds_per_box=seconds_per_box, cents_per_box=cents_per_box, usd_per_gpu_hour=usd_per_gpu_hour,
        gpu_hours=gpu_hours if gpu_hours is not None else _labeling_gpu_hours(dataset, label_field),
    )
    key = find_audit(dataset, label_field)
    audit = peek_audit(dataset, key) if key else None
    report["audit"] = None if audit is None else {k: v for k, v in audit.items() if k != "plan"}
    report["audit_plan"] = latest_audit_plan(dataset, label_field, calibration_key)
    report["recall"] = calibration_recall(sample_collection, label_field, calibration_key, calibration,
                                          seconds_per_box)
    report["missed"] = _missed(sample_collection, label_field, dataset, calibration_key)
    return report


def _missed(sample_collection, label_field: str, dataset, calibration_key: str) -> dict | None:
    """The report's ``missed`` section (:mod:`.missed`), on the calibration's
    verified labels field and IoU."""
    from .missed import missed_section

    config = dataset.get_run_info(calibration_key).config
    return missed_section(sample_collection, label_field, getattr(config, "gt_field", None),
                          iou=getattr(config, "iou", None) or 0.5)


def latest_audit_plan(dataset, label_field: str, calibration_key: str) -> dict | None:
    """The audit plan stored by the newest ``assign_queues`` run of the field
    under this calibration (None when there is none)."""
    best = None
    for key in dataset.list_runs():
        try:
            cfg = dataset.get_run_info(key).config
        except Exception:  # noqa: BLE001 - a run of another tool
            continue
        if (getattr(cfg, "stoplight_method", None) == "assign_queues"
                and getattr(cfg, "label_field", None) == label_field
                and getattr(cfg, "calibration_key", None) == calibration_key):
            started = getattr(cfg, "started_at", "") or ""
            if best is None or started > best[0]:
                best = (started, getattr(cfg, "audit_plan", None))
    return best[1] if best else None
