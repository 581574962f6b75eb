"""Scale-out of zero-shot labeling over several workers sharing one MongoDB.

Every worker (a process on any machine whose ``FIFTYONE_DATABASE_URI`` is
the same database; typically a ``fiftyone delegated launch`` worker running
the ``zero_shot_detect`` operator with a ``shard_group``) calls
:func:`zero_shot_detect_shard` with the same collection and group:

1. the first one cuts the collection's sample ids into chunks of a work
   queue (:mod:`..common.workqueue`); later ones find the queue and keep it;
2. each worker claims chunks atomically (no two workers hold one chunk),
   labels each with the ordinary pipeline and ``overwrite=False`` (only
   samples without labels), renews its lease on every batch and marks the
   chunk done;
3. a worker killed mid-chunk stops renewing; after ``lease_s`` another
   worker (or the same one restarted) claims the chunk again and labels
   only what is still missing, so every sample is labeled exactly once;
4. a worker with nothing left to claim waits while other workers hold
   chunks (their leases may expire), then stops.

Run records: each worker records one run, ``<group>_<worker>``, updated
after every chunk (its counts survive a kill, up to its last finished
chunk); the worker that sees the queue drained writes the merged record
under the key ``<group>``: sums of the workers' counts, plus the number of
samples of the group that hold labels, counted in the database (this one
also covers chunks whose worker died before recording them). Any worker
may write it, as often as it likes: it is recomputed from scratch.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import socket
import time
from typing import Callable, Iterator

from ..common import provenance, workqueue
from ..common.progress import Progress
from ..common.progress import run as run_progress

logger = logging.getLogger(__name__)

METHOD = "zero_shot_detect_shard"
COUNTS = ("num_processed_samples", "num_skipped_samples", "num_failed_samples",
          "num_labels", "num_invalid_predictions")


def default_worker_name() -> str:
    """``<host>_<pid>``, made a valid run-key suffix."""
    return re.sub(r"\W", "_", f"{socket.gethostname()}_{os.getpid()}")


def iter_zero_shot_detect_shard(
    sample_collection,
    shard_group: str,
    worker: str | None = None,
    chunk_size: int = 64,
    lease_s: float = 300.0,
    detector=None,
    **params,
) -> Iterator[Progress]:
    """Generator form of :func:`zero_shot_detect_shard`; returns the worker's summary."""
    from .models import load_detector
    from .pipeline import iter_zero_shot_detect

    if not isinstance(shard_group, str) or not shard_group.isidentifier():
        raise ValueError(f"Parameter 'shard_group' must be a valid identifier; got {shard_group!r}")
    if params.pop("overwrite", False):
        raise ValueError("A 'shard_group' run cannot overwrite: re-claimed chunks rely on "
                         "overwrite=False to label each sample exactly once")
    if params.pop("run_key", None):
        raise ValueError("A 'shard_group' run names its records itself: <group>_<worker> and <group>")
    if not (isinstance(lease_s, (int, float)) and lease_s > 0):
        raise ValueError(f"Parameter 'lease_s' must be positive; got {lease_s!r}")
    worker = re.sub(r"\W", "_", worker) if worker else default_worker_name()
    dataset = sample_collection._dataset
    workqueue.create(dataset, shard_group, sample_collection.values("id"), chunk_size)

    if detector is None:
        detector = load_detector(
            params.get("backend", "owlv2"), params.get("checkpoint"), device=params.get("device"),
            fp16=params.get("fp16"), options=params.get("backend_options"),
        )
    label_field = params.get("label_field", "autolabels")
    dataset.reload()  # runs registered by other workers meanwhile
    run_key = _free_key(dataset, f"{shard_group}_{worker}")
    record = provenance.start_run(
        dataset, run_key, method=METHOD, shard_group=shard_group, worker=worker,
        backend=detector.name, checkpoint=detector.checkpoint, label_field=label_field,
        classes=params.get("classes"), ontology=params.get("ontology"),
        confidence_threshold=params.get("confidence_threshold", 0.2),
        chunk_size=chunk_size, lease_s=lease_s, device=detector.device,
    )
    totals = dict.fromkeys(COUNTS, 0)
    failures: list[dict] = []
    chunks: list[int] = []
    total = workqueue.progress(dataset, shard_group)["samples"]
    done_samples = 0

    def summary(status):
        return dict(totals, run_key=run_key, shard_group=shard_group, worker=worker,
                    status=status, chunks=list(chunks), failures=failures[:1000],
                    label_field=label_field)

    with provenance.recorded_run(dataset, run_key, record, summary) as run:
        yield Progress(0, total, f"Worker {worker} joined group {shard_group}")
        while True:
            doc = workqueue.claim(dataset, shard_group, worker, lease_s)
            if doc is None:
                state = workqueue.progress(dataset, shard_group)
                if state["claimed"] == 0:
                    break  # drained
                # others hold chunks: wait for them, or for their leases to end
                now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
                wait = (state["next_expiry"] - now).total_seconds() if state["next_expiry"] else 1
                time.sleep(min(max(wait + 0.1, 0.2), 5.0))
                continue
            c = doc["chunk"]
            gen = iter_zero_shot_detect(
                sample_collection.select(doc["sample_ids"]), overwrite=False, detector=detector,
                record_run=False, run_key=run_key, **params,
            )
            out, lost = None, False
            try:
                while True:
                    try:
                        p = next(gen)
                    except StopIteration as stop:
                        out = stop.value
                        break
                    if not workqueue.renew(dataset, shard_group, c, worker, lease_s):
                        lost = True
                        break
                    yield Progress(done_samples + p.done, total,
                                   f"Worker {worker}: chunk {c}, {p.done}/{p.total}")
            finally:
                gen.close()  # flushes what it computed
            if lost or out is None:
                logger.warning("Worker %s lost its lease on chunk %d of %s; another worker "
                               "finishes it", worker, c, shard_group)
                continue
            for k in COUNTS:
                totals[k] += out.get(k, 0)
            failures.extend(out.get("failures", []))
            done_samples += len(doc["sample_ids"])
            if workqueue.done(dataset, shard_group, c, worker):
                chunks.append(c)
            provenance.finish_run(dataset, run_key, record, summary("running"))
            yield Progress(done_samples, total, f"Worker {worker}: chunk {c} done")
    out = run.summary
    if workqueue.progress(dataset, shard_group)["done"] == workqueue.progress(dataset, shard_group)["chunks"]:
        out["merged"] = merge_shard_runs(dataset, shard_group)
    return out


