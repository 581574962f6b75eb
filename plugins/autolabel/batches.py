"""One batch of a labeling run: decode, predict, post-process, write.

These steps are shared by both executors of :mod:`.pipeline`: its own loop
in this process (decoding runs ahead in threads, writes are buffered), and
the Ray actors of :mod:`.ray_labeling`. What a batch writes keeps the
labels a person decided (:func:`write_labels`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Mapping, Sequence

import numpy as np

from ..common import bulk
from ..common.label_vocab import CANDIDATE_SOURCE_ATTR, HUMAN_DECISIONS, MISSING_QUEUE
from .backends import Predictions, ZeroShotDetector
from ..common.images import ImageLoadError, load_image
from .detections import ImageDetections, detections_doc, postprocess
from .ontology import Ontology

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedBatch:
    """A batch of decoded images and the backend's prepared inputs."""

    ids: list[str]
    paths: list[str]
    sizes: list[tuple[int, int]]  # (width, height) after EXIF orientation
    images: list[np.ndarray]
    inputs: Any
    failures: list[dict]
    decode_s: float
    prepare_s: float
    #: set when every image of the batch failed ``prepare`` on its own
    prepare_error: BaseException | None = None


@dataclasses.dataclass
class BatchLabels:
    """What :func:`label_batch` made of a loaded batch."""

    #: ``{sample_id: fo.Detections document}`` of the images the model labeled
    docs: dict[str, dict]
    #: ``{sample_id, filepath, error}`` of the images the model failed on
    failures: list[dict]
    #: ``{sample_id, filepath, warning}`` of images with invalid predictions
    warnings: list[dict]
    num_invalid: int
    predict_s: float
    postprocess_s: float
    #: ``{sample_id: fo.Detections document}`` of the boxes scoring in
    #: ``[candidates_threshold, confidence_threshold)``, each with
    #: ``queue="missing"`` (empty unless candidates were asked for)
    candidate_docs: dict[str, dict] = dataclasses.field(default_factory=dict)


def write_labels(
    sample_collection, label_field: str, docs: Mapping[str, dict], only_unlabeled: bool = False
) -> int:
    """Writes labeling documents, keeping the labels a person decided.

    Human decisions stay on an overwrite: no run replaces a person's work
    (new labels repeating them are dropped before, see :func:`label_batch`).
    The merge is atomic per sample (:func:`..common.bulk.write_detections_keeping`).

    Args:
        sample_collection: the collection whose dataset holds the samples
        label_field: the ``fo.Detections`` field
        docs: ``{sample_id: fo.Detections document}``
        only_unlabeled: write only samples whose field is still empty when
            the update runs (checked atomically), so that a batch labeled
            twice (a retried one) writes each sample once

    Returns:
        the number of samples written
    """
    only_if = {label_field: None} if only_unlabeled else None
    return bulk.write_detections_keeping(
        sample_collection, label_field, docs, "review", HUMAN_DECISIONS, only_if=only_if
    )


def load_batch(detector, ids: Sequence[str], paths: Sequence[str]) -> LoadedBatch:
    """Decodes a batch's images and runs the backend's ``prepare`` on them.

    Images that cannot be decoded, or that the processor rejects on their
    own, are left out and listed in ``failures``; the rest keep their order.
    """
    t0 = time.perf_counter()
    ok_ids, ok_paths, sizes, images, failures = [], [], [], [], []
    for sid, path in zip(ids, paths):
        try:
            img = load_image(path)
        except ImageLoadError as e:
            failures.append(dict(sample_id=sid, filepath=path, error=str(e)))
            continue
        ok_ids.append(sid)
        ok_paths.append(path)
        images.append(img)
        sizes.append((img.shape[1], img.shape[0]))
    t1 = time.perf_counter()
    inputs, prepare_error = None, None
    if images:
        try:
            inputs = detector.prepare(images)
        except Exception as batch_error:  # noqa: BLE001 - isolated below
            # one image the processor rejects must not fail its batch-mates
            logger.warning("Preparing a batch failed (%s); preparing its images one by one", batch_error)
            path_of = dict(zip(ids, paths))
            kept = []
            for i, (sid, img) in enumerate(zip(ok_ids, images)):
                path = path_of[sid]
                try:
                    detector.prepare([img])
                    kept.append(i)
                except Exception as e:  # noqa: BLE001 - recorded per sample
                    failures.append(dict(
                        sample_id=sid, filepath=path,
                        error=f"Cannot prepare image {path} for the model: {type(e).__name__}: {e}",
                    ))
            if not kept:
                prepare_error = batch_error
            ok_ids = [ok_ids[i] for i in kept]
            ok_paths = [ok_paths[i] for i in kept]
            sizes = [sizes[i] for i in kept]
            images = [images[i] for i in kept]
            inputs = detector.prepare(images) if images else None
    return LoadedBatch(
        ok_ids, ok_paths, sizes, images, inputs, failures, t1 - t0, time.perf_counter() - t1, prepare_error
    )


