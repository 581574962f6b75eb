"""P(label is correct | signals): a logistic model per class, shrunk toward
one model for all classes, fitted with cross-fitting. Pure numpy/sklearn.

The model is one L2-penalised logistic regression over the features
``[x, onehot(class), onehot(class) * x]``: the first block is shared by all
classes and barely penalised, the class blocks are deviations from it and
penalised by ``shrinkage``, so a class with few verified labels stays close
to the all-class model and a class with many can move away from it
(ridge shrinkage toward the pooled fit, the usual partial pooling).

Cross-fitting: every label is assigned to one of ``folds`` folds by a hash
of its *sample* id (labels of one image share a fold, so a model never
scores an image it was fitted on). Fold model ``f`` is fitted on the other
folds; a calibration label is scored by its own fold's model, and so is a
label being triaged (same hash), which keeps the two exchangeable: the
guarantees in :mod:`.guarantees` never see a score from a model fitted on
that label.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

#: signals whose log is used (ratios, positive)
LOG_SIGNALS = ("rer",)
#: weight of the shared block: its penalty is 1 / GLOBAL_SCALE**2 of the
#: class blocks', so the shared model is nearly unpenalised
GLOBAL_SCALE = 10.0


def fold_of(sample_ids: Sequence[str], folds: int) -> np.ndarray:
    """Deterministic fold of each label from its sample id (CRC32 hash)."""
    if folds < 2:
        raise ValueError(f"Parameter 'folds' must be >= 2; got {folds}")
    cache: dict[str, int] = {}
    out = np.empty(len(sample_ids), dtype=np.int64)
    for i, sid in enumerate(sample_ids):
        f = cache.get(sid)
        if f is None:
            f = cache[sid] = zlib.crc32(str(sid).encode()) % folds
        out[i] = f
    return out


def prepare_features(signals: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """``(N, len(names))`` float matrix; NaN where a signal is missing."""
    cols = []
    for name in names:
        x = np.asarray(signals[name], dtype=np.float64)
        if name in LOG_SIGNALS:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.log(np.clip(x, 1e-6, None))
        cols.append(x)
    return np.stack(cols, axis=1) if cols else np.zeros((0, 0))


class Standardizer:
    """Median imputation and z-scoring, fitted on training rows only."""

    def __init__(self, x: np.ndarray):
        med = np.nanmedian(np.where(np.isfinite(x), x, np.nan), axis=0) if len(x) else np.zeros(x.shape[1])
        self.fill = np.nan_to_num(med, nan=0.0)
        z = self._impute(x)
        self.mean = z.mean(axis=0) if len(z) else np.zeros(x.shape[1])
        std = z.std(axis=0) if len(z) else np.ones(x.shape[1])
        self.std = np.where(std > 1e-9, std, 1.0)

    def _impute(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isfinite(x), x, self.fill)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (self._impute(x) - self.mean) / self.std

    def to_dict(self) -> dict:
        return dict(fill=self.fill.tolist(), mean=self.mean.tolist(), std=self.std.tolist())

    @classmethod
    def from_dict(cls, d: dict) -> "Standardizer":
        self = cls.__new__(cls)
        self.fill, self.mean, self.std = (np.asarray(d[k], dtype=np.float64) for k in ("fill", "mean", "std"))
        return self


def _design(z: np.ndarray, class_idx: np.ndarray, n_classes: int):
    """Sparse ``[GLOBAL_SCALE * z, onehot(class), onehot(class) * z]``."""
    from scipy import sparse

    n, d = z.shape
    rows = np.arange(n)
    onehot = sparse.csr_matrix((np.ones(n), (rows, class_idx)), shape=(n, n_classes))
    cols = class_idx[:, None] * d + np.arange(d)[None, :]
    inter = sparse.csr_matrix(
        (z.ravel(), (np.repeat(rows, d), cols.ravel())), shape=(n, n_classes * d)
    )
    return sparse.hstack([sparse.csr_matrix(GLOBAL_SCALE * z), onehot, inter], format="csr")


def fit_logistic(x: np.ndarray, y: np.ndarray, class_idx: np.ndarray, n_classes: int, shrinkage: float) -> dict:
    """One shrunk per-class logistic model (see module docstring).

    Args:
        x: ``(N, D)`` raw features (NaN = missing)
        y: ``(N,)`` bool, label correct
        class_idx: ``(N,)`` class index of each label
        n_classes: number of classes
        shrinkage: L2 penalty on the per-class deviations (larger: classes
            borrow more from the all-class model)

    Returns:
        JSON-serialisable parameters for :func:`predict_logistic`
    """
    from sklearn.linear_model import LogisticRegression

    std = Standardizer(x)
    y = np.asarray(y, dtype=bool)
    d = x.shape[1]
    if y.all() or not y.any():
        # one outcome only: a constant (smoothed) rate, nothing to fit
        rate = (y.sum() + 0.5) / (len(y) + 1.0)
        return dict(
            standardizer=std.to_dict(), coef_global=[0.0] * d,
            intercept=float(np.log(rate / (1 - rate))),
            class_intercepts=[0.0] * n_classes, class_coefs=[[0.0] * d] * n_classes,
        )
    from threadpoolctl import threadpool_limits

    design = _design(std(x), class_idx, n_classes)
    clf = LogisticRegression(C=1.0 / max(shrinkage, 1e-9), max_iter=2000)
    # a few dozen coefficients: BLAS threads only add hand-offs, which cost
    # 5x on a loaded 2-core machine (measured: 23.8 s vs 4.2 s per calibration)
    with threadpool_limits(limits=1, user_api="blas"):
        clf.fit(design, y)
    w = clf.coef_[0]
    return dict(
        standardizer=std.to_dict(),
        coef_global=(GLOBAL_SCALE * w[:d]).tolist(),
        intercept=float(clf.intercept_[0]),
        class_intercepts=w[d : d + n_classes].tolist(),
        class_coefs=w[d + n_classes :].reshape(n_classes, d).tolist(),
    )


def predict_logistic(params: dict, x: np.ndarray, class_idx: np.ndarray) -> np.ndarray:
    """P(correct) of each row under :func:`fit_logistic`'s parameters.

    Labels of a class the model never saw (``class_idx < 0``) get the
    all-class model. Linear in ``N`` (no design matrix is built).
    """
    z = Standardizer.from_dict(params["standardizer"])(x)
    logit = z @ np.asarray(params["coef_global"]) + params["intercept"]
    known = class_idx >= 0
    if known.any():
        ci = class_idx[known]
        cc = np.asarray(params["class_coefs"])
        logit[known] += np.asarray(params["class_intercepts"])[ci] + np.einsum("nd,nd->n", z[known], cc[ci])
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))


def cross_fit(
    x: np.ndarray,
    y: np.ndarray,
    class_idx: np.ndarray,
    n_classes: int,
    folds_of_rows: np.ndarray,
    folds: int,
    shrinkage: float,
) -> tuple[np.ndarray, list[dict]]:
    """Out-of-fold P(correct) for every row, and the fold models.

    Returns:
        ``(oof, models)``: ``oof[i]`` comes from ``models[folds_of_rows[i]]``,
        which was fitted without fold ``folds_of_rows[i]``
    """
    oof = np.full(len(y), np.nan)
    models = []
    for f in range(folds):
        train = folds_of_rows != f
        models.append(fit_logistic(x[train], y[train], class_idx[train], n_classes, shrinkage))
        test = ~train
        if test.any():
            oof[test] = predict_logistic(models[f], x[test], class_idx[test])
    return oof, models


def predict_cross_fit(models: list[dict], x: np.ndarray, class_idx: np.ndarray, folds_of_rows: np.ndarray) -> np.ndarray:
    """P(correct) of new labels, each from the model of its own fold."""
    out = np.empty(len(x))
    for f, params in enumerate(models):
        m = folds_of_rows == f
        if m.any():
            out[m] = predict_logistic(params, x[m], class_idx[m])
    return out
