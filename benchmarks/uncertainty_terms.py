"""AUROC for "label is wrong" of each uncertainty term and of the combination.

Side by side in one run, every score oriented so that higher = more likely
wrong:

- each wrongness term (``1 - confidence``, ``hardness``,
  ``1 - knn_agreement``, RER with robust pools as ``score_labels`` computes
  it, and RER with the paper's pools, ``clean_k=0``);
- ``uncertainty``, the log-odds pool of :mod:`plugins.scoring.combination`
  (``score_labels``' value);
- the former plain mean, with the former RER (what ``score_labels`` stored
  before issue 18): the control.

Data:

- ``clusters`` (always): the synthetic case of issue 18, 1,200 labels in 5
  well-separated isotropic 64-d embedding clusters, 10 % of the labels given
  a random other class; a simulated detector's class scores (softmax of
  noisy logits that favour the true class, so it is right ~85 % of the
  time) give ``confidence`` and ``hardness``. Several seeds, mean +- sd.
- ``digitsdet`` (when ``--digitsdet-dir`` holds the export; benchmarks only):
  a real YOLO detector's ~10.5k labels on digits pasted on real photos,
  ~68 % wrong (most of them boxes on background). The export keeps its
  per-class scores under ``scores``: they are read with
  ``score_labels(..., scores_attr="scores")`` (issue 18, part 4), not copied.
  The truth is ``evaluate_detections`` against ``ground_truth`` (IoU 0.5,
  same class).

    python benchmarks/uncertainty_terms.py                 # ~1 min on 2 cores
    python benchmarks/uncertainty_terms.py --digitsdet-dir /work/shared/data/digitsdet-dev   # ~4 min
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402

from stoplight_import import import_stoplight  # noqa: E402

DIGITSDET = "/work/shared/data/digitsdet-dev"
ROWS = ("1 - confidence", "hardness", "1 - knn_agreement", "rer (robust pools)",
        "rer (paper's pools: control)", "uncertainty (pool)", "former mean, former rer (control)")


def auroc(wrong: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    ok = np.isfinite(score)
    return float(roc_auc_score(wrong[ok], score[ok]))


def column(wrong, confidence, hardness, knn, rer_robust, rer_plain) -> dict:
    """AUROC of every row of :data:`ROWS` for one set of signals."""
    from stoplight.plugins.scoring import combination

    pool = combination.uncertainty(confidence=confidence, hardness=hardness, knn_agreement=knn,
                                   rer=rer_robust)
    former = combination.uncertainty(confidence=confidence, hardness=hardness, knn_agreement=knn,
                                     rer=rer_plain, method="mean", adapt=False)
    scores = (1 - confidence, hardness, 1 - knn, rer_robust, rer_plain, pool, former)
    return {name: auroc(wrong, s) for name, s in zip(ROWS, scores)}


def clusters(seed: int, n=1200, c=5, d=64, flip=0.1, spread=0.5) -> dict:
    from stoplight.plugins.scoring import rer, signals

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(c, d))
    truth = rng.integers(0, c, n)
    x = centers[truth] + spread * rng.normal(size=(n, d))
    wrong = rng.random(n) < flip
    y = truth.copy()
    y[wrong] = (truth[wrong] + rng.integers(1, c, wrong.sum())) % c
    logits = 1.0 * rng.normal(size=(n, c))
    logits[np.arange(n), truth] += 2.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    knn = signals.knn_agreement(x, y, device="cpu")
    robust, _, _ = rer.class_autoencoder_rer(x, y, c, device="cpu", seed=seed, train_mask=knn >= 0.5)
    plain, _, _ = rer.class_autoencoder_rer(x, y, c, device="cpu", seed=seed, clean_k=0)
    return column(wrong, proba[np.arange(n), y], signals.hardness(proba), knn, robust, plain)


def digitsdet(path: str) -> tuple[dict, str]:
    import fiftyone as fo

    from stoplight.plugins.scoring import rer
    from stoplight.plugins.scoring.scores import score_labels

    ds = fo.Dataset.from_dir(path, dataset_type=fo.types.FiftyOneDataset,
                             name=f"digitsdet-{uuid.uuid4().hex[:8]}")
    ds.persistent = False
    try:
        score_labels(ds, "predictions", scores_attr="scores", progress=False)
        ds.evaluate_detections("predictions", gt_field="ground_truth", eval_key="truth", iou=0.5,
                               classwise=True, progress=False)
        root = "predictions.detections"
        attrs = ("truth", "label", "confidence", "hardness", "knn_agreement", "rer", "uncertainty")
        vals = dict(zip(attrs, ds.values([f"{root}.{a}" for a in attrs], unwind=True)))
        # (unwind would flatten the vectors too)
        vals["embedding"] = [e for per in ds.values(f"{root}.embedding") for e in (per or [])]
    finally:
        ds.delete()
    f = lambda a: np.asarray([np.nan if v is None else v for v in vals[a]], dtype=np.float64)  # noqa: E731
    wrong = np.asarray(vals["truth"], dtype=object) != "tp"
    classes = sorted(set(vals["label"]))
    y = np.asarray([classes.index(v) for v in vals["label"]])
    plain, _, _ = rer.class_autoencoder_rer(np.asarray(vals["embedding"], dtype=np.float32), y,
                                            len(classes), clean_k=0)
    col = column(wrong, f("confidence"), f("hardness"), f("knn_agreement"), f("rer"), plain)
    stored = auroc(wrong, f("uncertainty"))
    assert abs(stored - col["uncertainty (pool)"]) < 1e-9, "stored uncertainty differs from the pool"
    return col, f"{len(wrong)} labels, {wrong.mean():.0%} wrong"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the cluster case")
    ap.add_argument("--digitsdet-dir", default=DIGITSDET)
    args = ap.parse_args(argv)
    import_stoplight()
    t0 = time.perf_counter()
    runs = [clusters(s) for s in range(args.seeds)]
    cols = {"clusters (1,200 labels, 10 % wrong class)": {
        k: f"{np.mean([r[k] for r in runs]):.3f} +- {np.std([r[k] for r in runs]):.3f}" for k in ROWS}}
    if (Path(args.digitsdet_dir) / "samples.json").exists():
        col, what = digitsdet(args.digitsdet_dir)
        cols[f"digitsdet-dev ({what})"] = {k: f"{v:.3f}" for k, v in col.items()}
    else:
        print(f"(no digitsdet-dev export at {args.digitsdet_dir}: that column is skipped)")
    names = list(cols)
    width = max(len(r) for r in ROWS)
    print(f"\nAUROC for 'label is wrong' ({time.perf_counter() - t0:.0f} s)\n")
    print(f"| {'score':<{width}} | " + " | ".join(names) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * (len(n) + 2) for n in names) + "|")
    for r in ROWS:
        print(f"| {r:<{width}} | " + " | ".join(f"{cols[n][r]:<{len(n)}}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
