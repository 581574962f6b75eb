"""Which boxes no other box covers: the matching behind missed-object
candidates and the report's estimate of missed objects.

Boxes are FiftyOne's relative ``[x, y, w, h]``; IoU comes from
``torchvision.ops.box_iou`` on ``[x1, y1, x2, y2]``. Relative boxes give
the pixel IoU: scaling x by the width and y by the height scales every
area, intersection and union alike, by ``width * height``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def unmatched(boxes: np.ndarray, labels: Sequence[str], other_boxes: np.ndarray, other_labels: Sequence[str],
              iou: float = 0.5, classwise: bool = True) -> np.ndarray:
    """``(N,)`` bool: which of ``boxes`` no box of ``other_boxes`` covers.

    Args:
        boxes: ``(N, 4)`` relative ``[x, y, w, h]``
        labels: their ``N`` classes
        other_boxes: ``(M, 4)`` relative ``[x, y, w, h]``
        other_labels: their ``M`` classes
        iou: least IoU of a cover
        classwise: a cover must have the same class

    Returns:
        True where no other box has IoU >= ``iou`` (and, with ``classwise``,
        the same class); all True when ``other_boxes`` is empty
    """
    import torch
    from torchvision.ops import box_iou

    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    other_boxes = np.asarray(other_boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0 or len(other_boxes) == 0:
        return np.ones(len(boxes), bool)

    def xyxy(b):
        return torch.from_numpy(np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1))

    ious = box_iou(xyxy(boxes), xyxy(other_boxes)).numpy()
    cover = ious >= iou
    if classwise:
        cover &= np.asarray(labels, dtype=object)[:, None] == np.asarray(other_labels, dtype=object)[None, :]
    return ~cover.any(axis=1)
