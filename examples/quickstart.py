"""Quickstart: auto-label real photos with a zero-shot detector.

Builds a small FiftyOne dataset from photos that ship inside installed
packages (ultralytics' bus and Zidane pictures, scikit-learn's China and
flower pictures), runs ``zero_shot_detect`` on it and prints what was
labeled.

    python examples/quickstart.py                        # default checkpoint (downloads)
    python examples/quickstart.py --checkpoint DIR       # a local checkpoint, offline
    python examples/quickstart.py --offline-tiny         # no checkpoint at all

Without internet and without ``--checkpoint``, the default checkpoint cannot
be downloaded; the script then builds a tiny random-weight model so that the
pipeline still runs end to end, and says loudly that its labels are
meaningless.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from stoplight_import import import_stoplight

CLASSES = ["person", "bus", "car", "flower", "building", "tie"]

BANNER = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! The model below has RANDOM WEIGHTS (tiny, built offline). It exercises  !!
!! the whole pipeline, but its labels are MEANINGLESS. For real labels run  !!
!! with internet access, or pass --checkpoint <a real local checkpoint>.   !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""


def photo_paths() -> list[Path]:
    """Real photos shipped inside ultralytics and scikit-learn."""
    import sklearn.datasets
    import ultralytics

    u = Path(ultralytics.__file__).parent / "assets"
    s = Path(sklearn.datasets.__file__).parent / "images"
    return [u / "bus.jpg", u / "zidane.jpg", s / "china.jpg", s / "flower.jpg"]


def build_dataset(name: str):
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    ds.add_samples([fo.Sample(filepath=str(p)) for p in photo_paths()])
    ds.compute_metadata()
    return ds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="owlv2")
    parser.add_argument("--checkpoint", default=None, help="hub id, weight name or local path")
    parser.add_argument("--offline-tiny", action="store_true", help="use a tiny random-weight model")
    parser.add_argument("--classes", nargs="+", default=CLASSES)
    parser.add_argument("--dataset-name", default="stoplight-quickstart")
    parser.add_argument("--device", default=None)
    parser.add_argument("--delete-after", action="store_true", help="delete the dataset at the end")
    args = parser.parse_args(argv)

    import_stoplight()
    from stoplight.plugins.autolabel.backends import get_backend
    from stoplight.plugins.autolabel.models import load_detector
    from stoplight.plugins.autolabel.pipeline import zero_shot_detect

    backend = get_backend(args.backend)
    tmp = None
    detector = None
    checkpoint = args.checkpoint
    if not args.offline_tiny:
        try:
            detector = load_detector(args.backend, checkpoint, device=args.device)
        except Exception as e:  # noqa: BLE001 - any load failure means "fall back"
            if checkpoint:
                print(f"Could not load checkpoint {checkpoint!r}: {e}", file=sys.stderr)
                return 1
            print(
                f"Could not load the default {args.backend} checkpoint "
                f"{backend.default_checkpoint!r} (no internet?): {type(e).__name__}: {e}"
            )
            args.offline_tiny = True
    if args.offline_tiny:
        tmp = tempfile.mkdtemp(prefix="stoplight-tiny-")
        checkpoint = backend.build_random_checkpoint(os.path.join(tmp, args.backend), size="tiny")
        print(BANNER)
        detector = load_detector(args.backend, checkpoint, device=args.device)

    ds = build_dataset(args.dataset_name)
    print(f"Dataset '{ds.name}': {len(ds)} real photos")
    try:
        summary = zero_shot_detect(
            ds,
            classes=args.classes,
            label_field="autolabels",
            detector=detector,
        )
        counts = ds.count_values("autolabels.detections.label")
        print(f"\nRun '{summary['run_key']}' ({summary['status']}): "
              f"{summary['num_labels']} labels on {summary['num_processed_samples']} samples, "
              f"{summary['num_failed_samples']} failed")
        for label, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            print(f"  {label:12s} {n}")
        if args.offline_tiny:
            print("\n(random weights: these labels are meaningless)")
        print(
            f"\nOpen it in the App:\n  python -c \"import fiftyone as fo; "
            f"fo.launch_app(fo.load_dataset('{ds.name}')).wait()\""
        )
        return 0 if summary["status"] == "completed" else 1
    finally:
        if args.delete_after:
            ds.delete()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
