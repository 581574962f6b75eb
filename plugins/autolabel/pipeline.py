"""Zero-shot auto-labeling of a FiftyOne collection.

The pipeline overlaps three stages: background threads decode images and
run the backend's CPU ``prepare`` step for upcoming batches while the
current batch is in the model's forward pass; finished labels are written to
the database in bulk every ``write_every`` samples. A run that is
interrupted keeps every chunk written so far, and re-running with
``overwrite=False`` continues with the samples that have no labels yet.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..common import bulk, provenance
from ..common import db_errors
from .backends import Predictions, ZeroShotDetector
from ..common.prefetch import prefetch
from ..common.progress import Progress
from ..common.progress import run as run_progress
from ..review.decisions import HUMAN_DECISIONS
from .detections import CLASS_SCORES_ATTR, detections_doc, postprocess
from .images import ImageLoadError, load_image
from .ontology import Ontology

logger = logging.getLogger(__name__)

#: at most this many failures are kept verbatim in the run record
MAX_RECORDED_FAILURES = 1000


@dataclasses.dataclass
class _Batch:
    ids: list[str]
    sizes: list[tuple[int, int]]  # (width, height) after EXIF orientation
    images: list[np.ndarray]
    inputs: Any
    failures: list[dict]
    decode_s: float
    prepare_s: float
    #: set when every image of the batch failed ``prepare`` on its own
    prepare_error: BaseException | None = None


def validate_label_field(sample_collection, label_field: str) -> None:
    """Checks that ``label_field`` is free or already holds ``Detections``.

    Raises:
        ValueError: naming the field and its current type otherwise
    """
    import fiftyone as fo

    if not label_field or not label_field.replace("_", "a").isalnum():
        raise ValueError(
            f"Parameter 'label_field' must be a plain field name; got {label_field!r}"
        )
    if label_field.startswith("_") or label_field in ("id", "filepath", "tags", "metadata"):
        raise ValueError(f"Parameter 'label_field' cannot be {label_field!r}")
    field = sample_collection.get_field(label_field)
    if field is None:
        return
    doc_type = getattr(field, "document_type", None)
    if doc_type is not fo.Detections:
        raise ValueError(
            f"Field '{label_field}' already exists with type "
            f"{type(field).__name__}({getattr(doc_type, '__name__', '')}); "
            "choose another 'label_field' (auto-labels are fo.Detections)"
        )


def iter_zero_shot_detect(
    sample_collection,
    backend: str = "owlv2",
    classes: Sequence[str] | str | None = None,
    ontology: Mapping[str, str] | str | None = None,
    checkpoint: str | None = None,
    label_field: str = "autolabels",
    confidence_threshold: float = 0.2,
    batch_size: int = 8,
    device: str | None = None,
    overwrite: bool = False,
    class_agnostic_nms: bool = False,
    nms_iou: float = 0.5,
    num_workers: int | None = None,
    write_every: int = 256,
    fp16: bool | None = None,
    backend_options: dict | None = None,
    run_key: str | None = None,
    detector: ZeroShotDetector | None = None,
    record_run: bool = True,
) -> Iterator[Progress]:
    """Generator form of :func:`zero_shot_detect`.

    Yields :class:`Progress` events and returns the run summary (the
    ``StopIteration`` value), so that operators can forward progress to the
    App. Arguments are those of :func:`zero_shot_detect`; with
    ``record_run=False`` no run record is written (the caller keeps one, as
    :func:`iter_zero_shot_detect_shard` does for its chunks).
    """
    from .models import load_detector

    onto = Ontology.from_params(classes=classes, ontology=ontology)
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)
    _check_params(confidence_threshold, batch_size, nms_iou, num_workers, write_every)
    if sample_collection.media_type != "image":
        raise ValueError(
            f"zero_shot_detect works on image datasets; "
            f"'{sample_collection._dataset.name}' has media type "
            f"{sample_collection.media_type!r}"
        )
    # Another process (a killed or delegated run, the App) may have declared
    # the field since this dataset object was loaded. With the stale schema
    # every sample would look unlabeled, and a resume would relabel them all,
    # replacing the labels (and reviews) stored meanwhile.
    sample_collection._dataset.reload()
    validate_label_field(sample_collection, label_field)

    total_target = len(sample_collection)
    todo = sample_collection
    if not overwrite and sample_collection.has_field(label_field):
        todo = sample_collection.exists(label_field, False)
    ids, paths = todo.values(["id", "filepath"])
    skipped = total_target - len(ids)
    decided_boxes = _decided_boxes(todo, label_field) if overwrite else {}

    if detector is None:
        detector = load_detector(
            backend, checkpoint, device=device, fp16=fp16, options=backend_options
        )
    detector.set_prompts(list(onto.prompts))

    dataset = sample_collection._dataset
    run_key = run_key or provenance.new_run_key(label_field)
    record = None if not record_run else provenance.start_run(
        dataset,
        run_key,
        method="zero_shot_detect",
        backend=detector.name,
        checkpoint=detector.checkpoint,
        ontology=onto.to_dict(),
        classes=list(onto.classes),
        label_field=label_field,
        confidence_threshold=confidence_threshold,
        class_agnostic_nms=class_agnostic_nms,
        nms_iou=nms_iou,
        batch_size=batch_size,
        device=detector.device,
        fp16=detector.fp16,
        overwrite=overwrite,
        num_target_samples=total_target,
        num_skipped_samples=skipped,
    )

    timings = dict(decode_s=0.0, prepare_s=0.0, predict_s=0.0, postprocess_s=0.0, write_s=0.0)
    failures: list[dict] = []
    warnings: list[dict] = []
    counts = dict(failed=0, processed=0, labels=0, invalid=0, written=0)
    pending: dict[str, Any] = {}
    path_of = dict(zip(ids, paths))
    resume_hint = (
        "Labels written before are kept ({written} samples in this run); once the "
        "database is back, re-run with overwrite=False to label the remaining samples"
    )

    def fail(sample_id, filepath, error):
        counts["failed"] += 1
        logger.warning("Sample %s (%s): %s", sample_id, filepath, error)
        if len(failures) < MAX_RECORDED_FAILURES:
            failures.append(dict(sample_id=sample_id, filepath=filepath, error=str(error)))

    def write(docs: Mapping[str, Any]) -> None:
        try:
            # human decisions stay on an overwrite: no run replaces a
            # person's work (new labels repeating them were dropped below)
            bulk.write_detections_keeping(
                sample_collection, label_field, docs, "review", HUMAN_DECISIONS
            )
        except Exception as e:  # noqa: BLE001 - classified below
            if db_errors.is_connection_error(e):
                raise db_errors.unavailable(
                    e,
                    f"writing the labels of {len(docs)} samples to field '{label_field}' "
                    f"of dataset '{dataset.name}'",
                    resume_hint.format(written=counts["written"]),
                ) from e
            if len(docs) == 1:
                raise
            # one refused document (e.g. over MongoDB's 16 MB limit) must not
            # cost its chunk-mates their labels: write them one by one
            logger.warning("Bulk write failed (%s); writing samples one by one", e)
            for sid, doc in docs.items():
                try:
                    write({sid: doc})
                except db_errors.DatabaseUnavailableError:
                    raise
                except Exception as e1:  # noqa: BLE001 - recorded per sample
                    counts["processed"] -= 1
                    counts["labels"] -= len(doc["detections"])
                    fail(sid, path_of[sid], f"The database refused the labels of this sample: "
                         f"{type(e1).__name__}: {e1}")
            return
        counts["written"] += len(docs)

    def flush():
        if pending:
            t0 = time.perf_counter()
            try:
                with bulk.gc_paused():
                    write(pending)
            finally:
                timings["write_s"] += time.perf_counter() - t0
            pending.clear()

    import fiftyone as fo

    bulk.declare_field(dataset, label_field, fo.Detections, {CLASS_SCORES_ATTR: fo.FloatField})
    batches = [
        (ids[i : i + batch_size], paths[i : i + batch_size])
        for i in range(0, len(ids), batch_size)
    ]
    yield Progress(0, len(ids), f"Labeling {len(ids)} samples with {detector.name}")
    status = "failed"
    error: BaseException | None = None
    try:
        for batch in _prefetch(batches, detector, num_workers):
            timings["decode_s"] += batch.decode_s
            timings["prepare_s"] += batch.prepare_s
            for f in batch.failures:
                fail(f["sample_id"], f["filepath"], f["error"])
            if batch.prepare_error is not None and counts["processed"] == 0:
                # every image failed alone and none ever succeeded: the
                # backend, not the data, is broken
                raise batch.prepare_error
            if batch.ids:
                t0 = time.perf_counter()
                preds = _predict_isolating_failures(
                    detector, batch, path_of, fail, systematic_if_all=counts["processed"] == 0
                )
                timings["predict_s"] += time.perf_counter() - t0

                t0 = time.perf_counter()
                with bulk.gc_paused():  # many small label dicts: see bulk.gc_paused
                    for sid, (w, h), pred in zip(batch.ids, batch.sizes, preds):
                        if pred is None:
                            continue
                        dets = postprocess(
                            pred, onto, w, h, confidence_threshold, class_agnostic_nms, nms_iou
                        )
                        if dets.num_invalid:
                            counts["invalid"] += dets.num_invalid
                            msg = (
                                f"{dets.num_invalid} predictions with a NaN/infinite box or score, "
                                "or a score outside [0, 1], dropped"
                            )
                            logger.warning("Sample %s (%s): %s", sid, path_of[sid], msg)
                            if len(warnings) < MAX_RECORDED_FAILURES:
                                warnings.append(dict(sample_id=sid, filepath=path_of[sid], warning=msg))
                        doc = detections_doc(dets, onto)
                        if sid in decided_boxes:
                            doc["detections"] = _drop_duplicates(doc["detections"], decided_boxes[sid])
                        pending[sid] = doc
                        counts["labels"] += len(doc["detections"])
                        counts["processed"] += 1
                timings["postprocess_s"] += time.perf_counter() - t0
            if len(pending) >= write_every:
                flush()
            done = counts["processed"] + counts["failed"]
            yield Progress(done, len(ids), f"Labeled {done}/{len(ids)} samples")
        flush()
        status = "completed"
    except (GeneratorExit, KeyboardInterrupt) as e:
        status, error = "interrupted", e
        raise
    except BaseException as e:
        error = e
        raise
    finally:
        summary = _finish(
            dataset,
            run_key,
            record,
            flush=None if isinstance(error, db_errors.DatabaseUnavailableError) else flush,
            error=error,
            summary=lambda: dict(
                run_key=run_key,
                label_field=label_field,
                backend=detector.name,
                checkpoint=detector.checkpoint,
                status=status,
                num_target_samples=total_target,
                num_skipped_samples=skipped,
                num_processed_samples=counts["processed"],
                num_failed_samples=counts["failed"],
                num_labels=counts["labels"],
                num_invalid_predictions=counts["invalid"],
                num_kept_decisions=sum(len(v) for v in decided_boxes.values()),
                failures=failures,
                warnings=warnings,
                timings={k: round(v, 4) for k, v in timings.items()},
            ),
        )
    return summary


def zero_shot_detect(
    sample_collection,
    backend: str = "owlv2",
    classes: Sequence[str] | str | None = None,
    ontology: Mapping[str, str] | str | None = None,
    checkpoint: str | None = None,
    label_field: str = "autolabels",
    confidence_threshold: float = 0.2,
    batch_size: int = 8,
    device: str | None = None,
    overwrite: bool = False,
    class_agnostic_nms: bool = False,
    nms_iou: float = 0.5,
    num_workers: int | None = None,
    write_every: int = 256,
    fp16: bool | None = None,
    backend_options: dict | None = None,
    run_key: str | None = None,
    progress: bool | Callable[[Progress], None] = True,
    detector: ZeroShotDetector | None = None,
) -> dict:
    """Auto-labels the images of a collection with a zero-shot detector.

    Each written ``fo.Detection`` has a relative ``[x, y, w, h]`` box, the
    class as ``label``, ``confidence``, and where the backend exposes it a
    ``class_scores`` list (one score per class, in the order of the run
    record's ``classes``). Samples that fail to decode are recorded in the
    run and left unlabeled; the rest of the run continues.

    Example usage::

        import fiftyone.zoo as foz
        from stoplight import zero_shot_detect   # or through the operator

        ds = foz.load_zoo_dataset("quickstart")
        summary = zero_shot_detect(
            ds, backend="owlv2", classes=["person", "car", "dog"]
        )
        print(summary["num_labels"], ds.list_runs())

    Args:
        sample_collection: a dataset or view of images
        backend: ``"yolo-world"``, ``"yoloe"``, ``"owlvit"``, ``"owlv2"``
            or ``"grounding-dino"``
        classes: class names, each used as its own prompt
        ontology: ``{prompt: class}``; several prompts may share a class
        checkpoint: hub id, ultralytics weight name or local path; ``None``
            uses the backend's default
        label_field: the ``fo.Detections`` field to write
        confidence_threshold: boxes scoring below are dropped. Keep it low:
            precision is the triage's job, recall is lost here for good
        batch_size: images per forward pass
        device: torch device; ``None`` uses CUDA when available
        overwrite: relabel samples that already have ``label_field``;
            by default they are skipped, so an interrupted run resumes.
            Labels a person accepted or rejected are kept on an overwrite
            (new labels repeating them, same class and IoU >= 0.5, are
            dropped); the summary counts them in ``num_kept_decisions``
        class_agnostic_nms: also suppress overlapping boxes of different
            classes
        nms_iou: IoU threshold of the NMS
        num_workers: threads decoding and preparing upcoming batches;
            ``None`` uses one per CPU core, at most 8 (a GPU needs them: an
            OWLv2 batch takes longer to preprocess on one core than to run)
        write_every: samples buffered between bulk database writes
        fp16: half precision; ``None`` means on CUDA only
        backend_options: backend-specific options (see each backend)
        run_key: key of the run record; ``None`` generates one
        progress: show a progress bar (``True``), nothing (``False``), or a
            callable receiving :class:`Progress` events
        detector: an already loaded detector to use instead of loading one

    Returns:
        the run summary: counts of samples (target, skipped, processed,
        failed), of labels, the failures, per-stage timings and the run key
    """
    gen = iter_zero_shot_detect(
        sample_collection,
        backend=backend,
        classes=classes,
        ontology=ontology,
        checkpoint=checkpoint,
        label_field=label_field,
        confidence_threshold=confidence_threshold,
        batch_size=batch_size,
        device=device,
        overwrite=overwrite,
        class_agnostic_nms=class_agnostic_nms,
        nms_iou=nms_iou,
        num_workers=num_workers,
        write_every=write_every,
        fp16=fp16,
        backend_options=backend_options,
        run_key=run_key,
        detector=detector,
    )
    return run_progress(gen, progress)


def _check_params(threshold, batch_size, nms_iou, num_workers, write_every):
    if not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
        raise ValueError(f"Parameter 'confidence_threshold' must be in [0, 1]; got {threshold!r}")
    if not (isinstance(nms_iou, (int, float)) and 0.0 < nms_iou <= 1.0):
        raise ValueError(f"Parameter 'nms_iou' must be in (0, 1]; got {nms_iou!r}")
    for name, value in (("batch_size", batch_size), ("write_every", write_every)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"Parameter '{name}' must be a positive integer; got {value!r}")
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"Parameter 'num_workers' must be >= 0; got {num_workers!r}")


def _finish(dataset, run_key, record, flush, error, summary) -> dict:
    """Flushes what was computed and records the run's end, whatever happened.

    Runs in the ``finally`` of the labeling loop. A failure here must not
    hide the error that ended the run (the user needs that one), and with the
    database gone there is no point in waiting for two more server-selection
    timeouts: the run then stays recorded as ``running`` and the exception
    says why.
    """
    if flush is not None:
        try:
            flush()  # whatever was computed before an interruption is kept
        except Exception as e:  # noqa: BLE001
            if error is None:
                error = e
                raise
            logger.warning("Could not write the last labels after %r: %s", error, e)
            if db_errors.is_connection_error(e):
                return summary()
    out = summary()
    if record is None or isinstance(error, db_errors.DatabaseUnavailableError):
        return out
    try:
        provenance.finish_run(dataset, run_key, record, out)
    except Exception as e:  # noqa: BLE001
        if error is None:
            if db_errors.is_connection_error(e):
                raise db_errors.unavailable(
                    e,
                    f"recording the end of run '{run_key}'",
                    "Every label was written; only the run record still says 'running'",
                ) from e
            raise
        logger.warning("Could not record the end of run %s after %r: %s", run_key, error, e)
    return out


def _load_batch(detector, ids, paths) -> _Batch:
    t0 = time.perf_counter()
    ok_ids, sizes, images, failures = [], [], [], []
    for sid, path in zip(ids, paths):
        try:
            img = load_image(path)
        except ImageLoadError as e:
            failures.append(dict(sample_id=sid, filepath=path, error=str(e)))
            continue
        ok_ids.append(sid)
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
            sizes = [sizes[i] for i in kept]
            images = [images[i] for i in kept]
            inputs = detector.prepare(images) if images else None
    return _Batch(
        ok_ids, sizes, images, inputs, failures, t1 - t0, time.perf_counter() - t1, prepare_error
    )


def _prefetch(batches, detector, num_workers) -> Iterator[_Batch]:
    """Loaded batches in order, up to ``num_workers`` batches ahead."""
    jobs = ((detector, ids, paths) for ids, paths in batches)
    return prefetch(jobs, _load_batch, num_workers)


def _predict_isolating_failures(
    detector, batch: _Batch, path_of, fail, systematic_if_all: bool = True
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


def _decided_boxes(sample_collection, label_field: str) -> dict[str, list[tuple[str, list]]]:
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
