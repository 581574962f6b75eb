"""Recall of the labels on the verified images: pure functions on arrays.

Precision says which auto-labels to trust; recall says how many objects
they find. Both are measured on the verified images (those with the
calibration's ground truth field): each verified object is *found* when a
label of the same class matches it (FiftyOne's ``evaluate_detections``,
see :mod:`.verified_recall`), and recall is the share of verified objects
found, per class and overall.

**The interval.** The sampling unit is the image, not the object: people
verify whole images, and objects of one image are found or missed together
(a dark photo, a cluttered scene, a domain the detector does not know).
A binomial interval over objects (Clopper–Pearson on ``k`` of ``n``)
treats ``n`` correlated objects as independent draws and is too narrow when
images differ: the simulation test measures its coverage well below the
nominal level. :func:`cluster_interval` is the Korn–Graubard interval
(Korn & Graubard 1998, *Confidence intervals for proportions with small
expected number of positive counts estimated from survey data*; the NCHS
standard for survey proportions): the ratio estimate ``p = k / n`` with its
between-image (linearised) variance, turned into an effective sample size
``n* = p (1 - p) / var(p)`` (never above ``n``: clustering cannot add
information), shrunk by ``(z / t_{m-1})^2`` for the ``m - 1`` degrees of
freedom of ``m`` images, and a Clopper–Pearson interval on ``p n*`` of
``n*``. Chosen over a bootstrap over images because it is deterministic
(the panel redraws it on every refresh), costs one pass, and stays
sensible where recall is near 1: when every verified object is found, a
percentile bootstrap collapses to ``[1, 1]`` while this gives the exact
binomial lower bound of ``n`` objects.

**The labeling threshold.** :func:`threshold_curve` answers "what would a
lower confidence threshold add?": at each threshold ``t``, the precision
of the verified auto-labels scored ``>= t``, the recall of the verified
objects matched by such a label (matching is greedy by confidence, so the
matches of labels above ``t`` do not depend on those below), and how many
labels of the whole view, and how many review hours, ``>= t`` holds. Only
thresholds at or above the one the labels were generated with can be
measured: boxes below it were never kept.

Every function here takes plain arrays, so objects found some other way
(e.g. a missed-object queue) count by OR-ing their ``found`` flags.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

#: thresholds of the trade-off curve (those below the labeling threshold
#: are dropped; the labeling threshold itself is added)
CURVE_THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.05, 1.0, 0.05))


def cluster_interval(found: np.ndarray, cluster: np.ndarray, confidence_level: float = 0.95) -> dict:
    """A proportion over objects with its Korn–Graubard interval over images.

    Args:
        found: ``(N,)`` bool, whether each object is found (or, for
            precision, whether each label is correct)
        cluster: ``(N,)`` the image (any hashable id) each object is on
        confidence_level: two-sided level of the interval

    Returns:
        dict: ``n`` objects, ``k`` found, ``images`` (clusters holding
        them), ``estimate`` (``k / n``, None when ``n = 0``), ``interval``
        (``[lower, upper]``; None when ``n = 0``, ``[0, 1]`` when the
        objects lie on a single image: one image says nothing about the
        spread between images) and ``effective_n`` (``n*`` after the
        degrees-of-freedom correction)
    """
    found = np.asarray(found, dtype=bool)
    n, k = len(found), int(found.sum())
    out = dict(n=n, k=k, images=0, estimate=None, interval=None, effective_n=None)
    if n == 0:
        return out
    _, idx = np.unique(np.asarray(cluster), return_inverse=True)
    m = int(idx.max()) + 1
    p = k / n
    out.update(images=m, estimate=round(p, 4))
    if m < 2:
        out["interval"] = [0.0, 1.0]
        return out
    n_i = np.bincount(idx, minlength=m).astype(np.float64)
    k_i = np.bincount(idx, weights=found.astype(np.float64), minlength=m)
    # linearised variance of the ratio estimator k / n across images
    var = m / (m - 1) * float(np.sum((k_i - p * n_i) ** 2)) / n**2
    n_eff = float(n) if var <= 0 or p in (0.0, 1.0) else min(float(n), p * (1 - p) / var)
    alpha = 1.0 - confidence_level
    n_eff *= (stats.norm.ppf(1 - alpha / 2) / stats.t.ppf(1 - alpha / 2, m - 1)) ** 2
    x = p * n_eff
    lower = float(stats.beta.ppf(alpha / 2, x, n_eff - x + 1)) if x > 0 else 0.0
    upper = float(stats.beta.ppf(1 - alpha / 2, x + 1, n_eff - x)) if x < n_eff else 1.0
    out.update(interval=[round(lower, 4), round(upper, 4)], effective_n=round(n_eff, 1))
    return out


def recall_by_class(found: np.ndarray, image: np.ndarray, classes: Sequence[str],
                    confidence_level: float = 0.95) -> dict:
    """Recall overall and per class, each with :func:`cluster_interval`.

    Args:
        found: ``(N,)`` bool, whether each verified object is found
        image: ``(N,)`` the image each object is on
        classes: ``(N,)`` each object's (verified) class
        confidence_level: two-sided level of the intervals

    Returns:
        ``{"overall": ..., "classes": {class: ...}}`` of
        :func:`cluster_interval` results
    """
    found = np.asarray(found, dtype=bool)
    image = np.asarray(image)
    classes = np.asarray(classes, dtype=object)
    return dict(
        overall=cluster_interval(found, image, confidence_level),
        classes={
            str(c): cluster_interval(found[classes == c], image[classes == c], confidence_level)
            for c in sorted(set(classes.tolist()), key=str)
        },
    )


def curve_thresholds(labeling_threshold: float | None, confidences: np.ndarray) -> list[float]:
    """The thresholds of :func:`threshold_curve`: :data:`CURVE_THRESHOLDS`
    from the labeling threshold up (the lowest of ``confidences`` when it
    is unknown, rounded down to 4 decimals), that threshold first."""
    conf = np.asarray(confidences, dtype=np.float64)
    conf = conf[np.isfinite(conf)]
    start = labeling_threshold if labeling_threshold is not None else (float(conf.min()) if len(conf) else 0.0)
    start = math.floor(float(start) * 1e4) / 1e4
    return [start] + [t for t in CURVE_THRESHOLDS if t > start]


def threshold_curve(
    thresholds: Sequence[float],
    object_confidence: np.ndarray,
    object_image: np.ndarray,
    label_confidence: np.ndarray,
    label_correct: np.ndarray,
    label_image: np.ndarray,
    view_labels: Sequence[int],
    view_review: Sequence[int],
    seconds_per_box: float,
    confidence_level: float = 0.95,
) -> list[dict]:
    """Precision, recall, labels and review time at each confidence threshold.

    Args:
        thresholds: increasing confidence thresholds
        object_confidence: ``(N,)`` per verified object, the confidence of
            the auto-label that matches it (NaN: none does)
        object_image: ``(N,)`` the image of each verified object
        label_confidence: ``(L,)`` the confidence of each auto-label on the
            verified images (NaN counts as 0)
        label_correct: ``(L,)`` bool, whether it matches a verified object
        label_image: ``(L,)`` its image
        view_labels: per threshold, the labels of the whole view scored at
            or above it
        view_review: per threshold, those of them a person must look at
            (the yellow ones)
        seconds_per_box: review time per label

    Returns:
        one dict per threshold: ``threshold``, ``precision`` and
        ``precision_interval``, ``recall`` and ``recall_interval``
        (:func:`cluster_interval`), ``labels``, ``review`` and
        ``review_hours``, and ``added_labels`` / ``added_hours``: what it
        adds over the next higher threshold (0 for the highest)
    """
    oc = np.nan_to_num(np.asarray(object_confidence, dtype=np.float64), nan=-np.inf)
    lc = np.nan_to_num(np.asarray(label_confidence, dtype=np.float64), nan=0.0)
    lcorrect = np.asarray(label_correct, dtype=bool)
    limage = np.asarray(label_image)
    points = []
    for i, t in enumerate(thresholds):
        r = cluster_interval(oc >= t, object_image, confidence_level)
        above = lc >= t
        pr = cluster_interval(lcorrect[above], limage[above], confidence_level)
        points.append(dict(
            threshold=float(t),
            recall=r["estimate"], recall_interval=r["interval"],
            precision=pr["estimate"], precision_interval=pr["interval"], verified_labels=pr["n"],
            labels=int(view_labels[i]), review=int(view_review[i]),
            review_hours=round(int(view_review[i]) * seconds_per_box / 3600.0, 4),
        ))
    for here, higher in zip(points, points[1:] + [None]):
        here["added_labels"] = here["labels"] - higher["labels"] if higher else 0
        here["added_hours"] = round(here["review_hours"] - higher["review_hours"], 4) if higher else 0.0
    return points
