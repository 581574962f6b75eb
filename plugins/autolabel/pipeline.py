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

import dataclasses
import logging
import os
from typing import Iterator, Mapping, Sequence

from ..common import bulk, fo_private, provenance
from ..common import db_errors, heartbeats
from ..common.field_owner import candidates_info, check_field_claim, mark_field, purpose_info
from ..common.label_vocab import DEFAULT_LABEL_FIELD, candidates_field as candidates_field_name
from ..common.limits import check_count, check_int
from .backends import ZeroShotDetector
from ..common.prefetch import prefetch
from ..common.ray_executor import RayExecutor, executor_from
from ..common.progress import Progress, sdk_function
from ..common.run_tally import RunTally
from .batches import BatchLabels, LoadedBatch, decided_boxes, label_batch, load_batch
from .detections import CLASS_SCORES_ATTR
from .label_writer import LabelWriter
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
    label_field: str = DEFAULT_LABEL_FIELD,
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
    """Auto-labels the images of a collection with a zero-shot detector.

    Written once as a generator: ``iter_zero_shot_detect`` yields
    :class:`Progress` events (operators forward them to the App) and returns
    the summary; ``zero_shot_detect`` runs it to its end with a progress bar
    and returns the summary (:func:`..common.progress.sdk_function`).

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
        record_run: ``iter_zero_shot_detect`` only: with ``False`` no run
            record is written (the caller keeps one)
        progress: ``zero_shot_detect`` only: show a progress bar
            (``True``), nothing (``False``), or a callable receiving
            :class:`Progress` events

    Returns:
        the run summary: counts of samples (target, skipped, processed,
        failed), of labels, the failures, per-stage timings and the run key
        (with Ray also the actors, worker processes and nodes that took part),
        and ``num_candidates`` (missed-object candidates written)
    """
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
    else:
        candidates_field = None  # unused: no candidates are kept
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
    settings = ImageRunSettings(
        label_field=label_field, onto=onto, confidence_threshold=confidence_threshold,
        class_agnostic_nms=class_agnostic_nms, nms_iou=nms_iou, batch_size=batch_size, overwrite=overwrite,
        num_workers=num_workers, write_every=write_every, candidates_threshold=candidates_threshold,
        candidates_field=candidates_field, run_key=run_key, record_run=record_run, adopt_field=adopt_field,
    )
    model = dict(backend=backend, checkpoint=checkpoint, device=device, fp16=fp16, options=backend_options)
    return (yield from _label_images(sample_collection, settings, model, detector, ray_executor))


zero_shot_detect = sdk_function(iter_zero_shot_detect, "zero_shot_detect", hidden=("record_run",))


@dataclasses.dataclass(frozen=True)
class ImageRunSettings:
    """The checked arguments of a labeling run over images (those of
    :func:`iter_zero_shot_detect`, less the model's)."""

    label_field: str
    onto: Ontology
    confidence_threshold: float
    class_agnostic_nms: bool
    nms_iou: float
    batch_size: int
    overwrite: bool
    num_workers: int
    write_every: int
    #: ``None``: no candidates are kept (and ``candidates_field`` is ``None``)
    candidates_threshold: float | None
    candidates_field: str | None
    run_key: str | None
    record_run: bool
    adopt_field: bool


def _label_images(
    sample_collection, s: ImageRunSettings, model: dict, detector, ray_executor
) -> Iterator[Progress]:
    """The image branch of :func:`iter_zero_shot_detect`: claims the fields,
    picks the samples to label and labels them here or on Ray."""
    if sample_collection.media_type != "image":
        raise ValueError(
            f"zero_shot_detect works on image and video datasets; "
            f"'{fo_private.view_dataset(sample_collection).name}' has media type "
            f"{sample_collection.media_type!r}"
        )
    _claim_fields(sample_collection, s)
    total_target = len(sample_collection)
    todo = sample_collection
    if not s.overwrite and sample_collection.has_field(s.label_field):
        todo = sample_collection.exists(s.label_field, False)
    ids, paths = todo.values(["id", "filepath"])
    if ray_executor is not None:
        from .ray_labeling import iter_label_on_ray

        settings = dict(
            backend=model["backend"], checkpoint=model["checkpoint"], device=model["device"], fp16=model["fp16"],
            backend_options=model["options"], ontology=s.onto.to_dict(), label_field=s.label_field,
            confidence_threshold=s.confidence_threshold, class_agnostic_nms=s.class_agnostic_nms,
            nms_iou=s.nms_iou, batch_size=s.batch_size, overwrite=s.overwrite,
        )
        return (yield from iter_label_on_ray(
            sample_collection, ray_executor, ids, paths, settings, run_key=s.run_key,
            num_target_samples=total_target, num_skipped_samples=total_target - len(ids),
            record_run=s.record_run,
        ))
    return (yield from _label_here(sample_collection, todo, ids, paths, total_target, s, model, detector))


