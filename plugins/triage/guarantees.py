"""The statistics behind the green and red queues: pure functions on arrays.

Two guarantees for the green queue of one class, given ``scores`` (the
cross-fitted probability that each verified label is correct) and
``correct`` (whether it is):

- **PAC** (:func:`pac_green_threshold`): with probability at least
  ``1 - delta`` over the draw of the calibration set, the precision of the
  labels scored at or above the returned threshold is at least ``target``.
  Each candidate threshold is a hypothesis "precision < target", tested with
  the exact binomial (Clopper–Pearson) bound on the calibration labels above
  it; the candidates are tested in a fixed order, from the highest threshold
  down, and the scan stops at the first one that cannot be certified
  (fixed-sequence testing, as in Learn-then-Test, Angelopoulos et al. 2021),
  which needs no multiplicity correction.
- **Expected** (:func:`conformal_select`): the expected share of wrong labels
  among those selected is at most ``1 - target`` (conformal p-values with
  Benjamini–Hochberg, Jin & Candès 2023). Weaker — a bound on the average
  over calibration draws, not on each — and it selects more.

The red queue (:func:`pac_red_threshold`) mirrors PAC from below: the
upper confidence bound on the precision of the labels at or below the
returned threshold is at most ``red_max_precision``.

All bounds assume the calibration labels are a random sample of the labels
being triaged (exchangeable with them).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

#: candidate thresholds on P(correct), tested from the top down; fixed in
#: advance (fixed-sequence testing needs an order chosen before the data)
THRESHOLD_GRID = np.unique(
    np.concatenate([np.linspace(0.0, 1.0, 401), 1.0 - np.geomspace(1e-4, 0.05, 60)])
)[::-1]


def clopper_pearson(k, n, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact one-sided binomial bounds on a proportion.

    Args:
        k: successes (array-like)
        n: trials (array-like, same shape)
        alpha: error of each one-sided bound (``1 - confidence``)

    Returns:
        ``(lower, upper)``: ``P(p < lower) <= alpha`` and
        ``P(p > upper) <= alpha``; ``lower = 0`` where ``k = 0`` or
        ``n = 0`` and ``upper = 1`` where ``k = n``
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(k > 0, stats.beta.ppf(alpha, k, n - k + 1), 0.0)
        upper = np.where(k < n, stats.beta.ppf(1 - alpha, k + 1, n - k), 1.0)
    lower = np.where(n > 0, np.nan_to_num(lower), 0.0)
    upper = np.where(n > 0, np.nan_to_num(upper, nan=1.0), 1.0)
    return lower, upper


def min_labels_to_certify(target: float, delta: float) -> int:
    """Fewest labels, all correct, whose Clopper–Pearson lower bound reaches
    ``target`` at error ``delta``: ``ceil(log(delta) / log(target))``
    (59 for 0.95 / 0.05)."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"Parameter 'target_precision' must be in (0, 1); got {target}")
    return int(math.ceil(math.log(delta) / math.log(target) - 1e-12))


def _counts_above(scores: np.ndarray, correct: np.ndarray, grid: np.ndarray):
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    cum_correct = np.concatenate([[0], np.cumsum(correct[order])])
    # number of calibration labels with score >= t, for each t in grid
    n = np.searchsorted(-s, -grid, side="right")
    return n, cum_correct[n]


