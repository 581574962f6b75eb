"""GPU throughput: bare model forward vs Stoplight end to end (minus the database).

For each backend (full-size RANDOM-WEIGHT architectures built offline with
``build_random_checkpoint(dir, size="full")``: YOLO-World-L, YOLOE-L,
Grounding DINO-T, OWLv2-B/16, MM-Grounding-DINO-T, OmDet-Turbo-T, SAM 3),
in fp16 on CUDA, at several batch sizes:

- **bare model**: one forward per batch on inputs prepared once and already
  on the device (pure model throughput; CUDA events, synchronized). For
  backends that run several passes per batch (OmDet-Turbo: one decoder
  pass per task; SAM 3: the vision encoder once, then one pass per
  ``pairs_per_pass`` (image, prompt) pairs) it is all of them, undecoded
  (their ``iter_forward``).
- **end to end**: the pipeline's real code path without FiftyOne:
  ``pipeline.prefetch_batches`` (``num_workers`` threads running ``load_batch``:
  JPEG decode with ``images.load_image`` + ``detector.prepare``),
  ``batches.predict_isolating_failures`` (= ``detector.predict``),
  ``detections.postprocess`` and ``detections.detections_doc``. Only the
  MongoDB bulk write and the run record are left out.

Reports images/s of both, their ratio, peak GPU memory and the projected time
to label VOC2012 trainval (17,125 JPEGs) next to the paper's L40S figures.
Weights are random: speed only, the labels mean nothing.

Imports no fiftyone (checked at the end): the repo is loaded as package
``stoplight`` without running its root ``__init__`` (which registers the
operators, hence imports fiftyone); see ``examples/stoplight_import.py``. Runs where only torch,
transformers, ultralytics, open_clip (and pymongo's ``bson``) are installed:

    python benchmarks/gpu_labeling.py --images DIR            # CUDA, full size
    python benchmarks/gpu_labeling.py --smoke                  # CPU, tiny models
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def import_stoplight_without_fiftyone():
    """Loads the repo as package ``stoplight`` without its root ``__init__``.

    ``examples/stoplight_import.py`` executes the root ``__init__.py``, which
    registers the FiftyOne operators and so imports fiftyone. The pipeline's
    modules import fiftyone lazily, so an empty package object is enough.
    """
    import types

    if "stoplight" in sys.modules:
        return sys.modules["stoplight"]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO]
    pkg = types.ModuleType("stoplight")
    pkg.__path__ = [str(REPO)]
    pkg.__file__ = str(REPO / "__init__.py")
    sys.modules["stoplight"] = pkg
    return pkg

VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa",
    "train", "tv monitor",
]
#: seconds to label VOC2012 with each model on an L40S, from the paper
PAPER_L40S_S = {"yolo-world": 197, "yoloe": 205, "grounding-dino": 2290}
ARCH = {
    "yolo-world": "YOLO-World-L",
    "yoloe": "YOLOE-L",
    "grounding-dino": "Grounding DINO-T",
    "owlv2": "OWLv2-B/16",
    "mm-grounding-dino": "MM-Grounding-DINO-T",
    "omdet-turbo": "OmDet-Turbo-T",
    "sam3": "SAM 3",
}
T0 = time.monotonic()


def log(*a):
    print(f"[{time.monotonic() - T0:6.1f}s]", *a, flush=True)


def _photos(images_dir: str | None) -> list[Path]:
    if images_dir:
        out = sorted(p for p in Path(images_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        if not out:
            raise SystemExit(f"no JPEGs in {images_dir}")
        return out
    from photos import photo_paths  # ultralytics' and scikit-learn's photos

    return photo_paths()


def _replicate(photos: list[Path], n: int, out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        src = photos[i % len(photos)]
        dst = out / f"{i:05d}_{src.name}"
        shutil.copy(src, dst)
        paths.append(str(dst))
    return paths


def _bare_forward(detector, inputs):
    """A closure running only the model's forward on device-resident inputs."""
    import torch

    model = detector.model
    if hasattr(inputs, "pixels"):  # ultralytics backends: LetterboxedBatch
        x = inputs.pixels.to(detector.device).permute(0, 3, 1, 2).contiguous()
        x = (x.half() if detector.fp16 else x.float()).div_(255)

        def fwd():
            with torch.inference_mode():
                return model(x)

        return fwd
    if hasattr(detector, "iter_forward"):  # several passes per batch
        dtype = detector.dtype
        inputs.pixel_inputs = {
            k: v.to(detector.device, dtype=dtype) if v.is_floating_point() else v.to(detector.device)
            for k, v in inputs.pixel_inputs.items()
        }

        def fwd():
            for _ in detector.iter_forward(inputs):
                pass

        return fwd
    # transformers backends: HFBatch + the text inputs predict() would add
    n = len(inputs.sizes)
    if hasattr(detector, "_captions"):  # grounding dino
        text = detector._captions[0].inputs
    else:  # owl
        text = detector._text
    dtype = detector.dtype
    kw = {k: v.repeat(n, 1) for k, v in text.items()}
    kw.update(inputs.pixel_inputs)
    moved = {
        k: v.to(detector.device, dtype=dtype) if v.is_floating_point() else v.to(detector.device)
        for k, v in kw.items()
    }

    def fwd():
        with torch.inference_mode():
            return model(**moved)

    return fwd


