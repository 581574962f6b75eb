"""Scoring signals on a GPU: kNN agreement and class-wise autoencoder RER.

The array half of ``score_labels`` (no database: FiftyOne and MongoDB do not
fit on the GPU machine) on synthetic 512-d embeddings in 20 class clusters
with 10 % wrong class names, at 100k and 1M labels:

- ``knn_agreement`` with the IVF index (the default above 20k labels) and
  with exact search forced (``exact_limit`` = N), on the GPU;
- recall@10 of the IVF neighbours against exact ones for 10,000 queries;
- ``class_autoencoder_rer`` (20 stacked autoencoders) on the GPU;
- the same calls on this machine's CPU at 100k, side by side;
- AUROC of 1 - knn_agreement and of RER for "class name is wrong" (a check
  that the GPU path computes the same signal, not a quality claim).

Prints one table; ``--json`` writes it too. Needs only numpy, torch and
scikit-learn (for AUROC; skipped without it).

    python benchmarks/gpu_scoring.py --json /tmp/out/gpu_scoring.json
    python benchmarks/gpu_scoring.py --sizes 20000 --smoke     # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES, DIM, NOISE = 20, 512, 0.10


def _import_signals():
    """plugins/scoring/{signals,neighbors}.py without the plugin's FiftyOne parts."""
    pkg = types.ModuleType("stoplight")
    pkg.__path__ = [str(REPO)]
    sys.modules.setdefault("stoplight", pkg)
    from stoplight.plugins.scoring import neighbors, signals  # noqa: E402

    return signals, neighbors


def synthetic(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, NUM_CLASSES, n)
    centers = rng.standard_normal((NUM_CLASSES, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    emb = centers[true] + rng.standard_normal((n, DIM), dtype=np.float32) * np.float32(0.9 / np.sqrt(DIM))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    y = true.copy()
    wrong = rng.random(n) < NOISE
    y[wrong] = (true[wrong] + rng.integers(1, NUM_CLASSES, wrong.sum())) % NUM_CLASSES
    return emb, y, wrong


def timed(fn, sync):
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def auroc(score, wrong):
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:
        return None
    ok = np.isfinite(score)
    return round(float(roc_auc_score(wrong[ok], score[ok])), 4)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--cpu-size", type=int, default=100_000, help="size also run on the CPU")
    ap.add_argument("--smoke", action="store_true", help="CPU only, small (checks the script)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch

    signals, neighbors = _import_signals()
    gpu = torch.cuda.is_available() and not args.smoke
    dev = "cuda" if gpu else "cpu"
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    name = torch.cuda.get_device_name(0) if gpu else "CPU"
    print(f"device: {name}; torch {torch.__version__}; CPU threads {torch.get_num_threads()}", flush=True)
    rows = []

    def run(n, device, emb, y, wrong, exact_too=True):
        sync_d = sync if device == "cuda" else (lambda: None)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        r = dict(n=n, device=device)
        knn, r["knn_ivf_s"] = timed(lambda: signals.knn_agreement(emb, y, k=10, device=device), sync_d)
        r["auroc_knn"] = auroc(1 - knn, wrong)
        if exact_too:
            knn_x, r["knn_exact_s"] = timed(
                lambda: signals.knn_agreement(emb, y, k=10, device=device, exact_limit=n), sync_d)
            r["knn_ivf_vs_exact_mean_abs_diff"] = round(float(np.nanmean(np.abs(knn - knn_x))), 4)
            q = np.random.default_rng(1).choice(n, size=min(n, 10_000), replace=False)
            _, idx_ivf = neighbors.knn(emb, 10, device=device)
            idx_ivf = np.asarray(idx_ivf.cpu() if hasattr(idx_ivf, "cpu") else idx_ivf)[q]
            _, idx_ex = neighbors.knn(emb, 10, exact_limit=n, device=device)
            idx_ex = np.asarray(idx_ex.cpu() if hasattr(idx_ex, "cpu") else idx_ex)[q]
            r["ivf_recall_at_10"] = round(float(neighbors.recall_at_k(idx_ivf, idx_ex)), 4)
        (rer, *_), r["rer_s"] = timed(
            lambda: signals.class_autoencoder_rer(emb, y, NUM_CLASSES, device=device), sync_d)
        r["auroc_rer"] = auroc(np.asarray(rer, dtype=float), wrong)
        if device == "cuda":
            r["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        print(json.dumps(r), flush=True)
        rows.append(r)

    for n in args.sizes:
        emb, y, wrong = synthetic(n)
        run(n, dev, emb, y, wrong)
        if gpu and n == args.cpu_size:
            run(n, "cpu", emb, y, wrong, exact_too=False)

    print(f"\n{name}: synthetic {DIM}-d embeddings, {NUM_CLASSES} classes, {NOISE:.0%} wrong class names")
    print("| labels | device | kNN IVF (s) | kNN exact (s) | IVF recall@10 | |IVF-exact| knn_agreement "
          "| RER (s) | AUROC 1-kNN / RER | peak GPU GiB |")
    print("|---:|---|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['device']} | {r['knn_ivf_s']:.1f} | {r.get('knn_exact_s', float('nan')):.1f} | "
              f"{r.get('ivf_recall_at_10', '')} | {r.get('knn_ivf_vs_exact_mean_abs_diff', '')} | "
              f"{r['rer_s']:.1f} | {r['auroc_knn']} / {r['auroc_rer']} | {r.get('peak_gpu_gib', '')} |")
    by = {(r["n"], r["device"]): r for r in rows}
    if (args.cpu_size, "cpu") in by and (args.cpu_size, "cuda") in by:
        c, g = by[(args.cpu_size, "cpu")], by[(args.cpu_size, "cuda")]
        print(f"\nGPU vs CPU at {args.cpu_size:,}: kNN IVF {c['knn_ivf_s'] / g['knn_ivf_s']:.1f}x, "
              f"RER {c['rer_s'] / g['rer_s']:.1f}x")
    sizes = sorted(n for n, d in by if d == dev)
    if len(sizes) >= 2:
        a, b = by[(sizes[0], dev)], by[(sizes[-1], dev)]
        print(f"{sizes[-1]:,} / {sizes[0]:,} on {dev}: kNN IVF {b['knn_ivf_s'] / a['knn_ivf_s']:.1f}x, "
              f"RER {b['rer_s'] / a['rer_s']:.1f}x (sizes {sizes[-1] / sizes[0]:.0f}x apart)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
