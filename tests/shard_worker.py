"""One scale-out worker, run as a script by tests/test_scaleout.py.

``python tests/shard_worker.py JOB_JSON``: waits for ``job["go"]`` (a file)
when given, so that several workers start claiming together after their
imports, then runs :func:`zero_shot_detect_shard` (or, with ``job["kind"]
== "embed"``, :func:`compute_label_embeddings_shard`) on ``job["dataset"]``.
Each prediction (image batch for embeddings) sleeps ``job["predict_delay"]``
s (so that a test can kill the worker mid-chunk). Prints ``progress <done> <total>`` per event and
``done <json summary>`` at the end. The database is the environment's.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _p in (_HERE, _HERE.parent / "examples"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import fiftyone as fo  # noqa: E402
from stoplight_import import import_stoplight  # noqa: E402

import_stoplight()

from stoplight.plugins.autolabel.models import load_detector  # noqa: E402
from stoplight.plugins.autolabel.scaleout import zero_shot_detect_shard  # noqa: E402
from stoplight.plugins.scoring.embeddings import load_clip  # noqa: E402
from stoplight.plugins.scoring.scaleout import compute_label_embeddings_shard  # noqa: E402


def _progress(p) -> None:
    print("progress", p.done, p.total, flush=True)


def _wait_for_go(job: dict) -> None:
    print("ready", flush=True)
    while job.get("go") and not os.path.exists(job["go"]):
        time.sleep(0.05)


def embed(job: dict) -> None:
    clip = load_clip(job["model_name"], job["pretrained"], device="cpu")
    encode = clip.encode_images

    def slow_encode(pixels):
        time.sleep(job.get("predict_delay", 0))
        return encode(pixels)

    clip.encode_images = slow_encode
    ds = fo.load_dataset(job["dataset"])
    _wait_for_go(job)
    summary = compute_label_embeddings_shard(
        ds, job["group"], worker=job["worker"], chunk_size=job["chunk_size"],
        lease_s=job["lease_s"], clip=clip, label_field=job.get("label_field", "autolabels"),
        model_name=job["model_name"], pretrained=job["pretrained"], device="cpu",
        batch_size=job.get("batch_size", 4), num_workers=0,
        write_every=job.get("write_every", 1024), progress=_progress,
    )
    print("done", json.dumps(summary, default=str), flush=True)


def main(job: dict) -> None:
    if job.get("kind") == "embed":
        return embed(job)
    detector = load_detector(job["backend"], job["checkpoint"], device="cpu")
    predict = detector.predict

    def slow_predict(inputs):
        time.sleep(job.get("predict_delay", 0))
        return predict(inputs)

    detector.predict = slow_predict
    ds = fo.load_dataset(job["dataset"])
    print("ready", flush=True)
    while job.get("go") and not os.path.exists(job["go"]):
        time.sleep(0.05)
    summary = zero_shot_detect_shard(
        ds, job["group"], worker=job["worker"], chunk_size=job["chunk_size"],
        lease_s=job["lease_s"], detector=detector, backend=job["backend"],
        checkpoint=job["checkpoint"], classes=job["classes"], confidence_threshold=0.0,
        batch_size=job.get("batch_size", 1), device="cpu", num_workers=0,
        write_every=job.get("write_every", 256),
        progress=lambda p: print("progress", p.done, p.total, flush=True),
    )
    print("done", json.dumps(summary, default=str), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
