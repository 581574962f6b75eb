"""Zero-shot auto-labeling of a FiftyOne collection.

The pipeline overlaps three stages: background threads decode images and
run the backend's CPU ``prepare`` step for upcoming batches while the
current batch is in the model's forward pass; finished labels are written to
the database in bulk every ``write_every`` samples. A run that is
interrupted keeps every chunk written so far, and re-running with
``overwrite=False`` continues with the samples that have no labels yet.

A batch's steps (:mod:`.batches`) are shared by both executors: this
process, or a pool of Ray actors (``executor="ray"``, :mod:`.ray_labeling`).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Iterator, Mapping, Sequence


from ..common import bulk, provenance
from ..common import db_errors, heartbeats
from ..common.field_owner import candidates_info, check_field_claim, mark_field, purpose_info
from ..common.label_vocab import candidates_field as candidates_field_name
from ..common.limits import check_count, check_int
from .backends import ZeroShotDetector
from ..common.prefetch import prefetch
from ..common.ray_executor import RayExecutor, executor_from
from ..common.progress import Progress
from ..common.progress import run as run_progress
from ..common.provenance import MAX_RECORDED_FAILURES
from .batches import LoadedBatch, decided_boxes, label_batch, load_batch, write_labels
from .detections import CLASS_SCORES_ATTR
from .ontology import Ontology

logger = logging.getLogger(__name__)


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
    executor: str | RayExecutor | None = "local",
    adopt_field: bool = False,
    frame_step: int = 1,
    candidates_threshold: float | None = None,
    candidates_field: str | None = None,
) -> Iterator[Progress]:
    """Generator form of :func:`zero_shot_detect`.

    Yields :class:`Progress` events and returns the run summary (the
    ``StopIteration`` value), so that operators can forward progress to the
    App. Arguments are those of :func:`zero_shot_detect`; with
    ``record_run=False`` no run record is written (the caller keeps one).
    """
    from .models import load_detector

    ray_executor = executor_from(executor)
    if ray_executor is not None and detector is not None:
        raise ValueError("Parameter 'detector' cannot be used with the Ray executor: each Ray "
                         "actor loads its own model from 'backend' and 'checkpoint'")
    onto = Ontology.from_params(classes=classes, ontology=ontology)
    check_count(len(onto.prompts), "prompts", "classes" if classes is not None else "ontology")
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)
    _check_params(confidence_threshold, batch_size, nms_iou, num_workers, write_every)
    if candidates_threshold is not None:
        candidates_field = _check_candidates(confidence_threshold, candidates_threshold, candidates_field,
                                             label_field, sample_collection, ray_executor)
    if sample_collection.media_type == "video":
        if ray_executor is not None:
            raise ValueError("Parameter 'executor': videos are labeled by the local executor; "
                             "the Ray executor labels images")
        return (yield from _detect_video(
            sample_collection, onto, backend, checkpoint, device, fp16, backend_options, detector,
            label_field=label_field, confidence_threshold=confidence_threshold, batch_size=batch_size,
            overwrite=overwrite, class_agnostic_nms=class_agnostic_nms, nms_iou=nms_iou,
            num_workers=num_workers, write_every=write_every, frame_step=frame_step, run_key=run_key,
            record_run=record_run, adopt_field=adopt_field,
        ))
    if sample_collection.media_type != "image":
        raise ValueError(
            f"zero_shot_detect works on image and video datasets; "
            f"'{sample_collection._dataset.name}' has media type "
            f"{sample_collection.media_type!r}"
        )
    # Another process (a killed or delegated run, the App) may have declared
    # the field since this dataset object was loaded. With the stale schema
    # every sample would look unlabeled, and a resume would relabel them all,
    # replacing the labels (and reviews) stored meanwhile.
    sample_collection._dataset.reload()
    validate_label_field(sample_collection, label_field)
    # never into a field of someone else's labels (e.g. ground_truth)
    # unless the caller takes it over explicitly
    check_field_claim(sample_collection._dataset, label_field, "autolabels", adopt_field, "label_field")
    if candidates_threshold is not None:
        validate_label_field(sample_collection, candidates_field)
        check_field_claim(sample_collection._dataset, candidates_field, "candidates", adopt_field, "candidates_field")

    total_target = len(sample_collection)
    todo = sample_collection
    if not overwrite and sample_collection.has_field(label_field):
        todo = sample_collection.exists(label_field, False)
    ids, paths = todo.values(["id", "filepath"])
    skipped = total_target - len(ids)
    if ray_executor is not None:
        from .ray_labeling import iter_label_on_ray

        settings = dict(
            backend=backend, checkpoint=checkpoint, device=device, fp16=fp16,
            backend_options=backend_options, ontology=onto.to_dict(), label_field=label_field,
            confidence_threshold=confidence_threshold, class_agnostic_nms=class_agnostic_nms,
            nms_iou=nms_iou, batch_size=batch_size, overwrite=overwrite,
        )
        return (yield from iter_label_on_ray(
            sample_collection, ray_executor, ids, paths, settings, run_key=run_key,
            num_target_samples=total_target, num_skipped_samples=skipped, record_run=record_run,
        ))
    decided = decided_boxes(todo, label_field) if overwrite else {}
    # candidates repeating a person's answer (a decided label, an added or
    # dismissed candidate) are not asked again
    cand_decided = {}
    if candidates_threshold is not None:
        cand_decided = {sid: list(decided.get(sid, [])) for sid in decided}
        for sid, boxes in decided_boxes(todo, candidates_field).items():
            cand_decided.setdefault(sid, []).extend(boxes)

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
        candidates_threshold=candidates_threshold,
        candidates_field=candidates_field if candidates_threshold is not None else None,
    )

    timings = dict(decode_s=0.0, prepare_s=0.0, predict_s=0.0, postprocess_s=0.0, write_s=0.0)
    failures: list[dict] = []
    warnings: list[dict] = []
    counts = dict(failed=0, processed=0, labels=0, invalid=0, written=0, candidates=0)
    pending: dict[str, Any] = {}
    pending_candidates: dict[str, Any] = {}
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
            write_labels(sample_collection, label_field, docs)
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
                    if pending_candidates:
                        # first: a resume relabels (and re-finds candidates
                        # of) exactly the samples whose labels are missing
                        write_labels(sample_collection, candidates_field, pending_candidates)
                        pending_candidates.clear()
                    write(pending)
            finally:
                timings["write_s"] += time.perf_counter() - t0
            pending.clear()

    import fiftyone as fo

    bulk.declare_field(dataset, label_field, fo.Detections, {CLASS_SCORES_ATTR: fo.FloatField},
                       info=purpose_info("autolabels"))
    if candidates_threshold is not None:
        bulk.declare_field(dataset, candidates_field, fo.Detections, {CLASS_SCORES_ATTR: fo.FloatField},
                           info=candidates_info(label_field))
    if adopt_field:
        mark_field(dataset, label_field, "autolabels")
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
                labels = label_batch(
                    detector, batch, onto, confidence_threshold, class_agnostic_nms, nms_iou,
                    decided=decided, systematic_if_all=counts["processed"] == 0,
                    candidates_threshold=candidates_threshold, candidates_decided=cand_decided,
                )
                timings["predict_s"] += labels.predict_s
                timings["postprocess_s"] += labels.postprocess_s
                for f in labels.failures:
                    fail(f["sample_id"], f["filepath"], f["error"])
                counts["invalid"] += labels.num_invalid
                warnings.extend(labels.warnings[: MAX_RECORDED_FAILURES - len(warnings)])
                for sid, doc in labels.candidate_docs.items():
                    pending_candidates[sid] = doc
                    counts["candidates"] += len(doc["detections"])
                for sid, doc in labels.docs.items():
                    pending[sid] = doc
                    counts["labels"] += len(doc["detections"])
                    counts["processed"] += 1
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
                num_candidates=counts["candidates"],
                num_invalid_predictions=counts["invalid"],
                num_kept_decisions=sum(len(v) for v in decided.values()),
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
    executor: str | RayExecutor | None = "local",
    adopt_field: bool = False,
    frame_step: int = 1,
    candidates_threshold: float | None = None,
    candidates_field: str | None = None,
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
            (local executor only)
        executor: ``"local"`` (this process), ``"ray"``, or a
            :class:`~..common.ray_executor.RayExecutor` (cluster address,
            actors, GPUs per actor): the samples are labeled by a pool of Ray
            actors, each loading the model once and writing its labels
            itself (see :mod:`.ray_labeling`)
        adopt_field: write ``label_field`` even though it exists and
            Stoplight did not create it for auto-labels (e.g. a field of
            human labels, whose labels an ``overwrite`` replaces); by
            default that is refused (:mod:`..common.field_owner`)
        frame_step: on a video dataset, label every k-th frame (frames 1,
            1 + k, ...) into the frame field ``frames.<label_field>``, see
            :mod:`.video_detect`; ignored for images
        candidates_threshold: off by default. When given (in
            ``[0, confidence_threshold)``), the boxes scoring between the two
            thresholds are kept too, as candidates of objects the labels
            may miss, in ``candidates_field`` (``fo.Detections``, each with
            ``queue="missing"``; score them with ``score_labels`` like any
            field). A person adds or dismisses each in the ``missing``
            queue (:mod:`..review.missing`). Local executor, images only
        candidates_field: where the candidates go; default
            ``<label_field>_candidates``

    Returns:
        the run summary: counts of samples (target, skipped, processed,
        failed), of labels, the failures, per-stage timings and the run key
        (with Ray also the actors, worker processes and nodes that took part),
        and ``num_candidates`` (missed-object candidates written)
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
        executor=executor,
        adopt_field=adopt_field,
        frame_step=frame_step,
        candidates_threshold=candidates_threshold,
        candidates_field=candidates_field,
    )
    return run_progress(gen, progress)


def _detect_video(sample_collection, onto, backend, checkpoint, device, fp16, backend_options, detector,
                  **params) -> Iterator[Progress]:
    """The video branch of :func:`iter_zero_shot_detect` (:mod:`.video_detect`)."""
    from .models import load_detector
    from .video_detect import claim_video_field, iter_zero_shot_detect_video

    sample_collection._dataset.reload()
    # before the model loads: a refused field costs no loading time
    claim_video_field(sample_collection, params["label_field"], params["adopt_field"])
    if detector is None:
        detector = load_detector(backend, checkpoint, device=device, fp16=fp16, options=backend_options)
    detector.set_prompts(list(onto.prompts))
    return (yield from iter_zero_shot_detect_video(
        sample_collection, onto, detector, run_params=dict(class_agnostic_nms=params["class_agnostic_nms"],
                                                           nms_iou=params["nms_iou"]), **params))


def _check_candidates(threshold, candidates_threshold, candidates_field, label_field, sample_collection,
                      ray_executor) -> str:
    """Checks the candidates parameters; the candidates field to write."""
    if not (isinstance(candidates_threshold, (int, float)) and not isinstance(candidates_threshold, bool)
            and 0.0 <= candidates_threshold < threshold):
        raise ValueError(f"Parameter 'candidates_threshold' must be in [0, confidence_threshold={threshold}); "
                         f"got {candidates_threshold!r}")
    if ray_executor is not None or sample_collection.media_type != "image":
        raise ValueError("Parameter 'candidates_threshold': candidates are kept by the local executor on "
                         "image datasets")
    candidates_field = candidates_field or candidates_field_name(label_field)
    if candidates_field == label_field:
        raise ValueError("Parameter 'candidates_field' must differ from 'label_field'")
    return candidates_field


def _check_params(threshold, batch_size, nms_iou, num_workers, write_every):
    if not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0):
        raise ValueError(f"Parameter 'confidence_threshold' must be in [0, 1]; got {threshold!r}")
    if not (isinstance(nms_iou, (int, float)) and 0.0 < nms_iou <= 1.0):
        raise ValueError(f"Parameter 'nms_iou' must be in (0, 1]; got {nms_iou!r}")
    if not isinstance(write_every, int) or write_every < 1:
        raise ValueError(f"Parameter 'write_every' must be a positive integer; got {write_every!r}")
    # bounded: one request must not exhaust the App server's memory
    check_int(batch_size, "batch_size", 1, "detect_batch_size")
    check_int(num_workers, "num_workers", 0, "num_workers")


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
                if record is not None:
                    heartbeats.stop(dataset, run_key, delete=False)
                return summary()
    out = summary()
    if record is None:
        return out
    if isinstance(error, db_errors.DatabaseUnavailableError):
        # cannot record the end: the heartbeat stops, the record is marked
        # stale later (provenance.mark_dead_runs)
        heartbeats.stop(dataset, run_key, delete=False)
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


def _prefetch(batches, detector, num_workers) -> Iterator[LoadedBatch]:
    """Loaded batches in order, up to ``num_workers`` batches ahead."""
    jobs = ((detector, ids, paths) for ids, paths in batches)
    return prefetch(jobs, load_batch, num_workers)
