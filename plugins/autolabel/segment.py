"""Instance masks for chosen labels: box-prompted SAM / SAM 2.

:func:`segment_labels` prompts a segmenter (:mod:`.sam`) with the box of
each chosen label and writes the mask onto the *same* label as FiftyOne's
instance mask (``mask``: a boolean array covering the label's box, see
:mod:`..common.masks`), with two quality scores:

==================== =========================================================
attribute            meaning
==================== =========================================================
``mask``             the instance mask (FiftyOne's ``Detection.mask``)
``mask_iou``         the model's own prediction of the mask's IoU with the
                     object (SAM's IoU head), in ``[0, 1]``; higher is better
``mask_stability``   stability score: IoU of the mask thresholded at logit
                     ``+1`` and at ``-1`` (SAM's automatic mask generator
                     uses it to drop masks that change with the threshold),
                     computed inside the box at the image's resolution; in
                     ``[0, 1]``, 0 for an empty mask; higher is better
==================== =========================================================

Only these three attributes are written, each label addressed by its id
*and* the box the mask was computed from: a label whose box changed
meanwhile (a person corrected it) is left alone and counted. The label's
box, class, scores, queue and review decision are never written.

Which labels (``include``, see :mod:`..common.kept_labels`): by default
the accepted and the green ones nobody rejected; or ``label_ids``. With
``overwrite=False`` labels that already have a mask are skipped, so an
interrupted run resumes. Every run is recorded (method ``segment_labels``).

Both scores are label attributes any triage step can read: pass them to
``calibrate_triage(signals=[..., "mask_iou", "mask_stability"])``. They are
not among its default signals on purpose: by default masks are computed for
accepted and green labels only, so on the verified labels *having* a mask
would tell accepted from rejected ones; calibrate on them after a run with
``include="all"`` (every label scored alike).

``finalize_labels`` copies ``mask``, ``mask_iou`` and ``mask_stability``
with each kept label.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Iterator, Sequence

import numpy as np

from ..common import fo_private, provenance
from ..common.kept_labels import check_include, is_kept
from ..common.label_attrs import declare_label_attrs
from ..common.masks import box_pixel_bounds, mask_to_mongo, resize_crop
from ..common.prefetch import prefetch
from ..common.progress import Progress, sdk_function
from ..common.images import ImageLoadError, load_image
from ..common.provenance import MAX_RECORDED_FAILURES
from ..common.label_vocab import DEFAULT_LABEL_FIELD

logger = logging.getLogger(__name__)

#: label attributes this module writes (besides FiftyOne's own ``mask``)
MASK_ATTRS = ("mask_iou", "mask_stability")
#: logit offset of the stability score (SAM's automatic mask generator)
STABILITY_OFFSET = 1.0

def mask_and_stability(logits: np.ndarray, box: Sequence[float], width: int, height: int,
                       offset: float = STABILITY_OFFSET) -> tuple[np.ndarray, float]:
    """The instance mask of a box and its stability score.

    Args:
        logits: ``(h, w)`` mask logits over the whole image
        box: the label's relative ``[x, y, w, h]``
        width: image width in pixels
        height: image height in pixels
        offset: the stability score's logit offset

    Returns:
        ``(mask, stability)``: the mask is ``crop_mask(logits, box, width,
        height, threshold=0)`` (FiftyOne's convention: the box's pixels);
        stability = ``|logit > +offset| / |logit > -offset|`` over those
        pixels, 0.0 when both are empty
    """
    soft = resize_crop(logits, box_pixel_bounds(box, width, height), width, height)
    with np.errstate(invalid="ignore"):
        mask = soft > 0.0
        inner = int((soft > offset).sum())
        outer = int((soft > -offset).sum())
    return mask, (inner / outer if outer else 0.0)


@dataclasses.dataclass
class _Target:
    """One sample's labels to segment."""

    sample_id: str
    filepath: str
    label_ids: list[str]
    boxes: list[list[float]]


@dataclasses.dataclass
class _Loaded:
    targets: list[_Target]
    sizes: list[tuple[int, int]]
    inputs: Any
    failures: list[dict]


