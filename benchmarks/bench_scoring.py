"""Scoring speed: ``score_labels`` on N synthetic labels with 512-d embeddings.

Target (issue 3): 100k labels with precomputed 512-d embeddings scored in
<= 60 s on 2 CPU cores, and 1M labels in <= 12x the 100k time.

For each size N a child process builds a synthetic dataset (not timed as
scoring): ~10 detections per sample, 20 classes, a ``class_scores`` vector
and a ``confidence`` per label, and a 512-d unit ``embedding`` per label
drawn from per-class Gaussian clusters (with 10 % of labels given a wrong
class name, so kNN and RER have real disagreements to find). Filepaths do
not exist: scoring reads no pixels. Documents are built raw and written with
``insert_many`` in batches (the layout is copied from one sample added the
normal way).

A second child process times ``score_labels(ds, label_field="autolabels",
progress=False)`` end to end and reports its own peak RSS
(``getrusage``), so the build's memory is not counted. The signal functions
and the embedding read are wrapped with timers for that one run (no second
computation); the table splits the total into phases.

``--recall`` (default on) then measures the kNN index on the same data:
exact neighbours of 2,000 random labels (against all N) vs what
``neighbors.knn`` returns for them (recall@10, and the mean absolute
difference of their knn_agreement). Not part of the scoring time.

    python benchmarks/bench_scoring.py                                # 10k, 100k
    python benchmarks/bench_scoring.py --sizes 10000 100000 1000000   # long
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
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
    for s0 in range(0, num_samples, batch_samples):
        # Python lists per batch only: all of them at 1M would be ~12 GB
        s1 = min(num_samples, s0 + batch_samples)
        lo0, hi0 = s0 * LABELS_PER_SAMPLE, min(n, s1 * LABELS_PER_SAMPLE)
        p_l, conf_l = p[lo0:hi0].tolist(), conf[lo0:hi0].tolist()
        boxes_l, emb_l = boxes[lo0:hi0].tolist(), emb[lo0:hi0].astype("float64").tolist()
        docs = []
        for s in range(s0, s1):
            lo, hi = s * LABELS_PER_SAMPLE, min(n, (s + 1) * LABELS_PER_SAMPLE)
            dets = []
            for i in range(lo, hi):
                d = dict(det_tmpl)
                j = i - lo0
                d.update(_id=ObjectId(), label=classes[y[i]], bounding_box=boxes_l[j],
                         confidence=conf_l[j], class_scores=p_l[j], embedding=emb_l[j])
                dets.append(d)
            doc = {k: v for k, v in template.items() if k != "_id"}
            doc.update(filepath=f"/nonexistent/{s:07d}.jpg",
                       autolabels={"_cls": "Detections", "detections": dets})
            docs.append(doc)
        ds._sample_collection.insert_many(docs, ordered=False)
    ds.persistent = True  # scored in another process
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
        from stoplight.plugins.scoring import score_stages, signals

        for name in self.NAMES:
            self._wrap(signals, name, name)
        # the scoring run's read stage calls it from there
        self._wrap(score_stages, "load_label_embeddings", "load_embeddings")
        return self

    def __exit__(self, *exc):
        for module, attr, fn in reversed(self._orig):
            setattr(module, attr, fn)


def measure_recall(emb, y, k: int = 10, queries: int = 2000, seed: int = 1) -> dict:
    """recall@k of ``neighbors.knn`` and the knn_agreement error, on sampled rows."""
    import numpy as np
    import torch
    from stoplight.plugins.scoring import neighbors

    n = emb.shape[0]
    q = np.sort(np.random.default_rng(seed).choice(n, min(queries, n), replace=False))
    x = torch.nn.functional.normalize(torch.as_tensor(emb, dtype=torch.float32), dim=1)
    es, ei = [], []
    for c in range(0, len(q), 100):  # (100, N) blocks: 400 MB at 1M
        qc = torch.as_tensor(q[c : c + 100])
        sims = x[qc] @ x.T
        sims[torch.arange(len(qc)), qc] = -float("inf")
        top = torch.topk(sims, k, dim=1)
        es.append(top.values)
        ei.append(top.indices)
    es, ei = torch.cat(es), torch.cat(ei)
    del x, sims
    t0 = time.perf_counter()
    s_all, i_all = neighbors.knn(emb, k)
    knn_s = time.perf_counter() - t0
    approx_s, approx_i = s_all[q], i_all[q]
    lab = np.asarray(y)

    def agreement(sim, idx):
        """knn_agreement of the sampled rows from their neighbour lists."""
        idx = idx.numpy()
        same = (lab[np.clip(idx, 0, None)] == lab[q][:, None]) & (idx >= 0)
        w = np.clip(sim.numpy().astype(np.float64), 0, None) * (idx >= 0)
        return (w * same).sum(1) / np.maximum(w.sum(1), 1e-12)

    diff = np.abs(agreement(approx_s, approx_i) - agreement(es, ei))
    return dict(
        method="exact" if n <= neighbors.EXACT_LIMIT else
        f"ivf list_size={neighbors.LIST_SIZE} nprobe={neighbors.NPROBE}",
        recall=neighbors.recall_at_k(approx_i.numpy(), ei.numpy()),
        agreement_mae=float(diff.mean()), agreement_max=float(diff.max()), knn_s=knn_s,
    )


def _child(args) -> int:
    """``--_child MODE N NAME RESULT_JSON``: one step in its own process."""
    import_stoplight()
    import fiftyone as fo

    mode, n, name, result_path = args
    n = int(n)

    def emit(result: dict) -> None:
        Path(result_path).write_text(json.dumps(result))

    if mode == "build":
        t0 = time.perf_counter()
        ds, _ = build_dataset(n, name)
        emit(dict(build=time.perf_counter() - t0, samples=len(ds),
                  labels=ds.count("autolabels.detections")))
        return 0
    from stoplight.plugins.scoring.scores import score_labels

    ds = fo.load_dataset(name)
    load_before = os.getloadavg()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    with SignalTimer() as st:
        t0 = time.perf_counter()
        summary = score_labels(ds, label_field="autolabels", progress=False)
        total = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    assert summary["status"] == "completed", summary
    assert summary["num_scored_labels"] == n, summary["num_scored_labels"]
    out = dict(n=n, total=total, cpu_s=cpu_s, sig=dict(st.t), timings=summary["timings"],
               peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
               load_before=load_before, load_after=os.getloadavg())
    if mode == "score+recall":
        import numpy as np

        y, _, _, _, emb = _synthetic_arrays(n)
        out["recall"] = measure_recall(emb, y)
    emit(out)
    return 0


def _run_child(*argv) -> dict:
    # The result comes back in a file, not a pipe: a child may start
    # FiftyOne's database service, which inherits (and keeps open) its pipes.
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run([sys.executable, __file__, "--_child", *map(str, argv), str(out)],
                              stdin=subprocess.DEVNULL)
        if proc.returncode or not out.exists():
            raise RuntimeError(f"child {argv} failed (exit code {proc.returncode})")
        return json.loads(out.read_text())


def measure(n: int, recall: bool = False) -> dict:
    """Builds ``n`` labels in one child process and scores them in another.

    Returns:
        the scoring child's result (``total`` seconds, ``cpu_s``, ``sig``
        and ``timings`` per phase, ``peak_rss_gb``, ...) plus ``build``
    """
    import fiftyone as fo

    name = f"stoplight-bench-scoring-{n}"
    try:
        built = _run_child("build", n, name)
        row = _run_child("score+recall" if recall else "score", n, name)
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
    row["build"] = built["build"]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                        help="numbers of labels (1M: ~7 GB in MongoDB, ~15 min)")
    parser.add_argument("--no-recall", action="store_true", help="skip the kNN recall check")
    parser.add_argument("--keep", action="store_true", help="keep the datasets")
    parser.add_argument("--reuse", action="store_true",
                        help="score a kept dataset of the same size again instead of building it "
                             "(scores are overwritten; the data are the same seeded arrays)")
    parser.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        return _child(args._child)

    import_stoplight()
    import torch
    import fiftyone as fo

    print(f"# {datetime.datetime.now():%Y-%m-%d %H:%M}  {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"CUDA {torch.cuda.is_available()}, fiftyone {fo.__version__}", flush=True)
    rows = []
    for n in sorted(args.sizes):
        name = f"stoplight-bench-scoring-{n}"
        try:
            if args.reuse and fo.dataset_exists(name) and \
                    fo.load_dataset(name).count("autolabels.detections") == n:
                built = dict(build=float("nan"), samples=len(fo.load_dataset(name)), labels=n)
            else:
                built = _run_child("build", n, name)
            print(f"N={n}: built {built['samples']} samples / {built['labels']} labels "
                  f"in {built['build']:.1f} s", flush=True)
            print(f"N={n}: uptime before scoring: "
                  f"{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}",
                  flush=True)
            row = _run_child("score" if args.no_recall else "score+recall", n, name)
        finally:
            if not args.keep and fo.dataset_exists(name):
                fo.delete_dataset(name)
        row["build"] = built["build"]
        print(f"N={n}: {json.dumps(row)}", flush=True)
        rows.append(row)

    def phases(r):
        s, t = r["sig"], r["timings"]
        emb_read = s.get("load_embeddings", 0.0)
        knn, rer = s.get("knn_agreement", 0.0), s.get("class_autoencoder_rer", 0.0)
        ph = dict(read_labels=t.get("read_s", 0.0), read_embeddings=emb_read, knn=knn, rer=rer,
                  write=t.get("write_s", 0.0))
        ph["other"] = r["total"] - sum(ph.values())
        return ph

    base = rows[0]
    print()
    print("| N labels | total (s) | process CPU (s) | read labels | read embeddings | knn_agreement | rer | "
          "write | other | per-label time / smallest | peak RSS (GB) | load avg before/after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ph = phases(r)
        ratio = r["total"] / base["total"] * base["n"] / r["n"]
        print(f"| {r['n']:,} | {r['total']:.1f} | {r['cpu_s']:.0f} | {ph['read_labels']:.1f} | "
              f"{ph['read_embeddings']:.1f} | {ph['knn']:.1f} | {ph['rer']:.1f} | {ph['write']:.1f} | "
              f"{ph['other']:.1f} | {ratio:.2f}x | {r['peak_rss_gb']:.2f} | "
              f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} |")
    if any("recall" in r for r in rows):
        print()
        print("| N labels | kNN method | recall@10 | knn_agreement MAE (max) | knn alone (s) |")
        print("|---|---|---|---|---|")
        for r in rows:
            if "recall" in r:
                c = r["recall"]
                print(f"| {r['n']:,} | {c['method']} | {c['recall']:.3f} | "
                      f"{c['agreement_mae']:.4f} ({c['agreement_max']:.2f}) | {c['knn_s']:.1f} |")
    print()
    by_n = {r["n"]: r for r in rows}
    if 100_000 in by_n:
        t = by_n[100_000]["total"]
        print(f"Target 100k <= 60 s: {t:.1f} s -> {'MET' if t <= 60 else 'NOT MET'}")
        for big in sorted(k for k in by_n if k > 100_000):
            ratio = by_n[big]["total"] / t
            print(f"{big:,} / 100k: {ratio:.2f}x (target for 1M: <= 12x) -> "
                  f"{'linear or better' if ratio <= 1.2 * big / 100_000 else 'worse than linear'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
