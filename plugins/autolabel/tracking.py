"""Tracks from labels: propagate accepted or green frame labels along videos.

:func:`track_labels` takes, in each video of a view, the frame labels people
may rely on (``include``, see :mod:`..common.kept_labels`; or chosen label
ids) as *seeds*, and follows each seeded object through the whole video
with SAM 2 video or SAM 3's tracker (:mod:`.sam_video`), forward to the last
frame and backward to the first. The result is written to a frame-level
field (``frames.<track_field>``) as FiftyOne's video object tracks: one
``fo.Detection`` per frame where the object is seen, all labels of one track
sharing its ``index`` (FiftyOne's track id, unique within a video):

==================== =========================================================
attribute            meaning
==================== =========================================================
``index``            the track, 1, 2, ... within the video
``label``            the seed's class
``bounding_box``     the box of the mask on this frame
``mask``             the instance mask (FiftyOne's ``Detection.mask``)
``confidence``       sigmoid of the tracker's object score on this frame
``track_seed``       id of the label that started the track
``frame_jump``       the transition into this frame jumps
``track_jump``       the track jumps somewhere (on all of its labels)
==================== =========================================================

The jump rule is documented in :mod:`.track_quality`.

One object, one track: many frames usually carry a label of the same object
(the detector labeled each frame), so seeds are handled in rounds. A round
starts tracks from the seeds of the earliest frame not yet covered and runs
them through the video; a later seed whose object a track already follows
(same class, box IoU >= ``link_iou`` on the seed's frame) starts nothing.

Resumable per video: with ``overwrite=False`` videos that already have
tracks are skipped. With ``overwrite=True`` their tracks are computed again,
except tracks a person decided on (any of its labels accepted or rejected):
those are kept whole, cover their seeds, and new tracks take new indices.
Every run is recorded (method ``track_labels``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Iterator, Sequence

import numpy as np

from ..common import fo_private, provenance
from ..common.field_owner import check_field_claim, mark_field, purpose_info
from ..common.kept_labels import HUMAN_DECISIONS, check_include, is_kept
from ..common.masks import crop_mask, mask_to_mongo
from ..common.progress import Progress, sdk_function
from .boxes import iou_xywh
from .track_quality import MAX_AREA_RATIO, MAX_SHIFT, jump_flags
from .video_frames import (VideoReadError, declare_frame_field, frame_field_name, labeled_frames, read_frames,
                           write_frame_labels)

logger = logging.getLogger(__name__)

#: label attributes this module writes (besides FiftyOne's own)
TRACK_ATTRS = ("track_seed", "frame_jump", "track_jump")
#: frames decoded and resized per chunk (bounds the full-size frames held)
_DECODE_CHUNK = 16


@dataclasses.dataclass
class Seed:
    """A frame label that may start a track."""

    label_id: str
    frame_number: int
    label: str
    box: list  # relative [x, y, w, h]
    confidence: float


@dataclasses.dataclass
class Track:
    """One object's track in one video.

    Attributes:
        index: FiftyOne's track index
        label: the class
        seed_id: the label that started it
        frames: ``{frame_number: (relative box, mask or None, confidence)}``
        kept: a track stored before (a person decided on it)
    """

    index: int
    label: str
    seed_id: str | None
    frames: dict
    kept: bool = False


def covered(seed: Seed, tracks: Sequence[Track], link_iou: float) -> bool:
    """Whether a track of the seed's class overlaps it on its frame."""
    for t in tracks:
        hit = t.frames.get(seed.frame_number)
        if t.label == seed.label and hit is not None and iou_xywh(hit[0], seed.box) >= link_iou:
            return True
    return False


def _read_seeds(view, field: str, include: str, label_ids) -> dict[str, list[Seed]]:
    """``{sample_id: seeds}`` of the view (its label filters apply)."""
    base = f"frames.{field}.detections"
    cols = view.values(["id", "frames.frame_number", f"{base}.id", f"{base}.label", f"{base}.bounding_box",
                        f"{base}.confidence", f"{base}.review", f"{base}.queue"])
    wanted = None if label_ids is None else set(label_ids)
    out: dict[str, list[Seed]] = {}
    for sid, numbers, *per_frame in zip(*cols):
        seeds = []
        for j, number in enumerate(numbers or []):
            ids, labels, boxes, confs, revs, queues = (col[j] or [] for col in per_frame)
            for lid, lab, box, conf, rev, q in zip(ids, labels, boxes, confs, revs, queues):
                if (lid in wanted) if wanted is not None else is_kept(rev, q, include):
                    seeds.append(Seed(lid, int(number), lab, list(box), float(conf if conf is not None else 1.0)))
        out[sid] = seeds
    return out