def precision_curve(scores, correct, alpha: float, grid: np.ndarray = THRESHOLD_GRID) -> dict:
    """Precision of the labels scored at or above each threshold.

    Returns:
        dict of arrays over ``grid``: ``threshold``, ``n`` (labels above),
        ``k`` (correct among them), ``precision`` (NaN where ``n = 0``),
        ``lower`` (one-sided Clopper–Pearson bound at error ``alpha``)
    """
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    n, k = _counts_above(scores, correct, grid)
    lower, _ = clopper_pearson(k, n, alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.where(n > 0, k / np.maximum(n, 1), np.nan)
    return dict(threshold=np.asarray(grid), n=n, k=k, precision=prec, lower=lower)


def pac_green_threshold(
    scores, correct, target: float, delta: float, grid: np.ndarray = THRESHOLD_GRID
) -> tuple[float | None, dict]:
    """Lowest threshold whose green set is certified by fixed-sequence testing.

    Thresholds are visited from the top of ``grid`` down. Those with fewer
    calibration labels above them than :func:`min_labels_to_certify` can
    never be certified and are passed over (they come first, since counts
    only grow as the threshold falls); from the first testable one on, each
    is certified when the Clopper–Pearson lower bound at error ``delta`` on
    the precision above it is at least ``target``, and the scan stops at the
    first that is not.

    Args:
        scores: ``(N,)`` cross-fitted P(correct) of the calibration labels
        correct: ``(N,)`` bool, whether each is correct
        target: the precision to certify
        delta: allowed error probability (``1 - confidence_level``)
        grid: candidate thresholds, descending

    Returns:
        ``(threshold, info)``: the threshold (None when none is certified)
        and a dict with ``n``, ``k``, ``precision`` and ``lower`` at that
        threshold (or at the best testable one when none is certified)
    """
    curve = precision_curve(scores, correct, delta, grid)
    n_min = min_labels_to_certify(target, delta)
    best = None
    last_tested = None
    for i in range(len(grid)):
        if curve["n"][i] < n_min:
            continue
        last_tested = i
        if curve["lower"][i] >= target:
            best = i
        else:
            break
    pick = best if best is not None else last_tested
    info = {}
    if pick is not None:
        info = {key: float(curve[key][pick]) for key in ("n", "k", "precision", "lower")}
        info["n"], info["k"] = int(info["n"]), int(info["k"])
    return (float(grid[best]) if best is not None else None), info


def pac_red_threshold(
    scores, correct, max_precision: float, delta: float, grid: np.ndarray = THRESHOLD_GRID
) -> tuple[float | None, dict]:
    """Highest threshold whose red set (scores at or below it) is certified
    to have precision at most ``max_precision``.

    The mirror of :func:`pac_green_threshold`: thresholds visited from the
    bottom of ``grid`` up, the Clopper–Pearson upper bound at error
    ``delta`` on the precision at or below each must stay at or under
    ``max_precision``; the scan stops at the first that does not.

    Returns:
        ``(threshold, info)`` as for the green threshold, ``info`` holding
        ``n``, ``k``, ``precision`` and ``upper``
    """
    scores = np.asarray(scores, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    # labels at or below t == labels of the negated scores at or above -t
    up = np.sort(np.asarray(grid))
    n, k = _counts_above(-scores, correct, -up)
    _, upper = clopper_pearson(k, n, delta)
    n_min = int(math.ceil(math.log(delta) / math.log(1.0 - max_precision))) if max_precision < 1 else 1
    best = None
    last_tested = None
    for i in range(len(up)):
        if n[i] < n_min:
            continue
        last_tested = i
        if upper[i] <= max_precision:
            best = i
        else:
            break
    pick = best if best is not None else last_tested
    info = {}
    if pick is not None:
        info = dict(
            n=int(n[pick]), k=int(k[pick]),
            precision=float(k[pick] / n[pick]), upper=float(upper[pick]),
        )
    return (float(up[best]) if best is not None else None), info


def conformal_pvalues(cal_scores, cal_correct, test_scores) -> np.ndarray:
    """Conformal p-values for "this label is wrong" (Jin & Candès 2023).

    ``p_j = (1 + #{wrong calibration labels with score >= s_j}) / (n + 1)``
    with ``n`` all calibration labels: small when few wrong calibration
    labels score as high as label ``j``.
    """
    cal_scores = np.asarray(cal_scores, dtype=np.float64)
    wrong = np.sort(cal_scores[~np.asarray(cal_correct, dtype=bool)])
    test_scores = np.asarray(test_scores, dtype=np.float64)
    at_or_above = len(wrong) - np.searchsorted(wrong, test_scores, side="left")
    return (1.0 + at_or_above) / (len(cal_scores) + 1.0)


def benjamini_hochberg(pvalues, q: float) -> np.ndarray:
    """Boolean mask of the hypotheses rejected by Benjamini–Hochberg at ``q``."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    below = p[order] <= q * np.arange(1, m + 1) / m
    if not below.any():
        return np.zeros(m, dtype=bool)
    r = int(np.nonzero(below)[0].max()) + 1
    mask = np.zeros(m, dtype=bool)
    mask[order[:r]] = True
    return mask


def conformal_select(cal_scores, cal_correct, test_scores, target: float) -> np.ndarray:
    """Labels selected with expected false-discovery rate <= ``1 - target``."""
    p = conformal_pvalues(cal_scores, cal_correct, test_scores)
    return benjamini_hochberg(p, 1.0 - target)


def labels_needed(precision: float, fraction_above: float, n_have: int, target: float, delta: float) -> int | None:
    """More verified labels a class needs before green can be certified.

    Assumes the precision observed on the best-scoring part of the class
    (``precision``, measured on a ``fraction_above`` share of its labels)
    holds as labels are added; finds the smallest ``n`` whose Clopper–Pearson
    lower bound at that precision reaches ``target``.

    Returns:
        how many more verified labels of the class are needed, 0 if none,
        or None when ``precision <= target`` (more labels will not help:
        the signals do not separate right from wrong well enough)
    """
    if not np.isfinite(precision) or precision <= target or fraction_above <= 0:
        return None
    n = min_labels_to_certify(target, delta)
    while n < 10_000_000:
        lower, _ = clopper_pearson(math.floor(precision * n), n, delta)
        if lower >= target:
            break
        n = int(n * 1.05) + 1
    return max(0, int(math.ceil(n / fraction_above)) - int(n_have))
