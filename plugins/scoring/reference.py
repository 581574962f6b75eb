"""Auto-labels against a reference field (e.g. human labels).

:func:`match_reference` matches in bulk with FiftyOne's own
``evaluate_detections(classwise=False)`` (so a box matched to a reference
box of another class is found) under a temporary evaluation key;
:func:`mistakenness_from_matches` turns the matches into the
``mistakenness`` and ``mistakenness_loc`` signals. The per-sample counts of
possible missing and spurious labels are stored under the field names
given by :func:`possible_missing_field` and :func:`possible_spurious_field`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..common import fo_private, temp_evals


def possible_missing_field(label_field: str) -> str:
    """Name of the per-sample count of unmatched reference labels."""
    return f"{label_field}_possible_missing"


def possible_spurious_field(label_field: str) -> str:
    """Name of the per-sample count of confident unmatched auto-labels."""
    return f"{label_field}_possible_spurious"


def mistakenness_from_matches(
    labels: Sequence[str], matched_labels: Sequence[str | None], ious: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mistakenness and localization mistakenness from match results.

    Args:
        labels: class of each auto-label
        matched_labels: class of the reference label each auto-label is
            matched to, ``None`` when unmatched
        ious: IoU of each match (ignored where unmatched)

    Returns:
        ``(mistakenness, mistakenness_loc)``: ``0`` for a same-class match,
        ``1`` for a cross-class match or no match; ``1 - IoU`` for matches,
        NaN when unmatched
    """
    n = len(labels)
    mist = np.ones(n, dtype=np.float64)
    loc = np.full(n, np.nan)
    for i, (lab, ref) in enumerate(zip(labels, matched_labels)):
        if ref is None:
            continue
        mist[i] = 0.0 if ref == lab else 1.0
        iou = ious[i]
        loc[i] = 1.0 - float(iou) if iou is not None and np.isfinite(iou) else np.nan
    return mist, np.clip(loc, 0.0, 1.0)


def match_reference(sample_collection, label_field, reference_field, iou):
    """Matches in bulk with a temporary ``evaluate_detections``; deletes it.

    Returns:
        ``(pred_match, pred_iou, ref_ids, ref_matched)``: per sample, lists
        aligned with its auto-labels (matched reference id or None, IoU or
        None) and with its reference labels (id, whether matched)
    """
    dataset = fo_private.view_dataset(sample_collection)
    temp_evals.delete_orphans(dataset)  # left by a killed run
    eval_key = temp_evals.new_key()
    pred = f"{label_field}.detections"
    gt = f"{reference_field}.detections"
    try:
        sample_collection.evaluate_detections(
            label_field,
            gt_field=reference_field,
            eval_key=eval_key,
            iou=iou,
            classwise=False,
            progress=False,
        )
        pred_match, pred_iou, ref_ids, ref_match = sample_collection.values(
            [f"{pred}.{eval_key}_id", f"{pred}.{eval_key}_iou", f"{gt}.id", f"{gt}.{eval_key}_id"]
        )
    finally:
        if eval_key in dataset.list_evaluations():
            dataset.delete_evaluation(eval_key)
    clean = lambda v: v if v else None  # noqa: E731  ("" means unmatched)
    pred_match = [[clean(m) for m in (ms or [])] for ms in pred_match]
    pred_iou = [list(v or []) for v in pred_iou]
    ref_matched = [[bool(m) for m in (ms or [])] for ms in ref_match]
    ref_ids = [list(v or []) for v in ref_ids]
    return pred_match, pred_iou, ref_ids, ref_matched
