"""When a track jumps: the rule that flags tracks for a person to look at.

A tracker that loses its object rarely says so: the mask slides onto the
background, another object, or a part of the object, and the track goes on.
What that looks like frame to frame is a *jump*. Between two consecutive
appearances of a track (frames ``a < b`` where it is present; frames where
it is absent are skipped), the transition jumps when either

- its **size** changes too much: ``max(A_a, A_b) / min(A_a, A_b) >
  max_area_ratio`` (default 2.0), with ``A`` the mask's pixel area (the
  box's when there is no mask), an empty mask counting as 1 pixel; or
- its **position** changes too much: the box centre moves more than
  ``max_shift`` (default 0.5) box sizes per frame,
  ``|c_b - c_a| / sqrt((B_a + B_b) / 2) / (b - a) > max_shift``, with
  ``B`` the box area in pixels and ``c`` the box centre in pixels.

``frame_jump`` is true on the label at ``b`` of each jumping transition
(the first appearance never jumps); ``track_jump`` is true on every label
of a track with at least one jump. The thresholds are per video frame of
time, so tracking every k-th frame (``frame_step``) allows k times the
motion per tracked step. Pure numpy; tested on the ground truth of moving
shapes (smooth motion: no flag; a teleporting shape: flagged).
"""

from __future__ import annotations

import numpy as np

#: default size-change ratio above which a transition jumps
MAX_AREA_RATIO = 2.0
#: default centre shift, in box sizes per frame, above which a transition jumps
MAX_SHIFT = 0.5


def jump_flags(frame_numbers, boxes, areas=None, max_area_ratio: float = MAX_AREA_RATIO,
               max_shift: float = MAX_SHIFT) -> np.ndarray:
    """Which appearances of one track jump (see the module docstring).

    Args:
        frame_numbers: ``(n,)`` frame numbers where the track is present,
            strictly increasing
        boxes: ``(n, 4)`` boxes ``[x, y, w, h]`` in pixels
        areas: ``(n,)`` mask areas in pixels; ``None`` uses the box areas
        max_area_ratio: size-change threshold (> 1)
        max_shift: centre-shift threshold in box sizes per frame (> 0)

    Returns:
        ``(n,)`` bool, True where the transition into that appearance jumps

    Raises:
        ValueError: for thresholds out of range or unordered frames
    """
    if not (isinstance(max_area_ratio, (int, float)) and max_area_ratio > 1):
        raise ValueError(f"Parameter 'max_area_ratio' must be > 1; got {max_area_ratio!r}")
    if not (isinstance(max_shift, (int, float)) and max_shift > 0):
        raise ValueError(f"Parameter 'max_shift' must be > 0; got {max_shift!r}")
    frames = np.asarray(frame_numbers, dtype=np.float64).reshape(-1)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(frames)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    gaps = np.diff(frames)
    if (gaps <= 0).any():
        raise ValueError("Frame numbers of a track must be strictly increasing")
    box_area = np.maximum(b[:, 2] * b[:, 3], 1.0)
    area = box_area if areas is None else np.maximum(np.asarray(areas, dtype=np.float64).reshape(-1), 1.0)
    ratio = np.maximum(area[1:], area[:-1]) / np.minimum(area[1:], area[:-1])
    centres = b[:, :2] + b[:, 2:] / 2
    size = np.sqrt((box_area[1:] + box_area[:-1]) / 2)
    shift = np.linalg.norm(centres[1:] - centres[:-1], axis=1) / size / gaps
    out[1:] = (ratio > max_area_ratio) | (shift > max_shift)
    return out
