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

import logging
from typing import Callable, Iterator

from ..common import provenance, shards, workqueue
from ..common.progress import Progress
from ..common.progress import run as run_progress

logger = logging.getLogger(__name__)

METHOD = "zero_shot_detect_shard"
COUNTS = ("num_processed_samples", "num_skipped_samples", "num_failed_samples",
          "num_labels", "num_invalid_predictions")


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

    shards.check_params(shard_group, lease_s, params, "label each sample")
    worker = shards.worker_name(worker)
    dataset = sample_collection._dataset
    workqueue.create(dataset, shard_group, sample_collection.values("id"), chunk_size)

    if detector is None:
        detector = load_detector(
            params.get("backend", "owlv2"), params.get("checkpoint"), device=params.get("device"),
            fp16=params.get("fp16"), options=params.get("backend_options"),
        )
    label_field = params.get("label_field", "autolabels")
    dataset.reload()  # runs registered by other workers meanwhile
    run_key = shards.free_run_key(dataset, f"{shard_group}_{worker}")
    record = provenance.start_run(
        dataset, run_key, method=METHOD, shard_group=shard_group, worker=worker,
        backend=detector.name, checkpoint=detector.checkpoint, label_field=label_field,
        classes=params.get("classes"), ontology=params.get("ontology"),
        confidence_threshold=params.get("confidence_threshold", 0.2),
        chunk_size=chunk_size, lease_s=lease_s, device=detector.device,
    )
    tally = shards.Tally(COUNTS)

    def summary(status):
        return dict(tally.fields(), run_key=run_key, shard_group=shard_group, worker=worker,
                    status=status, label_field=label_field)

    def run_chunk(doc):
        return iter_zero_shot_detect(
            sample_collection.select(doc["sample_ids"]), overwrite=False, detector=detector,
            record_run=False, run_key=run_key, **params,
        )

    def on_chunk_done(doc, out, marked):
        tally.add(doc, out, marked)
        provenance.finish_run(dataset, run_key, record, summary("running"))

    with provenance.recorded_run(dataset, run_key, record, summary) as run:
        yield from shards.iter_chunks(dataset, shard_group, worker, lease_s, run_chunk, on_chunk_done)
    out = run.summary
    if shards.drained(dataset, shard_group):
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
    shards.write_merged_record(dataset, shard_group, record)
    return {k: v for k, v in record.items() if k.startswith("num_")} | {"workers": workers}