def _claim_fields(sample_collection, s: ImageRunSettings) -> None:
    """Checks that the run may write its fields (raises ``ValueError``)."""
    # Another process (a killed or delegated run, the App) may have declared
    # the field since this dataset object was loaded. With the stale schema
    # every sample would look unlabeled, and a resume would relabel them all,
    # replacing the labels (and reviews) stored meanwhile.
    dataset = fo_private.view_dataset(sample_collection)
    dataset.reload()
    validate_label_field(sample_collection, s.label_field)
    # never into a field of someone else's labels (e.g. ground_truth)
    # unless the caller takes it over explicitly
    check_field_claim(dataset, s.label_field, "autolabels", s.adopt_field, "label_field")
    if s.candidates_field is not None:
        validate_label_field(sample_collection, s.candidates_field)
        check_field_claim(dataset, s.candidates_field, "candidates", s.adopt_field,
                          "candidates_field")


def _label_here(sample_collection, todo, ids, paths, total_target, s: ImageRunSettings, model: dict,
                detector) -> Iterator[Progress]:
    """Labels ``ids`` in this process: decoding threads ahead of the model,
    bulk writes; the run record ends whatever happens (:func:`_finish`)."""
    from .models import load_detector

    decided = decided_boxes(todo, s.label_field) if s.overwrite else {}
    # candidates repeating a person's answer (a decided label, an added or
    # dismissed candidate) are not asked again
    cand_decided = {}
    if s.candidates_threshold is not None:
        cand_decided = {sid: list(decided.get(sid, [])) for sid in decided}
        for sid, boxes in decided_boxes(todo, s.candidates_field).items():
            cand_decided.setdefault(sid, []).extend(boxes)
    if detector is None:
        detector = load_detector(**model)
    detector.set_prompts(list(s.onto.prompts))
    dataset = fo_private.view_dataset(sample_collection)
    run_key = s.run_key or provenance.new_run_key(s.label_field)
    skipped = total_target - len(ids)
    record = _start_record(dataset, run_key, detector, s, total_target, skipped) if s.record_run else None
    tally = _Tally(dict(zip(ids, paths)))
    writer = LabelWriter(sample_collection, s.label_field, s.write_every, tally.refused, s.candidates_field)
    _declare_fields(dataset, s)
    yield Progress(0, len(ids), f"Labeling {len(ids)} samples with {detector.name}")
    status = "failed"
    error: BaseException | None = None
    try:
        yield from _label_batches(detector, ids, paths, s, decided, cand_decided, tally, writer)
        writer.flush()
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
            flush=None if isinstance(error, db_errors.DatabaseUnavailableError) else writer.flush,
            error=error,
            summary=lambda: dict(
                run_key=run_key,
                label_field=s.label_field,
                backend=detector.name,
                checkpoint=detector.checkpoint,
                status=status,
                num_target_samples=total_target,
                num_skipped_samples=skipped,
                **tally.summary_counts(writer),
                num_kept_decisions=sum(len(v) for v in decided.values()),
                failures=tally.failures,
                warnings=tally.warnings,
                timings=tally.rounded_timings(write_s=writer.write_s),
            ),
        )
    return summary


def _label_batches(detector, ids, paths, s: ImageRunSettings, decided, cand_decided, tally: _Tally,
                   writer: LabelWriter) -> Iterator[Progress]:
    """The labeling loop: each loaded batch through the model into the writer."""
    for batch in prefetch_batches(ids, paths, detector, s.batch_size, s.num_workers):
        tally.loaded(batch)
        if batch.prepare_error is not None and writer.num_samples == 0:
            # every image failed alone and none ever succeeded: the
            # backend, not the data, is broken
            raise batch.prepare_error
        if batch.ids:
            labels = label_batch(
                detector, batch, s.onto, s.confidence_threshold, s.class_agnostic_nms, s.nms_iou,
                decided=decided, systematic_if_all=writer.num_samples == 0,
                candidates_threshold=s.candidates_threshold, candidates_decided=cand_decided,
            )
            tally.labeled(labels)
            writer.add(labels.docs, labels.candidate_docs)
        done = writer.num_samples + tally.failed
        yield Progress(done, len(ids), f"Labeled {done}/{len(ids)} samples")