def zero_shot_detect_shard(
    sample_collection,
    shard_group: str,
    worker: str | None = None,
    chunk_size: int = 64,
    lease_s: float = 300.0,
    progress: bool | Callable[[Progress], None] = True,
    **params,
) -> dict:
    """Labels a share of ``sample_collection`` as one worker of ``shard_group``.

    Start it on as many workers (processes, GPUs, machines) as you like,
    with the same collection, group and parameters and the same database;
    see the module docstring for the protocol. A worker stops when no chunk
    is left; it can be stopped (even killed) and started again any time.

    Example usage::

        # on each machine, same FIFTYONE_DATABASE_URI
        zero_shot_detect_shard(
            fo.load_dataset("big"), "big_run1", backend="owlv2",
            classes=["person", "car"], device="cuda:0",
        )

    Args:
        sample_collection: a dataset or view of images (every worker must
            pass the same one: the first worker fixes the chunks)
        shard_group: the group's name, a valid identifier; also the key of
            the merged run record
        worker: this worker's name (default ``<host>_<pid>``); its run
            record is ``<group>_<worker>``
        chunk_size: samples per chunk (used by the worker that creates the
            queue)
        lease_s: a claimed chunk whose worker has not renewed its lease for
            this long (it renews on every batch) is claimed again by others
        progress: as for :func:`~.pipeline.zero_shot_detect`
        **params: the other parameters of
            :func:`~.pipeline.zero_shot_detect` (``overwrite`` and
            ``run_key`` are refused)

    Returns:
        the worker's summary (its counts and the chunks it finished), with
        ``merged`` (the merged record) if this worker saw the queue drained
    """
    return run_progress(
        iter_zero_shot_detect_shard(sample_collection, shard_group, worker=worker,
                                    chunk_size=chunk_size, lease_s=lease_s, **params),
        progress,
    )


def merge_shard_runs(dataset, shard_group: str) -> dict:
    """(Re)writes the merged run record of ``shard_group`` under key ``shard_group``.

    Sums the counts of the group's worker records and counts, in the
    database, the group's samples that hold labels and their labels.
    Idempotent: any worker may call it any number of times.

    Returns:
        the merged record's counts
    """
    dataset.reload()
    workers, sums, label_field, base = [], dict.fromkeys(COUNTS, 0), None, {}
    for key in dataset.list_runs():
        info = dataset.get_run_info(key)
        cfg = info.config
        if getattr(cfg, "stoplight_method", None) != METHOD or getattr(cfg, "shard_group", None) != shard_group:
            continue
        workers.append(dict(run_key=key, worker=cfg.worker, status=cfg.status))
        for k in COUNTS:
            sums[k] += getattr(cfg, k, 0) or 0
        label_field = cfg.label_field
        base = dict(backend=cfg.backend, checkpoint=cfg.checkpoint, classes=cfg.classes,
                    ontology=cfg.ontology, confidence_threshold=cfg.confidence_threshold)
    state = workqueue.progress(dataset, shard_group)
    labeled = labels = 0
    if label_field and dataset.has_field(label_field):
        for doc in workqueue.chunks(dataset, shard_group):
            view = dataset.select(doc["sample_ids"]).exists(label_field)
            labeled += view.count()
            labels += view.count(f"{label_field}.detections")
    now = provenance._now()
    record = dict(
        base, stoplight_method="zero_shot_detect", shard_group=shard_group, label_field=label_field,
        status="completed" if state["done"] == state["chunks"] else "running",
        started_at=None, ended_at=now, versions=provenance.package_versions(),
        workers=workers, num_chunks=state["chunks"], num_done_chunks=state["done"],
        num_target_samples=state["samples"], num_labeled_samples=labeled,
        num_labels_in_field=labels, **sums,
    )
    config = dataset.init_run(**record)
    if dataset.has_run(shard_group):
        dataset.update_run_config(shard_group, config)
    else:
        try:
            dataset.register_run(shard_group, config)
        except ValueError:  # another worker registered it first
            dataset.reload()
            dataset.update_run_config(shard_group, config)
    results = dataset.init_run_results(shard_group, **record)
    dataset.save_run_results(shard_group, results, overwrite=True)
    return {k: v for k, v in record.items() if k.startswith("num_")} | {"workers": workers}


def _free_key(dataset, key: str) -> str:
    """``key``, or ``key_2``, ``key_3``... when taken (a restarted worker)."""
    out, i = key, 1
    while dataset.has_run(out):
        i += 1
        out = f"{key}_{i}"
    return out
