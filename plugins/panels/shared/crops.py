"""Small crops of labels for the panels' "next questions" strip.

Each crop is the label's box with some context around it, scaled to a
thumbnail and encoded as a JPEG ``data:`` URL (a few kB), so the panel can
show it with an ``img`` view without serving files. JPEG sources are decoded
at reduced size (PIL's draft mode), and crops are kept in process memory
by label id, box and file, so a redraw costs nothing.
"""

from __future__ import annotations

import base64
import io
import logging
from collections import OrderedDict
from typing import Sequence

from ...common.sample_docs import read_sample_docs

logger = logging.getLogger(__name__)

#: thumbnail side in pixels
SIZE = 72
#: context around the box, as a share of its larger side
PAD = 0.3
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 512


def crop_data_url(filepath: str, bounding_box: Sequence[float], size: int = SIZE, pad: float = PAD) -> str | None:
    """A JPEG ``data:`` URL of the box ``[x, y, w, h]`` (relative) of an
    image with ``pad`` context, fitted in ``size`` x ``size``; None when the
    image cannot be read."""
    key = (filepath, tuple(round(float(v), 6) for v in bounding_box), size, pad)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    try:
        from PIL import Image

        with Image.open(filepath) as img:
            x, y, w, h = (float(v) for v in bounding_box)
            full_w, full_h = img.size
            # decode a JPEG at the smallest scale that still gives the crop `size` pixels
            scale = max(w * full_w, h * full_h, 1.0) / size
            if img.format == "JPEG" and scale > 2:
                img.draft("RGB", (int(full_w / scale * 2), int(full_h / scale * 2)))
            img = img.convert("RGB")
            iw, ih = img.size
            side = max(w * iw, h * ih) * (1 + 2 * pad)
            cx, cy = (x + w / 2) * iw, (y + h / 2) * ih
            box = (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
            crop = img.crop(box)  # outside the image: black, as a letterbox
            crop.thumbnail((size, size))
            buf = io.BytesIO()
            crop.save(buf, format="JPEG", quality=80)
        url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception as e:  # noqa: BLE001 - a missing or broken image must not break the panel
        logger.warning("No crop of %s: %s", filepath, e)
        url = None
    _CACHE[key] = url
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return url


def label_crops(dataset, label_field: str, rows: Sequence[dict], size: int = SIZE) -> list[str | None]:
    """Crops of the labels ``rows`` (``{"label_id", "sample_id"}``), in
    order, read with one query by sample id."""
    from bson import ObjectId

    if not rows:
        return []
    field = dataset.get_field(label_field)
    list_name = getattr(getattr(field, "document_type", None), "_LABEL_LIST_FIELD", "detections")
    path = f"{label_field}.{list_name}"
    sids = list({ObjectId(r["sample_id"]) for r in rows})
    where = {}
    for doc in read_sample_docs(dataset, sids, {"filepath": 1, f"{path}._id": 1, f"{path}.bounding_box": 1}):
        for lab in (doc.get(label_field) or {}).get(list_name) or []:
            where[str(lab["_id"])] = (doc["filepath"], lab.get("bounding_box"))
    out = []
    for r in rows:
        fp, box = where.get(r["label_id"], (None, None))
        out.append(crop_data_url(fp, box, size) if fp and box else None)
    return out
