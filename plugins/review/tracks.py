"""Review per video track: a decision on one label of a track decides the track.

Video object tracks (``track_labels``, or any FiftyOne frame-level
``fo.Detections`` field whose labels carry an ``index``) are reviewed as
wholes: :func:`review_tracks` takes labels on any frames, finds the tracks
they belong to (same video, same ``index``) and applies the decision to
every label of those tracks with :func:`.decisions.review_labels`, so it is
logged in the audit log like any decision and :func:`.decisions.undo_last`
reverts it.
"""

from __future__ import annotations

from typing import Iterable

from ..common import fo_private
from .decisions import review_labels


def track_label_ids(dataset, track_field: str, label_ids: Iterable[str]) -> tuple[list[str], int]:
    """Every label id of the tracks the given labels belong to.

    Args:
        dataset: the video dataset
        track_field: the frame-level field (``frames.tracks`` or ``tracks``)
        label_ids: ids of labels of that field, on any frames

    Returns:
        ``(label ids of the tracks, in frame order, number of tracks)``

    Raises:
        ValueError: for unknown ids, or labels without a track ``index``
    """
    from bson import ObjectId
    from bson.errors import InvalidId

    field = track_field[len("frames."):] if track_field.startswith("frames.") else track_field
    path = f"{field}.detections"
    wanted = list(dict.fromkeys(str(i) for i in label_ids))
    try:
        oids = [ObjectId(i) for i in wanted]
    except (InvalidId, TypeError):
        raise ValueError(f"Parameter 'label_ids' holds an invalid label id: {wanted[:5]}") from None
    coll = fo_private.frame_collection(fo_private.root_dataset(dataset))
    tracks: dict = {}
    found, untracked = set(), []
    for doc in coll.find({f"{path}._id": {"$in": oids}}, {"_sample_id": 1, f"{path}._id": 1, f"{path}.index": 1}):
        for lab in (doc.get(field) or {}).get("detections") or []:
            lid = str(lab["_id"])
            if lid not in wanted:
                continue
            found.add(lid)
            if lab.get("index") is None:
                untracked.append(lid)
            else:
                tracks.setdefault(doc["_sample_id"], set()).add(lab["index"])
    missing = [i for i in wanted if i not in found]
    if missing:
        raise ValueError(f"{len(missing)} label id(s) not found in frame field {field!r}, e.g. {missing[:5]}")
    if untracked:
        raise ValueError(f"{len(untracked)} label(s) of {field!r} have no track 'index', e.g. {untracked[:5]}; "
                         "decide them one by one (review_labels, or whole_tracks=False in the App)")
    out = []
    for sid, indices in tracks.items():
        query = {"_sample_id": sid, f"{path}.index": {"$in": sorted(indices)}}
        for doc in coll.find(query, {f"{path}._id": 1, f"{path}.index": 1}).sort("frame_number", 1):
            out.extend(str(lab["_id"]) for lab in (doc.get(field) or {}).get("detections") or []
                       if lab.get("index") in indices)
    return out, sum(len(v) for v in tracks.values())


def review_tracks(sample_collection, track_field: str, action: str, label_ids: Iterable[str],
                  user: str | None = None) -> dict:
    """Accepts, rejects or resets whole tracks.

    Example usage::

        from stoplight.plugins.review.tracks import review_tracks

        # the reviewer looked at one frame of the track and accepts it all
        review_tracks(video_dataset, "frames.tracks", "accept", [label_id], user="ana")

    Args:
        sample_collection: the video dataset or a view of it
        track_field: the frame-level tracks field, e.g. ``"frames.tracks"``
        action: ``"accept"``, ``"reject"`` or ``"reset"``
        label_ids: labels of the tracks to decide (any of their frames)
        user: the reviewer; default the operating-system user

    Returns:
        the :func:`.decisions.review_labels` summary (one logged action over
        every label of the tracks) plus ``num_tracks``
    """
    field = track_field if track_field.startswith("frames.") else f"frames.{track_field}"
    ids, num_tracks = track_label_ids(fo_private.root_dataset(sample_collection), field, label_ids)
    summary = review_labels(sample_collection, field, action, label_ids=ids, user=user)
    return dict(summary, num_tracks=num_tracks)
