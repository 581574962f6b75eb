"""Wrong labels found per 100 answers: review order with propagation, without,
and at random.

A simulated reviewer answers yellow labels one at a time from the ground
truth (accept a correct label, reject a wrong one) through the real review
core (``review_labels``: the decision is stored and logged, and with
propagation its near-duplicates are re-ranked). Orders compared side by
side on the same triaged labels, each from the same starting state:

- ``random``: a random permutation of the open yellow labels;
- ``triage order``: ``review_rank`` as ``assign_queues`` wrote it (most
  informative first, round-robin over classes and embedding clusters),
  never updated: what the panel showed before answers taught;
- ``lowest P(correct) first``: a static reference order;
- ``propagation``: always the first open label by ``review_rank``, which
  every answer updates (:mod:`plugins.review.propagation`);
- ``lowest P(correct) first + propagation``: propagation over that static
  order instead of the triage's (the ranks start as P(correct) ascending);
- ``propagation + similar``: propagation, and after each accept the reviewer
  is asked "accept these N similar labels?" once a run of accepts vouches
  for the cluster (:func:`find_similar_group`), and says yes: one answer
  for the group. Counted: the labels decided per answer and the wrong
  labels such bulk accepts let through.

Data: ``--data digits`` (examples/digits_dataset.py: real handwritten digits,
a real weak classifier's labels; 30 % of the images verified for the
calibration) or ``--data digitsdet`` (/work/shared/data/digitsdet-dev, or
``--digitsdet-dir``: a real YOLO detector's labels on real photos; its
``calib`` split verified). The truth of every label is FiftyOne's
``evaluate_detections`` against ``ground_truth`` (IoU 0.5, same class).

    python benchmarks/review_order.py --data digits       # ~2 min on 2 cores
    python benchmarks/review_order.py --data digitsdet    # ~4 min
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

FIELD = "autolabels"
BUDGETS = (50, 100, 200, 400)
ORDERS = ("random", "triage order", "lowest P(correct) first", "propagation", "propagation + similar",
          "lowest P(correct) first + propagation")
DIGITSDET = "/work/shared/data/digitsdet-dev"


def load_digits(seed: int, copies: int):
    """The digits example, calibrated on 30 % of its images (ground truth
    kept on every image for the simulated reviewer)."""
    from digits_dataset import build_digits_dataset
    from stoplight.plugins.scoring.scores import score_labels

    ds, info = build_digits_dataset(seed=seed, copies=copies)
    score_labels(ds, FIELD, consensus_fields=["knn_model"], progress=False)
    ids = ds.values("id")
    cal = np.random.default_rng(seed).choice(ids, size=int(0.3 * len(ids)), replace=False).tolist()
    truth = dict(zip(ds.values(f"{FIELD}.detections.id", unwind=True), ~info["wrong"]))
    return ds, ds.select(cal), truth


def load_digitsdet(path: str):
    """digitsdet-dev: a real detector's predictions as ``autolabels``
    (``scores`` copied to ``class_scores``), scored with ``score_labels``,
    calibrated on its ``calib`` split; the truth from evaluate_detections
    on every image."""
    import fiftyone as fo
    from fiftyone import ViewField as F

    ds = fo.Dataset.from_dir(path, dataset_type=fo.types.FiftyOneDataset)
    ds.clone_sample_field("predictions", FIELD)
    ds.set_values(f"{FIELD}.detections.class_scores", ds.values("predictions.detections.scores"))
    from stoplight.plugins.scoring.scores import score_labels

    score_labels(ds, FIELD, progress=False)
    ds.evaluate_detections(FIELD, gt_field="ground_truth", eval_key="truth", iou=0.5, classwise=True)
    truth = dict(zip(*ds.values([f"{FIELD}.detections.id", f"{FIELD}.detections.truth"], unwind=True)))
    truth = {k: v == "tp" for k, v in truth.items()}
    ds.delete_evaluation("truth")
    return ds, ds.match(F("split") == "calib"), truth


def open_yellow(ds) -> list[tuple]:
    """(label id, review_rank, p_correct) of the open yellow labels."""
    ids, q, r, p, rev = ds.values([f"{FIELD}.detections.{a}" for a in ("id", "queue", "review_rank", "p_correct",
                                                                         "review")], unwind=True)
    return [(i, rk, pc) for i, qq, rk, pc, rv in zip(ids, q, r, p, rev) if qq == "yellow" and rv is None]


def reset(ds, ranks: dict) -> None:
    """Back to the triaged state: no decision, no log, the triage's ranks,
    an untaught review graph."""
    from stoplight.plugins.common.label_graph import graph_collection
    from stoplight.plugins.common import audit

    coll = ds._sample_collection
    unset = {f"{FIELD}.detections.$[].{a}": "" for a in audit.STATE_KEYS}
    coll.update_many({f"{FIELD}.detections": {"$type": "array"}}, {"$unset": unset})
    ds.set_label_values(f"{FIELD}.detections.review_rank", ranks)
    from bson import ObjectId
    from pymongo import UpdateOne

    g = graph_collection(ds)
    g.update_many({"f": FIELD}, {"$set": {"ev": {}, "st": None}})
    g.bulk_write([UpdateOne({"_id": ObjectId(i)}, {"$set": {"r0": int(r)}}) for i, r in ranks.items()])
    lo, hi = min(ranks.values()), max(ranks.values())
    g.update_one({"_id": f"ranks:{FIELD}"}, {"$set": {"lo": lo, "hi": hi}}, upsert=True)
    # the log starts empty (the graph, kept under the same prefix, stays)
    audit.entries_collection(ds).drop()
    audit.actions_collection(ds).drop()
    ds.reload()


def simulate(ds, order: str, truth: dict, budget: int, seed: int) -> dict:
    """One reviewer's session of at most ``budget`` answers."""
    from stoplight.plugins.panels.shared.queue_stats import next_yellow
    from stoplight.plugins.review import decisions, propagation

    start = open_yellow(ds)
    if order == "random":
        queue = [i for i, _, _ in start]
        np.random.default_rng(seed).shuffle(queue)
    elif order == "triage order":
        queue = [i for i, _, _ in sorted(start, key=lambda t: t[1])]
    elif order == "lowest P(correct) first":  # static
        queue = [i for i, _, _ in sorted(start, key=lambda t: (t[2], t[1]))]
    else:
        queue = None
    teach = "propagation" in order
    found, decided, bulk_wrong, bulk_n, times = [], 0, 0, 0, []
    pos = 0
    while len(found) < budget:
        if queue is not None:
            if pos >= len(queue):
                break
            lid, pos = queue[pos], pos + 1
        else:
            nxt = next_yellow(ds, FIELD, 1)
            if not nxt:
                break
            lid = nxt[0]["label_id"]
        right = bool(truth[lid])
        t0 = time.perf_counter()
        decisions.review_labels(ds, FIELD, "accept" if right else "reject", label_ids=[lid], user="sim",
                                propagate=teach)
        times.append(time.perf_counter() - t0)
        found.append(not right)
        decided += 1
        if order == "propagation + similar" and right:
            group = propagation.find_similar_group(ds, FIELD, lid)
            if group["label_ids"]:
                propagation.accept_similar(ds, FIELD, group["label_ids"], anchor_id=lid, user="sim")
                found.append(False)  # one more answer: "yes" to the group
                decided += 1 + len(group["label_ids"])
                bulk_n += len(group["label_ids"])
                bulk_wrong += sum(not truth[i] for i in group["label_ids"])
    found = np.array(found, dtype=bool)
    return dict(
        wrong_at={b: int(found[:b].sum()) if len(found) >= b else None for b in BUDGETS},
        answers=len(found), decided=decided, bulk=bulk_n, bulk_wrong=bulk_wrong,
        ms_per_answer=1000 * float(np.median(times)) if times else None,
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=("digits", "digitsdet"), default="digits")
    ap.add_argument("--digitsdet-dir", default=DIGITSDET)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copies", type=int, default=3, help="digits: as the walkthrough builds them")
    ap.add_argument("--budget", type=int, default=max(BUDGETS))
    ap.add_argument("--random-seeds", type=int, default=3, help="random orders averaged")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    import_stoplight()
    from stoplight.plugins.triage import workflow

    ds, cal_view, truth = (load_digits(args.seed, args.copies) if args.data == "digits"
                           else load_digitsdet(args.digitsdet_dir))
    try:
        cal = workflow.calibrate_triage(cal_view, FIELD, "ground_truth", calibration_key="bench")
        summary = workflow.assign_queues(ds, FIELD, calibration_key="bench")
        yellow = open_yellow(ds)
        n_wrong = sum(not truth[i] for i, _, _ in yellow)
        print(f"data: {args.data}, {len(truth)} labels ({sum(not v for v in truth.values())} wrong), signals "
              f"{cal['signals']}; yellow {len(yellow)} ({n_wrong} wrong = {n_wrong / max(len(yellow), 1):.1%}), "
              f"green {summary['num_green']}, red {summary['num_red']}; review graph "
              f"{summary['review_graph']['num_labels']} labels, {summary['review_graph']['num_edges']} edges in "
              f"{summary['review_graph']['seconds']:.2f} s", flush=True)
        ranks = {i: r for i, r, _ in yellow}
        by_p = {i: k + 1 for k, (i, _, _) in enumerate(sorted(yellow, key=lambda t: (t[2], t[1])))}
        results = {}
        for order in ORDERS:
            runs = []
            for s in range(args.random_seeds if order == "random" else 1):
                reset(ds, by_p if order.startswith("lowest P(correct) first +") else ranks)
                runs.append(simulate(ds, order, truth, args.budget, args.seed + s))
            results[order] = runs
            print(f"{order}: done ({time.perf_counter() - t_start:.0f} s)", flush=True)
        budgets = [b for b in BUDGETS if b <= args.budget]
        print(f"\nwrong labels found in the first N answers (yellow holds {n_wrong} wrong of {len(yellow)}; "
              f"random: mean of {args.random_seeds} orders)\n")
        print("| order | " + " | ".join(f"N = {b}" for b in budgets) + " | per 100 answers (N = 100) "
              "| labels decided per answer | bulk-accepted (wrong among them) | median ms per answer |")
        print("|---|" + "---:|" * (len(budgets) + 4))
        for order, runs in results.items():
            cells = []
            for b in budgets:
                vals = [r["wrong_at"][b] for r in runs if r["wrong_at"][b] is not None]
                cells.append(f"{np.mean(vals):.1f}" if vals else "—")
            per100 = [r["wrong_at"][100] for r in runs if r["wrong_at"].get(100) is not None]
            dec = np.mean([r["decided"] / max(r["answers"], 1) for r in runs])
            bulk = f"{sum(r['bulk'] for r in runs)} ({sum(r['bulk_wrong'] for r in runs)})" if order.endswith(
                "similar") else "—"
            ms = np.median([r["ms_per_answer"] for r in runs if r["ms_per_answer"] is not None])
            print(f"| {order} | " + " | ".join(cells) + f" | {np.mean(per100):.1f} | {dec:.2f} | {bulk} | {ms:.0f} |"
                  if per100 else f"| {order} | " + " | ".join(cells) + f" | — | {dec:.2f} | {bulk} | {ms:.0f} |")
        print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    finally:
        from stoplight.plugins.common import audit

        audit.delete_log(ds)
        ds.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
