"""Every Stoplight benchmark in one command, as one table of side-by-side ratios.

    python benchmarks/run_all.py            # default sizes, < 15 min on 2 CPU cores
    python benchmarks/run_all.py --quick    # small sizes, a few minutes (development)
    python benchmarks/run_all.py --full     # adds 1M labels to scoring and triage (long)

Each measurement runs the measuring function of one of the benchmark
scripts next to this file (``bench_writes.measure``, ``bench_labeling.
measure``, ...) in its own child process, so that its peak RSS is its own
and a step over its time share can be stopped without losing the others.
Within a step the contenders run in the same process, one after the other
on the same data, and the table reports their ratio: absolute times only
appear as context, since this machine may be shared.

Time budget (``--budget-s``, default 840 s): steps run in order of the
table; each gets at most its share and never the time the steps after it
need to start. A step that does not fit is reported as skipped, with why.
What ``--full`` adds (1M labels for scoring and triage) is listed as
skipped otherwise: on 2 cores, building and scoring 1M labels takes ~10
minutes more (5.5 min of scoring, 8.4 GB RSS, measured) on top of the
default run's ~6 minutes.

Models have RANDOM weights (nothing is downloaded here): full-size
architectures give real speed, their labels are meaningless.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RANDOM = "random weights, speed only"
#: the zero-shot backends compared side by side (YOLO-World first: the baseline)
BACKENDS = "yolo-world,owlv2,grounding-dino,mm-grounding-dino,omdet-turbo,sam3"


# ---------------------------------------------------------------- the steps
# Each runs in a child process and returns a JSON-able measurement.


def _step_writes(cfg: dict) -> dict:
    import bench_writes

    return bench_writes.measure(cfg["samples"], cfg["per_sample"])


def _step_labeling(cfg: dict) -> dict:
    import bench_labeling

    return bench_labeling.measure(cfg["backend"], cfg["size"], cfg["num_images"],
                                  cfg["batch_size"], cfg["rounds"])


def _step_embeddings(cfg: dict) -> dict:
    import bench_embeddings

    return bench_embeddings.measure(cfg["sizes"], cfg["model"], cfg["boxes"], cfg["batch_size"])


def _step_triage(cfg: dict) -> dict:
    import bench_triage

    out = bench_triage.measure(cfg["n"])
    out.pop("assign_summary", None)
    out.pop("calibration", None)
    return out


def _step_scoring(cfg: dict) -> dict:
    import bench_scoring

    return bench_scoring.measure(cfg["n"])


def _step_panels(cfg: dict) -> dict:
    import bench_panels

    return bench_panels.measure(cfg["n"], accept=False)


def _step_masks(cfg: dict) -> dict:
    import bench_masks
    from gpu_labeling import import_stoplight_without_fiftyone

    import_stoplight_without_fiftyone()
    return bench_masks.measure(**cfg)


def _step_backends(cfg: dict) -> dict:
    import bench_backends
    from gpu_labeling import import_stoplight_without_fiftyone

    import_stoplight_without_fiftyone()
    with tempfile.TemporaryDirectory(prefix="stoplight-bench-backends-") as tmp:
        return bench_backends.measure(cfg["backends"], cfg["size"], cfg["num_images"], cfg["batch_size"],
                                      cfg["rounds"], Path(tmp))


STEP_FUNCTIONS: dict[str, Callable[[dict], dict]] = {
    "writes": _step_writes, "labeling": _step_labeling, "embeddings": _step_embeddings,
    "triage": _step_triage, "scoring": _step_scoring, "panels": _step_panels,
    "masks": _step_masks, "backends": _step_backends,
}


@dataclasses.dataclass
class Step:
    """One child-process measurement: ``kind`` names its function."""

    key: str
    kind: str
    cfg: dict
    cap_s: float  # the most it may take
    min_s: float  # not started with less than this left
    result: dict | None = None
    skipped: str | None = None
    wall_s: float = 0.0


def plan(mode: str) -> tuple[list[Step], list[str]]:
    """The steps of ``mode`` (quick, default, full) and what it leaves out."""
    quick, full = mode == "quick", mode == "full"
    steps = [
        Step("writes", "writes", dict(samples=500 if quick else 2000, per_sample=10), 120, 20),
        Step("labeling_tiny", "labeling", dict(backend="yolo-world", size="tiny",
                                               num_images=8 if quick else 16, batch_size=8,
                                               rounds=1 if quick else 2), 150, 30),
    ]
    if not quick:
        steps.append(Step("labeling_full", "labeling", dict(backend="yolo-world", size="full",
                                                            num_images=16, batch_size=8, rounds=1),
                          300, 90))
    steps.append(Step("backends_tiny", "backends", dict(backends=BACKENDS.split(","), size="tiny",
                                                       num_images=4 if quick else 8, batch_size=4,
                                                       rounds=1 if quick else 2), 240, 40))
    steps.append(Step("masks_tiny", "masks", dict(size="tiny", num_images=4 if quick else 8,
                                                  rounds=1 if quick else 2, frames=8 if quick else 16), 240, 40))
    if not quick:
        steps.append(Step("masks_full", "masks", dict(size="full"), 600, 180))
    steps.append(Step("embeddings", "embeddings", dict(sizes=[16, 64] if quick else [64, 256],
                                                       model="ViT-B-32", boxes=8, batch_size=32),
                      240, 40))
    sizes = [2_000, 20_000] if quick else [10_000, 100_000] + ([1_000_000] if full else [])
    for n in sizes:
        steps.append(Step(f"triage_{n}", "triage", dict(n=n), 900 if n >= 1_000_000 else 200, 20))
    panel_n = 20_000 if quick else 1_000_000
    steps.append(Step(f"panels_{panel_n}", "panels", dict(n=panel_n), 300, 60 if not quick else 15))
    for n in sizes:
        steps.append(Step(f"scoring_{n}", "scoring", dict(n=n), 3600 if n >= 1_000_000 else 480,
                          30 if n <= 20_000 else 90))
    left_out = []
    if quick:
        left_out.append("labeling with the full-size YOLO-World-L (--quick; run without it)")
        left_out.append("full-size SAM / SAM 2 masks and SAM 2 tracking (--quick; run without it)")
    left_out.append("full-size zero-shot backends side by side (SAM 3 alone is 840M parameters): "
                    "python benchmarks/bench_backends.py --sizes full --rounds 1")
    if not full:
        left_out.append("scoring and triage at 1M labels (--full): building and scoring 1M labels adds "
                        "~10 min on 2 cores (8.4 GB RSS); the 100k/10k growth is shown instead")
    left_out.append("embedding 10k-1M crops: ViT-B/32 on CPU runs ~10-30 crops/s (1M crops = hours); "
                    "per-crop throughput at two sizes shows the growth instead")
    return steps, left_out


# --------------------------------------------------------------- the table


@dataclasses.dataclass
class Row:
    comparison: str
    a: str
    b: str
    ratio: str
    target: str
    met: str
    peak_rss: str
    notes: str


def _rss(result: dict) -> str:
    mib = result.get("_peak_rss_mib", 0)
    if "peak_rss_gb" in result:  # scoring measures its own child
        mib = max(mib, result["peak_rss_gb"] * 1024)
    return f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def _labeling_rows(step: Step) -> list[Row]:
    r, cfg = step.result, step.cfg
    ips, t = r["images_per_s"], r["timings"]
    arch = "YOLO-World-L full size" if cfg["size"] == "full" else "YOLO-World tiny"
    ctx = f"{arch}, {RANDOM}; {cfg['num_images']} real photos, batch {cfg['batch_size']}, {r['device']}"
    rows = [Row(f"Labeling ({arch}): Stoplight vs bare batched loop",
                f"{ips['stoplight']:.2f} img/s", f"{ips['bare loop']:.2f} img/s",
                f"{ips['stoplight'] / ips['bare loop']:.2f}x", ">= 0.9x",
                _met(ips["stoplight"] / ips["bare loop"] >= 0.9), _rss(r), ctx)]
    if "apply_model" in ips:
        ratio = ips["stoplight"] / ips["apply_model"]
        rows.append(Row(f"Labeling ({arch}): Stoplight vs FiftyOne apply_model, same model",
                        f"{ips['stoplight']:.2f} img/s", f"{ips['apply_model']:.2f} img/s",
                        f"{ratio:.2f}x", ">= 1.5x", _met(ratio >= 1.5), _rss(r),
                        ctx + ("; on CPU the forward pass is almost all the time" if cfg["size"] == "full" else "")))
    total = sum(t.values()) or 1.0
    parts = dict(decode=t.get("decode_s", 0), preprocess=t.get("prepare_s", 0),
                 forward=t.get("predict_s", 0), postprocess=t.get("postprocess_s", 0),
                 db_write=t.get("write_s", 0))
    where = ", ".join(f"{k} {v:.2f}s ({100 * v / total:.0f}%)" for k, v in parts.items())
    transfer = ("host->GPU transfer is inside forward" if r["device"].startswith("cuda")
                else "no device transfer on CPU")
    rows.append(Row(f"Labeling ({arch}): where Stoplight's time goes", "forward", "everything else",
                    f"{parts['forward'] / max(total - parts['forward'], 1e-9):.1f}x", "—", "—", _rss(r),
                    f"{where}; decode+preprocess run in background threads, overlapped; {transfer}"))
    return rows


def _backend_rows(step: Step) -> list[Row]:
    """Each zero-shot backend's images/s against the first (YOLO-World)."""
    r, cfg = step.result, step.cfg
    base = r["rows"][0]
    ctx = (f"tiny configs, {RANDOM}; {cfg['num_images']} real photos, batch {cfg['batch_size']}, CPU; "
           "decode + prepare + predict; at tiny size mostly per-call overhead")
    return [Row(f"Zero-shot backends (tiny): {row['backend']} vs {base['backend']}", f"{row['model_ips']:.2f} img/s",
                f"{base['model_ips']:.2f} img/s", f"{row['model_ips'] / base['model_ips']:.2f}x", "—", "—",
                _rss(r), f"{ctx}; {row['params_m']:.1f}M params, input {row['input']}")
            for row in r["rows"][1:]]