def label_batch(
    detector: ZeroShotDetector,
    batch: LoadedBatch,
    onto: Ontology,
    confidence_threshold: float,
    class_agnostic_nms: bool,
    nms_iou: float,
    decided: Mapping[str, list] | None = None,
    systematic_if_all: bool = False,
    candidates_threshold: float | None = None,
    candidates_decided: Mapping[str, list] | None = None,
) -> BatchLabels:
    """The labels of one loaded batch: predict, post-process, serialize.

    This is one step of a labeling run, whichever executor runs it (this
    module's loop, or a Ray actor, :mod:`.ray_labeling`). A batch that
    fails in the model is retried image by image; images that fail alone
    are returned in ``failures`` (see :func:`predict_isolating_failures`
    for ``systematic_if_all``). New labels repeating a decided label of
    ``decided`` (:func:`decided_boxes`) are dropped.

    With ``candidates_threshold``, the boxes scoring in
    ``[candidates_threshold, confidence_threshold)`` go to
    ``candidate_docs`` (see :func:`candidate_doc`), less those repeating
    a decided box of ``candidates_decided`` (default ``decided``).
    """
    path_of = dict(zip(batch.ids, batch.paths))
    failures: list[dict] = []
    warnings: list[dict] = []
    docs: dict[str, dict] = {}
    candidates: dict[str, dict] = {}
    num_invalid = 0

    def fail(sid, filepath, error):
        failures.append(dict(sample_id=sid, filepath=filepath, error=str(error)))

    t0 = time.perf_counter()
    preds = predict_isolating_failures(detector, batch, path_of, fail, systematic_if_all)
    t1 = time.perf_counter()
    with bulk.gc_paused():  # many small label dicts: see bulk.gc_paused
        for sid, path, (w, h), pred in zip(batch.ids, batch.paths, batch.sizes, preds):
            if pred is None:
                continue
            dets = postprocess(pred, onto, w, h, confidence_threshold, class_agnostic_nms, nms_iou)
            if dets.num_invalid:
                num_invalid += dets.num_invalid
                msg = (
                    f"{dets.num_invalid} predictions with a NaN/infinite box or score, "
                    "or a score outside [0, 1], dropped"
                )
                logger.warning("Sample %s (%s): %s", sid, path, msg)
                warnings.append(dict(sample_id=sid, filepath=path, warning=msg))
            doc = detections_doc(dets, onto)
            if decided and sid in decided:
                doc["detections"] = _drop_duplicates(doc["detections"], decided[sid])
            docs[sid] = doc
            if candidates_threshold is not None:
                low = postprocess(pred, onto, w, h, candidates_threshold, class_agnostic_nms, nms_iou)
                answered = decided if candidates_decided is None else candidates_decided
                candidates[sid] = candidate_doc(low, onto, confidence_threshold, (answered or {}).get(sid))
    return BatchLabels(docs, failures, warnings, num_invalid, t1 - t0, time.perf_counter() - t1, candidates)


def candidate_doc(low: ImageDetections, onto: Ontology, confidence_threshold: float,
                  decided: list | None = None) -> dict:
    """The missed-object candidates of one image: the boxes of ``low`` (post-
    processed at the lower, candidates threshold) scoring below
    ``confidence_threshold``, each with ``queue="missing"`` and
    ``candidate_source="below_threshold"``.

    NMS is greedy by score, so a box above ``confidence_threshold`` is kept
    or suppressed alike at either threshold: the labels plus these
    candidates are exactly the boxes the lower threshold alone would give.
    Candidates repeating a decided label or candidate of ``decided`` (same
    class, IoU >= 0.5) are dropped: a person answered them already.
    """
    below = low.confidence < confidence_threshold
    picked = ImageDetections(
        boxes=low.boxes[below], labels=low.labels[below], confidence=low.confidence[below],
        class_scores=None if low.class_scores is None else low.class_scores[below],
        masks=None if low.masks is None else [m for m, b in zip(low.masks, below) if b],
    )
    doc = detections_doc(picked, onto)
    for d in doc["detections"]:
        d["queue"] = MISSING_QUEUE
        d[CANDIDATE_SOURCE_ATTR] = "below_threshold"
    if decided:
        doc["detections"] = _drop_duplicates(doc["detections"], decided)
    return doc


def predict_isolating_failures(
    detector, batch: LoadedBatch, path_of, fail, systematic_if_all: bool = True
) -> list[Predictions | None]:
    """Predicts a batch; on error, retries image by image to find culprits.

    When every image also fails alone and ``systematic_if_all`` (nothing has
    been labeled yet in this run), the error is systematic and is raised,
    since continuing would only record the same failure for every sample.
    Once the model has labeled other images, failures are the images' own.
    """
    try:
        return detector.predict(batch.inputs)
    except Exception as batch_error:  # noqa: BLE001 - narrowed below
        if len(batch.ids) == 1 and systematic_if_all:
            raise
        logger.warning("Batch failed (%s); retrying its images one by one", batch_error)
    out: list[Predictions | None] = []
    errors: list[tuple[str, Exception]] = []
    for sid, img in zip(batch.ids, batch.images):
        try:
            out.append(detector.predict(detector.prepare([img]))[0])
        except Exception as e:  # noqa: BLE001 - recorded per sample below
            errors.append((sid, e))
            out.append(None)
    if len(errors) == len(batch.ids) and systematic_if_all:
        raise errors[0][1]
    for sid, e in errors:
        fail(sid, path_of[sid], f"The model failed on this image: {type(e).__name__}: {e}")
    return out


def decided_boxes(sample_collection, label_field: str) -> dict[str, list[tuple[str, list]]]:
    """``{sample_id: [(class, box)]}`` of the labels a person decided."""
    if not sample_collection.has_field(label_field):
        return {}
    from fiftyone import ViewField as F

    view = sample_collection.filter_labels(label_field, F("review").is_in(list(HUMAN_DECISIONS)))
    sids, labs, boxes = view.values(["id", f"{label_field}.detections.label",
                                     f"{label_field}.detections.bounding_box"])
    return {sid: list(zip(ls, bs)) for sid, ls, bs in zip(sids, labs, boxes) if ls}


def _drop_duplicates(new_docs: list, decided: list, iou: float = 0.5) -> list:
    """New label documents minus those that repeat a decided label (same
    class, IoU >= ``iou``)."""
    from .boxes import iou_xywh

    return [
        d for d in new_docs
        if not any(d["label"] == lab and iou_xywh(d["bounding_box"], box) >= iou for lab, box in decided)
    ]
