"""Labeling pipeline vs a bare batched loop vs FiftyOne's apply_model.

All three run the same model on the same images in the same process, in
interleaved rounds, and the table reports throughput ratios (never absolute
times alone) and where the pipeline's time goes.

- **bare loop**: decode -> backend.prepare -> backend.predict, batched, no
  post-processing, no database: the floor any labeling tool pays.
- **stoplight**: ``zero_shot_detect`` end to end: decode overlapped with
  inference, prompt -> class mapping, NMS, bulk writes to MongoDB, a run
  record. Target: >= 0.9x the bare loop.
- **apply_model**: ``dataset.apply_model(<the same ultralytics model>)``,
  FiftyOne's own path for ultralytics models (per-sample writes). Target:
  stoplight >= 1.5x. Only for ultralytics backends (``yoloe``,
  ``yolo-world``), which FiftyOne wraps natively.

Models have RANDOM WEIGHTS (no downloads here): the compute is that of the
named architecture, the labels are meaningless. Random heads fire on few or
many boxes depending on their init; the label counts are printed so that
post-processing and write volume can be judged.

    python benchmarks/bench_labeling.py                      # YOLO-World-L, CPU
    python benchmarks/bench_labeling.py --backend owlv2 --size tiny
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from stoplight_import import import_stoplight  # noqa: E402


def _images(n: int, out: Path) -> list[str]:
    from photos import photo_paths

    photos = photo_paths()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        src = photos[i % len(photos)]
        dst = out / f"{i:05d}_{src.name}"
        shutil.copy(src, dst)
        paths.append(str(dst))
    return paths


def _bare_loop(detector, paths, batch_size):
    from stoplight.plugins.common.images import load_image

    n = 0
    for i in range(0, len(paths), batch_size):
        images = [load_image(p) for p in paths[i : i + batch_size]]
        preds = detector.predict(detector.prepare(images))
        n += len(preds)
    return n


def _sync(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(backend: str = "yolo-world", size: str = "full", num_images: int = 32,
            batch_size: int = 8, rounds: int = 2, device: str | None = None,
            threshold: float = 0.2) -> dict:
    """Runs the three contenders side by side; returns their medians.

    Returns:
        ``{"images_per_s": {method: img/s}, "labels": {method: n},
        "timings": Stoplight's per-stage seconds (last round), "device",
        "peak_rss_mib", "peak_gpu_mib"}``; ``apply_model`` is absent for
        backends FiftyOne does not wrap
    """
    import_stoplight()
    import fiftyone as fo
    import torch

    from stoplight.plugins.autolabel.backends import get_backend
    from stoplight.plugins.autolabel.models import load_detector
    from stoplight.plugins.autolabel.pipeline import zero_shot_detect

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tmp = Path(tempfile.mkdtemp(prefix="stoplight-bench-"))
    classes = ["person", "bus", "car", "flower", "building", "tie"]
    try:
        cls = get_backend(backend)
        ckpt = cls.build_random_checkpoint(str(tmp / "ckpt"), size=size)
        detector = load_detector(backend, ckpt, device=device, cache=False)
        detector.set_prompts(classes)
        paths = _images(num_images, tmp / "images")
        ds = fo.Dataset()
        ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)

        apply_model = None
        if getattr(detector, "wrapper", None) is not None:
            # the ultralytics model object holding the very same torch
            # network (fused, prompts installed): FiftyOne wraps it natively
            apply_model = detector.wrapper

        # warm-up: first-call allocations, cudnn autotune, lazy imports
        _bare_loop(detector, paths[:batch_size], batch_size)
        zero_shot_detect(ds.limit(batch_size), classes=classes, detector=detector,
                         batch_size=batch_size, label_field="warmup", progress=False)
        if apply_model is not None:
            ds.limit(2).apply_model(apply_model, label_field="warmup_apply",
                                    batch_size=batch_size, progress=False)

        times = {"bare loop": [], "stoplight": [], "apply_model": []}
        labels = {}
        timings = None
        for r in range(rounds):
            t0 = time.perf_counter()
            _bare_loop(detector, paths, batch_size)
            _sync(device)
            times["bare loop"].append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            summary = zero_shot_detect(
                ds, classes=classes, detector=detector, batch_size=batch_size,
                confidence_threshold=threshold, label_field="stoplight",
                overwrite=True, progress=False,
            )
            _sync(device)
            times["stoplight"].append(time.perf_counter() - t0)
            labels["stoplight"] = summary["num_labels"]
            timings = summary["timings"]

            if apply_model is not None:
                t0 = time.perf_counter()
                ds.apply_model(apply_model, label_field="apply_model", batch_size=batch_size,
                               confidence_thresh=threshold, progress=False)
                _sync(device)
                times["apply_model"].append(time.perf_counter() - t0)
                labels["apply_model"] = ds.count("apply_model.detections")
        ds.delete()
        med = {k: statistics.median(v) for k, v in times.items() if v}
        return dict(
            images_per_s={k: num_images / v for k, v in med.items()}, labels=labels,
            timings=timings, device=device,
            peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            peak_gpu_mib=torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="yolo-world")
    parser.add_argument("--size", default="full", choices=["tiny", "full"])
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threshold", type=float, default=0.2)
    args = parser.parse_args(argv)

    r = measure(args.backend, args.size, args.num_images, args.batch_size, args.rounds,
                args.device, args.threshold)
    ips, labels, timings = r["images_per_s"], r["labels"], r["timings"]
    print()
    print(f"Labeling benchmark: backend={args.backend} ({args.size} architecture, RANDOM weights, "
          f"labels meaningless), device={r['device']}, images={args.num_images}, "
          f"batch={args.batch_size}, rounds={args.rounds} (median)")
    print(f"{'method':<14}{'images/s':>10}{'vs bare':>10}{'stoplight vs':>14}{'labels':>8}")
    for k in ("bare loop", "stoplight", "apply_model"):
        if k not in ips:
            print(f"{k:<14}{'n/a':>10}  (FiftyOne has no apply_model wrapper for this backend here)")
            continue
        print(f"{k:<14}{ips[k]:>10.2f}{ips[k] / ips['bare loop']:>9.2f}x"
              f"{ips['stoplight'] / ips[k]:>13.2f}x{labels.get(k, ''):>8}")
    print("\nstoplight time by stage (last round; decode+prepare run in background threads): "
          + ", ".join(f"{k[:-2]} {v:.2f}s" for k, v in timings.items()))
    gpu_peak = r["peak_gpu_mib"]
    print(f"peak RSS {r['peak_rss_mib']:.0f} MiB" + (f", peak GPU memory {gpu_peak:.0f} MiB" if gpu_peak else ""))
    targets = [("stoplight / bare loop", ips["stoplight"] / ips["bare loop"], 0.9)]
    if "apply_model" in ips:
        targets.append(("stoplight / apply_model", ips["stoplight"] / ips["apply_model"], 1.5))
    for name, value, target in targets:
        print(f"{name}: {value:.2f}x (target >= {target}x) {'OK' if value >= target else 'BELOW TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