def _mask_rows(step: Step) -> list[Row]:
    """Masks/s batched vs per image, SAM 2 vs SAM, tracking 3 vs 1 object."""
    r, size = step.result, step.cfg["size"]
    st = r["settings"]
    arch = "full-size (sam-vit-base, sam2.1-hiera-tiny)" if size == "full" else "tiny"
    ctx = (f"{arch}, {RANDOM}; {st['num_images']} real photos x {st['boxes']} boxes, CPU; decode + model + "
           "Stoplight's mask crop and stability score")
    rows = [Row(f"Masks ({size} {m['model']}): batched ({st['batch_size']} images) vs one image per call",
                f"{m['batched_mps']:.2f} masks/s", f"{m['per_image_mps']:.2f} masks/s",
                f"{m['batched_vs_per_image']:.2f}x", "—", "—", _rss(r), f"{ctx}; {m['params_m']:.1f}M params")
            for m in r["masks"]]
    sam, sam2 = r["masks"][0], r["masks"][1]
    rows.append(Row(f"Masks ({size}): SAM 2 vs SAM, batched", f"{sam2['batched_mps']:.2f} masks/s",
                    f"{sam['batched_mps']:.2f} masks/s", f"{sam2['vs_sam']:.2f}x", "—", "—", _rss(r), ctx))
    one, three = r["tracking"][0], r["tracking"][1]
    rows.append(Row(f"Tracking ({size} SAM 2 video): 3 objects vs 1 object", f"{three['fps']:.2f} frames/s",
                    f"{one['fps']:.2f} frames/s", f"{three['vs_one_object']:.2f}x", "—", "—", _rss(r),
                    f"{arch}, {RANDOM}; {st['frames']} frames 640x480 (a real photo, moving squares), one "
                    "tracking round incl. decoding into the frame store; no database"))
    return rows


