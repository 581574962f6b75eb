"""CLIP embeddings of each auto-label's box crop, stored on the label.

Each ``fo.Detection`` of a ``Detections`` field gets a per-label attribute
(``embedding`` by default): the L2-normalized CLIP image embedding of its
box crop, padded by ``context`` times the box size on each side and then
to a square with the image's mean color (so that CLIP's center crop keeps
the whole of an elongated box), as a list of floats. Storing the vector on
the label keeps it next to the box it describes: it follows the label
through views, filters and clones, a run that is interrupted keeps every
chunk written so far, and re-running with ``overwrite=False`` embeds only
the labels that have none yet.

The pipeline mirrors :mod:`..autolabel.pipeline`: ids, paths and boxes are
read in one bulk ``values()`` call, background threads decode images, crop
and preprocess upcoming samples while the model runs on the current batch
of crops (crops from several images share a forward pass), and embeddings
are written in bulk with ``set_label_values`` every ``write_every`` labels.

This module holds the run; the model lives in :mod:`.clip`, the crops in
:mod:`.crops` (both re-exported here), the Ray executor in
:mod:`.ray_embeddings`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Iterator, Sequence

import numpy as np

from ..common.run_tally import RunTally
from ..common.progress import Progress, sdk_function
from ..common import bulk, db_errors, fo_private, label_attrs, provenance
from ..common.fields import check_detections_field
from ..common.limits import check_count, check_int
from ..common.prefetch import prefetch
from ..common.ray_executor import RayExecutor, executor_from
from ..common.label_vocab import DEFAULT_LABEL_FIELD
from .clip import (  # noqa: F401  (re-exported: imported from here by callers)
    CHECKPOINT_NAME,
    TINY_MODEL_CONFIG,
    TINY_MODEL_NAME,
    ClipModel,
    build_random_clip,
    embedding_dim,
    encode_crops,
    load_clip,
)
from .crops import (  # noqa: F401  (re-exported: imported from here by callers)
    CropQueue,
    LabelCrops,
    crop_box,
    crop_boxes,
    letterbox,
    load_crops,
)


def write_embeddings(
    sample_collection, label_field: str, embeddings_attr: str, values: Sequence[dict]
) -> None:
    """Writes label embeddings in bulk.

    Args:
        sample_collection: the collection whose dataset holds the labels
        label_field: the ``fo.Detections`` field
        embeddings_attr: the per-label attribute
        values: ``{"sample_id", "label_id", "value"}`` dicts (vectors as lists)
    """
    path = f"{label_field}.detections.{embeddings_attr}"
    sample_collection.set_label_values(path, list(values), validate=False)


def _check_label_field(sample_collection, label_field: str) -> None:
    # the one check of a detections field, naming the parameter as every run does
    check_detections_field(sample_collection, label_field, "label_field")


def iter_compute_label_embeddings(
    sample_collection,
    label_field: str = DEFAULT_LABEL_FIELD,
    model_name: str = "ViT-B-32",
    pretrained: str | None = "openai",
    context: float = 0.1,
    batch_size: int = 64,
    embeddings_attr: str = "embedding",
    overwrite: bool = False,
    device: str | None = None,
    num_workers: int | None = None,
    write_every: int = 1024,
    prompts: Sequence[str] | None = None,
    run_key: str | None = None,
    clip: ClipModel | None = None,
    letterbox_crops: bool = True,
    record_run: bool = True,
    executor: str | RayExecutor | None = "local",
) -> Iterator[Progress]:
    """Stores a CLIP embedding of each label's box crop on the label.

    Written once as a generator: ``iter_compute_label_embeddings`` yields :class:`Progress`
    events (operators forward them to the App) and returns the summary;
    ``compute_label_embeddings`` runs it to its end with a progress bar and returns the summary
    (:func:`..common.progress.sdk_function`).

    Example usage::

        from stoplight.plugins.scoring.embeddings import compute_label_embeddings

        summary = compute_label_embeddings(
            ds, "autolabels", prompts=["a photo of a person", "a photo of a bus"]
        )
        ds.first().autolabels.detections[0].embedding   # a unit vector

    Args:
        sample_collection: a dataset or view of images
        label_field: a ``fo.Detections`` field
        model_name: open_clip architecture (see :func:`load_clip`)
        pretrained: open_clip tag or local checkpoint file
        context: padding on each side, as a fraction of the box size
        batch_size: crops per forward pass (crops of several images share one)
        embeddings_attr: the per-label attribute to write
        overwrite: recompute labels that already have ``embeddings_attr``;
            by default they are skipped, so an interrupted run resumes
        device: torch device; ``None`` uses CUDA when available
        num_workers: threads decoding, cropping and preprocessing upcoming
            images; ``None`` uses one per CPU core, at most 8
        write_every: labels buffered between bulk database writes
        prompts: class prompts whose text embeddings (same model) are
            returned as ``summary["text_embeddings"]`` (``(P, D)`` float32
            array) and stored in the run's results; ``None`` uses the class
            names present in ``label_field``, ``[]`` embeds no text
        run_key: key of the run record; ``None`` generates one
        clip: an already loaded :class:`ClipModel` to use
        letterbox_crops: pad each crop to a square with the image's mean
            color before CLIP's resize and center crop (see
            :func:`letterbox`); ``False`` feeds the crop as is, and the
            center crop cuts the ends of elongated boxes
        progress: ``compute_label_embeddings`` only: a progress bar (``True``), nothing (``False``), or a
            callable receiving :class:`Progress` events
        executor: ``"local"`` (this process), ``"ray"``, or a
            :class:`~..common.ray_executor.RayExecutor`: the crops are
            embedded by a pool of Ray actors, each loading the model once
            and writing its embeddings itself (see :mod:`.ray_embeddings`;
            ``clip`` is for the local executor only)
        record_run: ``iter_compute_label_embeddings`` only: with ``False`` no run record is
            written (the caller keeps one)

    Returns:
        the run summary: label counts (target, skipped, embedded, failed),
        failed samples, timings, the run key and the text embeddings (with
        Ray also the actors, worker processes and nodes that took part)
    """
    import fiftyone as fo

    ray_executor = executor_from(executor)
    if ray_executor is not None and clip is not None:
        raise ValueError("Parameter 'clip' cannot be used with the Ray executor: each Ray actor "
                         "loads its own model from 'model_name' and 'pretrained'")
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)
    _check_params(batch_size, num_workers, write_every, prompts, context, embeddings_attr)
    # another process (a killed or delegated run) may have declared the
    # embedding attribute since this dataset object was loaded; a stale
    # schema would make every label look unembedded and re-embed them all
    fo_private.view_dataset(sample_collection).reload()
    _check_label_field(sample_collection, label_field)

    todo = _labels_to_embed(sample_collection, label_field, embeddings_attr, overwrite)
    if prompts is None:
        # the classes present: score_labels' CLIP agreement needs a text
        # embedding of every class, with the class name as its prompt
        prompts = sample_collection.distinct(f"{label_field}.detections.label")
    prompts = list(prompts)
    if ray_executor is not None and todo.jobs:
        # (nothing to embed: the prompts are embedded here, as locally)
        from .ray_embeddings import iter_embed_on_ray

        settings = dict(
            label_field=label_field, model_name=model_name, pretrained=pretrained,
            context=float(context), batch_size=batch_size, embeddings_attr=embeddings_attr,
            overwrite=overwrite, device=device, letterbox_crops=bool(letterbox_crops),
            prompts=prompts,
        )
        return (yield from iter_embed_on_ray(
            sample_collection, ray_executor, todo.jobs, settings, run_key=run_key,
            num_target_labels=todo.num_target, num_skipped_labels=todo.num_skipped,
            record_run=record_run,
        ))
    if clip is None:
        clip = load_clip(model_name, pretrained, device=device)

    dataset = fo_private.view_dataset(sample_collection)
    run_key = run_key or provenance.new_run_key(f"{label_field}_{embeddings_attr}")
    record = None if not record_run else provenance.start_run(
        dataset,
        run_key,
        method="compute_label_embeddings",
        model_name=clip.model_name,
        pretrained=clip.pretrained,
        embedding_dim=clip.dim,
        label_field=label_field,
        embeddings_attr=embeddings_attr,
        context=float(context),
        letterbox_crops=bool(letterbox_crops),
        batch_size=batch_size,
        device=clip.device,
        overwrite=overwrite,
        prompts=prompts,
        num_target_labels=todo.num_target,
        num_skipped_labels=todo.num_skipped,
    )
    run = _EmbeddingRun(sample_collection, label_field, embeddings_attr, clip, run_key, prompts, todo)
    bulk.declare_field(dataset, label_field, fo.Detections, {embeddings_attr: fo.FloatField})
    total = todo.num_target - todo.num_skipped
    yield Progress(0, total, f"Embedding {total} labels with {clip.model_name}")

    with provenance.recorded_run(dataset, run_key, record, run.summary, flush=run.flush) as outcome:
        run.embed_prompts()

        def load(sid, fp, lids, boxes):
            return load_crops(clip, sid, fp, lids, boxes, context, letterbox_crops)

        items = prefetch(todo.jobs, load, num_workers, ahead=2 * num_workers, name="stoplight-embed")
        for item in items:
            run.take(item, batch_size, write_every)
            done = run.num_embedded + run.num_failed_labels
            yield Progress(done, total, f"Embedded {done}/{total} labels")
        run.finish()
        yield Progress(total, total, f"Embedded {run.num_embedded}/{total} labels")
    summary = outcome.summary
    summary["text_embeddings"] = run.text_embeddings
    return summary


def _check_params(batch_size, num_workers, write_every, prompts, context, embeddings_attr) -> None:
    """Raises ``ValueError`` for a parameter out of its range."""
    if not isinstance(write_every, int) or write_every < 1:
        raise ValueError(f"Parameter 'write_every' must be a positive integer; got {write_every!r}")
    # bounded: one request must not exhaust the App server's memory
    check_int(batch_size, "batch_size", 1, "embed_batch_size")
    check_int(num_workers, "num_workers", 0, "num_workers")
    if prompts is not None:
        check_count(len(prompts), "prompts", "prompts")
    if not (isinstance(context, (int, float)) and context >= 0):
        raise ValueError(f"Parameter 'context' must be >= 0; got {context!r}")
    # never one of the attributes Stoplight gives a meaning to (a review
    # decision, the box, a score): an overwrite would replace them all
    label_attrs.check_free_attr(embeddings_attr, "embeddings_attr")


@dataclasses.dataclass
class _LabelsToEmbed:
    """What a run has to embed (see :func:`_labels_to_embed`)."""

    #: ``(sample_id, filepath, label_ids, boxes)`` per sample with work left
    jobs: list[tuple]
    #: labels of the field in the collection
    num_target: int
    #: labels left alone because they already have an embedding
    num_skipped: int


def _labels_to_embed(
    sample_collection, label_field: str, embeddings_attr: str, overwrite: bool
) -> _LabelsToEmbed:
    """Reads ids, paths and boxes in one bulk call and keeps the labels to
    embed: all with ``overwrite``, else those without ``embeddings_attr``."""
    root = f"{label_field}.detections"
    has_attr = sample_collection.has_field(f"{root}.{embeddings_attr}")
    fields = ["id", "filepath", f"{root}.id", f"{root}.bounding_box"]
    if has_attr:
        fields.append(f"{root}.{embeddings_attr}")
    columns = list(sample_collection.values(fields))
    if not has_attr:
        columns.append([None] * len(columns[0]))

    jobs = []
    num_target = num_skipped = 0
    for sid, path, lids, boxes, embs in zip(*columns):
        todo_ids, todo_boxes = [], []
        for i, lid in enumerate(lids or []):
            num_target += 1
            if not overwrite and embs is not None and embs[i] is not None:
                num_skipped += 1
                continue
            todo_ids.append(lid)
            todo_boxes.append(boxes[i])
        if todo_ids:
            jobs.append((sid, path, todo_ids, todo_boxes))
    return _LabelsToEmbed(jobs, num_target, num_skipped)


class _EmbeddingRun(RunTally):
    """The state of one local embedding run: counts, failures, timings,
    crops waiting for a forward pass and embeddings waiting to be written.

    :func:`iter_compute_label_embeddings` drives it: :meth:`take` for each
    loaded image, :meth:`finish` at the end; :meth:`flush` and
    :meth:`summary` are what :func:`..common.provenance.recorded_run` calls
    however the run ends.
    """

    def __init__(
        self, sample_collection, label_field: str, embeddings_attr: str, clip: ClipModel,
        run_key: str, prompts: list[str], todo: _LabelsToEmbed,
    ) -> None:
        self.sample_collection = sample_collection
        self.label_field = label_field
        self.embeddings_attr = embeddings_attr
        self.clip = clip
        self.run_key = run_key
        self.prompts = prompts
        self.todo = todo
        super().__init__(timings=("decode_s", "prepare_s", "embed_s", "write_s", "text_s"),
                         path_of={job[0]: job[1] for job in todo.jobs})
        self.num_failed_samples = self.num_failed_labels = self.num_embedded = 0
        self.pending: list[dict] = []  # embeddings not yet written
        self.queue = CropQueue()
        self.text_embeddings: np.ndarray | None = None

    def embed_prompts(self) -> None:
        """Text embeddings of the prompts (none without prompts)."""
        if self.prompts:
            t0 = time.perf_counter()
            self.text_embeddings = self.clip.encode_texts(self.prompts)
            self.timings["text_s"] += time.perf_counter() - t0

    def take(self, item: LabelCrops, batch_size: int, write_every: int) -> None:
        """Queues one image's crops, embeds every full batch, and writes
        once ``write_every`` embeddings are pending."""
        self.timings["decode_s"] += item.decode_s
        self.timings["prepare_s"] += item.prepare_s
        if item.error is not None:
            self.num_failed_samples += 1
            self.num_failed_labels += len(item.label_ids)
            self.fail(item.sample_id, item.error, item.filepath)
        else:
            self.queue.add(item)
            while len(self.queue) >= batch_size:
                self._embed(batch_size)
        if len(self.pending) >= write_every:
            self.flush()

    def finish(self) -> None:
        """Embeds the last, partial batch and writes what is pending."""
        if len(self.queue):
            self._embed(len(self.queue))
        self.flush()

    def _embed(self, n: int) -> None:
        """Embeds the first ``n`` queued crops into :attr:`pending`."""
        pixels, ids = self.queue.pop(n)
        t0 = time.perf_counter()
        feats = encode_crops(
            self.clip, pixels, ids, self._crop_failed, systematic_if_all=self.num_embedded == 0
        )
        self.timings["embed_s"] += time.perf_counter() - t0
        for (sid, lid), vec in zip(ids, feats):
            if vec is not None:
                self.pending.append({"sample_id": sid, "label_id": lid, "value": vec.tolist()})
                self.num_embedded += 1

    def _crop_failed(self, sid: str, lid: str, error: BaseException) -> None:
        self.num_failed_labels += 1
        msg = f"embedding failed: {type(error).__name__}: {error}"
        self.fail(sid, msg, label_id=lid)

    def flush(self) -> None:
        """Writes the pending embeddings in one bulk call."""
        if not self.pending:
            return
        t0 = time.perf_counter()
        try:
            label_attrs.check_writable([self.embeddings_attr])
            write_embeddings(
                self.sample_collection, self.label_field, self.embeddings_attr, self.pending
            )
        except Exception as e:  # noqa: BLE001 - classified below
            if db_errors.is_connection_error(e):
                path = f"{self.label_field}.detections.{self.embeddings_attr}"
                dataset = fo_private.view_dataset(self.sample_collection)
                raise db_errors.unavailable(
                    e,
                    f"writing {len(self.pending)} embeddings to '{path}' of dataset '{dataset.name}'",
                    f"Embeddings written before are kept ({self.num_embedded - len(self.pending)} "
                    "labels); once the database is back, re-run with overwrite=False to embed the "
                    "remaining labels",
                ) from e
            raise
        self.timings["write_s"] += time.perf_counter() - t0
        self.pending.clear()

    def summary(self, status: str) -> dict:
        """The run summary (also stored in the run record)."""
        txt = self.text_embeddings
        return dict(
            run_key=self.run_key,
            label_field=self.label_field,
            embeddings_attr=self.embeddings_attr,
            model_name=self.clip.model_name,
            pretrained=self.clip.pretrained,
            embedding_dim=self.clip.dim,
            status=status,
            num_target_labels=self.todo.num_target,
            num_skipped_labels=self.todo.num_skipped,
            num_embedded_labels=self.num_embedded,
            num_failed_labels=self.num_failed_labels,
            num_failed_samples=self.num_failed_samples,
            failures=self.failures,
            prompts=self.prompts,
            text_embeddings=None if txt is None else txt.tolist(),
            timings=self.rounded_timings(),
        )


compute_label_embeddings = sdk_function(iter_compute_label_embeddings, "compute_label_embeddings", hidden=('record_run',))


def load_label_embeddings(
    sample_collection, label_field: str = DEFAULT_LABEL_FIELD, embeddings_attr: str = "embedding"
) -> tuple[list[str], list[str], np.ndarray]:
    """Reads the stored label embeddings back in bulk.

    Labels without an embedding are left out. The vectors come straight
    from MongoDB's raw BSON into one float32 array
    (:func:`..common.bulk.read_label_vectors`), without a Python float per
    number: at 100k x 512-d about 17 s with ``values()`` and 12 GB at 1M.

    Returns:
        ``(label_ids, sample_ids, embeddings)``: aligned lists of the label
        and sample ids, and an ``(N, D)`` float32 array

    Raises:
        ValueError: if the stored embeddings have different lengths
    """
    root = f"{label_field}.detections"
    if not sample_collection.has_field(f"{root}.{embeddings_attr}"):
        return [], [], np.zeros((0, 0), np.float32)
    sample_ids, label_ids, emb = bulk.read_label_vectors(sample_collection, root, embeddings_attr)
    return label_ids, sample_ids, emb
