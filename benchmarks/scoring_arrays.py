"""Growth of the embedding signals alone (kNN agreement, RER) with N.

``score_labels``' two costly signals on the synthetic arrays of
``bench_scoring.py`` (20 classes, 512-d, 10 % wrong class names), without
FiftyOne or MongoDB, so it runs on any machine with numpy and torch (the
GPU machine's CPU, say, where nothing else competes for the cores).
Sizes run side by side in one process; the table gives each phase and the
per-label time relative to the smallest size (1.00x = linear).

    python benchmarks/scoring_arrays.py --sizes 100000 1000000 --threads 2
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import platform
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _load_scoring():
    """plugins/scoring as a package of its own (no fiftyone needed)."""
    spec = importlib.util.spec_from_file_location(
        "stoplight_scoring", REPO / "plugins" / "scoring" / "__init__.py",
        submodule_search_locations=[str(REPO / "plugins" / "scoring")],
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["stoplight_scoring"] = mod
    spec.loader.exec_module(mod)
    return importlib.import_module("stoplight_scoring.signals"), importlib.import_module(
        "stoplight_scoring.neighbors")


def measure(n: int, signals, neighbors, device: str = "cpu") -> dict:
    import numpy as np

    from bench_scoring import _synthetic_arrays

    y, _, _, _, emb = _synthetic_arrays(n)
    phases: dict[str, float] = {}

    def timed(module, name, key):
        fn = getattr(module, name)

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phases[key] = phases.get(key, 0.0) + time.perf_counter() - t0

        setattr(module, name, wrapper)
        return fn

    rer_mod = importlib.import_module(signals.__name__.rsplit(".", 1)[0] + ".rer")
    saved = [(neighbors, "spherical_kmeans", timed(neighbors, "spherical_kmeans", "knn: k-means")),
             (rer_mod, "_ae_errors", timed(rer_mod, "_ae_errors", "rer: evaluate"))]
    try:
        t0 = time.perf_counter()
        knn = signals.knn_agreement(emb, y, k=10, device=device)
        phases["knn total"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rer, _, info = signals.class_autoencoder_rer(emb, y, num_classes=int(y.max()) + 1,
                                                     device=device)
        phases["rer total"] = time.perf_counter() - t0
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)
    phases["rer: train"] = phases["rer total"] - phases.get("rer: evaluate", 0.0)
    wrong = np.flatnonzero(np.isfinite(rer))
    return dict(n=n, phases=phases, steps=info["steps"],
                method="exact" if n <= neighbors.EXACT_LIMIT else "ivf",
                mean_knn=float(np.nanmean(knn)), difficulty=float(info["difficulty"]),
                finite_rer=int(wrong.size),
                peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu",
                        help="torch device of the signals (default cpu, also where CUDA is present)")
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    signals, neighbors = _load_scoring()
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs visible, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}, device {args.device}", flush=True)
    rows = []
    for n in sorted(args.sizes):
        rows.append(measure(n, signals, neighbors, args.device))
        print(f"N={n:,}: {rows[-1]}", flush=True)
    keys = ["knn: k-means", "knn total", "rer: train", "rer: evaluate", "rer total"]
    base = rows[0]
    print()
    print("| N labels | kNN method | " + " | ".join(f"{k} (s)" for k in keys)
          + " | kNN + RER (s) | per-label time / smallest | RER steps | peak RSS (GB) |")
    print("|---" * (len(keys) + 6) + "|")
    for r in rows:
        tot = r["phases"]["knn total"] + r["phases"]["rer total"]
        base_tot = base["phases"]["knn total"] + base["phases"]["rer total"]
        ratio = tot / base_tot * base["n"] / r["n"]
        print(f"| {r['n']:,} | {r['method']} | "
              + " | ".join(f"{r['phases'].get(k, 0.0):.1f}" for k in keys)
              + f" | {tot:.1f} | {ratio:.2f}x | {r['steps']} | {r['peak_rss_gb']:.2f} |")
    if len(rows) > 1:
        big = rows[-1]
        t_big = big["phases"]["knn total"] + big["phases"]["rer total"]
        t_base = base["phases"]["knn total"] + base["phases"]["rer total"]
        print(f"\n{big['n']:,} / {base['n']:,} labels: {t_big / t_base:.2f}x the time "
              f"for {big['n'] / base['n']:.0f}x the labels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
