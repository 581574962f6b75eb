"""Queue assignment and review order: pure functions on arrays.

``queue`` of a label: ``green`` when its class has a certified green
threshold and the label's P(correct) reaches it (or, under the "expected"
guarantee, when conformal selection picks it); ``red`` when P(correct) is at
or below its class's certified red threshold; ``yellow`` otherwise. A class
with no certified threshold has no green (or no red) at all.

``review_rank`` orders the yellow labels for people: the most informative
first (P(correct) closest to 1/2, where an answer removes the most
uncertainty: binary entropy), interleaved across groups of similar labels
(class, and embedding cluster when embeddings are given) so that the first
answers cover the whole yellow queue instead of one corner of it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..common.label_vocab import GREEN, QUEUES, RED, YELLOW
from . import guarantees


def assign(
    calibration: dict, p_correct: np.ndarray, labels: Sequence[str], folds: np.ndarray | None = None
) -> np.ndarray:
    """``(N,)`` object array of queue names under ``calibration``.

    Args:
        calibration: a :func:`.calibration.calibrate` result
        p_correct: ``(N,)`` P(correct) from :func:`.calibration.score_labels`
        labels: ``(N,)`` class of each label
        folds: ``(N,)`` cross-fitting fold of each label
            (:func:`.model.fold_of` of its sample id); needed by the
            "expected" guarantee only
    """
    p = np.asarray(p_correct, dtype=np.float64)
    labels = np.asarray(labels, dtype=object)
    queue = np.full(len(p), YELLOW, dtype=object)
    per_class = calibration["per_class"]
    for c in np.unique(labels) if len(labels) else []:
        m = labels == c
        info = per_class.get(c)
        if info is None:
            continue
        if info.get("red_threshold") is not None:
            queue[m & (p <= info["red_threshold"])] = RED
        if calibration["guarantee"] == "pac" and info.get("green_threshold") is not None:
            queue[m & (p >= info["green_threshold"])] = GREEN
    if calibration["guarantee"] == "expected":
        if folds is None:
            raise ValueError("The 'expected' guarantee needs the fold of each label")
        known = np.isin(labels, list(per_class))
        if calibration.get("scope", "class") == "overall":
            groups = [("", known)]
        else:
            groups = [(c, labels == c) for c in np.unique(labels[known])]
        for c, m in groups:
            sel = _conformal_green(calibration, c or None, p, np.asarray(folds), np.nonzero(m)[0])
            queue[sel[queue[sel] != RED]] = GREEN
    return queue


def _conformal_green(calibration: dict, cls: str | None, p: np.ndarray, folds: np.ndarray,
                     idx: np.ndarray) -> np.ndarray:
    """Indices among ``idx`` selected by conformal selection against the
    verified labels of ``cls`` (None: all classes pooled)."""
    ver = calibration["verified"]
    names = [cls] if cls is not None else list(ver)
    vs, vy, vf = (np.concatenate([np.asarray(ver[c][k]) for c in names]) for k in ("scores", "correct", "fold"))
    # a label's score is only comparable with verified labels scored by the
    # same fold model: conformal p-values within its fold, one
    # Benjamini-Hochberg over the group
    pv = np.ones(len(idx))
    for f in np.unique(folds[idx]):
        inf = folds[idx] == f
        pv[inf] = guarantees.conformal_pvalues(vs[vf == f], vy[vf == f].astype(bool), p[idx[inf]])
    return idx[guarantees.benjamini_hochberg(pv, 1.0 - calibration["target_precision"])]


def informativeness(p_correct: np.ndarray) -> np.ndarray:
    """Binary entropy of P(correct), in bits (1 at p = 1/2, 0 at 0 or 1)."""
    p = np.clip(np.asarray(p_correct, dtype=np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def embedding_groups(embeddings: np.ndarray, n_groups: int, seed: int = 0) -> np.ndarray:
    """Cluster index of each embedding (mini-batch k-means on cosine-normalised
    vectors; fitted on at most 20k of them so the cost stays linear)."""
    from sklearn.cluster import MiniBatchKMeans

    x = np.asarray(embeddings, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n_groups = max(1, min(n_groups, len(x)))
    if n_groups == 1:
        return np.zeros(len(x), dtype=np.int64)
    rng = np.random.default_rng(seed)
    fit_rows = rng.choice(len(x), size=min(len(x), 20_000), replace=False)
    km = MiniBatchKMeans(n_clusters=n_groups, random_state=seed, n_init=3, batch_size=4096)
    km.fit(x[fit_rows])
    return km.predict(x).astype(np.int64)


def review_rank(p_correct: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """1-based review order of labels: round-robin over ``groups``, most
    informative first within each group and within each round.

    Args:
        p_correct: ``(N,)`` P(correct) of the labels to rank
        groups: ``(N,)`` hashable group of each label (e.g. class and
            embedding cluster)

    Returns:
        ``(N,)`` int ranks 1..N
    """
    n = len(p_correct)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    info = informativeness(p_correct)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    # position of each label inside its group, most informative first
    order = np.lexsort((-info, g))
    pos = np.empty(n, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(g[order])) + 1]
    sizes = np.diff(np.r_[starts, n])
    pos[order] = np.arange(n) - np.repeat(starts, sizes)
    # round r holds every group's r-th label; inside a round, informative first
    final = np.lexsort((-info, pos))
    rank = np.empty(n, dtype=np.int64)
    rank[final] = np.arange(1, n + 1)
    return rank
