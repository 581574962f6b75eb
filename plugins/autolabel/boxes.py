"""Box conversions, in one place.

Conventions: ``xyxy`` is ``[x1, y1, x2, y2]``; ``cxcywh`` is
``[center_x, center_y, width, height]``; FiftyOne boxes are
``[top_left_x, top_left_y, width, height]`` relative to the image, in
``[0, 1]``. "Pixel" means absolute coordinates of a stated image size.
"""

from __future__ import annotations

import numpy as np


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``[cx, cy, w, h]`` -> ``[x1, y1, x2, y2]`` (same units)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    half = b[:, 2:] / 2.0
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def scale_normalized(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Normalized boxes (any 4-column layout of x, y, x, y) -> pixels."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return b * np.array([width, height, width, height], dtype=np.float64)


def unletterbox(
    boxes: np.ndarray, gain: float, pad: tuple[float, float]
) -> np.ndarray:
    """Maps ``xyxy`` boxes from a letterboxed input back to the original.

    Args:
        boxes: ``(N, 4)`` xyxy pixels in the letterboxed (resized + padded)
            image
        gain: the resize factor applied to the original image
        pad: ``(pad_left, pad_top)`` pixels added before the image

    Returns:
        ``(N, 4)`` xyxy pixels in the original image (not clipped)
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] -= pad[0]
    b[:, [1, 3]] -= pad[1]
    return b / gain


def xyxy_to_fiftyone(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel ``xyxy`` boxes -> FiftyOne relative ``[x, y, w, h]``.

    Boxes are clipped to the image first, so a box that spills over an edge
    keeps only its visible part.

    Args:
        boxes: ``(N, 4)`` xyxy pixels
        width: image width in pixels
        height: image height in pixels
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1 = np.clip(b[:, 0], 0, width) / width
    y1 = np.clip(b[:, 1], 0, height) / height
    x2 = np.clip(b[:, 2], 0, width) / width
    y2 = np.clip(b[:, 3], 0, height) / height
    return np.stack([x1, y1, np.maximum(x2 - x1, 0), np.maximum(y2 - y1, 0)], axis=1)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou: float,
    classes: np.ndarray | None = None,
) -> np.ndarray:
    """Non-maximum suppression with torchvision.

    Args:
        boxes: ``(N, 4)`` xyxy
        scores: ``(N,)``
        iou: boxes overlapping a better one by more than this are dropped
        classes: ``(N,)`` class ids for class-aware NMS; ``None`` suppresses
            across classes (class-agnostic)

    Returns:
        indices of the kept boxes, by decreasing score
    """
    import torch
    from torchvision.ops import batched_nms
    from torchvision.ops import nms as tv_nms

    if len(boxes) == 0:
        return np.zeros(0, dtype=int)
    b = torch.as_tensor(np.asarray(boxes), dtype=torch.float32)
    s = torch.as_tensor(np.asarray(scores), dtype=torch.float32)
    if classes is None:
        keep = tv_nms(b, s, float(iou))
    else:
        keep = batched_nms(b, s, torch.as_tensor(np.asarray(classes)), float(iou))
    return keep.numpy()


def iou_xywh(a, b) -> float:
    """IoU of two boxes in FiftyOne's relative ``[x, y, w, h]`` layout."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
