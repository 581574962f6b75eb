"""Box-prompted masks (SAM, SAM 2) and video tracking (SAM 2) on CPU.

What ``segment_labels`` and ``track_labels`` pay per mask and per frame,
model side (no database; the FiftyOne writes are measured by
``bench_writes.py``). For each size (``tiny``, ``full``) the models get
their random-weight checkpoints (``build_random_checkpoint``) and run on
the same real photos, interleaved in rounds (the starting model rotates):

- **masks**: decode -> ``prepare`` -> ``predict`` -> the per-label mask
  crop and stability score (``segment.mask_and_stability``), for
  ``--boxes`` boxes per image, one image per call ("per image") and
  ``--batch-size`` images per call ("batched"); masks/s, the batched /
  per-image ratio and each model's ratio to SAM, measured in the same
  rounds.
- **tracking**: a video made of a real photo with moving squares, decoded
  into the tracker's frame store, then one box-prompted round through all
  frames (``VideoTracker.track``: what one ``track_labels`` round runs),
  with 1 and with 3 objects; frames/s and the 3-object / 1-object ratio.

RANDOM WEIGHTS: ``full`` builds the published architectures (SAM
``sam-vit-base``: ViT-B/16 at 1024; SAM 2 ``sam2.1-hiera-tiny`` at 1024),
same compute, untrained weights. SPEED ONLY: the masks and tracks are
meaningless (a random full-size tracker may see no object at all; the
model runs the same layers either way).

    python benchmarks/bench_masks.py                    # tiny, then full size
    python benchmarks/bench_masks.py --sizes tiny       # seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SEGMENTERS = ("sam", "sam2")
#: size -> (images, boxes per image, batch size, rounds, video frames)
DEFAULTS = {"tiny": (8, 4, 4, 3, 16), "full": (2, 4, 2, 1, 4)}


def _boxes(n: int, width: int, height: int):
    """``n`` fixed ``xyxy`` pixel boxes spread over an image (a grid)."""
    import numpy as np

    out = []
    for i in range(n):
        x, y = (i % 2) * 0.45 + 0.05, (i // 2 % 2) * 0.45 + 0.05
        out.append([x * width, y * height, (x + 0.4) * width, (y + 0.4) * height])
    return np.array(out)


def _segment(seg, images, boxes, batch_size) -> tuple[float, float, int]:
    """One pass: ``(wall s, process CPU s, masks)``."""
    from stoplight.plugins.common.images import load_image
    from stoplight.plugins.autolabel.segment import mask_and_stability

    t, c, n = time.perf_counter(), time.process_time(), 0
    for i in range(0, len(images), batch_size):
        decoded = [load_image(p) for p in images[i : i + batch_size]]
        bxs = [boxes(img.shape[1], img.shape[0]) for img in decoded]
        for img, b, out in zip(decoded, bxs, seg(decoded, bxs)):
            h, w = img.shape[:2]
            for logits, (x0, y0, x1, y1) in zip(out.logits, b):
                mask_and_stability(logits, [x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h], w, h)
                n += 1
    return time.perf_counter() - t, time.process_time() - c, n


def measure_masks(size: str, workdir: Path, num_images: int, num_boxes: int, batch_size: int, rounds: int) -> list:
    from photos import photo_paths
    from stoplight.plugins.autolabel.sam import get_segmenter

    photos = photo_paths()
    images = [str(photos[i % len(photos)]) for i in range(num_images)]
    boxes = lambda w, h: _boxes(num_boxes, w, h)  # noqa: E731
    segs, info = {}, {}
    for name in SEGMENTERS:
        t = time.perf_counter()
        ckpt = get_segmenter(name).build_random_checkpoint(str(workdir / f"{size}-{name}"), size=size)
        segs[name] = get_segmenter(name)(ckpt, device="cpu")
        shutil.rmtree(ckpt, ignore_errors=True)
        info[name] = dict(params_m=sum(p.numel() for p in segs[name].model.parameters()) / 1e6,
                          input=int(segs[name].prepare([photo_for(images[0])], [boxes(8, 8)]).pixel_values.shape[-1]),
                          build_load_s=time.perf_counter() - t)
        print(f"  {size} {name}: {info[name]['params_m']:.1f}M params, input {info[name]['input']}, "
              f"built+loaded in {info[name]['build_load_s']:.1f}s", flush=True)
    for seg in segs.values():  # warm-up
        _segment(seg, images[:1], boxes, 1)
    modes = {"per_image": 1, "batched": batch_size}
    times = {(n, m, k): [] for n in SEGMENTERS for m in modes for k in ("wall", "cpu")}
    masks = num_images * num_boxes
    for r in range(rounds):
        order = [(n, m) for n in SEGMENTERS for m in modes]
        order = order[r % len(order):] + order[: r % len(order)]
        for name, mode in order:
            wall, cpu, n = _segment(segs[name], images, boxes, modes[mode])
            assert n == masks
            times[(name, mode, "wall")].append(wall)
            times[(name, mode, "cpu")].append(cpu)
        print(f"  {size} masks round {r + 1}/{rounds}: " + ", ".join(
            f"{n}/{m} {masks / times[(n, m, 'wall')][-1]:.2f} masks/s" for n, m in order), flush=True)
    segs.clear()
    gc.collect()
    rows = []
    for name in SEGMENTERS:
        mps = {m: masks / statistics.median(times[(name, m, "wall")]) for m in modes}
        rows.append(dict(size=size, model=name, **info[name], per_image_mps=mps["per_image"],
                         batched_mps=mps["batched"], batched_vs_per_image=mps["batched"] / mps["per_image"],
                         cpu_s_per_mask=statistics.median(times[(name, "batched", "cpu")]) / masks))
    for row in rows:
        row["vs_sam"] = row["batched_mps"] / rows[0]["batched_mps"]
    return rows


def photo_for(path: str):
    from stoplight.plugins.common.images import load_image

    return load_image(path)


def make_frames(num_frames: int, num_objects: int = 3, width: int = 640, height: int = 480):
    """A real photo with ``num_objects`` squares moving right, and each
    square's ``xyxy`` box on frame 0."""
    import numpy as np
    from PIL import Image

    from photos import photo_paths

    bg = np.asarray(Image.open(photo_paths()[0]).convert("RGB").resize((width, height)))
    side = height // 6
    frames, first = [], []
    colors = [(230, 30, 30), (30, 30, 230), (30, 200, 30)]
    for f in range(num_frames):
        img = bg.copy()
        for o in range(num_objects):
            x, y = 20 + f * 12 + o * 40, 40 + o * (side + 30)
            img[y : y + side, x : x + side] = colors[o % 3]
            if f == 0:
                first.append([x, y, x + side, y + side])
        frames.append(img)
    return frames, np.array(first, dtype=float)


