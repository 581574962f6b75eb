"""Instance masks in FiftyOne's convention, in one place.

A ``fo.Detection`` stores its instance mask as ``mask``: a 2-D boolean array
covering only its bounding box (FiftyOne renders it by resizing it onto the
box's pixels, see ``eta.core.image.render_instance_mask``). The box's pixel
region in an image of ``width x height`` is
``[int(x * width), int((x + w) * width))`` by
``[int(y * height), int((y + h) * height))``, the same truncation FiftyOne's
renderer and its ultralytics integration use, so a mask cropped here lies
exactly on the pixels the App draws it on.

Models predict masks over the whole image at their own resolution (SAM 3:
288 x 288 for any image). :func:`crop_mask` resizes such a map to the image
bilinearly, as ``torch.nn.functional.interpolate(..., mode="bilinear",
align_corners=False)`` does, but computes only the pixels inside the box, so
a small box on a 24-megapixel photo costs a small crop, not a full-size map.

Pure numpy; no FiftyOne import. :func:`mask_to_mongo` gives the stored form
for label documents built by hand (``common.bulk``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def box_pixel_bounds(
    box: Sequence[float], width: int, height: int
) -> tuple[int, int, int, int]:
    """Pixel region ``(x0, y0, x1, y1)`` (end-exclusive) of a FiftyOne box.

    Args:
        box: relative ``[x, y, w, h]`` (FiftyOne's layout)
        width: image width in pixels
        height: image height in pixels

    Returns:
        ``x0 < x1 <= width`` and ``y0 < y1 <= height``: FiftyOne's truncation,
        widened to one pixel for boxes thinner than a pixel
    """
    x, y, w, h = (float(v) for v in box)
    x0 = min(max(int(x * width), 0), width - 1)
    y0 = min(max(int(y * height), 0), height - 1)
    x1 = min(max(int((x + w) * width), x0 + 1), width)
    y1 = min(max(int((y + h) * height), y0 + 1), height)
    return x0, y0, x1, y1


def _source_index(start: int, stop: int, out_size: int, in_size: int):
    """Bilinear source rows/columns of output pixels ``start..stop-1``.

    PyTorch's rule for ``align_corners=False`` (``area_pixel_compute_source_index``
    for linear modes): ``src = max((dst + 0.5) * in / out - 0.5, 0)``; the
    upper neighbour is clamped to the last input pixel.
    """
    dst = np.arange(start, stop, dtype=np.float64)
    src = np.maximum((dst + 0.5) * (in_size / out_size) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    return i0, i1, frac


def resize_crop(
    soft_mask: np.ndarray, bounds: tuple[int, int, int, int], width: int, height: int
) -> np.ndarray:
    """The pixels ``bounds`` of ``soft_mask`` resized bilinearly to ``height x width``.

    Equal (to float rounding) to
    ``F.interpolate(soft_mask[None, None], (height, width), mode="bilinear",
    align_corners=False)[0, 0, y0:y1, x0:x1]``, at the cost of the crop only.

    Args:
        soft_mask: ``(h, w)`` float map over the whole image
        bounds: ``(x0, y0, x1, y1)`` pixel region of the full-size map
        width: full-size width in pixels
        height: full-size height in pixels

    Returns:
        ``(y1 - y0, x1 - x0)`` float64 array
    """
    m = np.asarray(soft_mask, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"A mask must be a non-empty 2-D array; got shape {m.shape}")
    x0, y0, x1, y1 = bounds
    r0, r1, fy = _source_index(y0, y1, height, m.shape[0])
    c0, c1, fx = _source_index(x0, x1, width, m.shape[1])
    rows = m[r0] * (1.0 - fy)[:, None] + m[r1] * fy[:, None]
    return rows[:, c0] * (1.0 - fx)[None, :] + rows[:, c1] * fx[None, :]


def crop_mask(
    soft_mask: np.ndarray,
    box: Sequence[float],
    width: int,
    height: int,
    threshold: float = 0.5,
) -> np.ndarray:
    """A full-image soft mask -> the FiftyOne instance mask of one detection.

    Args:
        soft_mask: ``(h, w)`` map over the whole image at any resolution
            (probabilities, or logits with ``threshold=0``); NaN counts as
            background
        box: the detection's relative ``[x, y, w, h]``
        width: image width in pixels
        height: image height in pixels
        threshold: pixels whose resized value is ``> threshold`` are in the
            mask (transformers' SAM 3 post-processing: probabilities, 0.5)

    Returns:
        a 2-D ``bool`` array of the box's pixel size (see
        :func:`box_pixel_bounds`), ready for ``fo.Detection(mask=...)``
    """
    bounds = box_pixel_bounds(box, width, height)
    with np.errstate(invalid="ignore"):
        return resize_crop(soft_mask, bounds, width, height) > threshold


def mask_to_mongo(mask: np.ndarray) -> bytes:
    """The stored form of a ``Detection.mask`` (what FiftyOne's ``ArrayField`` writes).

    ``np.save`` then zlib, as ``fiftyone.core.utils.serialize_numpy_array``;
    read back by FiftyOne as the same array.
    """
    import io
    import zlib

    with io.BytesIO() as f:
        np.save(f, np.asarray(mask), allow_pickle=False)
        return zlib.compress(f.getvalue())
