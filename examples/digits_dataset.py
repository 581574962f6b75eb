"""A labeled detection data set with real auto-label errors, built offline.

No vision weights can be downloaded here, so Stoplight's statistics are
evaluated on a construction from real images and real labels:

- scikit-learn's ``load_digits()``: 1,797 real handwritten 8x8 digits with
  their real labels. A random half (seeded) trains small real classifiers;
  the other half is pasted, scaled to 32x32, at random non-overlapping
  places on 256x256 canvases (4-8 digits each, light noise, PNG files).
  ``copies`` pastes that half several times (new places and noise each time)
  for a larger set. ``ground_truth`` holds the true boxes and digits.
- ``autolabels`` is the output of a real, deliberately weak "detector":
  every true box plus spurious boxes (background patches, boxes shifted to
  IoU < 0.5 off a digit), each labeled with the argmax class of a
  ``LogisticRegression`` on the crop, ``confidence`` = its probability and
  ``class_scores`` = all ten. Its mistakes are real classifier mistakes
  (similar-looking digits), not random flips.
- ``embedding`` on each auto-label: PCA(32) of the crop's pixels
  (L2-normalised), fitted on the training half.
- ``knn_model``: a second real classifier (5-NN) labels the same boxes, for
  ``consensus``.

An auto-label is correct when it matches a true box (IoU >= 0.5) of the same
class, as ``evaluate_detections`` decides.

    from digits_dataset import build_digits_dataset
    ds, info = build_digits_dataset(seed=0, copies=2)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

CANVAS = 256
DIGIT = 32
SCALE = DIGIT // 8


def box_iou(a, b) -> float:
    """IoU of two pixel boxes ``[x, y, w, h]``."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter) if inter > 0 else 0.0


def _touch(a, b, pad=2) -> bool:
    return not (a[0] + a[2] + pad <= b[0] or b[0] + b[2] + pad <= a[0]
                or a[1] + a[3] + pad <= b[1] or b[1] + b[3] + pad <= a[1])


def place_box(rng, boxes, tries=200):
    """A 32x32 pixel box [x, y, w, h] overlapping none of ``boxes``."""
    for _ in range(tries):
        x, y = (int(v) for v in rng.integers(0, CANVAS - DIGIT, size=2))
        b = (x, y, DIGIT, DIGIT)
        if all(box_iou(b, o) == 0.0 and not _touch(b, o) for o in boxes):
            return b
    return None