def _track(tracker, frames, boxes) -> tuple[float, float, int]:
    t, c = time.perf_counter(), time.process_time()
    store = tracker.frame_store(frames)
    h, w = frames[0].shape[:2]
    seen = sum(1 for _ in tracker.track(store, 0, list(range(1, len(boxes) + 1)), boxes, (w, h)))
    return time.perf_counter() - t, time.process_time() - c, seen


def measure_tracking(size: str, workdir: Path, num_frames: int, rounds: int) -> list:
    from stoplight.plugins.autolabel.sam_video import get_tracker

    t = time.perf_counter()
    ckpt = get_tracker("sam2").build_random_checkpoint(str(workdir / f"{size}-track"), size=size)
    tracker = get_tracker("sam2")(ckpt, device="cpu")
    shutil.rmtree(ckpt, ignore_errors=True)
    params = sum(p.numel() for p in tracker.model.parameters()) / 1e6
    print(f"  {size} sam2 video: {params:.1f}M params, input {tracker.side}, "
          f"built+loaded in {time.perf_counter() - t:.1f}s", flush=True)
    frames, first = make_frames(num_frames)
    _track(tracker, frames[:2], first[:1])  # warm-up
    objects = (1, 3)
    times = {(k, x): [] for k in objects for x in ("wall", "cpu")}
    for r in range(rounds):
        for k in objects[r % 2:] + objects[: r % 2]:
            wall, cpu, seen = _track(tracker, frames, first[:k])
            assert seen == num_frames
            times[(k, "wall")].append(wall)
            times[(k, "cpu")].append(cpu)
        print(f"  {size} tracking round {r + 1}/{rounds}: " + ", ".join(
            f"{k} obj {num_frames / times[(k, 'wall')][-1]:.2f} frames/s" for k in objects), flush=True)
    del tracker
    gc.collect()
    rows = [dict(size=size, model="sam2 video", params_m=params, input=f"{num_frames} frames 640x480",
                 objects=k, fps=num_frames / statistics.median(times[(k, "wall")]),
                 cpu_s_per_frame=statistics.median(times[(k, "cpu")]) / num_frames) for k in objects]
    for row in rows:
        row["vs_one_object"] = row["fps"] / rows[0]["fps"]
    return rows


