"""Bulk label writes vs per-sample ``save()`` (issue 6: target >= 20x).

The same labels are written three ways to three fresh copies of a dataset,
side by side in one run, each starting from the model's output arrays (as
post-processing leaves them) and timed including its own conversion: the
labeling pipeline's own path, ``detections_doc`` +
``bulk.write_detections_keeping`` every ``write_every`` (256) samples (plain
documents, one atomic update per sample keeping human decisions, one
``bulk_write`` per chunk, built with the garbage collector paused as the
pipeline does),
FiftyOne's ``set_values`` with ``fo.Detections`` objects (its fast path;
validates every label) and the loop a notebook would write
(``sample[field] = fo.Detections(...); sample.save()``). Each sample gets
``--per-sample`` detections with ``confidence`` and a 10-d
``class_scores`` vector, as the pipeline writes.

    python benchmarks/bench_writes.py                  # 2,000 samples x 10 labels
    python benchmarks/bench_writes.py --samples 10000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

from stoplight_import import import_stoplight  # noqa: E402


def measure(samples: int = 2000, per_sample: int = 10) -> dict:
    """Times the three writers on ``samples`` x ``per_sample`` labels.

    Returns:
        ``{"seconds": {writer: s}, "labels": n, "ratio_save": per-sample
        save() time / Stoplight's, "ratio_set_values": ...}``
    """
    import inspect

    import_stoplight()
    import fiftyone as fo
    import numpy as np

    from stoplight.plugins.autolabel.detections import ImageDetections, detections_doc
    from stoplight.plugins.autolabel.ontology import Ontology
    from stoplight.plugins.autolabel.pipeline import iter_zero_shot_detect
    from stoplight.plugins.common import bulk
    from stoplight.plugins.common.label_vocab import HUMAN_DECISIONS

    # the pipeline writes every ``write_every`` samples, keeping decided labels
    write_every = inspect.signature(iter_zero_shot_detect).parameters["write_every"].default
    rng = np.random.default_rng(0)
    n, k = samples, per_sample
    onto = Ontology.from_params(classes=[f"c{j}" for j in range(10)])
    # what post-processing hands over, per image: xywh boxes, classes, scores
    arrays = [
        (rng.uniform(0, 0.5, (k, 4)), rng.integers(0, 10, k), rng.dirichlet(np.ones(10), k))
        for _ in range(n)
    ]

    def objects(i):
        boxes, labels, scores = arrays[i]
        return fo.Detections(detections=[
            fo.Detection(label=onto.classes[labels[j]], bounding_box=boxes[j].tolist(),
                         confidence=float(scores[j].max()), class_scores=scores[j].tolist())
            for j in range(k)
        ])

    def fresh(name):
        if fo.dataset_exists(name):
            fo.delete_dataset(name)
        ds = fo.Dataset(name)
        ds.add_samples([fo.Sample(filepath=f"/nonexistent/{i:06d}.jpg") for i in range(n)], progress=False)
        ds.add_sample_field("autolabels", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
        return ds

    stoplight = "Stoplight: detections_doc + bulk.write_detections_keeping (the pipeline's path)"
    set_values = "fo.Detections + set_values (FiftyOne fast path)"
    save = "fo.Detections + per-sample save()"
    results = {}
    ds = fresh("stoplight-bench-writes-bulk")
    ids = ds.values("id")
    t0 = time.perf_counter()
    for start in range(0, n, write_every):
        # as the pipeline does per chunk: build under gc_paused, write under it
        docs = {}
        with bulk.gc_paused():
            for i in range(start, min(start + write_every, n)):
                boxes, labels, scores = arrays[i]
                dets = ImageDetections(boxes=boxes, labels=labels, confidence=scores.max(axis=1),
                                       class_scores=scores)
                docs[ids[i]] = detections_doc(dets, onto)
        with bulk.gc_paused():
            bulk.write_detections_keeping(ds, "autolabels", docs, "review", HUMAN_DECISIONS)
    results[stoplight] = time.perf_counter() - t0
    assert ds.count("autolabels.detections") == n * k
    ds.delete()

    ds = fresh("stoplight-bench-writes-set-values")
    t0 = time.perf_counter()
    ds.set_values("autolabels", [objects(i) for i in range(n)])
    results[set_values] = time.perf_counter() - t0
    assert ds.count("autolabels.detections") == n * k
    ds.delete()

    ds = fresh("stoplight-bench-writes-save")
    t0 = time.perf_counter()
    for i, sample in enumerate(ds.iter_samples(progress=False)):
        sample["autolabels"] = objects(i)
        sample.save()
    results[save] = time.perf_counter() - t0
    assert ds.count("autolabels.detections") == n * k
    ds.delete()
    return dict(
        seconds=results, labels=n * k, stoplight=stoplight, write_every=write_every,
        ratio_save=results[save] / results[stoplight],
        ratio_set_values=results[set_values] / results[stoplight],
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--per-sample", type=int, default=10)
    args = ap.parse_args(argv)
    n, k = args.samples, args.per_sample
    r = measure(n, k)
    results, base = r["seconds"], r["seconds"][r["stoplight"]]
    print(f"\n{n:,} samples x {k} detections = {n * k:,} labels; load {os.getloadavg()[0]:.1f}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print("| writer | seconds | labels/s | time vs bulk |")
    print("|---|---:|---:|---:|")
    for name, t in results.items():
        print(f"| {name} | {t:.2f} | {n * k / t:,.0f} | {t / base:.1f}x |")
    print(f"\nbulk vs per-sample save(): {r['ratio_save']:.1f}x (target >= 20x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