def _growth_row(label: str, small: Step, big: Step, seconds: Callable[[dict], float],
                rss_from: Step, extra: str = "") -> Row:
    n0, n1 = small.cfg["n"], big.cfg["n"]
    t0, t1 = seconds(small.result), seconds(big.result)
    ratio = t1 / t0
    target = 1.2 * n1 / n0  # the "1M <= 12x the 100k time": linear + 20 %
    return Row(f"{label}: {n1:,} vs {n0:,} labels", f"{t1:.1f} s", f"{t0:.1f} s", f"{ratio:.2f}x",
               f"<= {target:.0f}x (linear)", _met(ratio <= target), _rss(rss_from.result),
               f"{n1 // n0}x the labels; per label {1e6 * t1 / n1:.0f} vs {1e6 * t0 / n0:.0f} us" + extra)


def build_rows(steps: list[Step]) -> list[Row]:
    by = {s.key: s for s in steps}
    done = {k: s for k, s in by.items() if s.result is not None}
    rows: list[Row] = []
    if "writes" in done:
        r = done["writes"].result
        sec = r["seconds"]
        ours = sec[r["stoplight"]]
        save = sec["fo.Detections + per-sample save()"]
        setv = sec["fo.Detections + set_values (FiftyOne fast path)"]
        note = (f"{r['labels']:,} labels (10 per sample, 10-d class_scores); Stoplight = the pipeline's path, "
                f"write_detections_keeping every {r['write_every']} samples")
        rows.append(Row("Bulk label writes: Stoplight vs per-sample save()", f"{r['labels'] / ours:,.0f} labels/s",
                        f"{r['labels'] / save:,.0f} labels/s", f"{save / ours:.1f}x", ">= 20x",
                        _met(save / ours >= 20), _rss(r), note))
        rows.append(Row("Bulk label writes: Stoplight vs FiftyOne set_values", f"{r['labels'] / ours:,.0f} labels/s",
                        f"{r['labels'] / setv:,.0f} labels/s", f"{setv / ours:.1f}x", "—", "—", _rss(r),
                        "set_values validates every label"))
    for key in ("labeling_tiny", "labeling_full"):
        if key in done:
            rows.extend(_labeling_rows(done[key]))
    if "backends_tiny" in done:
        rows.extend(_backend_rows(done["backends_tiny"]))
    for key in ("masks_tiny", "masks_full"):
        if key in done:
            rows.extend(_mask_rows(done[key]))
    if "embeddings" in done:
        s = done["embeddings"]
        r = s.result
        cps = {int(k): v for k, v in r["crops_per_s"].items()}
        lo, hi = min(cps), max(cps)
        ctx = f"{r['model_name']}, {RANDOM}; real photos, 8 labels each, {r['device']}"
        ratio = cps[hi] / r["bare_crops_per_s"]
        rows.append(Row(f"Embeddings ({hi} crops): Stoplight vs bare CLIP loop", f"{cps[hi]:.1f} crops/s",
                        f"{r['bare_crops_per_s']:.1f} crops/s", f"{ratio:.2f}x", "—", "—", _rss(r),
                        ctx + "; bare = decode, crop, preprocess, forward; no database"))
        growth = cps[lo] / cps[hi]
        rows.append(Row(f"Embeddings: per-crop time, {hi} vs {lo} crops", f"{1000 / cps[hi]:.0f} ms/crop",
                        f"{1000 / cps[lo]:.0f} ms/crop", f"{growth:.2f}x", "<= 1.2x (linear)",
                        _met(growth <= 1.2), _rss(r),
                        f"{ctx}; at this rate 1M crops take {1e6 / cps[hi] / 3600:.1f} h here"))
    for kind, label, seconds in (
        ("triage", "Triage (calibrate + assign + report)",
         lambda r: r["calibrate"] + r["assign"] + r["report"]),
        ("scoring", "Scoring (score_labels, 512-d embeddings)", lambda r: r["total"]),
    ):
        sized = sorted((s for s in done.values() if s.kind == kind), key=lambda s: s.cfg["n"])
        for small, big in zip(sized, sized[1:]):
            extra = ""
            if kind == "scoring":
                extra = f"; process CPU {big.result['cpu_s']:.0f} vs {small.result['cpu_s']:.0f} s"
            rows.append(_growth_row(label, small, big, seconds, big, extra))
    # the three steps after labeling, together, at the sizes both ran
    tri = {s.cfg["n"]: s for s in done.values() if s.kind == "triage"}
    sco = {s.cfg["n"]: s for s in done.values() if s.kind == "scoring"}
    both = sorted(set(tri) & set(sco))
    for n0, n1 in zip(both, both[1:]):
        t = {n: sco[n].result["total"] + tri[n].result["calibrate"] + tri[n].result["assign"]
             + tri[n].result["report"] for n in (n0, n1)}
        ratio, target = t[n1] / t[n0], 1.2 * n1 / n0
        rows.append(Row(f"Scoring + triage: {n1:,} vs {n0:,} labels", f"{t[n1]:.1f} s", f"{t[n0]:.1f} s",
                        f"{ratio:.2f}x", f"<= {target:.0f}x (linear)", _met(ratio <= target),
                        _rss(sco[n1].result), "embeddings: see their per-crop row (linear in crops)"))
    for s in (s for s in done.values() if s.kind == "panels"):
        r, n = s.result, s.cfg["n"]
        floor = r["bare_group"]
        for what, key in (("counts + tables", "counts"), ("next 10 yellow", "next"),
                          ("whole panel load", "load")):
            rows.append(Row(f"Verification panel at {n:,} labels: {what} vs a plain MongoDB $unwind+$group",
                            f"{r[key]:.2f} s", f"{floor:.2f} s", f"{r[key] / floor:.2f}x", "A <= 0.5 s",
                            _met(r[key] <= 0.5), _rss(r),
                            f"best of 3; A over {r['parts']} concurrent _id ranges; B = one aggregation unwinding "
                            "every label, grouped by class, queue and review (what a count over all labels "
                            "costs in MongoDB, for scale)"))
        rows.append(Row(f"Verification panel at {n:,} labels: first refresh after a decision, now vs before",
                        f"{r['refresh']:.2f} s", f"{r['refresh_before']:.2f} s",
                        f"{r['refresh'] / r['refresh_before']:.2f}x", "A <= 0.5 s", _met(r["refresh"] <= 0.5),
                        _rss(r), "best of 3, 10 labels accepted before each (not timed); B = one counts "
                        "aggregation + the old next-yellow query"))
    return rows