def select_targets(sample_collection, label_field: str, include: str = "accepted+green",
                   label_ids: Sequence[str] | None = None, overwrite: bool = False) -> tuple[list, dict]:
    """The labels a run segments, grouped by sample.

    Args:
        sample_collection: a dataset or view (label filters of the view
            apply; in a patches view, its labels)
        label_field: an ``fo.Detections`` field
        include: ``accepted``, ``accepted+green`` or ``all``
        label_ids: exactly these labels (``include`` is then ignored)
        overwrite: also labels that already have a mask

    Returns:
        ``(targets, counts)``: per-sample targets in collection order, and
        ``num_candidates`` (labels chosen) and ``num_skipped`` (chosen but
        already masked)

    Raises:
        ValueError: for an unknown label id
    """
    from fiftyone import ViewField as F

    dataset = fo_private.root_dataset(sample_collection)
    view = sample_collection
    if label_ids is not None:
        wanted = list(dict.fromkeys(str(i) for i in label_ids))
        view = dataset.select_labels(ids=wanted, fields=label_field)
    elif fo_private.is_patches(sample_collection):
        ids = sample_collection.values(f"{label_field}.id")
        view = dataset.select_labels(ids=[i for i in ids if i], fields=label_field)
    lp = f"{label_field}.detections"
    sids, paths, lids, boxes, reviews, queues, masked = view.values(
        ["id", "filepath", f"{lp}.id", f"{lp}.bounding_box", f"{lp}.review", f"{lp}.queue",
         F(lp).map(F("mask").exists())]
    )
    if label_ids is not None:
        found = {i for per in lids for i in (per or [])}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise ValueError(
                f"{len(missing)} label id(s) not found in field {label_field!r} of dataset "
                f"'{dataset.name}', e.g. {missing[:5]}"
            )
    targets, counts = [], dict(num_candidates=0, num_skipped=0)
    for sid, path, ids, bxs, revs, qs, has in zip(sids, paths, lids, boxes, reviews, queues, masked):
        t = _Target(sid, path, [], [])
        for lid, box, rev, q, m in zip(ids or [], bxs or [], revs or [], qs or [], has or []):
            if label_ids is None and not is_kept(rev, q, include):
                continue
            counts["num_candidates"] += 1
            if m and not overwrite:
                counts["num_skipped"] += 1
                continue
            t.label_ids.append(lid)
            t.boxes.append(list(box))
        if t.label_ids:
            targets.append(t)
    return targets, counts


def _load(segmenter, targets: list[_Target]) -> _Loaded:
    """Decodes a batch's images and prepares them with their boxes (a
    background thread: CPU work only)."""
    ok, images, sizes, failures = [], [], [], []
    for t in targets:
        try:
            img = load_image(t.filepath)
        except ImageLoadError as e:
            failures.append(dict(sample_id=t.sample_id, filepath=t.filepath, error=str(e),
                                 num_labels=len(t.label_ids)))
            continue
        ok.append(t)
        images.append(img)
        sizes.append((img.shape[1], img.shape[0]))
    inputs = None
    if images:
        pixel_boxes = [
            np.asarray([[x * w, y * h, (x + bw) * w, (y + bh) * h] for x, y, bw, bh in t.boxes])
            for t, (w, h) in zip(ok, sizes)
        ]
        inputs = segmenter.prepare(images, pixel_boxes)
    return _Loaded(ok, sizes, inputs, failures)


