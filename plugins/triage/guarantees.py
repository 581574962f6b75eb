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
  (fixed-sequence testing, as in Learn-then-Test, Angelopoulos et al. 2021);
  two scans from two starts share ``delta`` (:func:`scan_starts`).
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


def scan_starts(n_total: int, target: float, delta: float) -> list[int]:
    """Where the fixed-sequence scans of :func:`pac_green_threshold` start:
    calibration labels above the first threshold each one tests.

    One start is fragile either way. At the bare minimum of labels
    (:func:`min_labels_to_certify`) one wrong label among the very best
    ends the scan before it starts (a digits calibration: one wrong label
    among the top 37 of 1,900 left green empty). At a large start the first
    set must already be clearly above the target (digitsdet: the top 230
    labels, ~97 % right, fail 0.95 and green stayed empty although the top
    60 were all right and carried the scan down to 892 labels). So, as in
    Learn-then-Test's fixed-sequence testing with multiple starts, two scans
    run, each at error ``delta / 2``: one from the bare minimum, one from
    where a top part as precise as halfway between the target and 1 would
    be certified (capped at a quarter of the labels). A small set where the
    two coincide runs one scan at the full ``delta``. Depends on the counts
    only, not on which labels are correct, so the test stays valid.

    Returns:
        the start counts, ascending; each scan runs at ``delta / len(starts)``
    """
    n_min = min_labels_to_certify(target, delta / 2.0)
    mid = _labels_to_certify(np.array([(1.0 + target) / 2.0]), target, delta / 2.0)[0]
    n_mid = int(mid) if np.isfinite(mid) else n_min
    n_mid = min(n_mid, n_total // 4)
    if n_mid <= n_min:
        return [min_labels_to_certify(target, delta)]
    return [n_min, n_mid]


def pac_green_threshold(
    scores, correct, target: float, delta: float, grid: np.ndarray = THRESHOLD_GRID
) -> tuple[float | None, dict]:
    """Lowest threshold whose green set is certified by fixed-sequence testing.

    Each scan of :func:`scan_starts` visits the thresholds of ``grid`` from
    the top down, passing over those with fewer calibration labels above
    them than its start (they come first, since counts only grow as the
    threshold falls); from its first tested one on, each is certified when
    the Clopper–Pearson lower bound at error ``delta / scans`` on the
    precision above it is at least ``target``, and the scan stops at the
    first that is not. A threshold certified by any scan is certified: the
    scans' errors add up to at most ``delta`` (Bonferroni over the starts).

    Args:
        scores: ``(N,)`` cross-fitted P(correct) of the calibration labels
        correct: ``(N,)`` bool, whether each is correct
        target: the precision to certify
        delta: allowed error probability (``1 - confidence_level``)
        grid: candidate thresholds, descending

    Returns:
        ``(threshold, info)``: the threshold (None when none is certified)
        and a dict with ``n``, ``k``, ``precision`` and ``lower`` (at the
        scans' error) at that threshold, or, when none is certified, at the
        threshold where the last scan stopped; ``starts`` holds the scans'
        start counts
    """
    starts = scan_starts(len(np.asarray(scores)), target, delta)
    curve = precision_curve(scores, correct, delta / len(starts), grid)
    best = None
    last_failed = None
    for n_start in starts:
        for i in range(len(grid)):
            if curve["n"][i] < n_start:
                continue
            if curve["lower"][i] >= target:
                best = i if best is None else max(best, i)
            else:
                last_failed = i
                break
    pick = best if best is not None else last_failed
    info = {}
    if pick is not None:
        info = {key: float(curve[key][pick]) for key in ("n", "k", "precision", "lower")}
        info["n"], info["k"] = int(info["n"]), int(info["k"])
    info["starts"] = starts
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
    """More verified labels needed before green can be certified.

    Assumes the precision observed on the best-scoring part of the labels
    (``precision``, measured on a ``fraction_above`` share of them) holds as
    labels are added; finds the smallest ``n`` above the threshold whose
    Clopper–Pearson lower bound at that precision reaches ``target``.

    Returns:
        how many more verified labels are needed, 0 if none, or None when
        ``precision <= target`` (at that precision no number certifies)
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


#: fewest verified labels on which a plan's precision estimate rests: the
#: plan looks at every top part, and small ones can look perfect by chance
#: (29 of 29 right happens at 85 % precision once in a hundred)
PLAN_MIN_LABELS = 50


def certification_plan(scores, correct, target: float, delta: float) -> dict:
    """The cheapest way to a certified green: how many more random verified
    labels would certify which share of the labels.

    For every top part of the verified labels ranked by score (at least
    :data:`PLAN_MIN_LABELS` of them), the precision the labels there would
    keep is estimated by its Jeffreys posterior mean ``(k + 1/2) / (n + 1)``
    (never exactly 1, so a perfect small top does not promise a free
    certificate), and :func:`labels_needed` gives the verified labels that
    make the Clopper–Pearson bound reach ``target`` at that precision. The
    plan is the top part that needs the fewest more.

    Args:
        scores: ``(N,)`` cross-fitted P(correct) of the verified labels
        correct: ``(N,)`` bool
        target: precision to certify
        delta: error probability

    Returns:
        ``more_verified`` (None when no top part is estimated above the
        target: more random labels cannot certify anything at the precision
        observed), ``share`` (share of the labels that would be certified),
        ``precision`` (its estimate), ``best_precision`` (highest estimate
        over the top parts) and ``top`` (verified labels in that part)
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(correct, dtype=bool)
    n = len(s)
    out = dict(more_verified=None, share=None, precision=None, best_precision=None, top=None)
    if n < PLAN_MIN_LABELS:
        out["more_verified"] = max(min_labels_to_certify(target, delta) * 2 - n, 0) if n else None
        return out
    order = np.argsort(-s, kind="stable")
    k = np.cumsum(y[order])
    tops = np.arange(PLAN_MIN_LABELS, n + 1)
    est = (k[tops - 1] + 0.5) / (tops + 1.0)
    out["best_precision"] = round(float(est.max()), 4)
    # a set large enough to certify is scanned from two starts, each at
    # delta / 2 (scan_starts): plan for that bound
    needed = _labels_to_certify(est, target, delta / 2.0)
    more = np.ceil(needed * n / tops) - n
    if np.isfinite(more).any():
        i = int(np.nanargmin(np.where(np.isfinite(more), more, np.nan)))
        out.update(more_verified=int(max(more[i], 0)), share=round(float(tops[i] / n), 4),
                   precision=round(float(est[i]), 4), top=int(tops[i]))
    return out


def _labels_to_certify(precision: np.ndarray, target: float, delta: float) -> np.ndarray:
    """Fewest labels (inf if none) at each observed ``precision`` whose
    Clopper–Pearson lower bound reaches ``target``; the vectorised twin of
    the search in :func:`labels_needed` (5 % steps)."""
    prec = np.asarray(precision, dtype=np.float64)
    out = np.full(len(prec), np.inf)
    todo = prec > target
    n = min_labels_to_certify(target, delta)
    while todo.any() and n < 10_000_000:
        lower, _ = clopper_pearson(np.floor(prec[todo] * n), np.full(todo.sum(), n), delta)
        hit = np.nonzero(todo)[0][lower >= target]
        out[hit] = n
        todo[hit] = False
        n = int(n * 1.05) + 1
    return out
