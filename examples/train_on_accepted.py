"""Train a detector on accepted auto-labels and compare with human labels.

The apples-to-apples test of the auto-labeling study (arXiv 2506.02359) on
your own data: the same YOLO11 architecture, settings and seed trained
once on the auto-labels people accepted (``--include accepted``; or also
green ones nobody rejected, ``accepted+green``; or every auto-label,
``all``) and once on the human labels of the same images, both tested on
held-out human labels. Prints mAP50 both ways, the labels used, the human
review time spent and the cost. The same core function backs the operator
``@stoplight/autolabel/train_on_accepted``.

On your dataset (samples tagged ``train`` / ``test``, or a split field):

    python examples/train_on_accepted.py --dataset my-dataset --epochs 50 --device 0

Without ``--dataset``: a demo on real handwritten digits
(``examples/digits_dataset.py``: real images, real human labels, auto-labels
with a real classifier's mistakes). The review is SIMULATED there: on the
training split, a reviewer accepts every correct auto-label of
``--review-share`` of the images and rejects their wrong ones. Short CPU
runs (``--epochs 1 --imgsz 128``) only show the plumbing; their mAP is not
a quality result.
"""

from __future__ import annotations

import argparse
import json
import sys

from stoplight_import import import_stoplight


def demo_dataset(seed: int, copies: int, test_share: float, review_share: float):
    """The digits dataset with train/test tags and a simulated review."""
    import numpy as np

    from digits_dataset import build_digits_dataset

    import_stoplight()
    from stoplight.plugins.review import review_labels

    ds, info = build_digits_dataset(seed=seed, copies=copies)
    rng = np.random.default_rng(seed)
    ids = ds.values("id")
    order = rng.permutation(len(ids))
    n_test = max(1, int(round(len(ids) * test_share)))
    test_ids = [ids[i] for i in order[:n_test]]
    train_ids = [ids[i] for i in order[n_test:]]
    ds.select(test_ids).tag_samples("test")
    ds.select(train_ids).tag_samples("train")
    reviewed = set(train_ids[: int(round(len(train_ids) * review_share))])
    # info["wrong"] follows the auto-labels in dataset order
    sample_of = [sid for sid, n in zip(ids, ds.values("autolabels.detections.id")) for _ in n]
    label_ids = ds.values("autolabels.detections.id", unwind=True)
    looked = [(lid, w) for lid, w, sid in zip(label_ids, info["wrong"], sample_of) if sid in reviewed]
    accept = [lid for lid, w in looked if not w]
    reject = [lid for lid, w in looked if w]
    if accept:
        review_labels(ds, "autolabels", "accept", label_ids=accept, user="simulated-reviewer")
    if reject:
        review_labels(ds, "autolabels", "reject", label_ids=reject, user="simulated-reviewer")
    return ds


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", help="an existing FiftyOne dataset (default: the digits demo)")
    ap.add_argument("--label-field", default="autolabels")
    ap.add_argument("--gt-field", default="ground_truth")
    ap.add_argument("--include", default="accepted", choices=["accepted", "accepted+green", "all"])
    ap.add_argument("--split-field", help="field holding each sample's split (default: tags)")
    ap.add_argument("--train", default="train", help="training split tag/value")
    ap.add_argument("--test", default="test", help="test split tag/value (human labels)")
    ap.add_argument("--model", default="yolo11n.yaml",
                    help=".yaml: random init, no download; local .pt: fine-tune; yolo11n.pt: downloaded")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default=None, help="0, cuda:1, cpu (default: first GPU, else CPU)")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--export-dir", default=None)
    ap.add_argument("--pred-prefix", default="trained")
    ap.add_argument("--overwrite", action="store_true", help="replace existing prediction fields")
    ap.add_argument("--seconds-per-box", type=float, default=3.0)
    ap.add_argument("--cents-per-box", type=float, default=7.0)
    ap.add_argument("--gpu-hours", type=float, default=0.0, help="GPU time spent auto-labeling")
    ap.add_argument("--json", help="also write the report here")
    demo = ap.add_argument_group("digits demo (no --dataset)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--copies", type=int, default=1)
    demo.add_argument("--test-share", type=float, default=0.3)
    demo.add_argument("--review-share", type=float, default=0.6)
    args = ap.parse_args(argv)

    import_stoplight()
    import fiftyone as fo

    from stoplight.plugins import training
    if args.dataset:
        ds = fo.load_dataset(args.dataset)
    else:
        ds = demo_dataset(args.seed, args.copies, args.test_share, args.review_share)
        print(f"digits demo: {len(ds)} images; review SIMULATED on {args.review_share:.0%} of the training images")
    train_view, test_view = training.split_views(ds, args.split_field, args.train, args.test)
    report = training.compare_auto_vs_human(
        train_view, test_view, label_field=args.label_field, gt_field=args.gt_field, include=args.include,
        model=args.model, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device=args.device,
        workers=args.workers, val_fraction=args.val_fraction, export_dir=args.export_dir,
        pred_prefix=args.pred_prefix, overwrite=args.overwrite, seconds_per_box=args.seconds_per_box,
        cents_per_box=args.cents_per_box, gpu_hours=args.gpu_hours,
    )
    print("\n" + training.format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
