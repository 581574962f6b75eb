"""AUROC of Stoplight's label-quality signals for "this auto-label is wrong".

Construction (real images, real labels, offline; no vision model weights):

- scikit-learn's ``load_digits()``: 1,797 real handwritten 8x8 digit images
  with their real labels. A random half (seeded) trains two small real
  classifiers; the other half is pasted, scaled up to 32x32, at random
  non-overlapping positions onto 256x256 canvases (4-8 digits each, light
  Gaussian noise, saved as PNG files in a temp dir). A FiftyOne dataset gets
  the true boxes + digit labels as ``ground_truth``.
- ``autolabels`` = a copy of ``ground_truth`` with injected errors: ~10% of
  the labels get a wrong class (a random other digit), plus spurious boxes
  (~4% background patches that hold no digit, ~3% boxes jittered off a digit
  to IoU < 0.5), each with a random class. Which labels are wrong is recorded.
- ``class_scores`` / ``confidence`` of every auto-label come from a REAL
  classifier, ``LogisticRegression`` trained on the disjoint half of
  ``load_digits``, applied to the box's crop (resized back to 8x8):
  ``class_scores = predict_proba(crop)``, ``confidence`` = its probability of
  the (possibly wrong) assigned label.
- ``embedding`` of every auto-label: real features of the crop, L2-normalized:
  ``pca`` = PCA(32) of the 8x8 pixels (fit on the training half), or ``hog``
  = ``skimage.feature.hog`` of the 32x32 crop (``--features pca,hog`` runs
  both; the default is ``pca``).
- consensus field ``knn_model``: a second real classifier,
  ``KNeighborsClassifier(k=5)`` on the training half's pixels, labels the same
  boxes (argmax class, its probability as confidence).

``score_labels(ds, "autolabels", consensus_fields=["knn_model"])`` is then run
and each signal's AUROC for "label is wrong" is computed with
``sklearn.metrics.roc_auc_score``, every signal oriented so that higher means
more likely wrong. ``mistakenness`` (a second run with
``reference_field="ground_truth"``) is printed only as a sanity check: against
the true reference it is perfect by construction.

Caveat: digits with PCA/HOG features are not CLIP crops of photos; the numbers
say how the signals behave when their inputs carry real class information and
real classifier errors, not what they score on a real detector's output.

    python benchmarks/signal_auroc.py                     # ~1 min on 2 CPU cores
    python benchmarks/signal_auroc.py --features pca,hog  # ~4 min
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402

from digits_dataset import CANVAS, DIGIT, box_iou, build_canvases, crop8, place_box  # noqa: E402
from stoplight_import import import_stoplight  # noqa: E402



# ---------------------------------------------------------------------------
# Construction
# ---------------------------------------------------------------------------


def inject_errors(rng, canvases, flip_rate=0.10, bg_rate=0.04, jitter_rate=0.03):
    """Auto-labels per canvas: [(box, label, kind)], kind in ok/flip/background/jitter."""
    n_gt = sum(len(c[2]) for c in canvases)
    autos = []
    for _, _, placed in canvases:
        labs = []
        for b, l in placed:
            if rng.random() < flip_rate:
                labs.append((b, (l + int(rng.integers(1, 10))) % 10, "flip"))
            else:
                labs.append((b, l, "ok"))
        autos.append(labs)
    # spurious boxes
    n_bg, n_jit = int(round(bg_rate * n_gt)), int(round(jitter_rate * n_gt))
    for kind, count in (("background", n_bg), ("jitter", n_jit)):
        added = 0
        while added < count:
            ci = int(rng.integers(len(canvases)))
            placed = canvases[ci][2]
            gt_boxes = [p[0] for p in placed]
            if kind == "background":
                b = place_box(rng, gt_boxes + [a[0] for a in autos[ci]])
            else:
                gb = gt_boxes[int(rng.integers(len(gt_boxes)))]
                for _ in range(50):
                    dx, dy = (int(v) for v in rng.integers(-20, 21, size=2))
                    b = (gb[0] + dx, gb[1] + dy, DIGIT, DIGIT)
                    if (0 <= b[0] <= CANVAS - DIGIT and 0 <= b[1] <= CANVAS - DIGIT
                            and 0.1 <= max(box_iou(b, g) for g in gt_boxes) < 0.5):
                        break
                else:
                    b = None
            if b is None:
                continue
            autos[ci].append((b, int(rng.integers(10)), kind))
            added += 1
    return autos


def crop32(canvas, box):
    x, y, w, h = box
    return canvas[y:y + h, x:x + w]


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", default="pca", help="comma list of pca, hog")
    ap.add_argument("--keep", action="store_true", help="keep the dataset and PNGs")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    import_stoplight()
    import fiftyone as fo
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import KNeighborsClassifier
    from skimage.feature import hog

    from stoplight.plugins.scoring.scores import score_labels

    rng = np.random.default_rng(args.seed)
    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target
    perm = rng.permutation(len(X))
    tr, pool = perm[: len(X) // 2], perm[len(X) // 2:]

    lr = LogisticRegression(max_iter=2000, C=0.05).fit(X[tr], y[tr])
    knn_clf = KNeighborsClassifier(n_neighbors=5).fit(X[tr], y[tr])
    pca = PCA(32, random_state=args.seed).fit(X[tr])

    tmp = Path(tempfile.mkdtemp(prefix="stoplight_digits_"))
    canvases = build_canvases(rng, digits.images[pool].astype(np.float32), y[pool], tmp)
    autos = inject_errors(rng, canvases)

    # per auto-label crops, features, classifier outputs
    flat = [(ci, b, l, kind) for ci, labs in enumerate(autos) for b, l, kind in labs]
    C8 = np.stack([crop8(canvases[ci][1], b) for ci, b, _, _ in flat])
    proba = lr.predict_proba(C8)
    kproba = knn_clf.predict_proba(C8)
    feats = {}
    f = pca.transform(C8)
    feats["pca"] = f / np.linalg.norm(f, axis=1, keepdims=True)
    f = np.stack([hog(crop32(canvases[ci][1], b), orientations=9, pixels_per_cell=(8, 8),
                      cells_per_block=(2, 2)) for ci, b, _, _ in flat])
    feats["hog"] = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    kinds = np.asarray([k for *_, k in flat])
    wrong = kinds != "ok"
    lr_acc = float((proba.argmax(1) == y_true_of(flat, canvases)).mean())

    def det(b, label, **kw):
        return fo.Detection(label=str(label), bounding_box=[v / CANVAS for v in b], **kw)

    ds = fo.Dataset()
    samples, r = [], 0
    for ci, (path, _, placed) in enumerate(canvases):
        s = fo.Sample(filepath=path)
        s["ground_truth"] = fo.Detections(detections=[det(b, l) for b, l in placed])
        auto, other = [], []
        for b, l, _ in autos[ci]:
            auto.append(det(b, l, confidence=float(proba[r, l]),
                            class_scores=[float(v) for v in proba[r]]))
            kl = int(kproba[r].argmax())
            other.append(det(b, kl, confidence=float(kproba[r, kl])))
            r += 1
        s["autolabels"] = fo.Detections(detections=auto)
        s["knn_model"] = fo.Detections(detections=other)
        samples.append(s)
    ds.add_samples(samples, progress=False)
    label_ids = [i for ids in ds.values("autolabels.detections.id") for i in ids]
    assert len(label_ids) == len(flat)

    n_flip, n_bg, n_jit = (int((kinds == k).sum()) for k in ("flip", "background", "jitter"))
    print(f"construction: {len(canvases)} canvases, {len(flat)} auto-labels, "
          f"{int(wrong.sum())} wrong ({n_flip} wrong class, {n_bg} background, {n_jit} jittered); "
          f"LogisticRegression crop accuracy on true digits {lr_acc:.3f}, "
          f"kNN {float((kproba.argmax(1) == y_true_of(flat, canvases)).mean()):.3f}")

    def auroc(score, mask):
        ok = np.isfinite(score) & mask
        t = wrong[ok]
        if t.all() or not t.any():
            return float("nan"), int(ok.sum()), int(t.sum())
        return float(roc_auc_score(t, score[ok])), int(ok.sum()), int(t.sum())

    def read(attr):
        vals = ds.values(f"autolabels.detections.{attr}")
        return np.asarray([np.nan if v is None else float(v) for vs in vals for v in vs])

    orient = [
        ("hardness", "hardness", lambda a: a),
        ("1 - margin", "margin", lambda a: 1 - a),
        ("1 - knn_agreement", "knn_agreement", lambda a: 1 - a),
        ("rer", "rer", lambda a: a),
        ("1 - consensus", "consensus", lambda a: 1 - a),
        ("uncertainty", "uncertainty", lambda a: a),
        ("1 - confidence", "confidence", lambda a: 1 - a),
    ]
    subsets = [("all", np.ones(len(flat), bool)),
               ("class flips", (kinds == "ok") | (kinds == "flip")),
               ("spurious", kinds != "flip")]
    tables = {}
    for fname in [s.strip() for s in args.features.split(",") if s.strip()]:
        emb = feats[fname]
        _set_embeddings(ds, emb)
        t0 = time.perf_counter()
        summary = score_labels(ds, "autolabels", consensus_fields=["knn_model"], progress=False)
        dt = time.perf_counter() - t0
        rows = []
        for name, attr, fn in orient:
            a = fn(read(attr))
            rows.append((name, [auroc(a, m) for _, m in subsets]))
        tables[fname] = rows
        print(f"\nembeddings: {fname} ({emb.shape[1]}-d, L2-normalized); score_labels {dt:.1f} s; "
              f"notes: {summary.get('notes') if isinstance(summary, dict) else ''}")
        _print_table(rows, subsets)

    # sanity check: mistakenness against the true reference (perfect by construction)
    score_labels(ds, "autolabels", reference_field="ground_truth",
                 consensus_fields=["knn_model"], progress=False)
    m = read("mistakenness")
    sanity = auroc(m, np.ones(len(flat), bool))
    print(f"\nsanity check (not a result): mistakenness vs the TRUE reference: "
          f"AUROC {sanity[0]:.3f} (n={sanity[1]}, wrong={sanity[2]})")
    print(f"total {time.perf_counter() - t_start:.1f} s")

    if not args.keep:
        ds.delete()
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept dataset {ds.name!r}, images in {tmp}")
    return 0


def y_true_of(flat, canvases):
    """True digit of each auto-label's box (-1 for spurious boxes)."""
    out = []
    for ci, b, _, kind in flat:
        if kind in ("ok", "flip"):
            out.append(next(l for pb, l in canvases[ci][2] if pb == b))
        else:
            out.append(-1)
    return np.asarray(out)


def _set_embeddings(ds, emb):
    """Writes one embedding per auto-label (in dataset order) as a list attribute."""
    counts = [len(ids) for ids in ds.values("autolabels.detections.id")]
    nested, r = [], 0
    for c in counts:
        nested.append([[float(v) for v in emb[r + j]] for j in range(c)])
        r += c
    ds.set_values("autolabels.detections.embedding", nested)


def _print_table(rows, subsets):
    head = "| signal (higher = wrong) | " + " | ".join(
        f"AUROC {name} (n / wrong)" for name, _ in subsets) + " |"
    print(head)
    print("|" + "---|" * (len(subsets) + 1))
    for name, vals in rows:
        cells = [f"{a:.3f} ({n} / {w})" if np.isfinite(a) else f"n/a ({n} / {w})"
                 for a, n, w in vals]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
