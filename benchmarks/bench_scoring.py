"""Scoring speed: ``score_labels`` on N synthetic labels with 512-d embeddings.

Target (issue 3): 100k labels with precomputed 512-d embeddings scored in
<= 60 s on 2 CPU cores, and 1M labels in <= 12x the 100k time.

For each size N the script builds a synthetic dataset (not timed as scoring):
~10 detections per sample, 20 classes, a ``class_scores`` vector and a
``confidence`` per label, and a 512-d unit ``embedding`` per label drawn from
per-class Gaussian clusters (with 10 % of labels given a wrong class name, so
kNN and RER have real disagreements to find). Filepaths do not exist: scoring
reads no pixels. Documents are built raw and written with ``insert_many`` in
big batches (the layout is copied from one sample added the normal way).

It then times ``score_labels(ds, label_field="autolabels", progress=False)``
end to end (bulk reads, hardness/margin, knn_agreement, rer, uncertainty,
bulk writes, run record). The signal functions are wrapped with timers for
that one run (no second computation), so the table splits the total into
the pure-array compute of each signal and everything else (DB reads and
writes, Python list <-> array conversion, run record) = "I/O".

``--direct`` additionally reruns the signal functions on the in-memory
arrays outside ``score_labels`` (doubles the run time).

    python benchmarks/bench_scoring.py                         # 10k, 100k
    python benchmarks/bench_scoring.py --sizes 10000 100000 1000000   # long
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

from stoplight_import import import_stoplight  # noqa: E402

NUM_CLASSES = 20
DIM = 512
LABELS_PER_SAMPLE = 10
NOISE = 0.10  # share of labels whose class name is wrong


def _synthetic_arrays(n: int, seed: int = 0):
    """Labels, class_scores, confidences, boxes and unit embeddings."""
    import numpy as np

    rng = np.random.default_rng(seed)
    true = rng.integers(0, NUM_CLASSES, n)
    centers = rng.standard_normal((NUM_CLASSES, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    emb = centers[true] + rng.standard_normal((n, DIM), dtype=np.float32) * (0.9 / np.sqrt(DIM))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    y = true.copy()
    flip = rng.random(n) < NOISE
    y[flip] = (true[flip] + rng.integers(1, NUM_CLASSES, flip.sum())) % NUM_CLASSES
    logits = rng.standard_normal((n, NUM_CLASSES)) * 1.5
    logits[np.arange(n), y] += rng.uniform(0.0, 4.0, n)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    conf = p[np.arange(n), y]
    xy = rng.uniform(0.0, 0.7, (n, 2))
    wh = rng.uniform(0.05, 0.3, (n, 2))
    boxes = np.concatenate([xy, wh], axis=1)
    return y, p, conf, boxes, emb


def build_dataset(n: int, name: str, batch_samples: int = 1000):
    """A dataset of ``n`` labels in ``n / 10`` samples, inserted raw in batches."""
    import fiftyone as fo
    from bson import ObjectId
    from stoplight.plugins.common import bulk

    y, p, conf, boxes, emb = _synthetic_arrays(n)
    classes = [f"class_{i:02d}" for i in range(NUM_CLASSES)]
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    # one sample added the normal way gives the exact document layout
    tmpl = fo.Sample(filepath="/nonexistent/template.jpg",
                     autolabels=fo.Detections(detections=[fo.Detection(label="x", bounding_box=[0, 0, 1, 1])]))
    ds.add_sample(tmpl)
    template = ds._sample_collection.find_one({"_id": ObjectId(tmpl.id)})
    det_tmpl = template["autolabels"]["detections"][0]
    ds.delete_samples([tmpl.id])
    bulk.declare_field(ds, "autolabels", fo.Detections, {"class_scores": fo.FloatField})

    num_samples = (n + LABELS_PER_SAMPLE - 1) // LABELS_PER_SAMPLE
    p_l, conf_l, boxes_l, emb_l = p.tolist(), conf.tolist(), boxes.tolist(), emb.astype("float64").tolist()
    docs = []
    for s in range(num_samples):
        lo, hi = s * LABELS_PER_SAMPLE, min(n, (s + 1) * LABELS_PER_SAMPLE)
        dets = []
        for i in range(lo, hi):
            d = dict(det_tmpl)
            d.update(_id=ObjectId(), label=classes[y[i]], bounding_box=boxes_l[i],
                     confidence=conf_l[i], class_scores=p_l[i], embedding=emb_l[i])
            dets.append(d)
        doc = {k: v for k, v in template.items() if k != "_id"}
        doc.update(filepath=f"/nonexistent/{s:07d}.jpg", autolabels={"_cls": "Detections", "detections": dets})
        docs.append(doc)
        if len(docs) >= batch_samples:
            ds._sample_collection.insert_many(docs, ordered=False)
            docs = []
    if docs:
        ds._sample_collection.insert_many(docs, ordered=False)
    return ds, (y, p, conf, emb)


class SignalTimer:
    """Wraps the signal functions (and the embedding load) with timers."""

    NAMES = ("hardness", "margin", "knn_agreement", "class_autoencoder_rer", "uncertainty")

    def __init__(self):
        self.t: dict[str, float] = {}
        self._orig = []

    def _wrap(self, module, attr, key):
        fn = getattr(module, attr)
        self._orig.append((module, attr, fn))

        @functools.wraps(fn)
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.t[key] = self.t.get(key, 0.0) + time.perf_counter() - t0

        setattr(module, attr, timed)

    def __enter__(self):
        from stoplight.plugins.scoring import scores, signals

        for name in self.NAMES:
            self._wrap(signals, name, name)
        self._wrap(scores, "load_label_embeddings", "load_embeddings")
        return self

    def __exit__(self, *exc):
        for module, attr, fn in reversed(self._orig):
            setattr(module, attr, fn)


def direct(y, p, conf, emb) -> dict[str, float]:
    """The signals on in-memory arrays, outside score_labels."""
    from stoplight.plugins.scoring import signals

    t = {}
    t0 = time.perf_counter(); h = signals.hardness(p); t["hardness"] = time.perf_counter() - t0
    t0 = time.perf_counter(); signals.margin(p); t["margin"] = time.perf_counter() - t0
    t0 = time.perf_counter(); k = signals.knn_agreement(emb, y); t["knn_agreement"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    r, _, _ = signals.class_autoencoder_rer(emb, y, num_classes=NUM_CLASSES)
    t["class_autoencoder_rer"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    signals.uncertainty(hardness=h, knn_agreement=k, rer=r, confidence=conf)
    t["uncertainty"] = time.perf_counter() - t0
    return t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                        help="numbers of labels (1M needs ~5 GB of MongoDB and tens of minutes)")
    parser.add_argument("--direct", action="store_true",
                        help="also time the signals on in-memory arrays outside score_labels")
    parser.add_argument("--keep", action="store_true", help="keep the datasets")
    args = parser.parse_args(argv)

    import_stoplight()
    import torch
    import fiftyone as fo
    from stoplight.plugins.scoring.scores import score_labels

    print(f"# {datetime.datetime.now():%Y-%m-%d %H:%M}  {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"CUDA {torch.cuda.is_available()}, fiftyone {fo.__version__}", flush=True)
    rows = []
    for n in sorted(args.sizes):
        name = f"stoplight-bench-scoring-{n}"
        t0 = time.perf_counter()
        ds, arrays = build_dataset(n, name)
        build_s = time.perf_counter() - t0
        print(f"N={n}: built {len(ds)} samples / {ds.count('autolabels.detections')} labels "
              f"in {build_s:.1f} s", flush=True)
        with SignalTimer() as st:
            t0 = time.perf_counter()
            summary = score_labels(ds, label_field="autolabels", progress=False)
            total = time.perf_counter() - t0
        assert summary["status"] == "completed", summary
        assert summary["num_scored_labels"] == n, summary["num_scored_labels"]
        compute = sum(st.t.get(k, 0.0) for k in SignalTimer.NAMES)
        row = dict(n=n, build=build_s, total=total, compute=compute, io=total - compute,
                   sig=dict(st.t), timings=summary["timings"])
        print(f"N={n}: score_labels {total:.1f} s; signals {compute:.1f} s "
              f"({', '.join(f'{k} {v:.2f}' for k, v in st.t.items())}); "
              f"run-record timings {summary['timings']}", flush=True)
        if args.direct:
            row["direct"] = direct(*arrays)
            print(f"N={n}: direct signals {row['direct']}", flush=True)
        rows.append(row)
        if not args.keep:
            fo.delete_dataset(name)
        del ds, arrays

    base = rows[0]
    print()
    print("| N labels | build (s) | score_labels total (s) | I/O + glue (s) | signals (s) | "
          "hardness+margin | knn_agreement | rer | uncertainty | total / smallest | per-label time / smallest |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["sig"]
        ratio = r["total"] / base["total"]
        print(f"| {r['n']:,} | {r['build']:.1f} | {r['total']:.1f} | {r['io']:.1f} | {r['compute']:.1f} | "
              f"{s.get('hardness', 0) + s.get('margin', 0):.2f} | {s.get('knn_agreement', 0):.1f} | "
              f"{s.get('class_autoencoder_rer', 0):.1f} | {s.get('uncertainty', 0):.2f} | "
              f"{ratio:.2f}x | {ratio * base['n'] / r['n']:.2f}x |")
    print()
    print("I/O + glue = total - signals: bulk values() reads (incl. "
          "load_label_embeddings: " + ", ".join(f"{r['sig'].get('load_embeddings', 0):.1f} s" for r in rows)
          + "), list->array conversion, set_label_values writes, run record.")
    by_n = {r["n"]: r for r in rows}
    if 100_000 in by_n:
        t = by_n[100_000]["total"]
        print(f"Target 100k <= 60 s: {t:.1f} s -> {'MET' if t <= 60 else 'NOT MET'}")
        if 1_000_000 in by_n:
            ratio = by_n[1_000_000]["total"] / t
            print(f"Target 1M <= 12x 100k: {ratio:.2f}x -> {'MET' if ratio <= 12 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
