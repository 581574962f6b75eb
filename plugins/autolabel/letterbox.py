"""Letterboxing and decoding of the YOLO backends: pure numpy, no model.

Used by :mod:`.backends.yolo`.

Facts checked in ultralytics 8.4's sources: ``LetterBox``
(``data/augment.py``) keeps the aspect ratio, rounds the resized size, pads
with 114 around the centre, to ``imgsz`` square or, when every image of a
batch has the same shape, to the next stride multiple ("rect"); boxes map
back with one gain per axis (``new_w / w``, ``new_h / h``) and the integer
left/top padding (``ops.scale_boxes``). Detection heads output ``cx, cy, w,
h`` in letterboxed pixels, then per-class sigmoid scores.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from . import boxes as B
from .backends.base import Predictions

#: ultralytics' letterbox padding value
PAD_VALUE = 114


def letterbox_params(
    height: int, width: int, imgsz: int, stride: int = 32, rect: bool = False
) -> tuple[tuple[int, int], tuple[float, float], tuple[int, int, int, int]]:
    """Letterbox geometry of one image, exactly as ultralytics' ``LetterBox``.

    Args:
        height: original image height
        width: original image width
        imgsz: side of the square target
        stride: the model's largest stride
        rect: pad only to the next multiple of ``stride`` (ultralytics'
            ``auto``) instead of to the full square

    Returns:
        ``(new_w, new_h)`` resized size, ``(gain_x, gain_y)`` per-axis resize
        factors, and ``(left, top, right, bottom)`` padding in pixels
    """
    r = min(imgsz / height, imgsz / width)
    # ultralytics keeps thin images at least one pixel wide
    new_w, new_h = max(round(width * r), 1), max(round(height * r), 1)
    dw, dh = imgsz - new_w, imgsz - new_h
    if rect:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    left, right = round(dw - 0.1), round(dw + 0.1)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    return (new_w, new_h), (new_w / width, new_h / height), (left, top, right, bottom)


def letterbox(
    image: np.ndarray, imgsz: int = 640, stride: int = 32, rect: bool = False
) -> tuple[np.ndarray, tuple[float, float], tuple[int, int]]:
    """Resizes (aspect kept) and pads an image like ultralytics does.

    Args:
        image: ``HxWx3`` uint8 image
        imgsz: side of the square target
        stride: the model's largest stride
        rect: pad only to the next multiple of ``stride``

    Returns:
        the letterboxed image, ``(gain_x, gain_y)`` and ``(pad_left,
        pad_top)``, the values :func:`decode_raw` needs to map boxes back
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"Expected an HxWx3 image; got shape {image.shape}")
    h, w = image.shape[:2]
    (new_w, new_h), gain, (left, top, right, bottom) = letterbox_params(h, w, imgsz, stride, rect)
    if (w, h) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    image = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    return image, gain, (left, top)


def decode_raw(
    raw: np.ndarray,
    gain: float | tuple[float, float],
    pad: tuple[float, float],
    num_prompts: int,
    min_score: float = 0.001,
    max_candidates: int = 1000,
) -> Predictions:
    """Decodes one image's raw head output into original-image boxes.

    Args:
        raw: ``(4 + nc [+ extra], anchors)``: letterboxed ``cx, cy, w, h``
            pixels, then per-prompt sigmoid scores (any further rows, e.g.
            mask coefficients, are ignored)
        gain: the letterbox resize factor, one for both axes or
            ``(gain_x, gain_y)``
        pad: ``(pad_left, pad_top)`` of the letterbox
        num_prompts: number of score rows ``P``
        min_score: anchors whose best prompt score is below are dropped
        max_candidates: at most this many anchors are kept, by best score

    Returns:
        boxes in original-image ``xyxy`` pixels (not clipped) sorted by best
        score, and the ``(N, P)`` per-prompt scores
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[0] < 4 + num_prompts:
        raise ValueError(
            f"raw must have shape (4 + {num_prompts} [+ extra], anchors); got {raw.shape}"
        )
    scores = raw[4 : 4 + num_prompts].T
    best = scores.max(axis=1, initial=-np.inf)
    keep = np.flatnonzero(best >= min_score)  # NaN scores compare False: dropped
    keep = keep[np.argsort(-best[keep], kind="stable")][:max_candidates]
    gx, gy = (gain, gain) if np.isscalar(gain) else gain
    xyxy = B.cxcywh_to_xyxy(raw[:4, keep].T)
    # B.unletterbox takes one gain; ultralytics maps back with one per axis
    xyxy = B.unletterbox(xyxy, 1.0, pad) / np.array([gx, gy, gx, gy], dtype=np.float64)
    return Predictions(xyxy, np.clip(scores[keep], 0.0, 1.0), has_score_vector=True)


@dataclasses.dataclass
class LetterboxedBatch:
    """What :meth:`YOLOWorldDetector.prepare` hands to ``predict``.

    Attributes:
        pixels: ``(B, H, W, 3)`` uint8 RGB tensor. Kept as uint8 so the
            host-to-device copy is 4x smaller; it becomes ``[0, 1]`` floats
            on the device, as in ultralytics' own predictor
        gains: ``(gain_x, gain_y)`` per image
        pads: ``(pad_left, pad_top)`` per image
    """

    pixels: Any
    gains: list[tuple[float, float]]
    pads: list[tuple[int, int]]