def _kept_tracks(stored: dict[int, list[dict]]) -> tuple[list[Track], int]:
    """Stored tracks a person decided on (kept whole), and the largest index."""
    by_index: dict[int, Track] = {}
    decided = set()
    top = 0
    for number, labels in stored.items():
        for lab in labels:
            idx = lab.get("index")
            if idx is None:
                continue
            top = max(top, int(idx))
            t = by_index.setdefault(idx, Track(int(idx), lab.get("label"), lab.get("track_seed"), {}, True))
            t.frames[number] = (lab.get("bounding_box"), None, lab.get("confidence"))
            if lab.get("review") in HUMAN_DECISIONS:
                decided.add(idx)
    return [t for i, t in by_index.items() if i in decided], top


def _decode(tracker, path: str, frame_step: int, seed_frames) -> tuple[list[int], object, tuple[int, int]]:
    """The frames to track, decoded into the tracker's frame store."""
    store = tracker.frame_store()
    numbers, chunk, size = [], [], None
    for number, rgb in read_frames(path, step=frame_step, extra=seed_frames):
        size = size or (int(rgb.shape[1]), int(rgb.shape[0]))
        if (rgb.shape[1], rgb.shape[0]) != size:
            raise VideoReadError(f"Frame {number} of video {path} has another size than frame 1")
        numbers.append(number)
        chunk.append(rgb)
        if len(chunk) == _DECODE_CHUNK:
            store.add(chunk)
            chunk = []
    store.add(chunk)
    return numbers, store, size


def track_video(tracker, path: str, seeds: Sequence[Seed], kept: Sequence[Track] = (), first_index: int = 1,
                frame_step: int = 1, link_iou: float = 0.5) -> tuple[list[Track], dict]:
    """Tracks the seeded objects of one video (rounds: module docstring).

    Args:
        tracker: a :class:`.sam_video.VideoTracker`
        path: the video file
        seeds: its seed labels
        kept: tracks kept from before (not recomputed; they cover the seeds
            that started them, and by overlap the later ones)
        first_index: index of the first new track
        frame_step: track every k-th frame (seed frames always)
        link_iou: IoU at which a track covers a seed of its class

    Returns:
        ``(new tracks, stats)`` with ``num_rounds``, ``num_seeds_covered``,
        ``num_seeds_outside`` (on frames the video does not have),
        ``num_frames`` (tracked), ``width``, ``height``
    """
    numbers, store, (width, height) = _decode(tracker, path, frame_step, {s.frame_number for s in seeds})
    position = {n: i for i, n in enumerate(numbers)}
    stats = dict(num_rounds=0, num_seeds_covered=0, num_seeds_outside=0, num_frames=len(numbers),
                 width=width, height=height)
    tracks: list[Track] = list(kept)
    new: list[Track] = []
    pending = sorted(seeds, key=lambda s: (s.frame_number, -s.confidence))
    stats["num_seeds_outside"] = sum(s.frame_number not in position for s in pending)
    pending = [s for s in pending if s.frame_number in position]
    # a kept track covers the seed that started it, wherever it went since
    started = {t.seed_id for t in kept}
    stats["num_seeds_covered"] = sum(s.label_id in started for s in pending)
    pending = [s for s in pending if s.label_id not in started]
    index = first_index
    while pending:
        frame = pending[0].frame_number
        group: list[Seed] = []
        for s in (s for s in pending if s.frame_number == frame):
            if covered(s, tracks, link_iou) or any(
                    g.label == s.label and iou_xywh(g.box, s.box) >= link_iou for g in group):
                stats["num_seeds_covered"] += 1
            else:
                group.append(s)
        if group:
            stats["num_rounds"] += 1
            started = _track_round(tracker, store, position[frame], numbers, group, index, (width, height))
            index += len(group)
            tracks.extend(started)
            new.extend(started)
        rest = [s for s in pending if s.frame_number != frame]
        pending = [s for s in rest if not covered(s, tracks, link_iou)]
        stats["num_seeds_covered"] += len(rest) - len(pending)
    return new, stats


