"""Zero-shot backends side by side on CPU: images per second of each model.

For each size (``tiny``, ``full``) every backend gets its random-weight
checkpoint (``build_random_checkpoint``), all are loaded, and they are timed
on the same real photos in interleaved rounds (the starting backend rotates
each round, so load on a shared machine spreads over all of them):

- **model**: decode -> ``prepare`` -> ``predict``, batched: the backend's
  own cost, what any labeling tool pays for the model.
- **+ post**: the same plus Stoplight's ``postprocess`` (threshold 0.2,
  prompt -> class, NMS, normalization and, for SAM 3, cropping each kept
  box's mask): a label's cost before the database write. Timed apart in
  the same pass (one forward serves both columns).

The table gives images/s (median of the rounds), the ratio to OWLv2 (the
default backend) measured in the same rounds, the process CPU seconds per
image of the model part (all threads; on a shared machine it depends less
on other jobs than wall time), parameters, the model input and labels per
image.

RANDOM WEIGHTS: ``full`` builds the published architectures (same compute,
same input sizes), but the weights are untrained. These numbers say
NOTHING about label quality, and label counts (hence post-processing and
mask-cropping time) depend on the random initialization.

    python benchmarks/bench_backends.py                      # tiny, then full size
    python benchmarks/bench_backends.py --sizes tiny         # seconds
    python benchmarks/bench_backends.py --sizes full --rounds 1   # ~10 min on 2 quiet cores
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
os.environ.setdefault("YOLO_OFFLINE", "1")

BACKENDS = "owlv2,grounding-dino,mm-grounding-dino,omdet-turbo,sam3"
CLASSES = ["person", "bus", "car", "flower", "building", "tie"]
BASELINE = "owlv2"


def _input_size(detector) -> str:
    """The model input the processor produces, as ``HxW`` (one photo)."""
    import numpy as np

    batch = detector.prepare([np.zeros((720, 1280, 3), np.uint8)])
    inputs = getattr(batch, "pixel_inputs", None)
    shape = inputs["pixel_values"].shape if inputs else batch.pixels.shape[1:3]
    return "x".join(str(int(s)) for s in shape[-2:])


def _run(detector, onto, images, batch_size) -> tuple[float, float, float, int]:
    """One pass: ``(model s, postprocess s, model CPU s, labels)``.

    Model seconds = decode + ``prepare`` + ``predict``; postprocess seconds
    are Stoplight's ``postprocess`` of the same predictions (timed apart in
    the same pass, so both come from one forward). Model CPU seconds: this
    process's CPU time for the model part, all threads (on a shared machine
    it depends less on other jobs than wall time does).
    """
    from stoplight.plugins.autolabel.detections import postprocess
    from stoplight.plugins.common.images import load_image

    model_s = post_s = cpu_s = 0.0
    labels = 0
    for i in range(0, len(images), batch_size):
        t, c = time.perf_counter(), time.process_time()
        decoded = [load_image(p) for p in images[i : i + batch_size]]
        preds = detector.predict(detector.prepare(decoded))
        t1 = time.perf_counter()
        cpu_s += time.process_time() - c
        for img, pred in zip(decoded, preds):
            h, w = img.shape[:2]
            labels += len(postprocess(pred, onto, w, h, 0.2).labels)
        model_s += t1 - t
        post_s += time.perf_counter() - t1
    return model_s, post_s, cpu_s, labels


def measure(backends: list[str], size: str, num_images: int, batch_size: int, rounds: int,
            workdir: Path) -> dict:
    """Builds, loads and times the backends at one size; returns the rows."""
    import torch

    from photos import photo_paths
    from stoplight.plugins.autolabel.backends import get_backend
    from stoplight.plugins.autolabel.models import load_detector
    from stoplight.plugins.autolabel.ontology import Ontology

    photos = photo_paths()
    images = [str(photos[i % len(photos)]) for i in range(num_images)]
    onto = Ontology.from_params(classes=CLASSES)
    detectors, info = {}, {}
    for name in backends:
        t = time.perf_counter()
        ckpt = get_backend(name).build_random_checkpoint(str(workdir / f"{size}-{name}"), size=size)
        det = load_detector(name, ckpt, device="cpu", cache=False)
        det.set_prompts(list(onto.prompts))
        shutil.rmtree(ckpt, ignore_errors=True)  # loaded: the files are no longer needed
        detectors[name] = det
        info[name] = dict(params_m=sum(p.numel() for p in det.model.parameters()) / 1e6,
                          input=_input_size(det), build_load_s=time.perf_counter() - t)
        print(f"  {size} {name}: {info[name]['params_m']:.1f}M params, input {info[name]['input']}, "
              f"built+loaded in {info[name]['build_load_s']:.1f}s", flush=True)
        gc.collect()
    for det in detectors.values():  # warm-up: first-call allocations, lazy imports
        _run(det, onto, images[:batch_size], batch_size)

    times = {(n, m): [] for n in backends for m in ("model", "post", "cpu")}
    labels = {}
    for r in range(rounds):
        order = backends[r % len(backends):] + backends[: r % len(backends)]
        for name in order:
            model_s, post_s, cpu_s, n = _run(detectors[name], onto, images, batch_size)
            times[(name, "model")].append(model_s)
            times[(name, "post")].append(model_s + post_s)
            times[(name, "cpu")].append(cpu_s)
            labels[name] = n / num_images
        print(f"  {size} round {r + 1}/{rounds}: "
              + ", ".join(f"{n} {num_images / times[(n, 'model')][-1]:.3f} img/s" for n in order),
              flush=True)
    rows = []
    for name in backends:
        row = dict(backend=name, size=size, **info[name], labels_per_image=labels[name],
                   produces_masks=get_backend(name).produces_masks)
        for mode in ("model", "post"):
            row[f"{mode}_ips"] = num_images / statistics.median(times[(name, mode)])
        row["cpu_s_per_image"] = statistics.median(times[(name, "cpu")]) / num_images
        rows.append(row)
    detectors.clear()
    gc.collect()
    base = next((r for r in rows if r["backend"] == BASELINE), None)
    for row in rows:
        row["vs_baseline"] = row["model_ips"] / base["model_ips"] if base else None
        row["cpu_vs_baseline"] = row["cpu_s_per_image"] / base["cpu_s_per_image"] if base else None
    return dict(rows=rows, threads=torch.get_num_threads())


def table(results: list[dict], args) -> str:
    out = [
        "| size | backend | params | input | model img/s | + post img/s | model vs OWLv2 "
        "| CPU s/img | CPU vs OWLv2 | labels/img | masks |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    ratio = lambda v: f"{v:.2f}x" if v is not None else "-"  # noqa: E731
    for res in results:
        for r in res["rows"]:
            out.append(
                f"| {r['size']} | {r['backend']} | {r['params_m']:.1f}M | {r['input']} | "
                f"{r['model_ips']:.3f} | {r['post_ips']:.3f} | {ratio(r['vs_baseline'])} | "
                f"{r['cpu_s_per_image']:.2f} | {ratio(r['cpu_vs_baseline'])} | "
                f"{r['labels_per_image']:.1f} | {'yes' if r['produces_masks'] else 'no'} |"
            )
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default=BACKENDS)
    p.add_argument("--sizes", default="tiny,full")
    p.add_argument("--num-images", type=int, default=None, help="default: 16 tiny, 2 full")
    p.add_argument("--batch-size", type=int, default=None, help="default: 8 tiny, 2 full")
    p.add_argument("--rounds", type=int, default=None, help="default: 3 tiny, 2 full")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from gpu_labeling import import_stoplight_without_fiftyone

    import_stoplight_without_fiftyone()
    import torch

    backends = args.backends.split(",")
    print("=" * 78)
    print("RANDOM WEIGHTS: untrained architectures. SPEED ONLY; these numbers say")
    print("nothing about label quality (label counts depend on the random init).")
    print("=" * 78, flush=True)
    defaults = {"tiny": (16, 8, 3), "full": (2, 2, 2)}
    results = []
    workdir = Path(tempfile.mkdtemp(prefix="stoplight-bench-backends-"))
    t0 = time.perf_counter()
    try:
        for size in args.sizes.split(","):
            n, bs, rounds = defaults[size]
            res = measure(backends, size, args.num_images or n, args.batch_size or bs,
                          args.rounds or rounds, workdir)
            res.update(size=size, num_images=args.num_images or n, batch_size=args.batch_size or bs,
                       rounds=args.rounds or rounds)
            results.append(res)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load = os.getloadavg()
    print()
    for res in results:
        print(f"{res['size']}: {res['num_images']} real photos, batch {res['batch_size']}, "
              f"{res['rounds']} interleaved rounds (median), {len(CLASSES)} classes, CPU "
              f"({os.cpu_count()} cores, {res['threads']} torch threads)")
    print()
    print(table(results, args))
    print()
    print(f"Wall {time.perf_counter() - t0:.0f}s; load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"torch {torch.__version__}.")
    print("RANDOM WEIGHTS: speed only, nothing about label quality. 'model' = decode + prepare + "
          "predict; '+ post' adds Stoplight's postprocess (threshold 0.2, NMS, mask crops).")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
