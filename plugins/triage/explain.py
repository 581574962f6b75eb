"""Why the triage doubts a label: each signal's effect on its P(correct).

P(correct) is a logistic model (:mod:`.model`): for a label of class ``c``
scored by fold model ``f``,

    logit P(correct) = b_f + b_f[c] + sum_s z_s * (w_f[s] + w_f[c, s])

where ``z_s`` is the label's signal ``s`` standardised by that model
(median-imputed, z-scored on the model's training labels). The term of
signal ``s``, ``effect_s = z_s * (w_f[s] + w_f[c, s])``, is how far that
signal moves this label's log-odds away from a label with average signals
of the same class: negative means the signal makes the label look wrong.

Effects are exact terms of the fitted model, not a post-hoc
approximation; they explain P(correct), not the truth. Correlated signals
share their weight in a way that can look odd one at a time (a low kNN
agreement can get a positive term when ``uncertainty``, which contains
it, carries the weight), so a signal *flags* a label by its own meaning
instead: its value lies on the wrong side of the cut-off in
:data:`SIGNAL_FLAGS` (RER above 1: another class explains the label
better; kNN agreement below 0.5: most neighbours have another class; ...;
:mod:`...scoring.signals` defines each signal). Pure numpy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import model

#: signal -> (``"below"`` or ``"above"``, cut-off, what it means): the
#: side of the cut-off where the signal, by its own definition, says the
#: label looks wrong (display only: the queues come from P(correct))
SIGNAL_FLAGS = {
    "confidence": ("below", 0.5, "the detector itself is unsure"),
    "margin": ("below", 0.2, "the two best classes score almost alike"),
    "hardness": ("above", 0.5, "the class scores are spread out"),
    "knn_agreement": ("below", 0.5, "most similar labels have another class"),
    "rer": ("above", 1.0, "another class's autoencoder explains it better"),
    "clip_agreement": ("below", 0.0, "CLIP finds another class's prompt closer"),
    "consensus": ("below", 0.5, "the other models do not find it"),
    "uncertainty": ("above", 0.5, "the signals together say it looks wrong"),
}


def flag(name: str, value: float | None) -> str | None:
    """Why signal ``name`` at ``value`` flags a label, or None."""
    rule = SIGNAL_FLAGS.get(name)
    if rule is None or value is None or not np.isfinite(value):
        return None
    side, cut, why = rule
    if (side == "below" and value < cut) or (side == "above" and value > cut):
        return f"{name} {value:.2f} {'<' if side == 'below' else '>'} {cut:g}: {why}"
    return None


def signal_effects(calibration: dict, features: np.ndarray, labels: Sequence[str], folds: np.ndarray) -> np.ndarray:
    """``(N, D)`` effect of each signal on each label's log-odds of being
    correct (see module docstring).

    Args:
        calibration: a :func:`.calibration.calibrate` result
        features: ``(N, D)`` raw signals, columns as ``calibration["signals"]``
            (:func:`.model.prepare_features`)
        labels: ``(N,)`` class of each label; a class the calibration never
            saw gets the all-class model's weights only
        folds: ``(N,)`` fold of each label (:func:`.model.fold_of` of its
            sample id with ``calibration["folds"]`` folds)
    """
    features = np.asarray(features, dtype=np.float64)
    n, d = features.shape if features.ndim == 2 else (len(features), 0)
    cindex = {c: i for i, c in enumerate(calibration["classes"])}
    class_idx = np.array([cindex.get(c, -1) for c in labels], dtype=np.int64)
    folds = np.asarray(folds)
    out = np.zeros((n, d))
    for f, params in enumerate(calibration["models"]):
        rows = np.nonzero(folds == f)[0]
        if not len(rows):
            continue
        z = model.Standardizer.from_dict(params["standardizer"])(features[rows])
        w = np.tile(np.asarray(params["coef_global"], dtype=np.float64), (len(rows), 1))
        known = class_idx[rows] >= 0
        if known.any():
            w[known] += np.asarray(params["class_coefs"], dtype=np.float64)[class_idx[rows][known]]
        out[rows] = z * w
    return out


def explain(signal_names: Sequence[str], values: np.ndarray, effects: np.ndarray) -> list[list[dict]]:
    """Per label, its signals as ``{name, value, effect, flagged, reason}``
    dicts: the flagging ones first (:func:`flag`), then by ascending effect.

    Args:
        signal_names: the ``D`` signal names
        values: ``(N, D)`` raw signal values (NaN: missing, shown as None)
        effects: ``(N, D)`` from :func:`signal_effects`
    """
    out = []
    for vals, effs in zip(np.asarray(values, dtype=np.float64), np.asarray(effects, dtype=np.float64)):
        rows = []
        for name, v, e in zip(signal_names, vals, effs):
            value = None if not np.isfinite(v) else round(float(v), 4)
            reason = flag(name, value)
            rows.append(dict(name=name, value=value, effect=round(float(e), 3), flagged=reason is not None,
                             reason=reason))
        rows.sort(key=lambda r: (not r["flagged"], r["effect"]))
        out.append(rows)
    return out
