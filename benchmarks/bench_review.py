"""Review speed: accept/reject on N selected labels, bulk vs naive.

Target (issue 5): accept/reject on 100k selected labels in seconds.

For each size N the script builds a synthetic dataset (not timed): 10
detections per sample, with ``label``, ``bounding_box``, ``confidence``, a
``queue`` and a few float scores per label, inserted raw. Then, in
interleaved rounds on the same labels (each round flips accept <-> reject so
every round really changes every label):

- **stoplight**: ``review_labels(ds, "autolabels", action, label_ids=ids)``
  end to end: reads the current state of the labels, takes an action id,
  appends N audit-log entries, writes review / reviewed_by / reviewed_at /
  review_action with one conditional update per sample;
- **naive**: three ``set_label_values`` calls (review, reviewed_by,
  reviewed_at) with ``{sample_id, label_id, value}`` dicts (FiftyOne's
  fastest documented form: no sample-id lookup), no audit log, no ordering.

The table reports medians and the naive / stoplight ratio, and once per
size: ``undo_last`` of N labels, a queue-wide accept (``queue="green"``
over the whole dataset) and ``finalize_labels`` of all samples. Uses the
database FiftyOne is configured with (set ``FIFTYONE_DATABASE_URI`` to use
a scratch ``mongod``).

    python benchmarks/bench_review.py                       # 10k, 100k
    python benchmarks/bench_review.py --sizes 100000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

from stoplight_import import import_stoplight  # noqa: E402

LABELS_PER_SAMPLE = 10
CLASSES = ("car", "person", "dog", "bicycle")
QUEUES = ("green", "yellow", "red")


def build_dataset(n: int, name: str, batch_samples: int = 2000):
    """A dataset of ``n`` labels in ``n / 10`` samples, inserted raw."""
    import random

    import fiftyone as fo
    from bson import ObjectId

    rng = random.Random(0)
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    tmpl = fo.Sample(filepath="/nonexistent/template.jpg",
                     autolabels=fo.Detections(detections=[fo.Detection(label="x", bounding_box=[0, 0, 1, 1])]))
    ds.add_sample(tmpl)
    template = ds._sample_collection.find_one({"_id": ObjectId(tmpl.id)})
    det_tmpl = template["autolabels"]["detections"][0]
    ds.delete_samples([tmpl.id])
    for attr, kind in (("queue", fo.StringField), ("hardness", fo.FloatField), ("uncertainty", fo.FloatField)):
        ds.add_sample_field(f"autolabels.detections.{attr}", kind)

    docs = []
    for s in range((n + LABELS_PER_SAMPLE - 1) // LABELS_PER_SAMPLE):
        dets = []
        for _ in range(min(LABELS_PER_SAMPLE, n - s * LABELS_PER_SAMPLE)):
            d = dict(det_tmpl)
            d.update(_id=ObjectId(), label=rng.choice(CLASSES),
                     bounding_box=[rng.random() * 0.7, rng.random() * 0.7, 0.2, 0.2],
                     confidence=rng.random(), queue=rng.choice(QUEUES),
                     hardness=rng.random(), uncertainty=rng.random())
            dets.append(d)
        doc = {k: v for k, v in template.items() if k != "_id"}
        doc.update(filepath=f"/nonexistent/{s:07d}.jpg", autolabels={"_cls": "Detections", "detections": dets})
        docs.append(doc)
        if len(docs) >= batch_samples:
            ds._sample_collection.insert_many(docs, ordered=False)
            docs = []
    if docs:
        ds._sample_collection.insert_many(docs, ordered=False)
    return ds


def naive(ds, sample_ids, label_ids, state: str, user: str) -> None:
    """The same three attributes with FiftyOne's ``set_label_values``."""
    import datetime

    now = datetime.datetime.utcnow()
    for attr, value in (("review", state), ("reviewed_by", user), ("reviewed_at", now)):
        values = [dict(sample_id=s, label_id=l, value=value) for s, l in zip(sample_ids, label_ids)]
        ds.set_label_values(f"autolabels.detections.{attr}", values)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import_stoplight()
    import fiftyone as fo
    from stoplight.plugins.common import audit
    from stoplight.plugins.review.decisions import review_labels, undo_last
    from stoplight.plugins.review.finalize import finalize_labels

    print(f"# {platform.node()} {os.cpu_count()} CPUs, fiftyone {fo.__version__}, "
          f"{args.rounds} interleaved rounds", flush=True)
    rows = []
    for n in args.sizes:
        name = f"bench-review-{n}"
        ds = build_dataset(n, name)
        pairs = ds.values(["autolabels.detections.id", "id"])
        label_ids = [l for ls in pairs[0] for l in ls]
        sample_ids = [s for ls, s in zip(*pairs) for _ in ls]
        t_bulk, t_naive = [], []
        for r in range(args.rounds):
            action, state = ("accept", "accepted") if r % 2 == 0 else ("reject", "rejected")
            t, summary = timed(review_labels, ds, "autolabels", action, label_ids=label_ids, user="bench")
            assert summary["num_labels"] == n
            t_bulk.append(t)
            t_naive.append(timed(naive, ds, sample_ids, label_ids, state, "bench")[0])
            print(f"  n={n} round {r}: stoplight {t_bulk[-1]:.2f} s, naive {t_naive[-1]:.2f} s", flush=True)
        # the naive writes ran last: check both paths really wrote every label
        assert ds.count_values("autolabels.detections.review") == {state: n}
        review_labels(ds, "autolabels", "accept", label_ids=label_ids, user="bench")
        t_undo, undo = timed(undo_last, ds, user="bench")
        assert undo["num_labels"] == n
        t_queue, q = timed(review_labels, ds, "autolabels", "accept", queue="green", user="bench2")
        t_final, fin = timed(finalize_labels, ds, "autolabels", include_green=True)
        rows.append(dict(
            n=n, bulk=statistics.median(t_bulk), naive=statistics.median(t_naive), undo=t_undo,
            undo_n=undo["num_labels"], queue=t_queue, queue_n=q["num_labels"],
            final=t_final, final_n=fin["num_final_labels"],
        ))
        audit.delete_log(ds)
        ds.delete()

    print()
    print("| labels | stoplight accept/reject | naive set_label_values x3 | naive / stoplight "
          "| undo_last | accept queue=green | finalize_labels |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['bulk']:.2f} s | {r['naive']:.2f} s | {r['naive'] / r['bulk']:.1f}x "
              f"| {r['undo']:.2f} s ({r['undo_n']:,} labels) | {r['queue']:.2f} s ({r['queue_n']:,}) "
              f"| {r['final']:.2f} s ({r['final_n']:,} final) |")


if __name__ == "__main__":
    main()
