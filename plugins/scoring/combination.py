"""One ``uncertainty`` per label from whichever quality signals exist.

Each signal of :mod:`.signals` is first mapped to a "wrongness" term in
``[0, 1]`` (:func:`wrongness_terms`); :func:`uncertainty` pools the terms.

Why a pool of log-odds and not a plain mean: terms differ in how much they
know. A plain mean lets a weak term pull the combination below its best
term (on ``digitsdet-dev``, a real detector's 10.5k labels, the mean of
four terms scored AUROC 0.881 for "label is wrong" while ``knn_agreement``
alone scored 0.864 and ``1 - confidence`` plus ``knn_agreement`` 0.910;
``benchmarks/uncertainty_terms.py``). The pool fixes three things:

- *scale*: each term enters as its log-odds, so a term that is sure
  (``confidence`` 0.99) counts for more than one near 0.5, as in a
  logarithmic opinion pool;
- *shared evidence*: ``hardness`` is computed from the same class scores as
  ``confidence`` and ``rer`` from the same embeddings as ``knn_agreement``
  (it is a class-difficulty measure first), so both get a quarter weight
  by default (:data:`DEFAULT_WEIGHTS`);
- *weak or broken terms* (``adapt=True``): each term's weight is scaled by
  its agreement with the others, the Spearman correlation of the term with
  the weighted pool of the other terms over the labels scored now, clipped
  at 0 and divided by the largest such correlation. A term that carries
  no information (noise) agrees with nothing and gets a weight near 0. This
  needs no verified labels (the unsupervised fallback); once verified
  labels exist, the triage's model (:mod:`...triage.model`) learns its own
  weights of every signal, ``uncertainty`` included.

``method="mean"`` keeps the former plain weighted mean (the control of the
tests and the benchmark).
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

#: one signal: an ``(N,)`` array, or None when it was not computed
Signal = Optional[np.ndarray]

#: signals :func:`uncertainty` takes, and their default pool weights
DEFAULT_WEIGHTS = {
    "confidence": 1.0,
    "knn_agreement": 1.0,
    "clip_agreement": 1.0,
    "consensus": 1.0,
    "hardness": 0.25,
    "rer": 0.25,
}

#: terms are clipped to ``[TERM_EPS, 1 - TERM_EPS]`` before their log-odds
#: are taken, so one term at exactly 0 or 1 cannot decide alone
TERM_EPS = 0.01

#: fewest labels on which a term's agreement is measured; below, weight kept
MIN_AGREEMENT_LABELS = 50

#: least relative weight ``adapt`` leaves a term (every label stays scored)
MIN_RELATIVE_WEIGHT = 1e-3

METHODS = ("pool", "mean")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Written with exp of a non-positive number only, so it never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _logit(t: np.ndarray) -> np.ndarray:
    p = np.clip(t, TERM_EPS, 1.0 - TERM_EPS)
    return np.log(p / (1.0 - p))


def wrongness_terms(
    *, hardness: Signal = None, knn_agreement: Signal = None, clip_agreement: Signal = None, rer: Signal = None,
    consensus: Signal = None, confidence: Signal = None, clip_scale: float = 100.0,
) -> dict[str, np.ndarray]:
    """Each available signal mapped to a "wrongness" term in ``[0, 1]``.

    =================== ==========================================
    signal              term (higher = more likely wrong)
    =================== ==========================================
    ``hardness``        ``hardness``
    ``knn_agreement``   ``1 - knn_agreement``
    ``clip_agreement``  ``sigmoid(-clip_scale * clip_agreement)``
    ``rer``             ``sigmoid(log rer) = rer / (1 + rer)``
    ``consensus``       ``1 - consensus``
    ``confidence``      ``1 - confidence``
    =================== ==========================================

    The CLIP term is the probability of the best competing class in a
    two-way softmax at CLIP's own logit scale (100): 0.5 when the two
    prompts tie. The RER term is 0.5 at ``RER = 1``, the point where another
    class explains the label as well as its own. Inputs are clipped to their
    documented ranges; NaNs stay NaN.

    Returns:
        ``{name: (N,) array}`` for the signals given
    """
    given = {
        "hardness": hardness,
        "knn_agreement": knn_agreement,
        "clip_agreement": clip_agreement,
        "rer": rer,
        "consensus": consensus,
        "confidence": confidence,
    }
    terms = {}
    for name, value in given.items():
        if value is None:
            continue
        a = np.asarray(value, dtype=np.float64).reshape(-1)
        if name == "hardness":
            t = np.clip(a, 0, 1)
        elif name == "clip_agreement":
            t = _sigmoid(-clip_scale * np.clip(a, -2, 2))
        elif name == "rer":
            # rer / (1 + rer), written to stay finite for rer = inf.
            r = np.clip(a, 0, None)
            with np.errstate(invalid="ignore"):
                t = np.where(np.isinf(r), 1.0, r / (1.0 + r))
        else:
            t = 1.0 - np.clip(a, 0, 1)
        terms[name] = t
    return terms


def _weighted_mean(values: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Per row, the weighted mean of the finite values (NaN where none)."""
    first = next(iter(values.values()))
    num = np.zeros(first.shape[0])
    den = np.zeros_like(num)
    for name, v in values.items():
        ok = np.isfinite(v)
        w = weights[name]
        num += np.where(ok, w * np.where(ok, v, 0.0), 0.0)
        den += np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import rankdata

    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def term_agreement(logits: dict[str, np.ndarray], weights: dict[str, float]) -> dict[str, float]:
    """Each term's agreement with the others: the Spearman correlation of its
    log-odds with the weighted mean log-odds of the other terms, over the
    labels where both exist; NaN with fewer than
    :data:`MIN_AGREEMENT_LABELS` such labels or no other term.

    Args:
        logits: ``{name: (N,) log-odds}`` (NaN = missing)
        weights: ``{name: weight}`` of the pool of the others

    Returns:
        ``{name: correlation in [-1, 1] or NaN}``
    """
    out = {}
    for name, v in logits.items():
        others = {k: x for k, x in logits.items() if k != name and weights[k] > 0}
        if not others:
            out[name] = float("nan")
            continue
        pooled = _weighted_mean(others, weights)
        ok = np.isfinite(v) & np.isfinite(pooled)
        out[name] = _spearman(v[ok], pooled[ok]) if ok.sum() >= MIN_AGREEMENT_LABELS else float("nan")
    return out


