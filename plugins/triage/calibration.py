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

from ..common.limits import check_int

from . import guarantees, model

GUARANTEES = ("pac", "expected")
#: what a guarantee covers: the whole green queue, or each class's green
SCOPES = ("overall", "class")
#: points kept of each class's precision curve (for the panel's plot)
CURVE_POINTS = 101


def check_params(target_precision, confidence_level, red_max_precision, guarantee, folds, shrinkage,
                 scope="overall") -> None:
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
    if scope not in SCOPES:
        raise ValueError(f"Parameter 'scope' must be one of {SCOPES}; got {scope!r}")
    if int(folds) != folds or folds < 2:
        raise ValueError(f"Parameter 'folds' must be an integer >= 2; got {folds}")
    check_int(int(folds), "folds", 2, "folds")
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
    scope: str = "overall",
) -> dict:
    """Fits the correctness model and certifies green and red thresholds.

    Args:
        features: ``(N, D)`` raw signals of the verified labels (NaN = missing),
            columns in the order of ``signal_names``
        correct: ``(N,)`` bool, whether each label is correct
        labels: ``(N,)`` class of each label
        sample_ids: ``(N,)`` sample of each label (decides its fold)
        signal_names: the ``D`` signal names
        target_precision: green precision to certify
        confidence_level: probability the PAC guarantee holds
        red_max_precision: red labels' precision must be certified below this
        guarantee: ``"pac"`` or ``"expected"`` (see :mod:`.guarantees`)
        folds: cross-fitting folds
        shrinkage: penalty on per-class deviations from the all-class model
        scope: ``"overall"``: one threshold on P(correct) for every class,
            certified on the pooled verified labels, so the guarantee covers
            the precision of the whole green queue; ``"class"``: each
            class certified on its own verified labels (each class's green
            is covered; needs far more verified labels)

    Returns:
        the calibration: ``classes``, ``signals``, ``folds``, ``models``,
        ``scope``, ``overall`` (the pooled certification: thresholds, bound,
        reason and plan), ``per_class`` (``{class: stats, thresholds,
        reason, plan}``; under the overall scope every class carries the
        pooled thresholds), ``curves`` (precision above each threshold, for
        plots) and ``verified`` (each class's cross-fitted scores, outcomes
        and folds: conformal p-values and the report's measured precision
        come from them)
    """
    check_params(target_precision, confidence_level, red_max_precision, guarantee, folds, shrinkage, scope)
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
    certify = dict(guarantee=guarantee, target=target_precision, delta=delta, red_max=red_max_precision)

    overall = _certify(oof, correct, **certify)
    per_class, curves, verified = {}, {}, {}
    for c, ci in cindex.items():
        m = class_idx == ci
        s, y = oof[m], correct[m]
        info = _certify(s, y, **certify) if scope == "class" else dict(
            overall, no_green_reason=None if overall["no_green_reason"] is None
            else "no green for the whole queue (overall scope)",
        )
        per_class[c] = dict(num_verified=int(m.sum()), num_correct=int(y.sum()), **info)
        curves[c] = _curve(s, y, delta)
        verified[c] = dict(scores=s.round(6).tolist(), correct=y.tolist(), fold=fold[m].tolist())

    return dict(
        classes=classes,
        signals=list(signal_names),
        folds=int(folds),
        shrinkage=float(shrinkage),
        guarantee=guarantee,
        scope=scope,
        target_precision=float(target_precision),
        confidence_level=float(confidence_level),
        red_max_precision=float(red_max_precision),
        num_verified=int(n),
        num_correct=int(correct.sum()),
        models=models,
        overall=overall,
        per_class=per_class,
        curves=curves,
        verified=verified,
        oof_auroc=_auroc(oof, correct),
    )


def _certify(s: np.ndarray, y: np.ndarray, guarantee: str, target: float, delta: float, red_max: float) -> dict:
    """Green and red thresholds of one group of verified labels (a class,
    or all of them), with the reason and the plan when there is no green."""
    red_t, red_info = guarantees.pac_red_threshold(s, y, red_max, delta)
    if guarantee == "pac":
        green_t, green_info = guarantees.pac_green_threshold(s, y, target, delta)
        if green_t is not None and red_t is not None and red_t >= green_t:
            red_t = None
        certifiable = green_t is not None
    else:
        green_t, green_info = None, {}
        # a conformal p-value is at least 1 / (n + 1): BH at 1 - target can
        # select nothing below this many labels
        certifiable = len(s) + 1 >= 1.0 / (1.0 - target)
    reason, plan = None, None
    if not certifiable:
        plan = guarantees.certification_plan(s, y, target, delta)
        n_min = guarantees.min_labels_to_certify(target, delta)
        if len(s) < n_min:
            reason = f"too few verified labels ({len(s)}; green needs at least {n_min} above its threshold)"
        elif plan["share"] is None:
            # fewer than PLAN_MIN_LABELS: too few to estimate which top part would pass
            reason = (
                f"too few verified labels ({len(s)}) to certify its best-scored ones: about "
                f"{plan['more_verified']} more random verified labels would tell, or audit them (audit_green)"
            )
        elif plan["more_verified"] == 0:
            first = green_info or {}
            reason = (
                f"its best {plan['share']:.0%} are estimated {plan['precision']:.1%} right, but the test stopped "
                f"early ({first.get('k', '?')} right of the best {first.get('n', '?')}; a threshold is tested "
                "only after every one above it passes): more random verified labels or an audit of "
                "them (audit_green) can certify them"
            )
        elif plan["more_verified"] is None:
            reason = (
                f"even its best-scored verified labels are estimated at most {plan['best_precision']:.1%} "
                "right, below the target: more verified labels cannot certify it; better signals or an "
                "audit of a smaller set can"
            )
        else:
            reason = (
                f"not enough verified labels among its best-scored ones: about {plan['more_verified']} more "
                f"random verified labels would certify its best {plan['share']:.0%} "
                f"(estimated {plan['precision']:.1%} right), or audit them (audit_green)"
            )
    return dict(
        green_threshold=green_t,
        green=green_info,
        red_threshold=red_t,
        red=red_info,
        no_green_reason=reason,
        more_labels_needed=plan["more_verified"] if plan else None,
        plan=plan,
    )


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
