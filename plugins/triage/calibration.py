"""Calibrating the triage on verified labels: pure functions on arrays.

:func:`calibrate` takes the signals of verified auto-labels and whether
each is correct, fits the cross-fitted correctness model of :mod:`.model`,
and certifies per class a green threshold (:mod:`.guarantees`) and a red
one. Its result is a JSON-serialisable dict that :mod:`.queues` applies to
any number of labels and that the runs registry stores.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import guarantees, model

GUARANTEES = ("pac", "expected")
#: share of a class's best-scoring verified labels used to estimate how many
#: more it needs (see :func:`.guarantees.labels_needed`)
TOP_SHARE = 0.5
#: points kept of each class's precision curve (for the panel's plot)
CURVE_POINTS = 101


def check_params(target_precision, confidence_level, red_max_precision, guarantee, folds, shrinkage) -> None:
    """Raises ValueError naming the first invalid parameter."""
    if not 0.0 < target_precision < 1.0:
        raise ValueError(f"Parameter 'target_precision' must be in (0, 1); got {target_precision}")
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"Parameter 'confidence_level' must be in (0, 1); got {confidence_level}")
    if not 0.0 < red_max_precision < target_precision:
        raise ValueError(
            f"Parameter 'red_max_precision' must be in (0, target_precision={target_precision}); "
            f"got {red_max_precision}"
        )
    if guarantee not in GUARANTEES:
        raise ValueError(f"Parameter 'guarantee' must be one of {GUARANTEES}; got {guarantee!r}")
    if int(folds) != folds or folds < 2:
        raise ValueError(f"Parameter 'folds' must be an integer >= 2; got {folds}")
    if not shrinkage > 0:
        raise ValueError(f"Parameter 'shrinkage' must be > 0; got {shrinkage}")


def _curve(scores, correct, delta) -> dict:
    c = guarantees.precision_curve(scores, correct, delta)
    keep = np.unique(np.linspace(0, len(c["threshold"]) - 1, CURVE_POINTS).round().astype(int))
    return {
        k: [None if not np.isfinite(v) else (int(v) if k in ("n", "k") else round(float(v), 5)) for v in c[k][keep]]
        for k in ("threshold", "n", "precision", "lower")
    }


def calibrate(
    features: np.ndarray,
    correct: np.ndarray,
    labels: Sequence[str],
    sample_ids: Sequence[str],
    signal_names: Sequence[str],
    target_precision: float = 0.95,
    confidence_level: float = 0.95,
    red_max_precision: float = 0.2,
    guarantee: str = "pac",
    folds: int = 5,
    shrinkage: float = 1.0,
) -> dict:
    """Fits the correctness model and certifies per-class thresholds.

    Args:
        features: ``(N, D)`` raw signals of the verified labels (NaN = missing),
            columns in the order of ``signal_names``
        correct: ``(N,)`` bool, whether each label is correct
        labels: ``(N,)`` class of each label
        sample_ids: ``(N,)`` sample of each label (decides its fold)
        signal_names: the ``D`` signal names
        target_precision: green precision to certify per class
        confidence_level: probability the PAC guarantee holds
        red_max_precision: red labels' precision must be certified below this
        guarantee: ``"pac"`` or ``"expected"`` (see :mod:`.guarantees`)
        folds: cross-fitting folds
        shrinkage: penalty on per-class deviations from the all-class model

    Returns:
        the calibration: ``classes``, ``signals``, ``folds``, ``models``,
        ``per_class`` (``{class: stats, thresholds, reason}``), ``curves``
        (precision above each threshold, for plots) and ``verified``
        (each class's cross-fitted scores, outcomes and folds: conformal
        p-values and the report's measured precision come from them)
    """
    check_params(target_precision, confidence_level, red_max_precision, guarantee, folds, shrinkage)
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    if n == 0:
        raise ValueError("The calibration set holds no verified auto-labels: nothing to calibrate on")
    delta = 1.0 - confidence_level
    classes = sorted(set(labels))
    cindex = {c: i for i, c in enumerate(classes)}
    class_idx = np.array([cindex[c] for c in labels], dtype=np.int64)
    fold = model.fold_of(sample_ids, folds)
    oof, models = model.cross_fit(features, correct, class_idx, len(classes), fold, folds, shrinkage)

    n_min = guarantees.min_labels_to_certify(target_precision, delta)
    per_class, curves, verified = {}, {}, {}
    for c, ci in cindex.items():
        m = class_idx == ci
        s, y = oof[m], correct[m]
        stats = dict(num_verified=int(m.sum()), num_correct=int(y.sum()))
        red_t, red_info = guarantees.pac_red_threshold(s, y, red_max_precision, delta)
        if guarantee == "pac":
            green_t, green_info = guarantees.pac_green_threshold(s, y, target_precision, delta)
            if green_t is not None and red_t is not None and red_t >= green_t:
                red_t = None
        else:
            green_t, green_info = None, {}
        reason = None
        needed = None
        certifiable = green_t is not None if guarantee == "pac" else m.sum() + 1 >= 1.0 / (1.0 - target_precision)
        if not certifiable:
            top = np.argsort(-s)[: max(1, int(np.ceil(TOP_SHARE * len(s))))]
            needed = guarantees.labels_needed(float(y[top].mean()), TOP_SHARE, len(s), target_precision, delta)
            if m.sum() < n_min:
                reason = f"too few verified labels ({int(m.sum())}; green needs at least {n_min} above its threshold)"
            else:
                reason = "the signals do not rank enough right labels above wrong ones to certify the target"
            if needed is None:
                reason += "; more verified labels will not help at the precision observed"
        per_class[c] = dict(
            stats,
            green_threshold=green_t,
            green=green_info,
            red_threshold=red_t,
            red=red_info,
            no_green_reason=reason,
            more_labels_needed=needed,
        )
        curves[c] = _curve(s, y, delta)
        verified[c] = dict(scores=s.round(6).tolist(), correct=y.tolist(), fold=fold[m].tolist())

    out = dict(
        classes=classes,
        signals=list(signal_names),
        folds=int(folds),
        shrinkage=float(shrinkage),
        guarantee=guarantee,
        target_precision=float(target_precision),
        confidence_level=float(confidence_level),
        red_max_precision=float(red_max_precision),
        num_verified=int(n),
        num_correct=int(correct.sum()),
        models=models,
        per_class=per_class,
        curves=curves,
        verified=verified,
        oof_auroc=_auroc(oof, correct),
    )
    return out


def _auroc(scores: np.ndarray, correct: np.ndarray) -> float | None:
    """How well the out-of-fold scores rank right above wrong labels."""
    if correct.all() or not correct.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(correct, scores))


def score_labels(calibration: dict, features: np.ndarray, labels: Sequence[str], folds: np.ndarray) -> np.ndarray:
    """P(correct) of any labels under a calibration (each from its fold's model).

    Args:
        calibration: a :func:`calibrate` result
        features: ``(N, D)`` raw signals, columns as ``calibration["signals"]``
        labels: ``(N,)`` class of each label; classes the calibration never
            saw get the all-class model
        folds: ``(N,)`` fold of each label, :func:`.model.fold_of` of its
            sample id with ``calibration["folds"]`` folds
    """
    cindex = {c: i for i, c in enumerate(calibration["classes"])}
    class_idx = np.array([cindex.get(c, -1) for c in labels], dtype=np.int64)
    return model.predict_cross_fit(calibration["models"], features, class_idx, np.asarray(folds))