def measure(size: str, num_images: int | None = None, boxes: int | None = None, batch_size: int | None = None,
            rounds: int | None = None, frames: int | None = None) -> dict:
    """Both measurements at one size (``DEFAULTS`` for what is not given);
    what ``run_all.py`` calls."""
    import torch

    n, k, bs, r, f = DEFAULTS[size]
    settings = dict(num_images=num_images or n, boxes=boxes or k, batch_size=batch_size or bs, rounds=rounds or r,
                    frames=frames or f, threads=torch.get_num_threads())
    workdir = Path(tempfile.mkdtemp(prefix="stoplight-bench-masks-"))
    try:
        masks = measure_masks(size, workdir, settings["num_images"], settings["boxes"], settings["batch_size"],
                              settings["rounds"])
        tracking = measure_tracking(size, workdir, settings["frames"], settings["rounds"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return dict(masks=masks, tracking=tracking, settings=settings)


def tables(mask_rows: list, track_rows: list) -> str:
    out = ["| size | model | params | input | masks/s per image | masks/s batched | batched vs per image "
           "| vs SAM | CPU s/mask |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in mask_rows:
        out.append(f"| {r['size']} | {r['model']} | {r['params_m']:.1f}M | {r['input']} | {r['per_image_mps']:.2f} | "
                   f"{r['batched_mps']:.2f} | {r['batched_vs_per_image']:.2f}x | {r['vs_sam']:.2f}x | "
                   f"{r['cpu_s_per_mask']:.3f} |")
    out += ["", "| size | tracker | params | video | objects | frames/s | vs 1 object | CPU s/frame |",
            "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in track_rows:
        out.append(f"| {r['size']} | {r['model']} | {r['params_m']:.1f}M | {r['input']} | {r['objects']} | "
                   f"{r['fps']:.2f} | {r['vs_one_object']:.2f}x | {r['cpu_s_per_frame']:.2f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="tiny,full")
    p.add_argument("--num-images", type=int, default=None)
    p.add_argument("--boxes", type=int, default=None, help="boxes per image")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--frames", type=int, default=None, help="video frames tracked")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from gpu_labeling import import_stoplight_without_fiftyone

    import_stoplight_without_fiftyone()
    import torch

    print("=" * 78)
    print("RANDOM WEIGHTS: untrained architectures. SPEED ONLY; the masks and")
    print("tracks they produce are meaningless.")
    print("=" * 78, flush=True)
    mask_rows, track_rows, settings = [], [], {}
    t0 = time.perf_counter()
    for size in args.sizes.split(","):
        res = measure(size, args.num_images, args.boxes, args.batch_size, args.rounds, args.frames)
        mask_rows += res["masks"]
        track_rows += res["tracking"]
        settings[size] = res["settings"]
    load = os.getloadavg()
    print()
    for size, s in settings.items():
        print(f"{size}: {s['num_images']} real photos x {s['boxes']} boxes, batch {s['batch_size']}; "
              f"tracking {s['frames']} frames; {s['rounds']} interleaved rounds (median); CPU "
              f"({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)")
    print()
    print(tables(mask_rows, track_rows))
    print()
    print(f"Wall {time.perf_counter() - t0:.0f}s; load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; torch {torch.__version__}.")
    print("RANDOM WEIGHTS: speed only. masks/s include decode, model and Stoplight's mask crop + stability; "
          "frames/s include decoding into the frame store and one tracking round.")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(masks=mask_rows, tracking=track_rows, settings=settings),
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