class _Timer:
    def __init__(self, cuda: bool):
        import torch

        self.torch, self.cuda = torch, cuda

    def __enter__(self):
        if self.cuda:
            self.torch.cuda.synchronize()
            self.start = self.torch.cuda.Event(enable_timing=True)
            self.end = self.torch.cuda.Event(enable_timing=True)
            self.start.record()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            self.torch.cuda.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1000.0
        else:
            self.seconds = time.perf_counter() - self.t0


def _end_to_end(detector, onto, paths, batch_size, num_workers, threshold, make_docs):
    """The pipeline's loop of zero_shot_detect, minus the database."""
    from stoplight.plugins.autolabel import batches as batch_steps, pipeline
    from stoplight.plugins.autolabel.detections import detections_doc, postprocess

    ids = [f"{i:024x}" for i in range(len(paths))]
    path_of = dict(zip(ids, paths))
    failures = []
    num_labels = num_done = 0
    for batch in pipeline.prefetch_batches(ids, paths, detector, batch_size, num_workers):
        for f in batch.failures:
            failures.append(f)
        if not batch.ids:
            continue
        preds = batch_steps.predict_isolating_failures(
            detector, batch, path_of, lambda sid, p, e: failures.append((sid, p, e))
        )
        for sid, (w, h), pred in zip(batch.ids, batch.sizes, preds):
            if pred is None:
                continue
            dets = postprocess(pred, onto, w, h, threshold)
            if make_docs:
                detections_doc(dets, onto)
            num_labels += len(dets.labels)
            num_done += 1
    if failures:
        raise RuntimeError(f"{len(failures)} failures, first: {failures[0]}")
    return num_done, num_labels


