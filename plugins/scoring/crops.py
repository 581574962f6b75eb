"""Label crops for CLIP: boxes to padded, squared, preprocessed pixels.

:func:`crop_box` states the pixel math of one box (FiftyOne's relative
``[x, y, w, h]``, grown by ``context`` and clipped to the image);
:func:`letterbox` pads a crop to a square so that CLIP's center crop keeps
the whole box; :func:`load_crops` turns one image and its boxes into a
batch of model inputs; :class:`CropQueue` gathers the crops of several
images into forward passes of a fixed size.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from ..common.images import ImageLoadError, load_image
from .clip import ClipModel

def crop_box(image: np.ndarray, box, context: float = 0.1) -> tuple[int, int, int, int]:
    """Pixel edges ``(left, top, right, bottom)`` of a padded, clipped box.

    ``box`` is FiftyOne's relative ``[x, y, w, h]``. The box is grown by
    ``context`` times its width (height) on the left and right (top and
    bottom), then the smallest whole-pixel rectangle containing it (with a
    1e-6 px tolerance for float error) is clipped to the image. The result
    is at least 1 px wide and tall, even for empty or out-of-image boxes.
    """
    if context < 0:
        raise ValueError(f"Parameter 'context' must be >= 0; got {context!r}")
    height, width = image.shape[:2]
    x, y, w, h = (float(v) if v is not None and math.isfinite(float(v)) else 0.0 for v in box)
    w, h = max(w, 0.0), max(h, 0.0)
    x0, x1 = (x - context * w) * width, (x + w + context * w) * width
    y0, y1 = (y - context * h) * height, (y + h + context * h) * height
    eps = 1e-6
    left = min(max(math.floor(x0 + eps), 0), width - 1)
    top = min(max(math.floor(y0 + eps), 0), height - 1)
    right = max(min(math.ceil(x1 - eps), width), left + 1)
    bottom = max(min(math.ceil(y1 - eps), height), top + 1)
    return left, top, right, bottom


def crop_boxes(image: np.ndarray, boxes_xywh_rel, context: float = 0.1) -> list[np.ndarray]:
    """Crops of relative ``[x, y, w, h]`` boxes, padded by ``context``.

    See :func:`crop_box` for the pixel math. Crops are views of ``image``.
    """
    out = []
    for box in boxes_xywh_rel:
        left, top, right, bottom = crop_box(image, box, context)
        out.append(image[top:bottom, left:right])
    return out


def letterbox(crop: np.ndarray, fill) -> np.ndarray:
    """``crop`` centered on a square canvas of ``fill`` color.

    CLIP's preprocessing resizes the short side and center-crops the long
    one: a 1:5 box would lose 80 % of its length, often the part that says
    what it is (a bus's front, a person's feet). Padding to a square first
    keeps the whole box; the fill (callers pass the image's mean color)
    adds no edge a model would read as content.

    Args:
        crop: ``(h, w, 3)`` uint8 pixels
        fill: 3 channel values

    Returns:
        ``(s, s, 3)`` uint8, ``s = max(h, w)``; the crop itself if square
    """
    h, w = crop.shape[:2]
    if h == w:
        return crop
    side = max(h, w)
    out = np.empty((side, side) + crop.shape[2:], dtype=crop.dtype)
    out[...] = np.asarray(fill, dtype=np.float64).round().astype(crop.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = crop
    return out


@dataclasses.dataclass
class LabelCrops:
    """The preprocessed crops of one sample's labels (see :func:`load_crops`)."""

    sample_id: str
    filepath: str
    label_ids: list[str]
    pixels: Any  # (n, 3, S, S) tensor or None
    error: str | None
    decode_s: float
    prepare_s: float


def load_crops(
    clip: ClipModel, sample_id, filepath, label_ids, boxes, context, square: bool = True
) -> LabelCrops:
    """Decodes one image and preprocesses the crops of its labels for ``clip``.

    Crops are padded by ``context`` (:func:`crop_boxes`) and, with
    ``square``, letterboxed with the image's mean color (:func:`letterbox`).
    An image that cannot be decoded comes back with ``error`` set and no
    pixels.
    """
    import torch
    from PIL import Image

    t0 = time.perf_counter()
    try:
        image = load_image(filepath)
    except ImageLoadError as e:
        return LabelCrops(sample_id, filepath, label_ids, None, str(e), time.perf_counter() - t0, 0.0)
    t1 = time.perf_counter()
    crops = crop_boxes(image, boxes, context)
    if square:
        mean = image.reshape(-1, image.shape[-1]).mean(axis=0)
        crops = [letterbox(c, mean) for c in crops]
    pixels = torch.stack([clip.preprocess(Image.fromarray(np.ascontiguousarray(c))) for c in crops])
    return LabelCrops(sample_id, filepath, label_ids, pixels, None, t1 - t0, time.perf_counter() - t1)


class CropQueue:
    """Preprocessed crops waiting for a forward pass, with their ids.

    Crops of several images share one forward pass: each image's crops are
    appended as they are loaded, and :meth:`pop` takes the first ``n`` of
    them whatever image they came from.
    """

    def __init__(self) -> None:
        self._pixels: list = []  # per-image (or left-over) tensors
        self._ids: list[tuple[str, str]] = []  # (sample_id, label_id) per row

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, crops: LabelCrops) -> None:
        """Queues the crops of one successfully loaded image."""
        self._pixels.append(crops.pixels)
        self._ids.extend((crops.sample_id, lid) for lid in crops.label_ids)

    def pop(self, n: int) -> tuple[Any, list[tuple[str, str]]]:
        """The first ``n`` queued crops: ``(pixels, [(sample_id, label_id)])``."""
        import torch

        pixels = torch.cat(self._pixels) if len(self._pixels) > 1 else self._pixels[0]
        batch, rest = pixels[:n], pixels[n:]
        self._pixels = [rest] if len(rest) else []
        ids, self._ids = self._ids[:n], self._ids[n:]
        return batch, ids
