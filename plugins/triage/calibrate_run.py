"""The calibration run: learn P(label is correct | signals) on verified
labels, certify green/red thresholds, store them as a run.

The FiftyOne edge of :mod:`.calibration`: verified labels come from a
ground-truth field (matched with FiftyOne's own ``evaluate_detections``)
and, when asked, from reviews (:mod:`.verified_labels`); the calibration is
stored under ``calibration_key`` (:func:`load_calibration` reads it back).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ..common import fo_private, provenance, temp_evals
from ..common.fields import check_detections_field, check_other_detections_field
from ..common.progress import Progress, sdk_function
from ..common.label_vocab import DEFAULT_LABEL_FIELD
from . import calibration as cal_mod
from . import model
from .label_arrays import flatten, read_labels
from .verified_labels import mark_corrected_wrong, reviewed_labels, without_added

#: signals used by default when present on the verified labels
DEFAULT_SIGNALS = ("confidence", "margin")
OPTIONAL_SIGNALS = ("hardness", "knn_agreement", "rer", "clip_agreement", "consensus", "uncertainty")
#: share of the verified labels on which an optional signal must be present
#: to be used by default
PRESENT_SHARE = 0.5
METHOD = "calibrate_triage"

__all__ = [
    "DEFAULT_SIGNALS", "METHOD", "OPTIONAL_SIGNALS", "PRESENT_SHARE", "calibrate_triage", "iter_calibrate_triage",
    "load_calibration",
]


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
    label_field: str = DEFAULT_LABEL_FIELD,
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
    """Learns P(label is correct | signals) and certifies green/red thresholds.

    Written once as a generator: ``iter_calibrate_triage`` yields :class:`Progress`
    events (operators forward them to the App) and returns the summary;
    ``calibrate_triage`` runs it to its end and returns the summary
    (:func:`..common.progress.sdk_function`).

    The target view is the calibration set: its samples that have
    ``gt_field`` hold verified labels. Auto-labels there are matched to them
    with ``evaluate_detections(iou=iou, classwise=True)`` (a match of the
    same class is correct, anything else wrong; a label a person corrected
    is wrong). With ``use_reviews``, auto-labels anywhere in the dataset
    that a person accepted (correct), rejected or corrected (wrong) one at
    a time count as verified too — bulk decisions never do. Reviews given
    in review order are not a random sample of the triaged labels: with
    ``use_reviews`` the certified thresholds *assume* they are (the run
    records ``reviews_assumed_random`` and the report says so).

    Example usage::

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
        progress: ``calibrate_triage`` only: progress bar (True), none (False), or a callable

    Returns:
        the summary, including ``calibration`` (the full stored dict)
    """
    candidates, chosen = _check_params(sample_collection, label_field, gt_field, target_precision, confidence_level,
                                       red_max_precision, guarantee, iou, signals, calibration_key, use_reviews,
                                       folds, shrinkage, scope)
    dataset = fo_private.view_dataset(sample_collection)
    stages = 4
    yield Progress(0, stages, "Matching auto-labels to verified labels")
    verified, gt_sample_ids = [], set()
    if gt_field:
        verified, gt_sample_ids = _verified_from_gt(sample_collection, label_field, gt_field, iou, candidates)
    yield Progress(1, stages, "Reading reviewed labels")

    num_from_reviews = 0
    if use_reviews:
        rev = reviewed_labels(dataset, label_field, candidates, gt_sample_ids)
        num_from_reviews = len(rev["label_id"])
        verified.append(rev)
    data, used = _training_data(verified, candidates, chosen, label_field, gt_field)
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
    summary = _summary(calibration_key, calibration, used, scope, len(data["label_id"]) - num_from_reviews,
                       num_from_reviews)
    provenance.finish_run(dataset, calibration_key, record, summary)
    yield Progress(stages, stages, "Calibrated")
    return summary


calibrate_triage = sdk_function(iter_calibrate_triage, "calibrate_triage", progress=False)


def _check_params(sample_collection, label_field, gt_field, target_precision, confidence_level, red_max_precision,
                  guarantee, iou, signals, calibration_key, use_reviews, folds, shrinkage,
                  scope) -> tuple[list[str], bool]:
    """Validates the parameters of :func:`calibrate_triage`; returns the
    candidate signals (those asked for, or every known one) and whether
    the caller asked for them."""
    cal_mod.check_params(target_precision, confidence_level, red_max_precision, guarantee, folds, shrinkage,
                         scope)
    if not (isinstance(iou, (int, float)) and 0.0 < iou <= 1.0):
        raise ValueError(f"Parameter 'iou' must be in (0, 1]; got {iou!r}")
    if not calibration_key or not str(calibration_key).isidentifier():
        raise ValueError(f"Parameter 'calibration_key' must be a valid identifier; got {calibration_key!r}")
    check_detections_field(sample_collection, label_field, "label_field")
    if gt_field:
        check_other_detections_field(sample_collection, gt_field, "gt_field", label_field)
    elif not use_reviews:
        raise ValueError("Give 'gt_field' (verified labels) or set 'use_reviews': nothing to calibrate on")
    if isinstance(signals, str):
        signals = [s for s in signals.replace(",", " ").split() if s]
    candidates = list(signals) if signals else list(DEFAULT_SIGNALS + OPTIONAL_SIGNALS)
    for s in candidates:
        if not s.isidentifier():
            raise ValueError(f"Parameter 'signals': {s!r} is not a label attribute name")
    return candidates, bool(signals)


def _verified_from_gt(sample_collection, label_field: str, gt_field: str, iou: float,
                      candidates: Sequence[str]) -> tuple[list[dict], set]:
    """The auto-labels of the samples that have ``gt_field``, matched to
    its labels (a match of the same class is correct), as a list of zero
    or one label arrays; and the ids of those samples."""
    dataset = fo_private.view_dataset(sample_collection)
    cal_view = without_added(sample_collection.exists(gt_field), label_field)
    root = f"{label_field}.detections"
    temp_evals.delete_orphans(dataset)  # left by a killed run
    eval_key = temp_evals.new_key()
    verified, gt_sample_ids = [], set()
    try:
        if len(cal_view):
            cal_view.evaluate_detections(
                label_field, gt_field=gt_field, eval_key=eval_key, iou=iou,
                classwise=True, progress=False,
            )
            gt_labels = read_labels(cal_view, label_field, candidates)
            outcome = np.asarray(flatten(cal_view.values(f"{root}.{eval_key}")), dtype=object)
            gt_labels["correct"] = outcome == "tp"
            mark_corrected_wrong(cal_view, label_field, gt_labels)
            verified.append(gt_labels)
            gt_sample_ids = set(cal_view.values("id"))
    finally:
        if eval_key in dataset.list_evaluations():
            dataset.delete_evaluation(eval_key)
    return verified, gt_sample_ids


def _training_data(verified: list[dict], candidates: list[str], chosen: bool, label_field: str,
                   gt_field: str | None) -> tuple[dict, list[str]]:
    """The verified label arrays joined, and the signals to fit on: all
    ``candidates`` when the caller has ``chosen`` them (each must be on some
    verified label), else those present on enough verified labels."""
    if not verified or sum(len(v["label_id"]) for v in verified) == 0:
        where = f"no auto-label in '{label_field}' on the samples of the target view that have '{gt_field}'" if gt_field else "no reviewed label"
        raise ValueError(f"The calibration set holds no verified auto-labels: {where}")
    data = {k: np.concatenate([v[k] for v in verified]) for k in verified[0]}
    if not chosen:
        return data, _present_signals(data, candidates)
    missing = [s for s in candidates if not np.isfinite(data[s]).any()]
    if missing:
        raise ValueError(
            f"Parameter 'signals': {missing} are on no verified label of '{label_field}' "
            "(run score_labels first, or leave 'signals' empty to use what is present)"
        )
    return data, candidates


def _summary(calibration_key: str, calibration: dict, used: list[str], scope: str, num_from_gt: int,
             num_from_reviews: int) -> dict:
    """The run's summary (stored on its record, returned to the caller)."""
    overall = calibration["overall"]
    return dict(
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
