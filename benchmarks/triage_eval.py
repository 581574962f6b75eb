"""How much the triage auto-accepts at precision 0.95, vs a confidence slider.

Data: ``examples/digits_dataset.py`` — real handwritten digits pasted on
canvases, auto-labeled by a real (weak) classifier whose mistakes are real
confusions, plus spurious boxes; every label's correctness is known. Scores
come from ``score_labels`` (kNN agreement and RER on PCA embeddings of the
crops, consensus with a second real classifier, hardness/margin of the
class scores).

For each of ``--splits`` random splits of the samples: a ``--cal-share`` of
them is the verified calibration set, the rest is triaged and measured
against the truth. Methods, all chosen on the same calibration labels:

- ``stoplight (all signals)``: calibrate_triage(PAC, target 0.95,
  confidence 0.95) + assign_queues, default signals;
- ``stoplight (confidence only)``: the same with ``signals=["confidence"]``;
- ``best global confidence threshold``: the lowest confidence whose
  calibration labels above it are >= 95 % correct (the point estimate: what
  a person tuning a slider on the same labels would pick; no guarantee);
- ``global threshold + Clopper-Pearson``: one confidence threshold for all
  classes certified like Stoplight's (fixed-sequence, 95 % bound).

Printed per method: the share of all correct labels that land in green
(the work saved), the realised green precision (mean, worst split), and in
how many splits it met 0.95.

    python benchmarks/triage_eval.py              # ~3 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402

from stoplight_import import import_stoplight  # noqa: E402

TARGET = 0.95


def best_global_threshold(conf, correct, bound: bool):
    from stoplight.plugins.triage import guarantees

    if bound:
        t, _ = guarantees.pac_green_threshold(conf, correct, TARGET, 0.05)
        return t
    order = np.argsort(-conf)
    prec = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    ok = np.nonzero(prec >= TARGET)[0]
    return float(conf[order][ok.max()]) if len(ok) else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--cal-share", type=float, default=0.3)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    import_stoplight()
    from digits_dataset import build_digits_dataset
    from stoplight.plugins.scoring.scores import score_labels
    from stoplight.plugins.triage import workflow

    ds, info = build_digits_dataset(seed=args.seed, copies=args.copies)
    score_labels(ds, "autolabels", consensus_fields=["knn_model"], progress=False)
    lids = ds.values("autolabels.detections.id", unwind=True)
    correct_of = dict(zip(lids, ~info["wrong"]))
    sample_ids = np.array(ds.values("id"))
    per_sample = ds.values("autolabels.detections.id")
    conf_of = dict(zip(lids, ds.values("autolabels.detections.confidence", unwind=True)))
    print(f"data: {len(sample_ids)} images, {len(lids)} auto-labels, {int(info['wrong'].sum())} wrong "
          f"({int((info['kinds'] == 'wrong_class').sum())} wrong class, "
          f"{int(np.isin(info['kinds'], ['background', 'jitter']).sum())} spurious); labeler accuracy on "
          f"true boxes {info['labeler_accuracy']:.3f}")

    methods = ["stoplight (all signals)", "stoplight (confidence only)",
               "best global confidence threshold", "global threshold + Clopper-Pearson"]
    results = {m: [] for m in methods}
    signals_used = None
    rng = np.random.default_rng(args.seed)
    for split in range(args.splits):
        perm = rng.permutation(len(sample_ids))
        n_cal = int(round(args.cal_share * len(sample_ids)))
        cal_idx, rest_idx = perm[:n_cal], perm[n_cal:]
        cal_ids = sample_ids[cal_idx].tolist()
        rest_labels = [l for i in rest_idx for l in (per_sample[i] or [])]
        cal_labels = [l for i in cal_idx for l in (per_sample[i] or [])]
        y_rest = np.array([correct_of[l] for l in rest_labels])
        for method, signals in ((methods[0], None), (methods[1], ["confidence"])):
            out = workflow.calibrate_triage(ds.select(cal_ids), "autolabels", "ground_truth",
                                            calibration_key="eval", signals=signals, use_reviews=False)
            signals_used = signals_used or (out["signals"] if signals is None else None)
            rest_view = ds.select(sample_ids[rest_idx].tolist())
            workflow.assign_queues(rest_view, "autolabels", calibration_key="eval", diversity_attr=None)
            q = dict(zip(*rest_view.values(["autolabels.detections.id", "autolabels.detections.queue"],
                                           unwind=True)))
            green = np.array([q[l] == "green" for l in rest_labels])
            results[method].append((green, y_rest))
        c_cal = np.array([conf_of[l] for l in cal_labels])
        y_cal = np.array([correct_of[l] for l in cal_labels])
        c_rest = np.array([conf_of[l] for l in rest_labels])
        for method, bound in ((methods[2], False), (methods[3], True)):
            t = best_global_threshold(c_cal, y_cal, bound)
            green = c_rest >= t if t is not None else np.zeros(len(c_rest), bool)
            results[method].append((green, y_rest))
        print(f"split {split + 1}/{args.splits} done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    print(f"\nsignals used by 'all signals': {signals_used}")
    print(f"target precision {TARGET}, {args.splits} splits, calibration = {args.cal_share:.0%} of the images "
          f"(~{int(args.cal_share * len(lids))} labels)\n")
    print("| method | correct labels in green (mean) | green precision (mean / worst) | splits >= 0.95 |")
    print("|---|---:|---:|---:|")
    for m in methods:
        cover, prec = [], []
        for green, y in results[m]:
            cover.append(green[y].mean())
            if green.any():
                prec.append(y[green].mean())
        met = sum(p >= TARGET for p in prec)
        pm = f"{np.mean(prec):.3f} / {np.min(prec):.3f}" if prec else "n/a (no green)"
        print(f"| {m} | {np.mean(cover):.1%} | {pm} | {met}/{len(prec)} with green |")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    ds.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