def _track_round(tracker, store, frame_index: int, numbers, group: Sequence[Seed], first_index: int,
                 size: tuple[int, int]) -> list[Track]:
    """One round: the group's seeds (all on one frame) through the video."""
    width, height = size
    boxes = np.array([[x * width, y * height, (x + w) * width, (y + h) * height] for x, y, w, h in
                      (s.box for s in group)])
    tracks = {first_index + j: Track(first_index + j, s.label, s.label_id, {}) for j, s in enumerate(group)}
    for tf in tracker.track(store, frame_index, list(tracks), boxes, size):
        number = numbers[tf.frame_index]
        for oid, logits, (x0, y0, x1, y1), score in zip(tf.obj_ids, tf.logits, tf.boxes, tf.object_scores):
            if score <= 0 or x0 < 0:
                continue  # not seen on this frame
            box = [x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height]
            mask = crop_mask(logits, box, width, height, threshold=0.0)
            tracks[oid].frames[number] = (box, mask, 1.0 / (1.0 + math.exp(-float(score))))
    return [t for t in tracks.values() if t.frames]


def track_docs(tracks: Sequence[Track], width: int, height: int, max_area_ratio: float = MAX_AREA_RATIO,
               max_shift: float = MAX_SHIFT) -> tuple[dict[int, list[dict]], int]:
    """``({frame_number: label documents}, number of jumping tracks)``."""
    from ..common.bulk import new_object_ids

    out: dict[int, list[dict]] = {}
    jumping = 0
    for t in tracks:
        numbers = sorted(t.frames)
        boxes = np.array([t.frames[n][0] for n in numbers]) * [width, height, width, height]
        areas = [int(t.frames[n][1].sum()) if t.frames[n][1] is not None else None for n in numbers]
        flags = jump_flags(numbers, boxes, None if None in areas else areas, max_area_ratio, max_shift)
        jumping += bool(flags.any())
        for n, oid, jump in zip(numbers, new_object_ids(len(numbers)), flags.tolist()):
            box, mask, conf = t.frames[n]
            doc = {"_id": oid, "_cls": "Detection", "attributes": {}, "tags": [], "label": t.label,
                   "bounding_box": [float(v) for v in box], "confidence": float(conf), "index": t.index,
                   "track_seed": t.seed_id, "frame_jump": bool(jump), "track_jump": bool(flags.any())}
            if mask is not None:
                doc["mask"] = mask_to_mongo(mask)
            out.setdefault(n, []).append(doc)
    return out, jumping


def _check(sample_collection, frame_step, link_iou, max_area_ratio, max_shift) -> None:
    if sample_collection.media_type != "video":
        raise ValueError(f"track_labels works on videos; the view has media type {sample_collection.media_type!r}")
    if not isinstance(frame_step, int) or isinstance(frame_step, bool) or frame_step < 1:
        raise ValueError(f"Parameter 'frame_step' must be a positive integer; got {frame_step!r}")
    if not (isinstance(link_iou, (int, float)) and 0 < link_iou <= 1):
        raise ValueError(f"Parameter 'link_iou' must be in (0, 1]; got {link_iou!r}")
    jump_flags([1, 2], [[0, 0, 1, 1]] * 2, None, max_area_ratio, max_shift)  # validates both


