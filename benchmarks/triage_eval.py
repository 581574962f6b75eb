"""How much the triage auto-accepts at precision 0.95: calibration alone,
a slider, and an audit of a candidate green set.

Data (``--data``):

- ``digits``: ``examples/digits_dataset.py`` — real handwritten digits
  pasted on canvases, auto-labeled by a real (weak) classifier whose
  mistakes are real confusions, plus spurious boxes; every label's
  correctness is known. Scores from ``score_labels`` (kNN agreement and RER
  on PCA embeddings of the crops, consensus with a second real classifier,
  hardness/margin of the class scores). Each split verifies a random
  ``--cal-share`` of the images.
- ``digitsdet``: ``shared/data/digitsdet-dev`` (not in the repository) — a
  YOLO detector trained from scratch on digits pasted on real photos:
  ~10.5k predictions, ~32 % correct. The first split verifies the export's
  own 150-image ``calib`` split, the others 150 random images.

Methods, all chosen on the same verified labels:

- ``stoplight overall`` / ``per class`` (all signals):
  ``calibrate_triage(PAC, target 0.95, confidence 0.95, scope=...)`` +
  ``assign_queues``;
- ``stoplight overall (confidence only)``;
- ``best global confidence threshold``: the lowest confidence whose
  verified labels above it are >= 95 % correct (a slider tuned on the same
  labels; no guarantee);
- ``global threshold + Clopper-Pearson``: one confidence threshold for all
  classes certified like Stoplight's (fixed-sequence, 95 % bound).

With ``--audit``, two ways of spending the same human answers after the
calibration, side by side on every split:

- ``+ audit``: ``audit_green(max_checks=--max-checks)`` on the labels not
  used for calibration, a simulated reviewer answering each question from
  the truth (``review_labels`` accept / reject), until it ends;
- ``+ random verification``: as many more labels verified the usual way
  (random images, ground truth) and the calibration run again.

Printed per method: the share of the correct labels (outside the verified
images) that land in green, the realised green precision (mean, worst
split), splits that met 0.95, and the human answers spent beyond the
calibration set.

    python benchmarks/triage_eval.py                                  # digits, ~5 min on 2 cores
    python benchmarks/triage_eval.py --data digitsdet --audit --splits 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
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


def load(args):
    """``(dataset, correct_of, calibration splits as lists of sample ids)``."""
    if args.data == "digitsdet":
        from digitsdet import load_digitsdet

        ds, correct_of = load_digitsdet(args.digitsdet_dir)
        ids = np.asarray(ds.values("id"))
        splits = [ds.match({"split": "calib"}).values("id")]
        rng = np.random.default_rng(args.seed)
        splits += [rng.choice(ids, size=len(splits[0]), replace=False).tolist() for _ in range(args.splits - 1)]
        return ds, correct_of, splits
    from digits_dataset import build_digits_dataset
    from stoplight.plugins.scoring.scores import score_labels

    ds, info = build_digits_dataset(seed=args.seed, copies=args.copies)
    score_labels(ds, "autolabels", consensus_fields=["knn_model"], progress=False)
    correct_of = dict(zip(ds.values("autolabels.detections.id", unwind=True), ~info["wrong"]))
    ids = np.asarray(ds.values("id"))
    rng = np.random.default_rng(args.seed)
    n_cal = int(round(args.cal_share * len(ids)))
    return ds, correct_of, [rng.permutation(ids)[:n_cal].tolist() for _ in range(args.splits)]


def _green_on(view, correct_of):
    """(green mask, correct mask) of the labels of a view."""
    lids, queue, review = view.values(
        ["autolabels.detections.id", "autolabels.detections.queue", "autolabels.detections.review"], unwind=True)
    green = np.array([q == "green" and r != "rejected" for q, r in zip(queue, review)], dtype=bool)
    return green, np.array([correct_of[i] for i in lids], dtype=bool)


def calibrated(ds, cal_ids, rest_ids, correct_of, **kwargs):
    from stoplight.plugins.triage import workflow

    workflow.calibrate_triage(ds.select(cal_ids), "autolabels", "ground_truth", calibration_key="eval",
                              use_reviews=False, **kwargs)
    rest = ds.select(rest_ids)
    workflow.assign_queues(rest, "autolabels", calibration_key="eval", diversity_attr=None)
    return _green_on(rest, correct_of)


def audited(ds, cal_ids, rest_ids, correct_of, max_checks, seed, **calibration):
    """Calibrate, then audit the rest with a simulated reviewer; on a clone
    (the answers are written as decisions). Returns (green, correct, answers)."""
    from stoplight.plugins.review.decisions import review_labels
    from stoplight.plugins.triage import green_audit

    clone = ds.clone()
    try:
        old = ds.values("autolabels.detections.id", unwind=True)
        new = clone.values("autolabels.detections.id", unwind=True)
        truth = {n: correct_of[o] for o, n in zip(old, new)}
        position = {sid: i for i, sid in enumerate(ds.values("id"))}
        clone_ids = clone.values("id")
        cal = [clone_ids[position[s]] for s in cal_ids]
        rest = [clone_ids[position[s]] for s in rest_ids]
        calibrated(clone, cal, rest, truth, **calibration)
        view = clone.select(rest)
        result = green_audit.audit_green(view, "autolabels", "eval", max_checks=max_checks, seed=seed)
        answers = 0
        while result["status"] == "needs_answers":
            batch = [p["label_id"] for p in result["pending"][:50]]
            for action, ok in (("accept", True), ("reject", False)):
                chosen = [i for i in batch if bool(truth[i]) == ok]
                if chosen:
                    review_labels(clone, "autolabels", action, label_ids=chosen, user="simulated-reviewer")
            answers += len(batch)
            result = green_audit.audit_green(view, "autolabels", "eval")
        green, correct = _green_on(view, truth)
        return green, correct, answers, result
    finally:
        clone.delete()


def randomly_verified(ds, cal_ids, rest_ids, correct_of, n_labels, seed):
    """As many more labels verified the usual way (random images) and the
    calibration run again; measured on the images still unverified."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(rest_ids).tolist()
    counts = dict(zip(ds.values("id"), ds.values("autolabels.detections.id")))
    extra, n = [], 0
    for sid in order:
        if n >= n_labels:
            break
        extra.append(sid)
        n += len(counts[sid] or [])
    left = [s for s in rest_ids if s not in set(extra)]
    green, correct = calibrated(ds, list(cal_ids) + extra, left, correct_of)
    return green, correct, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=("digits", "digitsdet"), default="digits")
    ap.add_argument("--digitsdet-dir", default=None, help="the digitsdet-dev export (default: ../shared/data)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copies", type=int, default=4, help="digits: copies of the held-out digits")
    ap.add_argument("--splits", type=int, default=10)
    ap.add_argument("--cal-share", type=float, default=0.3, help="digits: share of the images verified")
    ap.add_argument("--audit", action="store_true", help="also the audit vs random verification")
    ap.add_argument("--max-checks", type=int, default=400)
    args = ap.parse_args(argv)
    if args.data == "digitsdet" and args.digitsdet_dir is None:
        from digitsdet import DEFAULT_DIR

        args.digitsdet_dir = DEFAULT_DIR
    t_start = time.perf_counter()
    import_stoplight()

    ds, correct_of, splits = load(args)
    ids = ds.values("id")
    per_sample = dict(zip(ids, ds.values("autolabels.detections.id")))
    conf_of = dict(zip(ds.values("autolabels.detections.id", unwind=True),
                       ds.values("autolabels.detections.confidence", unwind=True)))
    n_labels = len(correct_of)
    print(f"data: {args.data}, {len(ids)} images, {n_labels} auto-labels, "
          f"{sum(correct_of.values())} correct ({np.mean(list(correct_of.values())):.1%})")

    methods = ["stoplight overall (all signals)", "stoplight per class (all signals)",
               "stoplight overall (confidence only)", "best global confidence threshold",
               "global threshold + Clopper-Pearson"]
    if args.audit:
        methods += ["stoplight overall + audit", "stoplight overall + random verification",
                    "stoplight per class + audit"]
    results = {m: [] for m in methods}
    audits = []
    for k, cal_ids in enumerate(splits):
        cal_set = set(cal_ids)
        rest_ids = [s for s in ids if s not in cal_set]
        runs = {methods[0]: {}, methods[1]: dict(scope="class"), methods[2]: dict(signals=["confidence"])}
        for m, kw in runs.items():
            green, y = calibrated(ds, cal_ids, rest_ids, correct_of, **kw)
            results[m].append((green, y, 0))
        cal_labels = [l for s in cal_ids for l in (per_sample[s] or [])]
        rest_labels = [l for s in rest_ids for l in (per_sample[s] or [])]
        c_cal = np.array([conf_of[l] for l in cal_labels])
        y_cal = np.array([correct_of[l] for l in cal_labels])
        c_rest = np.array([conf_of[l] for l in rest_labels])
        y_rest = np.array([correct_of[l] for l in rest_labels])
        for m, bound in ((methods[3], False), (methods[4], True)):
            t = best_global_threshold(c_cal, y_cal, bound)
            results[m].append((c_rest >= t if t is not None else np.zeros(len(c_rest), bool), y_rest, 0))
        if args.audit:
            green, y, answers, result = audited(ds, cal_ids, rest_ids, correct_of, args.max_checks, seed=k)
            results[methods[5]].append((green, y, answers))
            audits.append(("overall", result))
            green, y, n = randomly_verified(ds, cal_ids, rest_ids, correct_of, max(answers, 1), seed=k)
            results[methods[6]].append((green, y, n))
            green, y, answers, result = audited(ds, cal_ids, rest_ids, correct_of, args.max_checks, seed=k,
                                                scope="class")
            results[methods[7]].append((green, y, answers))
            audits.append(("per class", result))
        print(f"split {k + 1}/{len(splits)} done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    print(f"\ntarget precision {TARGET}, {len(splits)} splits, verified: "
          f"{len(splits[0])} images per split (~{int(np.mean([len([l for s in c for l in (per_sample[s] or [])]) for c in splits]))} labels)\n")
    print("| method | human answers beyond the verified images | green labels (mean) | correct labels in green "
          "(mean) | green precision (mean / worst) | splits >= 0.95 | green labels added per answer |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    # labels per answer: beyond the green of the calibration the answers were added to
    def base(m):
        ref = methods[1] if "per class" in m else methods[0]
        return np.mean([g.sum() for g, _, _ in results[ref]])

    for m in methods:
        cover, prec, sizes, answers = [], [], [], []
        for green, y, a in results[m]:
            cover.append(green[y].mean() if y.any() else 0.0)
            sizes.append(green.sum())
            answers.append(a)
            if green.any():
                prec.append(y[green].mean())
        met = sum(p >= TARGET for p in prec)
        pm = f"{np.mean(prec):.3f} / {np.min(prec):.3f}" if prec else "n/a (no green)"
        per = (f"{(np.mean(sizes) - base(m)) / np.mean(answers):.1f}" if np.mean(answers) else "—")
        print(f"| {m} | {np.mean(answers):.0f} | {np.mean(sizes):.0f} | {np.mean(cover):.1%} | {pm} | "
              f"{met}/{len(prec)} with green | {per} |")
    for after, r in audits:
        plan = r["plan"]
        print(f"\naudit after the {after} calibration: {r['status']}, set of {r['candidates']} labels, "
              f"lower bound {r['lower_bound']}, {r['checked']} answers counted; plan: sets {plan.get('sizes')} at "
              f"P(correct) >= {[round(t, 4) for t in plan.get('thresholds', [])]}, estimated precision "
              f"{plan.get('expected_precision')}, chance {plan.get('certify_probability')}, sample {plan.get('sample')}"
              + (f"; {plan['reason']}" if plan.get("reason") else ""))
        for st in r["sets"]:
            print(f"   set {st['size']}: {st['wrong']} wrong of {st['answered']}/{st['sample']} (allowed "
                  f"{st['allowed_wrong']}) -> {st['state']}")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    ds.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
