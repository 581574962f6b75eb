"""Zero-shot labeling of video frames (``zero_shot_detect`` on videos).

On a video dataset, ``zero_shot_detect`` labels the frames of each video,
all of them or every ``frame_step``-th (frames 1, 1 + k, 1 + 2k, ...), and
writes frame-level detections (``frames.<label_field>``), each frame's
labels exactly as an image's (same post-processing, ``class_scores``,
masks of segmenting backends). Frames are decoded in a background thread
(:mod:`.video_frames`) and batched across videos, so a batch of
``batch_size`` frames is one forward pass whatever the videos' lengths.

Resumable per frame: with ``overwrite=False`` frames that already have the
field are skipped. With ``overwrite=True`` labels a person decided stay
(new labels repeating them are dropped), as for images.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from typing import Iterator

from ..common import fo_private, provenance
from ..common.field_owner import check_field_claim, mark_field, purpose_info
from ..common.kept_labels import HUMAN_DECISIONS
from ..common.prefetch import prefetch
from ..common.progress import Progress
from .boxes import iou_xywh
from .detections import CLASS_SCORES_ATTR, detections_doc, postprocess
from .video_frames import (VideoReadError, declare_frame_field, frame_field_name, labeled_frames, read_frames,
                           video_size, write_frame_labels)

logger = logging.getLogger(__name__)


class _FrameBatches:
    """Frames of many videos as prepared batches, read by one thread at a time.

    ``load()`` decodes the next ``batch_size`` frames (moving on to the next
    video when one ends) and runs the detector's CPU ``prepare``; it returns
    ``None`` once every video is read.
    """

    def __init__(self, detector, videos, batch_size: int, frame_step: int, overwrite: bool, field: str, dataset):
        self._detector = detector
        self._videos = iter(videos)
        self._batch_size = batch_size
        self._step = frame_step
        self._overwrite = overwrite
        self._field = field
        self._dataset = dataset
        self._frames: Iterator = iter(())
        self._lock = threading.Lock()
        self.decided: dict[str, dict[int, list]] = {}
        self.failures: list[dict] = []
        self.skipped = 0

    def _next_frame(self):
        while True:
            try:
                return next(self._frames)
            except StopIteration:
                pass
            except VideoReadError as e:  # a broken video: record, go on
                self.failures.append(dict(sample_id=self._sid, filepath=self._path, error=str(e)))
            nxt = next(self._videos, None)
            if nxt is None:
                return None
            self._sid, self._path = nxt
            stored = labeled_frames(self._dataset, self._sid, self._field)
            if self._overwrite:
                self.decided[self._sid] = {
                    n: [(d.get("label"), d.get("bounding_box")) for d in labs if d.get("review") in HUMAN_DECISIONS]
                    for n, labs in stored.items()
                }
                skip = ()
            else:
                skip = stored
                self.skipped += len(stored)
            sid = self._sid
            self._frames = ((sid, n, rgb) for n, rgb in read_frames(self._path, step=self._step, skip=skip))

    def load(self):
        with self._lock:
            t0 = time.perf_counter()
            items = []
            while len(items) < self._batch_size:
                item = self._next_frame()
                if item is None:
                    break
                items.append(item)
            t1 = time.perf_counter()
            if not items:
                return None
            inputs = self._detector.prepare([rgb for _, _, rgb in items])
            sizes = [(rgb.shape[1], rgb.shape[0]) for _, _, rgb in items]
            return [(sid, n) for sid, n, _ in items], sizes, inputs, t1 - t0, time.perf_counter() - t1


def _estimate_frames(paths, frame_step: int) -> int:
    total = 0
    for path in paths:
        try:
            total += math.ceil(video_size(path)[2] / frame_step)
        except VideoReadError:
            pass
    return total


def claim_video_field(sample_collection, label_field: str, adopt_field: bool) -> str:
    """The frame field name of ``label_field``, once it is checked to be
    free or Stoplight's autolabels (:mod:`..common.field_owner`).

    Raises:
        ValueError: for a bad name, or a frame field of other labels
            (e.g. a person's ``frames.detections``) without ``adopt_field``
    """
    field = frame_field_name(sample_collection, label_field)
    check_field_claim(fo_private.root_dataset(sample_collection), f"frames.{field}", "autolabels", adopt_field,
                      "label_field")
    return field


def iter_zero_shot_detect_video(
    sample_collection, onto, detector, label_field: str, confidence_threshold: float, batch_size: int,
    overwrite: bool, class_agnostic_nms: bool, nms_iou: float, num_workers: int, write_every: int,
    frame_step: int, run_key: str | None, record_run: bool = True, run_params: dict | None = None,
    adopt_field: bool = False,
) -> Iterator[Progress]:
    """Labels the frames of the videos of a collection (module docstring).

    Called by :func:`.pipeline.iter_zero_shot_detect` on video collections
    with its checked parameters and loaded, prompted detector; yields
    :class:`Progress` over frames and returns the run summary.
    """
    import fiftyone as fo

    if not isinstance(frame_step, int) or isinstance(frame_step, bool) or frame_step < 1:
        raise ValueError(f"Parameter 'frame_step' must be a positive integer; got {frame_step!r}")
    dataset = fo_private.root_dataset(sample_collection)
    field = claim_video_field(sample_collection, label_field, adopt_field)
    declare_frame_field(dataset, field, {CLASS_SCORES_ATTR: (fo.ListField, fo.FloatField)},
                        info=purpose_info("autolabels"))
    if adopt_field:
        mark_field(dataset, f"frames.{field}", "autolabels")
    ids, paths = sample_collection.values(["id", "filepath"])
    run_key = run_key or provenance.new_run_key(field)
    record = None
    if record_run:
        record = provenance.start_run(
            dataset, run_key, method="zero_shot_detect", media_type="video", label_field=f"frames.{field}",
            frame_step=frame_step, backend=detector.name, checkpoint=detector.checkpoint, ontology=onto.to_dict(),
            classes=list(onto.classes), confidence_threshold=confidence_threshold, batch_size=batch_size,
            device=detector.device, fp16=detector.fp16, overwrite=bool(overwrite), num_target_samples=len(ids),
            **(run_params or {}),
        )
    reader = _FrameBatches(detector, zip(ids, paths), batch_size, frame_step, overwrite, field, dataset)
    counts = dict(frames=0, labels=0, kept=0)
    timings = dict(decode_s=0.0, prepare_s=0.0, predict_s=0.0, postprocess_s=0.0, write_s=0.0)
    pending: dict = {}
    keep = {"$in": ["$$l.review", list(HUMAN_DECISIONS)]}

    def flush():
        if pending:
            t0 = time.perf_counter()
            write_frame_labels(dataset, field, pending, keep=keep)
            pending.clear()
            timings["write_s"] += time.perf_counter() - t0

    def summary(status):
        failures = reader.failures[: provenance.MAX_RECORDED_FAILURES]
        return dict(run_key=run_key, label_field=f"frames.{field}", backend=detector.name,
                    checkpoint=detector.checkpoint, status=status, frame_step=frame_step,
                    num_target_samples=len(ids), num_failed_samples=len(reader.failures),
                    num_skipped_samples=0, num_processed_samples=len(ids) - len(reader.failures),
                    num_skipped_frames=reader.skipped, num_processed_frames=counts["frames"],
                    num_labels=counts["labels"], num_kept_decisions=counts["kept"], failures=failures,
                    warnings=[], timings={k: round(v, 4) for k, v in timings.items()})

    total = _estimate_frames(paths, frame_step)
    yield Progress(0, total, f"Labeling the frames of {len(ids)} videos with {detector.name}")
    with provenance.recorded_run(dataset, run_key, record, summary, flush) as run:
        for batch in prefetch(itertools.repeat(()), reader.load, 1 if num_workers else 0):
            if batch is None:
                break
            keys, sizes, inputs, decode_s, prepare_s = batch
            timings["decode_s"] += decode_s
            timings["prepare_s"] += prepare_s
            t0 = time.perf_counter()
            preds = detector.predict(inputs)
            t1 = time.perf_counter()
            for (sid, number), (w, h), pred in zip(keys, sizes, preds):
                dets = postprocess(pred, onto, w, h, confidence_threshold, class_agnostic_nms, nms_iou)
                docs = detections_doc(dets, onto)["detections"]
                decided = reader.decided.get(sid, {}).get(number)
                if decided:
                    counts["kept"] += len(decided)
                    docs = [d for d in docs if not any(
                        d["label"] == lab and iou_xywh(d["bounding_box"], box) >= 0.5 for lab, box in decided)]
                pending[(sid, number)] = docs
                counts["labels"] += len(docs)
            counts["frames"] += len(keys)
            timings["predict_s"] += t1 - t0
            timings["postprocess_s"] += time.perf_counter() - t1
            if len(pending) >= write_every:
                flush()
            yield Progress(min(counts["frames"], total) if total else 0, total,
                           f"Labeled {counts['frames']} frames")
    return run.summary
