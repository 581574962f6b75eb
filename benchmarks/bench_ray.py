"""Labeling on Ray (1 and 2 actors) next to the local executor, on this machine.

Three contenders label the same images with the same model, on CPU, in one
process, interleaved over rounds:

- **local**: ``zero_shot_detect`` in this process (decode threads + torch);
- **ray x1**: ``executor=RayExecutor(actors=1)`` on a two-node cluster on
  127.0.0.1 (each node a separate ``ray start`` process tree, 1 CPU each);
- **ray x2**: the same with 2 actors (one per node).

Each run is measured three ways: **end to end** (what a user waits: the
driver process, connecting, shipping the code, starting the actors and
loading the model, labeling, the run record), **steady state** (from the
first batch's outcome to the last: images per second once the actors are
up), and **CPU per image** in steady state: the CPU time of this process
and every process it started (the driver, the nodes' raylets and GCS, the
actors) over the same span, per image. On a shared, loaded machine wall
times swing with the load; CPU per image barely does, so Ray's overhead per
image is stated as CPU (one actor's minus the local run's, both one model)
as well as wall time. The fixed cost per run is the end-to-end time minus
the steady-state part.

The model is a tiny random-weight OWLv2 (a real architecture at toy width,
the labels are meaningless): per-image costs other than the forward pass
(decode, database reads and writes, Ray's batching) are what it shows. With
a full-size model on a GPU per actor, the forward pass dominates and actors
scale with GPUs.

    python benchmarks/bench_ray.py                # 96 images, 2 rounds
    python benchmarks/bench_ray.py --images 48 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
sys.path.insert(0, str(HERE.parent / "tests" / "support"))  # ray_cluster: the tests' local cluster
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ray_cluster  # noqa: E402

# Ray reads its authentication settings on import: the benchmark cluster's
# own token (never the user's ~/.ray/auth_token)
AUTH = ray_cluster.private_auth()
os.environ.pop("RAY_AUTH_TOKEN", None)
os.environ.update(AUTH)

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


def _run(paths, checkpoint, batch_size, executor) -> dict:
    """One labeling run on a fresh dataset: end-to-end and steady-state times."""
    import fiftyone as fo

    from stoplight.plugins.autolabel.pipeline import zero_shot_detect

    ds = fo.Dataset(f"bench-ray-{uuid.uuid4().hex[:8]}")
    ds.add_samples([fo.Sample(filepath=p) for p in paths])
    stamps = []

    on_ray = executor != "local"

    def progress(p):
        stamps.append((time.perf_counter(), p.done, _cpu_s(on_ray)))

    t0 = time.perf_counter()
    summary = zero_shot_detect(ds, backend="owlv2", checkpoint=checkpoint, classes=["person", "bus"],
                               device="cpu", batch_size=batch_size, progress=progress,
                               executor=executor)
    total = time.perf_counter() - t0
    assert summary["num_processed_samples"] == len(paths), summary
    done = [s for s in stamps if s[1] > 0]
    (t_first, n_first, c_first), (t_last, n_last, c_last) = done[0], done[-1]
    steady = (t_last - t_first) / max(1, n_last - n_first)
    cpu = (c_last - c_first) / max(1, n_last - n_first)
    ds.delete()
    return dict(total_s=total, per_image_s=steady, cpu_per_image_s=cpu,
                startup_s=total - steady * len(paths),
                nodes=summary.get("num_ray_nodes"), workers=summary.get("num_ray_workers"))


def _cpu_s(children: bool) -> float:
    """CPU seconds (user + system) of this process, and with ``children`` of
    all it started (the Ray nodes, their actors, the driver process)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True) if children else []:
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def measure(num_images: int = 96, batch_size: int = 4, rounds: int = 2) -> dict:
    """Runs the three contenders ``rounds`` times each, interleaved."""
    import_stoplight()
    from stoplight.plugins.autolabel.backends import get_backend
    from stoplight.plugins.common.ray_executor import RayExecutor

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    load0 = os.getloadavg()
    try:
        paths = _images(num_images, tmp / "images")
        checkpoint = get_backend("owlv2").build_random_checkpoint(str(tmp / "owlv2"), size="tiny")
        with ray_cluster.LocalCluster(cpus=1, object_store_mb=100, auth=AUTH) as cluster:
            cluster.add_node()
            cluster.connect()
            try:
                cluster.wait_for_nodes(2)
            finally:
                import ray

                ray.shutdown()
            contenders = {
                "local": "local",
                "ray x1": RayExecutor(address=cluster.address, actors=1),
                "ray x2": RayExecutor(address=cluster.address, actors=2),
            }
            results: dict[str, list[dict]] = {k: [] for k in contenders}
            for r in range(rounds):
                for name, executor in contenders.items():
                    res = _run(paths, checkpoint, batch_size, executor)
                    results[name].append(res)
                    print(f"round {r + 1} {name}: {res}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: {m: statistics.median(x[m] for x in v)
               for m in ("total_s", "per_image_s", "cpu_per_image_s", "startup_s")}
           for k, v in results.items()}
    return dict(num_images=num_images, batch_size=batch_size, rounds=rounds, results=results,
                median=med, load_before=load0, load_after=os.getloadavg())


def print_table(out: dict) -> None:
    med = out["median"]
    local = med["local"]["per_image_s"]
    print(f"\n{out['num_images']} images, batch {out['batch_size']}, median of {out['rounds']} rounds; "
          f"load {out['load_before'][0]:.1f} before / {out['load_after'][0]:.1f} after")
    print("| contender | end to end (s) | steady (ms/image) | images/s steady | vs local steady "
          "| CPU ms/image | fixed cost per run (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, m in med.items():
        fixed = "-" if name == "local" else f"{m['startup_s']:.1f}"
        print(f"| {name} | {m['total_s']:.1f} | {1000 * m['per_image_s']:.1f} | "
              f"{1 / m['per_image_s']:.1f} | {local / m['per_image_s']:.2f}x | "
              f"{1000 * m['cpu_per_image_s']:.1f} | {fixed} |")
    one, two = med["ray x1"], med["ray x2"]
    cpu_local = med["local"]["cpu_per_image_s"]
    print(f"\nRay overhead per image (1 actor vs local, steady): "
          f"{1000 * (one['cpu_per_image_s'] - cpu_local):+.1f} ms CPU, "
          f"{1000 * (one['per_image_s'] - local):+.1f} ms wall; "
          f"2 actors vs 1: {one['per_image_s'] / two['per_image_s']:.2f}x throughput")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    print_table(measure(args.images, args.batch_size, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