def iter_track_labels(
    sample_collection,
    label_field: str = "frames.autolabels",
    track_field: str = "tracks",
    model: str = "sam2",
    checkpoint: str | None = None,
    include: str = "accepted+green",
    label_ids: Sequence[str] | None = None,
    frame_step: int = 1,
    overwrite: bool = False,
    link_iou: float = 0.5,
    max_area_ratio: float = MAX_AREA_RATIO,
    max_shift: float = MAX_SHIFT,
    device: str | None = None,
    fp16: bool | None = None,
    run_key: str | None = None,
    tracker=None,
    adopt_field: bool = False,
) -> Iterator[Progress]:
    """Propagates accepted or green frame labels along each video into tracks.

    Written once as a generator: ``iter_track_labels`` yields
    :class:`Progress` events, one per video (operators forward them to the
    App), and returns the summary; ``track_labels`` runs it to its end with
    a progress bar and returns the summary
    (:func:`..common.progress.sdk_function`).

    See the module docstring for what is written and how seeds become
    tracks; the jump rule is in :mod:`.track_quality`.

    Example usage::

        from stoplight.plugins.autolabel.tracking import track_labels

        zero_shot_detect(videos, classes=["person"], frame_step=10)  # frames.autolabels
        ...  # triage / review some frame labels
        summary = track_labels(videos, "frames.autolabels", "tracks")
        videos.filter_labels("frames.tracks", F("track_jump") == True)

    Args:
        sample_collection: a dataset or view of videos (frame-label filters
            of the view apply to the seeds)
        label_field: the frame-level detections holding the seeds
        track_field: the frame-level field to write (``frames.`` optional)
        model: ``"sam2"`` (SAM 2.1 video) or ``"sam3"`` (SAM 3's tracker)
        checkpoint: hub id or local folder; ``None``: the model's default
            (``facebook/sam2.1-hiera-tiny``, ``facebook/sam3``)
        include: ``accepted+green`` (default), ``accepted`` or ``all``
        label_ids: seed with exactly these frame labels instead
        frame_step: track every k-th frame (seed frames always): k times
            fewer frames to run, larger motion between them
        overwrite: track videos that have tracks again (tracks a person
            decided on are kept whole)
        link_iou: box IoU at which a track covers a later seed of its class
        max_area_ratio: jump rule, size change (:mod:`.track_quality`)
        max_shift: jump rule, centre shift in box sizes per frame
        device: torch device; ``None`` uses CUDA when available
        fp16: half precision; ``None`` means on CUDA only
        run_key: key of the run record; ``None`` generates one
        tracker: an already loaded tracker (:func:`.sam_video.load_tracker`)
        adopt_field: write ``track_field`` even though it exists and
            Stoplight did not create it for tracks (takes it over)
        progress: ``track_labels`` only: progress bar (``True``), none, or a
            callable receiving :class:`Progress` events

    Returns:
        the run summary: counts of videos (tracked, skipped, without
        seeds, failed), seeds (covered by a track, outside the video),
        tracks (new, kept), track labels, jumping tracks, rounds, tracked
        frames; ``failures``, ``timings``, ``run_key``
    """
    import fiftyone as fo

    from .sam_video import load_tracker

    _check(sample_collection, frame_step, link_iou, max_area_ratio, max_shift)
    if label_ids is None:
        check_include(include)
    dataset = fo_private.root_dataset(sample_collection)
    dataset.reload()
    field = frame_field_name(sample_collection, label_field)
    out_field = frame_field_name(sample_collection, track_field)
    if out_field == field:
        raise ValueError("Parameter 'track_field' must differ from 'label_field' (seeds are never overwritten)")
    if not dataset.has_frame_field(field):
        raise ValueError(f"Parameter 'label_field': no frame field {field!r} on dataset '{dataset.name}'")
    # tracks replace a video's undecided labels of the field: never a
    # person's frame labels unless the caller takes the field over
    check_field_claim(dataset, f"frames.{out_field}", "tracks", adopt_field, "track_field")
    seeds = _read_seeds(sample_collection, field, include, label_ids)
    if label_ids is not None:
        found = {s.label_id for ss in seeds.values() for s in ss}
        missing = [i for i in dict.fromkeys(label_ids) if i not in found]
        if missing:
            raise ValueError(f"{len(missing)} label id(s) not found in frame field {field!r} of the view, "
                             f"e.g. {missing[:5]}")
    if tracker is None:
        tracker = load_tracker(model, checkpoint, device=device, fp16=fp16)
    declare_frame_field(dataset, out_field, {"track_seed": fo.StringField, "frame_jump": fo.BooleanField,
                                             "track_jump": fo.BooleanField}, info=purpose_info("tracks"))
    if adopt_field:
        mark_field(dataset, f"frames.{out_field}", "tracks")
    run_key = run_key or provenance.new_run_key(f"track_{out_field}")
    record = provenance.start_run(
        dataset, run_key, method="track_labels", model=tracker.name, checkpoint=tracker.checkpoint,
        label_field=f"frames.{field}", track_field=f"frames.{out_field}",
        include=None if label_ids is not None else include, frame_step=frame_step, overwrite=bool(overwrite),
        link_iou=link_iou, max_area_ratio=max_area_ratio, max_shift=max_shift, device=tracker.device,
        fp16=tracker.fp16, num_target_videos=len(seeds),
    )
    counts = dict(num_target_videos=len(seeds), num_tracked_videos=0, num_skipped_videos=0,
                  num_videos_without_seeds=0, num_failed_videos=0, num_seeds=0, num_seeds_covered=0,
                  num_seeds_outside=0, num_tracks=0, num_kept_tracks=0, num_track_labels=0,
                  num_jumping_tracks=0, num_rounds=0, num_tracked_frames=0)
    failures: list[dict] = []
    timings = dict(track_s=0.0, write_s=0.0)

    def summary(status):
        return dict(counts, run_key=run_key, status=status, model=tracker.name, checkpoint=tracker.checkpoint,
                    track_field=f"frames.{out_field}", failures=failures,
                    timings={k: round(v, 4) for k, v in timings.items()})

    paths = dict(zip(*sample_collection.values(["id", "filepath"])))
    yield Progress(0, len(seeds), f"Tracking labels through {len(seeds)} videos with {tracker.name}")
    with provenance.recorded_run(dataset, run_key, record, summary) as run:
        for done, (sid, video_seeds) in enumerate(seeds.items(), 1):
            _one_video(dataset, tracker, sid, paths[sid], video_seeds, out_field, overwrite, frame_step,
                       link_iou, max_area_ratio, max_shift, counts, failures, timings)
            yield Progress(done, len(seeds), f"Tracked {done}/{len(seeds)} videos")
    return run.summary