def write_masks(dataset, label_field: str, rows: Sequence[tuple[str, str, list, np.ndarray, float, float]]) -> int:
    """Writes masks and their scores onto labels, guarded by their boxes.

    Args:
        dataset: the dataset holding the labels
        label_field: the ``fo.Detections`` field
        rows: ``(sample_id, label_id, box, mask, mask_iou, mask_stability)``;
            ``box`` is the relative box the mask was computed from

    Returns:
        the number of labels whose box no longer equals ``box`` (not written)
    """
    import datetime

    from bson import ObjectId
    from pymongo import UpdateOne

    if not rows:
        return 0
    lp = f"{label_field}.detections"
    by_sample: dict[str, list] = {}
    for row in rows:
        by_sample.setdefault(row[0], []).append(row)
    # boxes as stored now: a label corrected since its mask was computed is
    # counted (the array filter below would skip it anyway, race-free)
    current = {}
    for doc in fo_private.sample_collection(dataset).find({"_id": {"$in": [ObjectId(s) for s in by_sample]}},
                                               {f"{lp}._id": 1, f"{lp}.bounding_box": 1}):
        for lab in (doc.get(label_field) or {}).get("detections") or []:
            current[str(lab["_id"])] = lab.get("bounding_box")
    changed = sum(current.get(r[1]) != list(r[2]) for r in rows)
    now = datetime.datetime.utcnow()  # FiftyOne's last_modified_at is naive UTC
    ops = []
    for sid, sample_rows in by_sample.items():
        update: dict[str, Any] = {"last_modified_at": now}
        filters = []
        for j, (_, lid, box, mask, iou, stab) in enumerate(sample_rows):
            filters.append({f"m{j}._id": ObjectId(lid), f"m{j}.bounding_box": list(box)})
            update[f"{lp}.$[m{j}].mask"] = mask_to_mongo(mask)
            update[f"{lp}.$[m{j}].mask_iou"] = float(iou)
            update[f"{lp}.$[m{j}].mask_stability"] = float(stab)
        ops.append(UpdateOne({"_id": ObjectId(sid)}, {"$set": update}, array_filters=filters))
    fo_private.bulk_write(dataset, ops, ids=list(by_sample))
    return changed