def print_table(rows: list[Row]) -> None:
    print("| comparison | contender A | contender B | A / B | target | met? | peak RSS | notes |")
    print("|---|---:|---:|---:|---|---|---:|---|")
    for r in rows:
        print(f"| {r.comparison} | {r.a} | {r.b} | {r.ratio} | {r.target} | {r.met} | {r.peak_rss} | {r.notes} |")


# ------------------------------------------------------------ running steps


def _child_main(kind: str, cfg_json: str, out_path: str) -> int:
    from stoplight_import import import_stoplight

    import_stoplight()
    result = STEP_FUNCTIONS[kind](json.loads(cfg_json))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["_peak_rss_mib"] = max(own, kids) / 1024
    Path(out_path).write_text(json.dumps(result, default=str))
    return 0


def _run_step(step: Step, timeout: float, log) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        # own session: a step over its time is killed with all its children
        proc = subprocess.Popen(
            [sys.executable, __file__, "--_step", step.kind, json.dumps(step.cfg), str(out)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
        t0 = time.perf_counter()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            step.skipped = f"stopped after {timeout:.0f} s (its share of the time budget)"
            _cleanup(step)
            return
        finally:
            step.wall_s = time.perf_counter() - t0
        if rc or not out.exists():
            step.skipped = f"failed (exit code {rc}; see the log)"
            _cleanup(step)
            return
        step.result = json.loads(out.read_text())


#: names of the datasets each kind of step creates (prefixes)
_DATASETS = {
    "writes": "stoplight-bench-writes-", "embeddings": "stoplight-bench-emb-",
    "triage": "stoplight-bench-triage-{n}", "panels": "stoplight-bench-panels-{n}",
    "scoring": "stoplight-bench-scoring-{n}",
}


def _cleanup(step: Step) -> None:
    """Deletes the datasets a stopped step left behind (only its own names:
    someone else's benchmark may share the database)."""
    import fiftyone as fo

    prefix = _DATASETS.get(step.kind)
    if prefix is None:  # labeling uses unnamed, non-persistent datasets
        return
    exact = "{n}" in prefix  # one size's dataset, not the bigger sizes' too
    prefix = prefix.format(**step.cfg)
    for name in fo.list_datasets():
        if name == prefix or (not exact and name.startswith(prefix)):
            fo.delete_dataset(name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    mode.add_argument("--full", action="store_true", help="add 1M labels to scoring and triage (long)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="wall-clock budget (default 840 s; --full: none)")
    ap.add_argument("--only", nargs="+", help="run only these steps (keys as printed)")
    ap.add_argument("--log", default=None, help="the steps' own output (default: a temp file)")
    ap.add_argument("--save", default=None, help="write every step's measurement to this JSON file")
    ap.add_argument("--reprint", nargs="+", default=None, metavar="JSON",
                    help="print the table of runs saved with --save, measuring nothing (a step "
                         "measured in a later file replaces the earlier one)")
    ap.add_argument("--_step", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._step:
        return _child_main(*args._step)

    mode_name = "quick" if args.quick else "full" if args.full else "default"
    if args.reprint:
        merged: dict[str, Step] = {}
        for path in args.reprint:
            saved = json.loads(Path(path).read_text())
            print(f"- {path}: {saved['mode']} run of {saved['date']}, {saved['wall_s']:.0f} s wall, "
                  f"load average {saved['load'][0]:.1f} before / {saved['load'][1]:.1f} after")
            for d in saved["steps"]:
                if d["result"] is not None or d["key"] not in merged:
                    merged[d["key"]] = Step(**d)
        print()
        print_table(build_rows(list(merged.values())))
        skipped = [s for s in merged.values() if s.result is None]
        if skipped:
            print("\nNot measured:")
            for s in skipped:
                print(f"- {s.key}: {s.skipped}")
        return 0
    budget = args.budget_s or (24 * 3600 if args.full else 840)
    steps, left_out = plan(mode_name)
    if args.only:
        steps = [s for s in steps if s.key in args.only]
    log_path = args.log or tempfile.mktemp(prefix="stoplight-bench-", suffix=".log")
    import fiftyone as fo  # noqa: F401
    from fiftyone.core.odm.database import get_db_conn

    get_db_conn()  # one database service for every step, up before the first
    start = time.perf_counter()
    load0 = os.getloadavg()
    print(f"Stoplight benchmarks ({mode_name}): {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {load0[0]:.1f}; budget {budget:.0f} s; steps' output in {log_path}", flush=True)
    with open(log_path, "a") as log:
        for i, step in enumerate(steps):
            left = budget - (time.perf_counter() - start)
            later = sum(s.min_s for s in steps[i + 1:])
            timeout = min(step.cap_s, left - later)
            if timeout < step.min_s - 1:  # 1 s: the clock moved since the previous step ended
                step.skipped = f"not started: {left:.0f} s of the budget left, it needs >= {step.min_s:.0f} s"
                print(f"[{time.perf_counter() - start:5.0f} s] {step.key}: skipped ({step.skipped})", flush=True)
                continue
            print(f"[{time.perf_counter() - start:5.0f} s] {step.key} {json.dumps(step.cfg)} ...", flush=True)
            log.write(f"\n===== {step.key} {json.dumps(step.cfg)}\n")
            log.flush()
            _run_step(step, timeout, log)
            state = "done" if step.result is not None else step.skipped
            print(f"[{time.perf_counter() - start:5.0f} s] {step.key}: {state} ({step.wall_s:.0f} s)", flush=True)

    load1 = os.getloadavg()
    if args.save:
        Path(args.save).write_text(json.dumps(dict(
            mode=mode_name, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            wall_s=time.perf_counter() - start, load=[load0[0], load1[0]],
            steps=[dataclasses.asdict(s) for s in steps]), default=str, indent=1))
        print(f"measurements saved to {args.save}")
    rows = build_rows(steps)
    print(f"\n## Stoplight benchmarks ({mode_name}), {time.perf_counter() - start:.0f} s wall, "
          f"load average {load0[0]:.1f} before / {load1[0]:.1f} after; ratios are within one run, "
          f"same machine, same data\n")
    print_table(rows)
    skipped = [s for s in steps if s.result is None]
    if skipped or left_out:
        print("\nNot measured in this run:")
        for s in skipped:
            print(f"- {s.key}: {s.skipped}")
        for what in left_out:
            print(f"- {what}")
    print(f"\nModels: full-size architectures with {RANDOM} (nothing downloaded); labels meaningless.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
