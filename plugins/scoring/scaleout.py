"""Scale-out of label embedding over several workers sharing one MongoDB.

The same protocol as labeling (:mod:`..autolabel.scaleout`): every worker
(typically a ``fiftyone delegated launch`` worker running the
``compute_label_embeddings`` operator with a ``shard_group``) calls
:func:`compute_label_embeddings_shard` with the same collection and group:

1. the first one cuts the collection's sample ids into chunks of a work
   queue (:mod:`..common.workqueue`); later ones find the queue and keep it;
2. each worker claims chunks atomically (no two workers hold one chunk),
   embeds each chunk's labels with ``overwrite=False`` (only labels without
   an embedding), renews its lease on every progress event and marks the
   chunk done;
3. a worker killed mid-chunk stops renewing; after ``lease_s`` another
   worker claims the chunk again and embeds only what is still missing, so
   every label is embedded once (the embeddings written before stay);
4. a worker with nothing left to claim waits while others hold chunks,
   then stops.

The class prompts are fixed once for the whole group (the classes present
in the whole collection, or ``prompts``) and embedded once per worker, not
per chunk, so every worker stores the same text embeddings.

Run records: each worker records ``<group>_<worker>`` (method
``compute_label_embeddings_shard``, counts updated after every chunk), and
the worker that sees the queue drained writes the merged record ``<group>``
with method ``compute_label_embeddings``: the sums of the workers' counts,
the number of the group's labels holding an embedding (counted in the
database), the prompts and their text embeddings. That is the record
``score_labels`` reads (it takes the latest *completed*
``compute_label_embeddings`` run of the field), so scoring after a
scale-out run works as after a single one.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator, Sequence

from ..common import provenance, shards, workqueue
from ..common.progress import Progress
from ..common.progress import run as run_progress

logger = logging.getLogger(__name__)

METHOD = "compute_label_embeddings_shard"
COUNTS = ("num_target_labels", "num_skipped_labels", "num_embedded_labels",
          "num_failed_labels", "num_failed_samples")
#: parameters every worker must pass alike; recorded on the merged run
_SHARED = ("model_name", "pretrained", "context", "embeddings_attr", "letterbox_crops")


def iter_compute_label_embeddings_shard(
    sample_collection,
    shard_group: str,
    worker: str | None = None,
    chunk_size: int = 64,
    lease_s: float = 300.0,
    label_field: str = "autolabels",
    prompts: Sequence[str] | None = None,
    clip=None,
    **params,
) -> Iterator[Progress]:
    """Generator form of :func:`compute_label_embeddings_shard`; returns the worker's summary."""
    from .embeddings import _check_label_field, iter_compute_label_embeddings, load_clip

    shards.check_params(shard_group, lease_s, params, "embed each label")
    worker = shards.worker_name(worker)
    dataset = sample_collection._dataset
    dataset.reload()
    _check_label_field(sample_collection, label_field)
    workqueue.create(dataset, shard_group, sample_collection.values("id"), chunk_size)

    if clip is None:
        clip = load_clip(params.get("model_name", "ViT-B-32"), params.get("pretrained", "openai"),
                         device=params.get("device"))
    if prompts is None:
        # fixed for the group: the classes of the whole collection, not a chunk's
        prompts = sample_collection.distinct(f"{label_field}.detections.label")
    prompts = list(prompts)
    text_embeddings = clip.encode_texts(prompts) if prompts else None
    embeddings_attr = params.get("embeddings_attr", "embedding")

    run_key = shards.free_run_key(dataset, f"{shard_group}_{worker}")
    shared = dict(
        model_name=clip.model_name, pretrained=clip.pretrained, embedding_dim=clip.dim,
        context=float(params.get("context", 0.1)), embeddings_attr=embeddings_attr,
        letterbox_crops=bool(params.get("letterbox_crops", True)),
    )
    record = provenance.start_run(
        dataset, run_key, method=METHOD, shard_group=shard_group, worker=worker,
        label_field=label_field, prompts=prompts, chunk_size=chunk_size, lease_s=lease_s,
        device=clip.device, **shared,
    )
    tally = shards.Tally(COUNTS)

    def summary(status):
        return dict(tally.fields(), run_key=run_key, shard_group=shard_group, worker=worker,
                    status=status, label_field=label_field, prompts=prompts,
                    text_embeddings=None if text_embeddings is None else text_embeddings.tolist())

    def run_chunk(doc):
        return iter_compute_label_embeddings(
            sample_collection.select(doc["sample_ids"]), label_field=label_field,
            overwrite=False, clip=clip, prompts=[], record_run=False, run_key=run_key,
            **params,
        )

    def on_chunk_done(doc, out, marked):
        tally.add(doc, out, marked)
        provenance.finish_run(dataset, run_key, record, summary("running"))

    with provenance.recorded_run(dataset, run_key, record, summary) as run:
        # the embedding generator counts crops, not samples: progress per chunk
        yield from shards.iter_chunks(dataset, shard_group, worker, lease_s, run_chunk,
                                      on_chunk_done, samples_progress=False)
    out = run.summary
    if shards.drained(dataset, shard_group):
        out["merged"] = merge_embedding_shard_runs(dataset, shard_group)
    return out