def prefetch_batches(ids: Sequence[str], paths: Sequence[str], detector, batch_size: int,
                     num_workers: int) -> Iterator[LoadedBatch]:
    """The samples in batches of ``batch_size``, loaded in order
    (:func:`.batches.load_batch`: decoded and prepared for ``detector``) by
    ``num_workers`` threads, up to ``num_workers`` batches ahead."""
    jobs = (
        (detector, ids[i : i + batch_size], paths[i : i + batch_size]) for i in range(0, len(ids), batch_size)
    )
    return prefetch(jobs, load_batch, num_workers)


def _start_record(dataset, run_key: str, detector, s: ImageRunSettings, total_target: int, skipped: int):
    """Starts the run record (:func:`..common.provenance.start_run`)."""
    return provenance.start_run(
        dataset,
        run_key,
        method="zero_shot_detect",
        backend=detector.name,
        checkpoint=detector.checkpoint,
        ontology=s.onto.to_dict(),
        classes=list(s.onto.classes),
        label_field=s.label_field,
        confidence_threshold=s.confidence_threshold,
        class_agnostic_nms=s.class_agnostic_nms,
        nms_iou=s.nms_iou,
        batch_size=s.batch_size,
        device=detector.device,
        fp16=detector.fp16,
        overwrite=s.overwrite,
        num_target_samples=total_target,
        num_skipped_samples=skipped,
        candidates_threshold=s.candidates_threshold,
        candidates_field=s.candidates_field,
    )


def _declare_fields(dataset, s: ImageRunSettings) -> None:
    import fiftyone as fo

    bulk.declare_field(dataset, s.label_field, fo.Detections, {CLASS_SCORES_ATTR: fo.FloatField},
                       info=purpose_info("autolabels"))
    if s.candidates_field is not None:
        bulk.declare_field(dataset, s.candidates_field, fo.Detections, {CLASS_SCORES_ATTR: fo.FloatField},
                           info=candidates_info(s.label_field))
    if s.adopt_field:
        mark_field(dataset, s.label_field, "autolabels")


class _Tally(RunTally):
    """A local run's failures, warnings and stage timings (the writer counts
    the labels)."""

    def __init__(self, path_of: dict[str, str]) -> None:
        # write_s is the writer's (LabelWriter.write_s); kept here for the
        # summary's key order
        super().__init__(("num_failed_samples", "num_invalid_predictions"),
                         ("decode_s", "prepare_s", "predict_s", "postprocess_s", "write_s"), path_of)

    @property
    def failed(self) -> int:
        return self.counts["num_failed_samples"]

    def fail(self, sample_id: str, error, filepath: str | None = None, **detail) -> None:
        self.counts["num_failed_samples"] += 1
        super().fail(sample_id, error, filepath, **detail)

    def refused(self, sample_id: str, error: str) -> None:
        """A sample whose labels the database refused (``LabelWriter``)."""
        self.fail(sample_id, error)

    def loaded(self, batch: LoadedBatch) -> None:
        self.timings["decode_s"] += batch.decode_s
        self.timings["prepare_s"] += batch.prepare_s
        for f in batch.failures:
            self.fail(f["sample_id"], f["error"], f["filepath"])

    def labeled(self, labels: BatchLabels) -> None:
        self.timings["predict_s"] += labels.predict_s
        self.timings["postprocess_s"] += labels.postprocess_s
        for f in labels.failures:
            self.fail(f["sample_id"], f["error"], f["filepath"])
        self.counts["num_invalid_predictions"] += labels.num_invalid
        self.add_warnings(labels.warnings)

    def summary_counts(self, writer: LabelWriter) -> dict:
        """The summary's counts, in its order."""
        return dict(num_processed_samples=writer.num_samples, num_failed_samples=self.failed,
                    num_labels=writer.num_labels, num_candidates=writer.num_candidates,
                    num_invalid_predictions=self.counts["num_invalid_predictions"])


def _detect_video(sample_collection, onto, backend, checkpoint, device, fp16, backend_options, detector,
                  **params) -> Iterator[Progress]:
    """The video branch of :func:`iter_zero_shot_detect` (:mod:`.video_detect`)."""
    from .models import load_detector
    from .video_detect import claim_video_field, iter_zero_shot_detect_video

    fo_private.view_dataset(sample_collection).reload()
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