def adapted_weights(logits: dict[str, np.ndarray], weights: dict[str, float]) -> dict[str, float]:
    """``weights`` scaled by each term's relative agreement with the others
    (see the module docstring); unchanged where agreement cannot be
    measured or no term agrees at all."""
    agree = term_agreement(logits, weights)
    known = {k: max(a, 0.0) for k, a in agree.items() if np.isfinite(a)}
    top = max(known.values(), default=0.0)
    if top <= 0:
        return dict(weights)
    return {
        k: w * max(known[k] / top, MIN_RELATIVE_WEIGHT) if k in known else w
        for k, w in weights.items()
    }


def uncertainty(
    *, hardness: Signal = None, knn_agreement: Signal = None, clip_agreement: Signal = None, rer: Signal = None,
    consensus: Signal = None, confidence: Signal = None,
    weights: Mapping[str, float] | None = None,
    method: str = "pool",
    adapt: bool = True,
    clip_scale: float = 100.0,
) -> np.ndarray:
    """One uncertainty score per label from whichever signals are available.

    With ``t_s(i)`` the wrongness terms (:func:`wrongness_terms`) and
    ``w_s`` the weights (:data:`DEFAULT_WEIGHTS`, times each term's
    agreement with the others when ``adapt``; module docstring)::

        method="pool":  uncertainty_i = sigmoid( sum_s w_s * logit(t_s(i)) / sum_s w_s )
        method="mean":  uncertainty_i = sum_s w_s * t_s(i) / sum_s w_s

    sums over the signals with a finite ``t_s(i)``; ``logit`` of a term
    clipped to ``[0.01, 0.99]`` (:data:`TERM_EPS`). Range ``[0, 1]``
    (``[0.01, 0.99]`` for the pool); 0.5 where the terms balance.
    For fixed weights, increasing in ``hardness`` and ``rer`` and decreasing
    in ``knn_agreement``, ``clip_agreement``, ``consensus`` and
    ``confidence``; with ``adapt`` the weights depend on all labels scored
    together (as ``knn_agreement`` and ``rer`` do). Signals not passed
    (``None``) or NaN for a label are left out of that label's sum; a label
    with no finite term gets NaN. ``margin`` is not an input: it measures
    the same thing as ``hardness``. ``method="mean"`` with ``adapt=False``
    and no ``weights`` is the former plain mean (every weight 1).

    Args:
        hardness, knn_agreement, clip_agreement, rer, consensus, confidence:
            ``(N,)`` arrays or ``None``
        weights: ``{signal name: non-negative weight}``; missing names get
            :data:`DEFAULT_WEIGHTS` (pool) or 1 (mean)
        method: ``"pool"`` or ``"mean"``
        adapt: scale the weights by each term's agreement with the others
        clip_scale: logit scale of the CLIP term

    Returns:
        ``(N,)`` float64 array in ``[0, 1]`` (NaN where nothing is known)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    signals = dict(hardness=hardness, knn_agreement=knn_agreement, clip_agreement=clip_agreement, rer=rer,
                   consensus=consensus, confidence=confidence)
    terms = wrongness_terms(**signals, clip_scale=clip_scale)
    if not terms:
        raise ValueError("uncertainty needs at least one signal")
    lengths = {t.shape[0] for t in terms.values()}
    if len(lengths) != 1:
        raise ValueError(f"signals have different lengths: {sorted(lengths)}")
    given = dict(weights or {})
    unknown = set(given) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown signal weights: {sorted(unknown)}")
    default = DEFAULT_WEIGHTS if method == "pool" else dict.fromkeys(DEFAULT_WEIGHTS, 1.0)
    w = {name: float(given.get(name, default[name])) for name in terms}
    for name, value in w.items():
        if not value >= 0:
            raise ValueError(f"weight of {name} must be non-negative")
    values = {k: _logit(t) if method == "pool" else t for k, t in terms.items()}
    if adapt:
        logits = values if method == "pool" else {k: _logit(t) for k, t in terms.items()}
        w = adapted_weights(logits, w)
    out = _weighted_mean(values, w)
    if method == "pool":
        out = _sigmoid(out)
    return np.clip(out, 0.0, 1.0)
