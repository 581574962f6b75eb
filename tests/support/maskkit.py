"""Test kit for masks and video: tiny SAM checkpoints and a short test video.

Checkpoints are tiny random-weight models saved with ``save_pretrained``
and loaded through ``from_pretrained(<dir>)``, the path users take with hub
ids. The video is real: moving shapes over a photo that ships with
scikit-image, written as MP4 with OpenCV (bundled with the venv), with its
ground-truth boxes per frame.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

_BUILT: dict[tuple[str, str], str] = {}


def segmenter_checkpoint(root: Path, name: str) -> str:
    """A tiny random ``sam`` / ``sam2`` segmenter checkpoint (built once)."""
    from stoplight.plugins.autolabel.sam import get_segmenter

    key = ("segmenter", name)
    if key not in _BUILT:
        _BUILT[key] = get_segmenter(name).build_random_checkpoint(str(root / "checkpoints" / f"seg-{name}"))
    return _BUILT[key]


def tracker_checkpoint(root: Path, name: str) -> str:
    """A tiny random ``sam2`` / ``sam3`` tracker checkpoint (built once)."""
    from stoplight.plugins.autolabel.sam_video import get_tracker

    key = ("tracker", name)
    if key not in _BUILT:
        _BUILT[key] = get_tracker(name).build_random_checkpoint(str(root / "checkpoints" / f"track-{name}"))
    return _BUILT[key]


@dataclasses.dataclass
class ShapesVideo:
    """A video file and the ground truth of its moving shapes.

    Attributes:
        path: the MP4 file
        width: frame width
        height: frame height
        num_frames: number of frames
        boxes: ``{shape name: (num_frames, 4) relative [x, y, w, h]}``
        fps: frames per second
    """

    path: str
    width: int
    height: int
    num_frames: int
    boxes: dict
    fps: float = 10.0


def make_video(path: Path, num_frames: int = 12, width: int = 160, height: int = 120,
               jump_at: int | None = None, fourcc: str = "mp4v") -> ShapesVideo:
    """Writes a short video: a red square moving right and a blue disc
    moving down over scikit-image's astronaut photo.

    Args:
        path: the MP4 file to write
        num_frames: frames
        width: frame width
        height: frame height
        jump_at: if given, the square teleports across the frame at this
            (0-based) frame index: a track that follows it jumps
        fourcc: OpenCV's codec code: ``"mp4v"`` (MPEG-4 part 2, what
            OpenCV writes everywhere) or ``"VP80"`` for a ``.webm`` file
            a browser plays (Chromium plays no MPEG-4 part 2, and this
            OpenCV has no H.264 encoder)
    """
    import cv2
    from skimage import data

    photo = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    side, radius = height // 4, height // 8
    boxes = {"square": [], "disc": []}
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MP4 here")
    try:
        for t in range(num_frames):
            frame = photo.copy()
            sx = 4 + 3 * t if jump_at is None or t < jump_at else width - side - 4 - (t - jump_at)
            sy = height // 6
            cv2.rectangle(frame, (sx, sy), (sx + side - 1, sy + side - 1), (230, 20, 20), -1)
            cx, cy = width * 2 // 3, radius + 4 + 2 * t
            cv2.circle(frame, (cx, cy), radius, (20, 40, 230), -1)
            boxes["square"].append([sx / width, sy / height, side / width, side / height])
            boxes["disc"].append([(cx - radius) / width, (cy - radius) / height,
                                  (2 * radius + 1) / width, (2 * radius + 1) / height])
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    assert os.path.getsize(path) > 0
    return ShapesVideo(str(path), width, height, num_frames, {k: np.asarray(v) for k, v in boxes.items()})


#: per label j of a photo: (queue, review); decisions rotate over photos
MIXED_QUEUES = ("green", "yellow", None, "red", "green")
MIXED_REVIEWS = (None, "accepted", "rejected", "pending")


def set_mixed_labels(dataset, field: str = "autolabels", **attrs) -> None:
    """Gives every sample five boxes of mixed queues and decisions.

    Label ``j`` of sample ``s`` is in queue ``MIXED_QUEUES[j]`` (none for
    ``None``) with review ``MIXED_REVIEWS[(s + j) % 4]`` by "alice" (none
    for ``None``). ``attrs``: ``{name: f(j)}``, further attributes per label.
    """
    import fiftyone as fo

    values = []
    for s in range(len(dataset)):
        dets = []
        for j in range(5):
            d = fo.Detection(label=("car", "person")[j % 2], bounding_box=[0.05 + 0.15 * j, 0.1 + 0.02 * s, 0.2, 0.3],
                             confidence=0.5 + 0.05 * j, **{k: f(j) for k, f in attrs.items()})
            if MIXED_QUEUES[j]:
                d["queue"] = MIXED_QUEUES[j]
            review = MIXED_REVIEWS[(s + j) % 4]
            if review:
                d["review"] = review
                d["reviewed_by"] = "alice"
            dets.append(d)
        values.append(fo.Detections(detections=dets))
    dataset.set_values(field, values)
