"""Decoding video frames, and writing frame-level labels in bulk.

Frames are decoded with OpenCV (``cv2``, installed with ultralytics and
FiftyOne, with its own FFmpeg), as ``HxWx3`` uint8 RGB arrays numbered from
1 as FiftyOne numbers frames. Decoding is sequential (seeking in compressed
video is slow and often inexact), so the frames a run needs are picked
while reading.

Frame-level labels live in the dataset's frame collection, one document per
``(sample, frame_number)``; :func:`write_frame_labels` sets a field on many
frames with one bulk request, creating the frame documents that do not
exist yet, and keeping the labels a person decided.
"""

from __future__ import annotations

import datetime
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..common import fo_private


class VideoReadError(Exception):
    """A video that cannot be opened or decoded; the message names the file."""


def open_video(path: str):
    """An opened ``cv2.VideoCapture`` (VideoReadError if it cannot be opened)."""
    import os

    import cv2

    if not os.path.isfile(path):
        raise VideoReadError(f"Video file not found: {path}")
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        raise VideoReadError(f"Cannot open video {path} (not a video, or a codec OpenCV lacks)")
    return cap


def video_size(path: str) -> tuple[int, int, int, float]:
    """``(width, height, frame_count, fps)`` from the container's header
    (the frame count may be approximate for some containers)."""
    import cv2

    cap = open_video(path)
    try:
        return (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS) or 0.0))
    finally:
        cap.release()


def read_frames(path: str, step: int = 1, extra: "Iterable[int]" = (),
                skip: "Iterable[int]" = ()) -> Iterator[tuple[int, np.ndarray]]:
    """Decodes a video's frames, yielding ``(frame_number, rgb)`` in order.

    Args:
        path: the video file
        step: every ``step``-th frame from frame 1 (1, 1 + step, ...)
        extra: more frame numbers (1-based) to yield
        skip: frame numbers not to yield (e.g. already labeled)

    Raises:
        VideoReadError: if the file cannot be opened, or no frame decodes
    """
    import cv2

    extra, skip = set(int(n) for n in extra), set(int(n) for n in skip)
    cap = open_video(path)
    try:
        number = 0
        while cap.grab():
            number += 1
            if ((number - 1) % step and number not in extra) or number in skip:
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                raise VideoReadError(f"Cannot decode frame {number} of video {path}")
            yield number, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if number == 0:
            raise VideoReadError(f"Cannot decode any frame of video {path}")
    finally:
        cap.release()


def frame_field_name(sample_collection, label_field: str) -> str:
    """The frame-level field name of ``label_field`` (``frames.x`` or ``x``).

    Raises:
        ValueError: for a name that is not a plain identifier
    """
    name = label_field[len("frames."):] if label_field.startswith("frames.") else label_field
    if not name.isidentifier() or name.startswith("_") or name in ("frame_number", "id"):
        raise ValueError(f"Parameter 'label_field' must name a frame field such as 'frames.autolabels'; "
                         f"got {label_field!r}")
    return name


def declare_frame_field(dataset, field: str, attrs: Mapping[str, object] | None = None,
                        info: dict | None = None) -> None:
    """Declares ``frames.<field>`` as ``fo.Detections`` and its label attributes.

    Args:
        dataset: a video dataset
        field: the frame field (without ``frames.``)
        attrs: ``{attr: field class}``, e.g. ``{"track_jump": fo.BooleanField}``,
            or ``(fo.ListField, element field class)`` for lists
        info: the field's ``info`` when it is created here (e.g.
            :func:`..common.field_owner.purpose_info`)

    Raises:
        ValueError: if the frame field exists with another type
    """
    import fiftyone as fo

    existing = dataset.get_field(f"frames.{field}")
    if existing is None:
        dataset.add_frame_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections, info=info)
    elif getattr(existing, "document_type", None) is not fo.Detections:
        raise ValueError(f"Frame field {field!r} already exists and does not hold fo.Detections; choose another")
    for attr, kind in (attrs or {}).items():
        path = f"{field}.detections.{attr}"
        if not dataset.has_field(f"frames.{path}"):
            if isinstance(kind, tuple):  # (fo.ListField, fo.FloatField)
                dataset.add_frame_field(path, kind[0], subfield=kind[1])
            else:
                dataset.add_frame_field(path, kind)


def labeled_frames(dataset, sample_id: str, field: str) -> dict[int, list[dict]]:
    """``{frame_number: stored label documents}`` of the frames of one video
    where ``frames.<field>`` is set."""
    from bson import ObjectId

    out = {}
    query = {"_sample_id": ObjectId(sample_id), field: {"$type": "object"}}
    for doc in fo_private.frame_collection(dataset).find(query, {"frame_number": 1, field: 1}):
        out[int(doc["frame_number"])] = (doc.get(field) or {}).get("detections") or []
    return out


def write_frame_labels(dataset, field: str, docs: Mapping[tuple[str, int], list[dict]],
                       keep: Mapping | None = None) -> None:
    """Sets ``frames.<field>`` of many frames, keeping chosen stored labels.

    One atomic update per frame (an update pipeline: the stored labels that
    ``keep`` selects are read by MongoDB in the same update, so a label a
    person decides while new labels are computed is kept too), upserting
    frame documents that do not exist yet.

    Args:
        dataset: the video dataset
        field: the frame field (without ``frames.``)
        docs: ``{(sample_id, frame_number): new label documents}``
        keep: a MongoDB aggregation condition on a stored label ``$$l``
            (e.g. ``{"$in": ["$$l.review", ["accepted", "rejected"]]}``);
            ``None`` replaces the stored labels
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    if not docs:
        return
    now = datetime.datetime.utcnow()  # FiftyOne stores naive UTC
    oid = ObjectId(fo_private.dataset_id(dataset))
    ops = []
    for (sid, number), labels in docs.items():
        new = {"$literal": list(labels)}
        if keep is None:
            merged = new
        else:
            stored = {"$ifNull": [f"${field}.detections", []]}
            merged = {"$concatArrays": [{"$filter": {"input": stored, "as": "l", "cond": keep}}, new]}
        update = [{"$set": {
            field: {"_cls": "Detections", "detections": merged},
            "last_modified_at": now,
            "created_at": {"$ifNull": ["$created_at", now]},
            "_dataset_id": {"$ifNull": ["$_dataset_id", oid]},
        }}]
        ops.append(UpdateOne({"_sample_id": ObjectId(sid), "frame_number": int(number)}, update, upsert=True))
    fo_private.bulk_write(dataset, ops, frames=True)
    # the videos changed too (FiftyOne stamps samples whose frames it saves)
    sids = list({ObjectId(s) for s, _ in docs})
    fo_private.sample_collection(dataset).update_many({"_id": {"$in": sids}}, {"$set": {"last_modified_at": now}})


def frame_label_ids(dataset, sample_ids: Sequence[str], field: str) -> list[str]:
    """Ids of every label of ``frames.<field>`` of the given videos."""
    from bson import ObjectId

    out = []
    query = {"_sample_id": {"$in": [ObjectId(s) for s in sample_ids]}, field: {"$type": "object"}}
    for doc in fo_private.frame_collection(dataset).find(query, {f"{field}.detections._id": 1}):
        out.extend(str(d["_id"]) for d in (doc.get(field) or {}).get("detections") or [])
    return out