def compute_label_embeddings_shard(
    sample_collection,
    shard_group: str,
    worker: str | None = None,
    chunk_size: int = 64,
    lease_s: float = 300.0,
    progress: bool | Callable[[Progress], None] = True,
    **params,
) -> dict:
    """Embeds the labels of a share of ``sample_collection`` as one worker of ``shard_group``.

    Start it on as many workers (processes, GPUs, machines) as you like,
    with the same collection, group and parameters and the same database;
    see the module docstring for the protocol. A worker stops when no chunk
    is left; it can be stopped (even killed) and started again any time.

    Example usage::

        # on each machine, same FIFTYONE_DATABASE_URI
        compute_label_embeddings_shard(
            fo.load_dataset("big"), "big_emb1", label_field="autolabels",
            model_name="ViT-B-32", pretrained="openai", device="cuda:0",
        )

    Args:
        sample_collection: a dataset or view of images (every worker must
            pass the same one: the first worker fixes the chunks)
        shard_group: the group's name, a valid identifier, not used by
            another scale-out run of this dataset; also the key of the
            merged run record
        worker: this worker's name (default ``<host>_<pid>``); its run
            record is ``<group>_<worker>``
        chunk_size: samples per chunk (used by the worker that creates the
            queue)
        lease_s: a claimed chunk whose worker has not renewed its lease for
            this long (it renews after every image) is claimed again
        progress: as for :func:`~.embeddings.compute_label_embeddings`
        **params: the other parameters of
            :func:`~.embeddings.compute_label_embeddings` (``overwrite`` and
            ``run_key`` are refused)

    Returns:
        the worker's summary (its counts and the chunks it finished), with
        ``merged`` (the merged record's counts) if this worker saw the queue
        drained
    """
    return run_progress(
        iter_compute_label_embeddings_shard(sample_collection, shard_group, worker=worker,
                                            chunk_size=chunk_size, lease_s=lease_s, **params),
        progress,
    )


def merge_embedding_shard_runs(dataset, shard_group: str) -> dict:
    """(Re)writes the merged record of embedding group ``shard_group`` under key ``shard_group``.

    Sums the counts of the group's worker records and counts, in the
    database, the group's labels and those holding an embedding. The
    record's method is ``compute_label_embeddings`` (what ``score_labels``
    looks for), ``completed`` once every chunk is done. Idempotent: any
    worker may call it any number of times.

    Returns:
        the merged record's counts and its workers
    """
    from fiftyone import ViewField as F

    dataset.reload()
    workers, sums, base, started = [], dict.fromkeys(COUNTS, 0), None, []
    for key in dataset.list_runs():
        cfg = dataset.get_run_info(key).config
        if getattr(cfg, "stoplight_method", None) != METHOD or getattr(cfg, "shard_group", None) != shard_group:
            continue
        workers.append(dict(run_key=key, worker=cfg.worker, status=cfg.status))
        for k in COUNTS:
            sums[k] += getattr(cfg, k, 0) or 0
        started.append(getattr(cfg, "started_at", None) or "")
        if base is None or cfg.status == "completed":
            base = key, cfg
    if base is None:
        raise ValueError(f"No worker of embedding group {shard_group!r} has recorded a run "
                         f"on dataset {dataset.name!r}")
    key, cfg = base
    label_field, attr = cfg.label_field, cfg.embeddings_attr
    # the text embeddings every worker computed alike (same model, same prompts)
    results = provenance.load_run_results(dataset, key)
    state = workqueue.progress(dataset, shard_group)
    labels = embedded = 0
    for doc in workqueue.chunks(dataset, shard_group):
        view = dataset.select(doc["sample_ids"])
        labels += view.count(f"{label_field}.detections")
        embedded += view.filter_labels(label_field, F(attr).exists(), only_matches=False).count(
            f"{label_field}.detections"
        )
    record = dict(
        {k: getattr(cfg, k, None) for k in (*_SHARED, "embedding_dim", "prompts")},
        stoplight_method="compute_label_embeddings", shard_group=shard_group,
        label_field=label_field, status="completed" if state["done"] == state["chunks"] else "running",
        started_at=min(started) if started else None, ended_at=provenance._now(),
        versions=provenance.package_versions(), workers=workers, num_chunks=state["chunks"],
        num_done_chunks=state["done"], num_group_samples=state["samples"],
        num_labels_in_field=labels, num_labels_with_embedding=embedded, **sums,
    )
    shards.write_merged_record(dataset, shard_group, record,
                               text_embeddings=getattr(results, "text_embeddings", None))
    return {k: v for k, v in record.items() if k.startswith("num_")} | {"workers": workers}
