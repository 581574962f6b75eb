"""Triage speed: ``calibrate_triage`` + ``assign_queues`` + ``triage_report``
at 10k / 100k / 1M labels (issue 4: cost linear in labels).

For each size N a synthetic dataset is built raw (not timed): 10 detections
per sample, 20 classes, and per label ``confidence``, ``margin``,
``knn_agreement`` and ``uncertainty`` drawn from a model in which each
label is correct with a known probability. 2,000 labels (200 samples) also
get ``ground_truth`` boxes (the label's box, with the true class) and form
the calibration set — its size does not grow with N, as in practice.
Filepaths do not exist: triage reads no pixels.

Timed, end to end through the public functions: calibrate on the 200
verified samples; assign queues to all N labels (read signals, score,
queue, review order by class, bulk write); the report re-read from the
database. The table prints seconds per phase, labels per second and the
1M / 100k ratio (target <= 12x: linear).

    python benchmarks/bench_triage.py                           # 10k, 100k
    python benchmarks/bench_triage.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

from stoplight_import import import_stoplight  # noqa: E402

NUM_CLASSES = 20
PER_SAMPLE = 10
VERIFIED_SAMPLES = 200


def _arrays(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    cls = rng.integers(0, NUM_CLASSES, n)
    z = rng.normal(size=(n, 3))
    p = 1 / (1 + np.exp(-(2.5 + 3.0 * z[:, 0] + 2.0 * z[:, 1])))
    correct = rng.random(n) < p
    sig = 1 / (1 + np.exp(-z))
    wrong_cls = (cls + rng.integers(1, NUM_CLASSES, n)) % NUM_CLASSES
    boxes = np.c_[rng.uniform(0, 0.7, (n, 2)), rng.uniform(0.05, 0.3, (n, 2))]
    return cls, correct, wrong_cls, sig, boxes


def build(n: int, name: str):
    import fiftyone as fo
    from bson import ObjectId

    cls, correct, wrong_cls, sig, boxes = _arrays(n)
    names = [f"class_{i:02d}" for i in range(NUM_CLASSES)]
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    tmpl = fo.Sample(filepath="/nonexistent/t.jpg",
                     autolabels=fo.Detections(detections=[fo.Detection(label="x", bounding_box=[0, 0, 1, 1])]),
                     ground_truth=fo.Detections(detections=[fo.Detection(label="x", bounding_box=[0, 0, 1, 1])]))
    ds.add_sample(tmpl)
    template = ds._sample_collection.find_one({"_id": ObjectId(tmpl.id)})
    det_tmpl = template["autolabels"]["detections"][0]
    ds.delete_samples([tmpl.id])
    n_samples = (n + PER_SAMPLE - 1) // PER_SAMPLE
    bl, sl = boxes.tolist(), sig.tolist()
    docs = []
    for s in range(n_samples):
        dets, gts = [], []
        for i in range(s * PER_SAMPLE, min(n, (s + 1) * PER_SAMPLE)):
            # a wrong label: the class of the auto-label differs from the truth
            auto = names[cls[i]] if correct[i] else names[wrong_cls[i]]
            d = dict(det_tmpl, _id=ObjectId(), label=auto, bounding_box=bl[i], confidence=sl[i][0],
                     margin=sl[i][1], knn_agreement=sl[i][2], uncertainty=1 - sl[i][0])
            dets.append(d)
            if s < VERIFIED_SAMPLES:
                gts.append(dict(det_tmpl, _id=ObjectId(), label=names[cls[i]], bounding_box=bl[i]))
        doc = {k: v for k, v in template.items() if k not in ("_id", "ground_truth")}
        doc.update(filepath=f"/nonexistent/{s:07d}.jpg", autolabels={"_cls": "Detections", "detections": dets},
                   tags=["verified"] if s < VERIFIED_SAMPLES else [])
        if gts:
            doc["ground_truth"] = {"_cls": "Detections", "detections": gts}
        docs.append(doc)
        if len(docs) == 2000:
            ds._sample_collection.insert_many(docs, ordered=False)
            docs = []
    if docs:
        ds._sample_collection.insert_many(docs, ordered=False)
    ds.add_dynamic_sample_fields()
    return ds


def measure(n: int) -> dict:
    """Builds ``n`` labels (not timed), then times calibrate, assign and report.

    Returns:
        ``{"n", "build", "calibrate", "assign", "report", "peak_rss_gib",
        "assign_summary", "calibration"}`` (seconds)
    """
    import_stoplight()
    from stoplight.plugins.triage import workflow

    t0 = time.perf_counter()
    ds = build(n, f"stoplight-bench-triage-{n}")
    t_build = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        cal = workflow.calibrate_triage(ds.match_tags("verified"), "autolabels", "ground_truth",
                                        calibration_key="bench", progress=False)
        t_cal = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = workflow.assign_queues(ds, "autolabels", calibration_key="bench", diversity_attr=None)
        t_assign = time.perf_counter() - t0
        t0 = time.perf_counter()
        workflow.triage_report(ds, "autolabels", "bench")
        t_report = time.perf_counter() - t0
    finally:
        ds.delete()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    return dict(n=n, build=t_build, calibrate=t_cal, assign=t_assign, report=t_report,
                peak_rss_gib=rss, assign_summary=out, calibration=cal)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = ap.parse_args(argv)

    rows = []
    for n in args.sizes:
        m = measure(n)
        out, cal = m["assign_summary"], m["calibration"]
        rows.append((n, m["build"], m["calibrate"], m["assign"], m["report"], m["peak_rss_gib"], out, cal))
        print(f"N={n:,}: build {m['build']:.1f}s, calibrate {m['calibrate']:.2f}s "
              f"({cal['num_verified_labels']} verified), assign {m['assign']:.1f}s, report "
              f"{m['report']:.1f}s; green/yellow/red "
              f"{out['num_green']}/{out['num_yellow']}/{out['num_red']}", flush=True)

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("| labels | calibrate (s) | assign (s) | report (s) | assign labels/s | peak RSS so far (GiB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, _, tc, ta, tr, rss, _, _ in rows:
        print(f"| {n:,} | {tc:.2f} | {ta:.1f} | {tr:.1f} | {n / ta:,.0f} | {rss:.2f} |")
    by_n = {r[0]: r for r in rows}
    if 100_000 in by_n and 1_000_000 in by_n:
        a, b = by_n[100_000], by_n[1_000_000]
        ratio = (b[2] + b[3] + b[4]) / (a[2] + a[3] + a[4])
        print(f"\n1M / 100k (calibrate + assign + report): {ratio:.1f}x (target <= 12x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
