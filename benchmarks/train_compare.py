"""Auto-labels vs human labels, trained for real: the CPU half.

The GPU machine has no FiftyOne or MongoDB, so the comparison of
``compare_auto_vs_human`` is split in three steps:

1. ``prep`` (here): the digits dataset (real images, real human labels,
   auto-labels with a real classifier's mistakes), a test split by file
   name, a SIMULATED full review of the training split (a perfect reviewer
   accepts every correct auto-label and rejects every wrong one, through
   the review core), and the exports of Stoplight's ``_export_all`` for
   ``include="all"`` (raw auto-labels, the paper's setting) and
   ``"accepted"``, packed as one image folder plus label folders per model;
2. ``benchmarks/gpu_training.py`` (GPU): trains yolo11n from its YAML on each
   label set with ``train_yolo`` and tests on the human test labels with
   ``evaluate_yolo`` (ultralytics' mAP50);
3. ``finish`` (here): the same dataset rebuilt (deterministic), each model's
   ``best.pt`` predicted onto the test samples with ``predict_to_field``
   and scored by FiftyOne's ``evaluate_detections`` (mAP at IoU 0.5): the
   second mAP50 of the report, next to ultralytics'.

    python benchmarks/train_compare.py prep --out /tmp/tc --copies 3
    python benchmarks/train_compare.py finish --out /tmp/tc --gpu-dir <folder with results.json and *.pt>
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from stoplight_import import import_stoplight  # noqa: E402

TEST_SHARE = 0.3


def _is_test(filepath: str) -> bool:
    """Test split by file name, so that a rebuilt dataset splits the same."""
    h = int(hashlib.sha1(Path(filepath).name.encode()).hexdigest()[:8], 16)
    return h % 1000 < TEST_SHARE * 1000


def build(out: Path, seed: int, copies: int):
    from digits_dataset import build_digits_dataset

    ds, info = build_digits_dataset(seed=seed, copies=copies, out_dir=str(out / "images_src"))
    test_ids = [i for i, p in zip(ds.values("id"), ds.values("filepath")) if _is_test(p)]
    ds.select(test_ids).tag_samples("test")
    ds.exclude(test_ids).tag_samples("train")
    return ds, info


def prep(args) -> None:
    import_stoplight()
    from stoplight.plugins.review import review_labels
    from stoplight.plugins.training import compare as C

    out = Path(args.out)
    ds, info = build(out, args.seed, args.copies)
    train, test = C.split_views(ds)
    ids = ds.values("id")
    sample_of = [sid for sid, lids in zip(ids, ds.values("autolabels.detections.id")) for _ in lids]
    label_ids = ds.values("autolabels.detections.id", unwind=True)
    train_ids = set(train.values("id"))
    looked = [(l, w) for l, w, s in zip(label_ids, info["wrong"], sample_of) if s in train_ids]
    review_labels(ds, "autolabels", "accept", label_ids=[l for l, w in looked if not w], user="simulated")
    review_labels(ds, "autolabels", "reject", label_ids=[l for l, w in looked if w], user="simulated")
    data = out / "data"
    (data / "images").mkdir(parents=True, exist_ok=True)
    for p in ds.values("filepath"):
        shutil.copy(p, data / "images" / Path(p).name)
    meta = dict(seed=args.seed, copies=args.copies, models={}, test=None,
                review=C.review_effort(train, "autolabels"),
                labeler_accuracy=info["labeler_accuracy"])
    for include in ("all", "accepted"):
        tmp = Path(tempfile.mkdtemp(prefix="tc_export_"))
        ex = C._export_all(train, test, "autolabels", "ground_truth", include, args.val_fraction, tmp)
        meta["classes"] = ex["classes"]
        names = {"auto": f"auto_{include}", "human": "human"}
        for m, e in ex["models"].items():
            dest = data / names[m] / "labels"
            for split in ("train", "val"):
                if e[split] is None:
                    continue
                shutil.copytree(tmp / m / "labels" / split, dest / split, dirs_exist_ok=True)
            val = e["val"] or dict(num_images=0, num_labels=0)
            meta["models"][names[m]] = dict(
                include=e["include"], field=e["field"], num_train_images=e["train"]["num_images"],
                num_train_labels=e["train"]["num_labels"], num_val_images=val["num_images"],
                num_val_labels=val["num_labels"])
        shutil.copytree(tmp / "test" / "labels" / "test", data / "test" / "labels" / "test", dirs_exist_ok=True)
        meta["test"] = dict(num_images=ex["test"]["num_images"], num_labels=ex["test"]["num_labels"])
        shutil.rmtree(tmp)
    (data / "meta.json").write_text(json.dumps(meta, indent=1))
    ds.delete()
    print(json.dumps(meta, indent=1))


def finish(args) -> None:
    import_stoplight()
    from stoplight.plugins.training import compare as C
    from stoplight.plugins.training import yolo

    out = Path(args.out)
    gpu = Path(args.gpu_dir)
    results = json.loads((gpu / "results.json").read_text())
    meta = json.loads((out / "data" / "meta.json").read_text())
    ds, _ = build(Path(tempfile.mkdtemp(prefix="tc_rebuild_")), meta["seed"], meta["copies"])
    test = ds.match_tags("test")
    assert len(test) == meta["test"]["num_images"], "the rebuilt test split differs"
    rows = {}
    for name, r in results["models"].items():
        field = f"pred_{name}"
        yolo.predict_to_field(gpu / f"{name}.pt", test, field, imgsz=results["imgsz"], device="cpu")
        fo_map = C._fiftyone_map50(test, field, "ground_truth", meta["classes"])
        rows[name] = dict(meta["models"][name], map50=r["map50"], map50_95=r["map50_95"], map50_fiftyone=fo_map,
                          train_seconds=r["train_seconds"])
    report = dict(gpu=results.get("gpu"), epochs=results["epochs"], imgsz=results["imgsz"], test=meta["test"],
                  review=meta["review"], labeler_accuracy=meta["labeler_accuracy"], models=rows)
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    ds.delete()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prep")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--copies", type=int, default=3)
    p.add_argument("--val-fraction", type=float, default=0.1)
    f = sub.add_parser("finish")
    f.add_argument("--out", required=True)
    f.add_argument("--gpu-dir", required=True)
    f.add_argument("--json")
    args = ap.parse_args()
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    prep(args) if args.cmd == "prep" else finish(args)


if __name__ == "__main__":
    main()
