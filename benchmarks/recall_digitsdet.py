"""Recall in the triage report on ``shared/data/digitsdet-dev``, checked
against the truth.

A random share of the images (``--verified-share``) keeps its ground truth
in ``verified``: the calibration and the report's ``recall`` section see
only those. The export has the truth on every image, so the recall of the
auto-labels on the *other* images is known and printed next to the
report's estimate and interval, overall and per class, plus the threshold
trade-off curve.

    FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:PORT python benchmarks/recall_digitsdet.py
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402

from stoplight_import import import_stoplight  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--verified-share", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--digitsdet-dir", default=None, help="the export (default: shared/data/digitsdet-dev)")
    args = ap.parse_args()
    import_stoplight()
    from digitsdet import load_digitsdet
    from stoplight.plugins.triage import workflow
    from stoplight.plugins.triage.verified_recall import auto_label_filter, found_objects

    ds, _ = load_digitsdet(*([args.digitsdet_dir] if args.digitsdet_dir else []), score=False)
    ids = np.asarray(ds.values("id"))
    rng = np.random.default_rng(args.seed)
    cal = rng.random(len(ids)) < args.verified_share
    ds.clone_sample_field("ground_truth", "verified")
    ds.select(ids[~cal].tolist()).set_values("verified", [None] * int((~cal).sum()))
    workflow.calibrate_triage(ds, "autolabels", "verified", calibration_key="cal")
    workflow.assign_queues(ds, "autolabels", calibration_key="cal", diversity_attr=None, graph_k=0)
    rep = workflow.triage_report(ds, "autolabels", calibration_key="cal")["recall"]
    truth = found_objects(ds.select(ids[~cal].tolist()), "ground_truth", [("autolabels", auto_label_filter())], 0.5)

    print(f"{rep['images']} verified images, {rep['objects']} objects; truth on the other {int((~cal).sum())} images")
    print("| class | verified objects | auto recall [95 % KG] | final recall | true recall (other images) | covered |")
    print("|---|---|---|---|---|---|")
    rows = [("all", rep["auto"]["overall"], rep["final"]["overall"], truth["found"].mean())]
    for c, r in rep["auto"]["classes"].items():
        m = truth["label"] == c
        rows.append((c, r, rep["final"]["classes"][c], truth["found"][m].mean()))
    for c, r, f, t in rows:
        lo, hi = r["interval"]
        print(f"| {c} | {r['n']} | {r['estimate']:.3f} [{lo:.3f}, {hi:.3f}] | {f['estimate']:.3f} | {t:.3f} "
              f"| {'yes' if lo <= t <= hi else 'NO'} |")
    print(f"\nlabeling threshold: {rep['labeling_threshold']}; review basis: {rep['review_basis']}")
    print("| threshold | precision | recall [95 %] | labels | yellow | review h | added labels | added h |")
    print("|---|---|---|---|---|---|---|---|")
    for p in rep["curve"]:
        lo, hi = p["recall_interval"]
        print(f"| {p['threshold']:.2f} | {p['precision']} | {p['recall']:.3f} [{lo:.3f}, {hi:.3f}] | {p['labels']} "
              f"| {p['review']} | {p['review_hours']:.2f} | {p['added_labels']} | {p['added_hours']:.2f} |")


if __name__ == "__main__":
    main()
