"""Labels a person verified, as the calibration's training data.

The calibration learns from auto-labels whose correctness is known: those
matched to verified labels (:mod:`.calibrate_run`), and, when asked, those
people decided one at a time (:func:`reviewed_labels`). A label a person
corrected counts as wrong, under the class the detector gave it; a label a
person added from missed-object candidates is no auto-label and never
counts.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..common import fo_private
from ..common.label_vocab import ADDED_FROM_ATTR, AUTO_LABEL_ATTR, BULK_ATTR, HUMAN_DECISIONS
from .label_arrays import read_labels

__all__ = ["mark_corrected_wrong", "reviewed_labels", "without_added"]


def reviewed_labels(dataset, label_field: str, signals: Sequence[str], exclude_samples: set) -> dict:
    """The labels people decided one at a time (not in bulk), outside
    ``exclude_samples``, as verified labels: accepted ones correct,
    rejected and corrected ones wrong, a corrected label under the class
    the detector gave it (:data:`..common.label_vocab.AUTO_LABEL_ATTR`).

    Returns:
        the arrays of :func:`.label_arrays.read_labels` plus ``correct``
    """
    from fiftyone import ViewField as F

    decided = F("review").is_in(list(HUMAN_DECISIONS)) & (F(BULK_ATTR) != True)  # noqa: E712
    reviewed = without_added(dataset.filter_labels(label_field, decided), label_field)
    rev = read_labels(reviewed, label_field, list(signals) + [AUTO_LABEL_ATTR])
    keep = np.array([sid not in exclude_samples for sid in rev["sample_id"]], dtype=bool)
    rev = {k: v[keep] for k, v in rev.items()}
    rev["correct"] = rev["review"] == "accepted"
    _restore_auto_class(rev)
    rev.pop(AUTO_LABEL_ATTR, None)
    return rev


def without_added(view, label_field: str):
    """The view without the labels a person added from missed-object
    candidates (``added_from``, :mod:`..review.missing`): they are no
    auto-labels, so they must not count as verified ones."""
    if not fo_private.view_dataset(view).has_field(f"{label_field}.detections.{ADDED_FROM_ATTR}"):
        return view
    from fiftyone import ViewField as F

    return view.filter_labels(label_field, ~F(ADDED_FROM_ATTR).exists(), only_matches=False)


def mark_corrected_wrong(cal_view, label_field: str, labels: dict) -> None:
    """Marks the labels of the calibration set a person corrected wrong, in
    place, under the class the detector gave (their stored class is the
    corrected one)."""
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