def build_canvases(rng, images, labels, out: Path, start: int = 0):
    """Pastes the digits onto canvases; returns [(path, canvas, [(box, label)])]."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    order = rng.permutation(len(images))
    result, i = [], 0
    while i < len(order):
        k = int(rng.integers(4, 9))
        canvas = np.zeros((CANVAS, CANVAS), np.float32)
        placed = []
        for idx in order[i:i + k]:
            b = place_box(rng, [p[0] for p in placed])
            if b is None:
                break
            x, y = b[0], b[1]
            canvas[y:y + DIGIT, x:x + DIGIT] = np.kron(images[idx] / 16.0, np.ones((SCALE, SCALE), np.float32))
            placed.append((b, int(labels[idx])))
        i += len(placed)
        canvas = np.clip(canvas + rng.normal(0, 0.04, canvas.shape), 0, 1).astype(np.float32)
        path = out / f"canvas_{start + len(result):05d}.png"
        Image.fromarray((canvas * 255).round().astype(np.uint8)).save(path)
        result.append((str(path), canvas, placed))
    return result


def spurious_boxes(rng, canvases, bg_rate=0.04, jitter_rate=0.03):
    """Extra boxes per canvas: [[(box, kind)]], kind ``background`` or ``jitter``."""
    n_gt = sum(len(c[2]) for c in canvases)
    extra = [[] for _ in canvases]
    for kind, count in (("background", int(round(bg_rate * n_gt))), ("jitter", int(round(jitter_rate * n_gt)))):
        added = 0
        while added < count:
            ci = int(rng.integers(len(canvases)))
            gt_boxes = [p[0] for p in canvases[ci][2]]
            if kind == "background":
                b = place_box(rng, gt_boxes + [e[0] for e in extra[ci]])
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
            extra[ci].append((b, kind))
            added += 1
    return extra


def crop8(canvas, box):
    """The box's crop, block-averaged back to 8x8 and scaled to 0-16 (digits' scale)."""
    x, y, w, h = box
    c = canvas[y:y + h, x:x + w]
    return c.reshape(8, SCALE, 8, SCALE).mean(axis=(1, 3)).reshape(-1) * 16.0


def build_digits_dataset(seed: int = 0, copies: int = 1, out_dir: str | None = None, name: str | None = None,
                         train_share: float = 0.5, lr_c: float = 0.02, bg_rate: float = 0.04,
                         jitter_rate: float = 0.03):
    """Builds the FiftyOne dataset described in the module docstring.

    Args:
        seed: random seed (the whole construction is reproducible)
        copies: how many times the held-out digits are pasted
        out_dir: where the PNGs go (a new temp dir by default)
        name: dataset name (a fresh one by default)
        train_share: share of the digits that train the classifiers
        lr_c: inverse regularisation of the labeling classifier (smaller:
            weaker, more mistakes)
        bg_rate: background boxes per true box
        jitter_rate: shifted boxes per true box

    Returns:
        ``(dataset, info)``; ``info`` has ``kinds`` (per auto-label, in
        dataset order: ``ok``, ``wrong_class``, ``background``, ``jitter``),
        ``wrong`` (bool array), ``image_dir`` and the classifier accuracies
    """
    import fiftyone as fo
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(seed)
    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target
    perm = rng.permutation(len(X))
    n_tr = int(len(X) * train_share)
    tr, pool = perm[:n_tr], perm[n_tr:]
    lr = LogisticRegression(max_iter=2000, C=lr_c).fit(X[tr], y[tr])
    knn = KNeighborsClassifier(n_neighbors=5).fit(X[tr], y[tr])
    pca = PCA(32, random_state=seed).fit(X[tr])

    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="stoplight_digits_"))
    canvases = []
    for _ in range(copies):
        canvases += build_canvases(rng, digits.images[pool].astype(np.float32), y[pool], out, start=len(canvases))
    extra = spurious_boxes(rng, canvases, bg_rate, jitter_rate)

    boxes = [[(b, l, "true") for b, l in placed] + [(b, None, k) for b, k in extra[ci]]
             for ci, (_, _, placed) in enumerate(canvases)]
    flat = [(ci, b, l, k) for ci, bs in enumerate(boxes) for b, l, k in bs]
    crops = np.stack([crop8(canvases[ci][1], b) for ci, b, _, _ in flat])
    proba, kproba = lr.predict_proba(crops), knn.predict_proba(crops)
    emb = pca.transform(crops)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    pred = proba.argmax(1)
    kinds = np.array([
        k if k != "true" else ("ok" if pred[i] == l else "wrong_class")
        for i, (_, _, l, k) in enumerate(flat)
    ])

    def det(b, label, **kw):
        return fo.Detection(label=str(label), bounding_box=[v / CANVAS for v in b], **kw)

    ds = fo.Dataset(name)
    samples, r = [], 0
    for ci, (path, _, placed) in enumerate(canvases):
        s = fo.Sample(filepath=path)
        s["ground_truth"] = fo.Detections(detections=[det(b, l) for b, l in placed])
        auto, other = [], []
        for b, _, _ in boxes[ci]:
            c, kc = int(pred[r]), int(kproba[r].argmax())
            auto.append(det(b, c, confidence=float(proba[r, c]), class_scores=[float(v) for v in proba[r]],
                            embedding=[float(v) for v in emb[r]]))
            other.append(det(b, kc, confidence=float(kproba[r, kc])))
            r += 1
        s["autolabels"] = fo.Detections(detections=auto)
        s["knn_model"] = fo.Detections(detections=other)
        samples.append(s)
    ds.add_samples(samples, progress=False)
    ds.add_dynamic_sample_fields()  # declare confidence, class_scores, embedding
    true_mask = np.array([k == "true" for *_, k in flat])
    true_y = np.array([l if l is not None else -1 for _, _, l, _ in flat])
    info = dict(
        kinds=kinds,
        wrong=kinds != "ok",
        image_dir=str(out),
        num_true_boxes=int(true_mask.sum()),
        labeler_accuracy=float((pred[true_mask] == true_y[true_mask]).mean()),
        knn_accuracy=float((kproba.argmax(1)[true_mask] == true_y[true_mask]).mean()),
    )
    return ds, info