track_labels = sdk_function(iter_track_labels, "track_labels")


def _one_video(dataset, tracker, sid, path, seeds, out_field, overwrite, frame_step, link_iou,
               max_area_ratio, max_shift, counts, failures, timings) -> None:
    """Tracks and writes one video, updating ``counts`` (a failure to
    decode is recorded and the run goes on)."""
    if not seeds:
        counts["num_videos_without_seeds"] += 1
        return
    stored = labeled_frames(dataset, sid, out_field)
    if stored and not overwrite:
        counts["num_skipped_videos"] += 1
        return
    kept, top = _kept_tracks(stored)
    t0 = time.perf_counter()
    try:
        new, stats = track_video(tracker, path, seeds, kept, top + 1, frame_step, link_iou)
    except VideoReadError as e:
        counts["num_failed_videos"] += 1
        logger.warning("Video %s (%s): %s", sid, path, e)
        failures.append(dict(sample_id=sid, filepath=path, error=str(e)))
        return
    t1 = time.perf_counter()
    docs, jumping = track_docs(new, stats["width"], stats["height"], max_area_ratio, max_shift)
    # frames whose old, undecided track labels go away get an update too
    frames = {(sid, n): docs.get(n, []) for n in set(docs) | set(stored)}
    keep = {"$or": [{"$in": ["$$l.index", [t.index for t in kept]]},
                    {"$in": ["$$l.review", list(HUMAN_DECISIONS)]}]}
    write_frame_labels(dataset, out_field, frames, keep=keep)
    timings["track_s"] += t1 - t0
    timings["write_s"] += time.perf_counter() - t1
    counts["num_tracked_videos"] += 1
    counts["num_seeds"] += len(seeds)
    counts["num_tracks"] += len(new)
    counts["num_kept_tracks"] += len(kept)
    counts["num_track_labels"] += sum(len(v) for v in docs.values())
    counts["num_jumping_tracks"] += jumping
    for key in ("num_rounds", "num_seeds_covered", "num_seeds_outside"):
        counts[key] += stats[key]
    counts["num_tracked_frames"] += stats["num_frames"]