def bench_backend(name, args, paths, workdir, cuda, make_docs, deadline):
    import torch

    from stoplight.plugins.autolabel.backends import get_backend
    from stoplight.plugins.common.images import load_image
    from stoplight.plugins.autolabel.models import load_detector
    from stoplight.plugins.autolabel.ontology import Ontology

    rows = []
    t = time.monotonic()
    ckpt = get_backend(name).build_random_checkpoint(str(workdir / f"ckpt-{name}"), size=args.size)
    log(f"{name}: built random {args.size} checkpoint in {time.monotonic() - t:.1f}s")
    t = time.monotonic()
    detector = load_detector(name, ckpt, device=args.device, fp16=args.fp16, cache=False)
    onto = Ontology.from_params(classes=VOC_CLASSES)
    detector.set_prompts(list(onto.prompts))
    params = sum(p.numel() for p in detector.model.parameters())
    log(f"{name}: loaded ({params / 1e6:.1f}M params, dtype {next(detector.model.parameters()).dtype}) "
        f"in {time.monotonic() - t:.1f}s")

    decoded = [load_image(p) for p in paths[: max(args.batch_sizes)]]
    for bs in args.batch_sizes:
        if time.monotonic() > deadline:
            log(f"{name} bs={bs}: SKIPPED (time budget)")
            rows.append(dict(backend=name, batch_size=bs, skipped="time budget"))
            continue
        row = dict(backend=name, arch=ARCH.get(name, name), batch_size=bs, params_m=params / 1e6)
        try:
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            # -- bare model ------------------------------------------------
            fwd = _bare_forward(detector, detector.prepare(decoded[:bs]))
            for _ in range(2):
                fwd()
            with _Timer(cuda) as tm:
                fwd()
            one = max(tm.seconds, 1e-4)
            iters = max(3, min(args.max_bare_iters, int(args.bare_s / one)))
            with _Timer(cuda) as tm:
                for _ in range(iters):
                    fwd()
            row["bare_ips"] = bs * iters / tm.seconds
            row["bare_iters"] = iters
            del fwd
            # -- end to end --------------------------------------------------
            with _Timer(cuda) as tm:  # warm-up, also sizes the timed run
                _end_to_end(detector, onto, paths[: 2 * bs], bs, args.num_workers,
                            args.threshold, make_docs)
            n = min(len(paths), max(2 * bs, int(2 * bs / tm.seconds * args.e2e_s)))
            n = max(bs, n // bs * bs)
            with _Timer(cuda) as tm:
                done, labels = _end_to_end(detector, onto, paths[:n], bs, args.num_workers,
                                           args.threshold, make_docs)
            row.update(e2e_ips=done / tm.seconds, e2e_images=done, labels_per_image=labels / done)
            row["ratio"] = row["e2e_ips"] / row["bare_ips"]
            row["voc_s"] = args.voc_images / row["e2e_ips"]
            row["voc_bare_s"] = args.voc_images / row["bare_ips"]
            if cuda:
                row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            log(f"{name} bs={bs}: bare {row['bare_ips']:.1f} img/s ({iters} iters), "
                f"e2e {row['e2e_ips']:.1f} img/s ({done} imgs, {labels / done:.1f} labels/img), "
                f"ratio {row['ratio']:.2f}, peak {row.get('peak_gib', float('nan')):.2f} GiB")
        except Exception as e:  # noqa: BLE001 - reported, next case runs
            row["error"] = f"{type(e).__name__}: {e}"[:300]
            log(f"{name} bs={bs}: FAILED {row['error']}")
            if cuda and "out of memory" in str(e):
                torch.cuda.empty_cache()
        rows.append(row)
    del detector
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return rows


def table(rows, args, device_name) -> str:
    out = [
        f"Device: {device_name}; fp16={args.fp16}; {args.num_workers} loader threads; "
        f"VOC projection for {args.voc_images:,} images.",
        "",
        "| model | batch | bare img/s | e2e img/s | e2e / bare | peak GPU mem | labels/img "
        "| VOC e2e (s) | VOC bare (s) | paper L40S (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        name = ARCH.get(r["backend"], r["backend"])
        paper = PAPER_L40S_S.get(r["backend"], "")
        if "error" in r or "skipped" in r:
            why = r.get("error") or f"skipped: {r['skipped']}"
            out.append(f"| {name} | {r['batch_size']} | {why} | | | | | | | {paper} |")
            continue
        mem = f"{r['peak_gib']:.2f} GiB" if "peak_gib" in r else "-"
        out.append(
            f"| {name} | {r['batch_size']} | {r['bare_ips']:.1f} | {r['e2e_ips']:.1f} | "
            f"{r['ratio']:.2f} | {mem} | {r['labels_per_image']:.1f} | {r['voc_s']:.0f} | "
            f"{r['voc_bare_s']:.0f} | {paper} |"
        )
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends",
                   default="yolo-world,yoloe,grounding-dino,owlv2,mm-grounding-dino,omdet-turbo,sam3")
    p.add_argument("--batch-sizes", default="1,8,32")
    p.add_argument("--size", default="full", choices=["tiny", "full"])
    p.add_argument("--images", default=None, help="folder of real JPEGs (default: ultralytics+sklearn photos)")
    p.add_argument("--num-images", type=int, default=256, help="paths replicated from the photos")
    p.add_argument("--device", default=None)
    p.add_argument("--fp16", default="auto", choices=["auto", "on", "off"],
                   help="half precision; auto: on CUDA only")
    p.add_argument("--num-workers", type=int, default=None, help="default: the pipeline's min(8, cpus)")
    p.add_argument("--threshold", type=float, default=0.2)
    p.add_argument("--bare-s", type=float, default=2.0, help="seconds of bare forwards per case")
    p.add_argument("--max-bare-iters", type=int, default=50)
    p.add_argument("--e2e-s", type=float, default=6.0, help="aim for about this many e2e seconds per case")
    p.add_argument("--voc-images", type=int, default=17125)
    p.add_argument("--budget-s", type=float, default=None,
                   help="skip remaining cases after this (default 330; --smoke: none, every backend runs)")
    p.add_argument("--json", default=None)
    p.add_argument("--smoke", action="store_true", help="CPU, tiny models, batch 1-2, 6 images")
    args = p.parse_args(argv)

    import_stoplight_without_fiftyone()
    import torch

    if args.smoke:
        args.size, args.batch_sizes, args.num_images = "tiny", "1,2", 6
        args.device = args.device or "cpu"
        args.bare_s, args.e2e_s = 0.2, 0.5
    if args.budget_s is None:
        # a smoke run checks that every backend runs, however loaded the CPU
        args.budget_s = float("inf") if args.smoke else 330.0
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = args.device.startswith("cuda")
    args.fp16 = cuda if args.fp16 == "auto" else args.fp16 == "on"
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.num_workers is None:
        args.num_workers = min(8, os.cpu_count() or 1)
    if cuda:
        device_name = torch.cuda.get_device_name()
    else:
        device_name = f"CPU ({os.cpu_count()} cores)"
    try:
        import bson  # noqa: F401 - pymongo's, for detections_doc

        make_docs = True
    except ImportError:
        make_docs = False
    deadline = T0 + args.budget_s

    print("=" * 78)
    print("RANDOM WEIGHTS: these models are untrained architectures. SPEED ONLY;")
    print("labels are meaningless and label counts depend on the random init.")
    print("=" * 78, flush=True)
    log(f"device {device_name}, torch {torch.__version__}, fp16={args.fp16}, "
        f"batch sizes {args.batch_sizes}, {args.num_workers} loader threads, "
        f"detections_doc {'ON' if make_docs else 'SKIPPED (no bson)'}")

    workdir = Path(tempfile.mkdtemp(prefix="stoplight-gpu-"))
    rows = []
    try:
        photos = _photos(args.images)
        paths = _replicate(photos, args.num_images, workdir / "images")
        log(f"{len(paths)} image paths from {len(photos)} photos: {[p.name for p in photos]}")
        for name in args.backends.split(","):
            if time.monotonic() > deadline:
                log(f"{name}: SKIPPED (time budget)")
                rows += [dict(backend=name, batch_size=b, skipped="time budget") for b in args.batch_sizes]
                continue
            try:
                rows += bench_backend(name, args, paths, workdir, cuda, make_docs, deadline)
            except Exception as e:  # noqa: BLE001 - reported, next backend runs
                msg = f"{type(e).__name__}: {e}"[:300]
                log(f"{name}: FAILED {msg}")
                rows += [dict(backend=name, batch_size=b, error=msg) for b in args.batch_sizes]
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    fo_loaded = "fiftyone" in sys.modules
    print()
    print(table(rows, args, device_name))
    print()
    print("RANDOM WEIGHTS: speed only. e2e = prefetch_batches(decode+prepare threads) + predict + "
          f"postprocess{' + detections_doc' if make_docs else ' (detections_doc SKIPPED: no bson)'}; "
          "no database writes.")
    print(f"fiftyone imported: {fo_loaded}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            dict(device=device_name, torch=torch.__version__, fp16=args.fp16,
                 num_workers=args.num_workers, detections_doc=make_docs,
                 fiftyone_imported=fo_loaded, rows=rows), indent=1))
    return 1 if fo_loaded else 0


if __name__ == "__main__":
    sys.exit(main())