def _check(sample_collection, label_field, batch_size, write_every, num_workers) -> None:
    from ..common.fields import check_detections_field

    if sample_collection.media_type != "image":
        raise ValueError(
            f"segment_labels works on image labels; the view has media type {sample_collection.media_type!r} "
            "(video tracks get their masks from track_labels)"
        )
    check_detections_field(fo_private.root_dataset(sample_collection), label_field, "label_field")
    for name, value in (("batch_size", batch_size), ("write_every", write_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"Parameter '{name}' must be a positive integer; got {value!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"Parameter 'num_workers' must be >= 0; got {num_workers!r}")


def iter_segment_labels(
    sample_collection,
    label_field: str = DEFAULT_LABEL_FIELD,
    model: str = "sam2",
    checkpoint: str | None = None,
    include: str = "accepted+green",
    label_ids: Sequence[str] | None = None,
    overwrite: bool = False,
    batch_size: int = 8,
    boxes_per_pass: int = 64,
    device: str | None = None,
    fp16: bool | None = None,
    num_workers: int | None = None,
    write_every: int = 64,
    run_key: str | None = None,
    segmenter=None,
) -> Iterator[Progress]:
    """Computes instance masks for chosen labels with box-prompted SAM / SAM 2.

    Written once as a generator: ``iter_segment_labels`` yields
    :class:`Progress` events (operators forward them to the App) and returns
    the summary; ``segment_labels`` runs it to its end with a progress bar
    and returns the summary (:func:`..common.progress.sdk_function`).

    Each label's box prompts the segmenter; the mask (cropped to the box,
    FiftyOne's ``Detection.mask``), ``mask_iou`` and ``mask_stability`` are
    written onto the same label (module docstring). Box, class, scores and
    review decisions are never written.

    Example usage::

        from stoplight.plugins.autolabel.segment import segment_labels

        summary = segment_labels(dataset, "autolabels", model="sam2")
        dataset.filter_labels("autolabels", F("mask_iou") < 0.7)  # doubtful masks

    Args:
        sample_collection: a dataset or view of images (label filters apply)
        label_field: the ``fo.Detections`` field
        model: ``"sam2"`` (SAM 2.1) or ``"sam"``
        checkpoint: hub id or local folder; ``None`` uses the model's
            default (``facebook/sam2.1-hiera-tiny``, ``facebook/sam-vit-base``)
        include: ``accepted+green`` (default), ``accepted`` or ``all``
        label_ids: segment exactly these labels instead
        overwrite: also labels that already have a mask (default: skip
            them, so interrupted runs resume)
        batch_size: images per vision pass
        boxes_per_pass: boxes of one image per mask-decoder pass
        device: torch device; ``None`` uses CUDA when available
        fp16: half precision; ``None`` means on CUDA only
        num_workers: threads decoding and preparing upcoming batches
        write_every: masks buffered between bulk writes
        run_key: key of the run record; ``None`` generates one
        segmenter: an already loaded segmenter (:func:`.sam.load_segmenter`)
        progress: ``segment_labels`` only: progress bar (``True``), none, or a
            callable receiving :class:`Progress` events

    Returns:
        the run summary: ``num_candidates`` (labels chosen),
        ``num_skipped`` (already masked), ``num_segmented``,
        ``num_box_changed`` (box edited during the run: not written),
        ``num_failed_samples`` / ``num_failed_labels`` (images that failed
        to decode), ``failures``, ``timings``, ``run_key``
    """
    from .sam import load_segmenter

    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1)
    _check(sample_collection, label_field, batch_size, write_every, num_workers)
    if label_ids is None:
        check_include(include)
    dataset = fo_private.root_dataset(sample_collection)
    dataset.reload()  # another process may have written masks meanwhile
    targets, counts = select_targets(sample_collection, label_field, include, label_ids, overwrite)
    if segmenter is None:
        segmenter = load_segmenter(model, checkpoint, device=device, fp16=fp16, boxes_per_pass=boxes_per_pass)
    run_key = run_key or provenance.new_run_key(f"segment_{label_field}")
    record = provenance.start_run(
        dataset, run_key, method="segment_labels", model=segmenter.name, checkpoint=segmenter.checkpoint,
        label_field=label_field, include=None if label_ids is not None else include,
        num_label_ids=None if label_ids is None else len(label_ids), overwrite=bool(overwrite),
        batch_size=batch_size, device=segmenter.device, fp16=segmenter.fp16, **counts,
    )
    total = sum(len(t.label_ids) for t in targets)
    state = dict(segmented=0, changed=0, failed=0, labels_failed=0)
    failures: list[dict] = []
    timings = dict(load_s=0.0, predict_s=0.0, masks_s=0.0, write_s=0.0)
    pending: list = []

    def flush():
        if pending:
            t0 = time.perf_counter()
            state["changed"] += write_masks(dataset, label_field, pending)
            state["segmented"] += len(pending)
            pending.clear()
            timings["write_s"] += time.perf_counter() - t0

    def summary(status):
        return dict(
            counts, run_key=run_key, label_field=label_field, model=segmenter.name,
            checkpoint=segmenter.checkpoint, status=status, num_target_labels=total,
            num_segmented=state["segmented"] - state["changed"], num_box_changed=state["changed"],
            num_failed_samples=state["failed"], num_failed_labels=state["labels_failed"],
            failures=failures, timings={k: round(v, 4) for k, v in timings.items()},
        )

    declare_label_attrs(dataset, f"{label_field}.detections", dict.fromkeys(MASK_ATTRS, "FloatField"))
    yield Progress(0, total, f"Segmenting {total} labels with {segmenter.name}")
    batches = [(segmenter, targets[i : i + batch_size]) for i in range(0, len(targets), batch_size)]
    with provenance.recorded_run(dataset, run_key, record, summary, flush) as run:
        done = 0
        t0 = time.perf_counter()
        for loaded in prefetch(batches, _load, num_workers):
            timings["load_s"] += time.perf_counter() - t0
            for f in loaded.failures:
                state["failed"] += 1
                state["labels_failed"] += f["num_labels"]
                logger.warning("Sample %s (%s): %s", f["sample_id"], f["filepath"], f["error"])
                if len(failures) < MAX_RECORDED_FAILURES:
                    failures.append(f)
            if loaded.targets:
                done += _segment_batch(segmenter, loaded, pending, timings)
            done_all = done + state["labels_failed"]
            if len(pending) >= write_every:
                flush()
            yield Progress(done_all, total, f"Segmented {done_all}/{total} labels")
            t0 = time.perf_counter()
    return run.summary


segment_labels = sdk_function(iter_segment_labels, "segment_labels")


def _segment_batch(segmenter, loaded: _Loaded, pending: list, timings: dict) -> int:
    """Predicts one loaded batch and queues its masks for writing."""
    t0 = time.perf_counter()
    results = segmenter.predict(loaded.inputs)
    t1 = time.perf_counter()
    n = 0
    for t, (w, h), res in zip(loaded.targets, loaded.sizes, results):
        for lid, box, logits, iou in zip(t.label_ids, t.boxes, res.logits, res.iou):
            mask, stability = mask_and_stability(logits, box, w, h)
            pending.append((t.sample_id, lid, box, mask, float(iou), stability))
            n += 1
    timings["predict_s"] += t1 - t0
    timings["masks_s"] += time.perf_counter() - t1
    return n
