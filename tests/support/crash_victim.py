"""The victim of the crash and database-fault tests: one Stoplight run.

Run as a script (``python tests/support/crash_victim.py JOB_JSON``) it prints one
line per progress event (``event <done> <total>``) and ``done <json
summary>`` or ``error <type>: <message>`` at the end, so a test can kill it
after a chosen number of events. The crash tests instead start :func:`run`
in processes forked from a preloaded server (``multiprocessing``'s
forkserver), which skips the seconds of importing torch, transformers and
FiftyOne per trial; there, events go through a pipe.

The database is whatever ``FIFTYONE_DATABASE_URI`` / ``_NAME`` in the
environment say (the test session's mongod, or a test's own).

A job is a dict: ``{"step": "label" | "embed" | "score", "dataset": name,
...step arguments}``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _p in (_HERE, _HERE.parents[1] / "examples"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

# importing (not connecting) is fork-safe: no threads, no sockets yet
import fiftyone as fo  # noqa: E402
from stoplight_import import import_stoplight  # noqa: E402

import_stoplight()

from stoplight.plugins.autolabel.pipeline import zero_shot_detect  # noqa: E402
from stoplight.plugins.scoring import embeddings as E  # noqa: E402
from stoplight.plugins.scoring.scores import score_labels  # noqa: E402

# transformers, open_clip and torchvision load their modules lazily, on first
# use (seconds): import what a run uses here, once, in the forkserver
import open_clip  # noqa: E402,F401
import torchvision.ops  # noqa: E402,F401
from transformers import (  # noqa: E402,F401
    AutoConfig,
    AutoModelForZeroShotObjectDetection,
    AutoProcessor,
    CLIPTokenizerFast,
    Owlv2ForObjectDetection,
    Owlv2ImageProcessor,
    Owlv2Processor,
)


def run(job: dict, on_event) -> dict:
    """Runs one job, calling ``on_event(done, total)`` for each progress event.

    ``job["database_uri"]`` / ``job["database_name"]`` point the run at
    another MongoDB than the environment's (set before the first connection,
    so a forked victim can use a test's private mongod). With
    ``job["create_from"]`` (file paths) the dataset is created first.
    """
    if job.get("database_uri"):
        fo.config.database_uri = job["database_uri"]
        fo.config.database_name = job["database_name"]
    if job.get("create_from"):
        ds = fo.Dataset(job["dataset"], persistent=True)
        samples = [fo.Sample(filepath=p) for p in job["create_from"]]
        for i, s in enumerate(samples if job.get("with_labels") else []):
            s["autolabels"] = fo.Detections(detections=[
                fo.Detection(label=["person", "bus"][(i + j) % 2], confidence=0.5 + 0.1 * j,
                             bounding_box=[0.1 * j, 0.1 * j, 0.4, 0.3])
                for j in range(3)
            ])
        ds.add_samples(samples)
    else:
        ds = fo.load_dataset(job["dataset"])
    progress = lambda p: on_event(p.done, p.total)  # noqa: E731
    step = job["step"]
    if step == "create":
        return {"status": "completed"}
    if step == "label":
        return zero_shot_detect(
            ds,
            backend="owlv2",
            checkpoint=job["checkpoint"],
            classes=job.get("classes", ["person", "bus"]),
            confidence_threshold=0.0,
            batch_size=job.get("batch_size", 2),
            write_every=job.get("write_every", 4),
            num_workers=1,
            device="cpu",
            progress=progress,
        )
    if step == "embed":
        return E.compute_label_embeddings(
            ds,
            "autolabels",
            model_name=job["model_name"],
            pretrained=job["pretrained"],
            batch_size=job.get("batch_size", 16),
            write_every=job.get("write_every", 16),
            num_workers=1,
            device="cpu",
            progress=progress,
        )
    if step == "score":
        return score_labels(
            ds, "autolabels", reference_field=job.get("reference_field"), k=3,
            rer=job.get("rer", True), device="cpu", progress=progress,
        )
    raise ValueError(f"Unknown step {step!r}")


#: the process that imported this module: a forkserver's children see the
#: server's pid here (the heavy imports were inherited, not redone)
IMPORTED_BY_PID = os.getpid()


def report_env(names: list[str], conn) -> None:
    """Target of a forked process: sends the values of environment ``names``
    and whether this module was imported before the fork."""
    conn.send(({n: os.environ.get(n) for n in names}, IMPORTED_BY_PID != os.getpid()))


def _hold_after(method: str, conn) -> None:
    """Makes ``SampleCollection.<method>`` announce its end and then hang,
    so a test can kill the run at exactly that point."""
    import time

    import fiftyone.core.collections as foc

    original = getattr(foc.SampleCollection, method)

    def held(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        conn.send(("held", method))
        time.sleep(600)
        return out

    setattr(foc.SampleCollection, method, held)


def run_in_child(job: dict, conn) -> None:
    """Target of a forked process: events and the end go through ``conn``.

    ``job["hold_after"]``: hang after that ``SampleCollection`` method
    (see :func:`_hold_after`); ``job["pause_at_event"]``: announce the n-th
    progress event with ``("held", "event")`` and sleep ``job["pause_s"]``
    seconds there, then go on (the test breaks something meanwhile).
    """
    import time

    if job.get("hold_after"):
        _hold_after(job["hold_after"], conn)
    events = 0

    def on_event(done, total):
        nonlocal events
        events += 1
        conn.send(("event", done, total))
        if events == job.get("pause_at_event"):
            conn.send(("held", "event"))
            time.sleep(job.get("pause_s", 2.0))

    try:
        summary = run(job, on_event)
        conn.send(("done", summary.get("status")))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"{type(e).__name__}: {e}"))
        raise


def main(argv: list[str]) -> int:
    job = json.loads(argv[1])

    def on_event(done, total):
        print(f"event {done} {total}", flush=True)

    try:
        summary = run(job, on_event)
    except Exception as e:  # noqa: BLE001 - the test reads the message
        print(f"error {type(e).__name__}: {e}", flush=True)
        return 1
    keep = {k: v for k, v in summary.items() if k.startswith("num_") or k in ("status", "run_key")}
    print("done " + json.dumps(keep), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    sys.exit(main(sys.argv))
