"""How many objects the labels still miss, per class: the report's
``missed`` section.

On the verified images (those with ``gt_field``), a verified object is
missed when no label of the label field that a person did not reject
covers it (IoU >= ``iou``, same class). Those are counted exactly. For the
images nobody verified the estimate is

    missed_c ≈ (missed verified objects of class c / verified images) × unverified images

**Assumption**: the verified images are a random sample of the collection's
images (as the calibration assumes), so objects are missed on the others at
the same rate per image. Verified images chosen for their difficulty
overstate it; a sample of easy images understates it. No interval is given
here: the ``recall`` figures carry the intervals.

:func:`estimate_missed` is pure; :func:`missed_section` reads the view.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..common.box_match import unmatched
from ..common.label_vocab import HUMAN_DECISIONS, candidates_field as default_candidates_field

ASSUMPTION = ("verified images are a random sample of the images: objects are missed on the unverified "
              "ones at the verified images' rate per image")


def estimate_missed(num_verified: Mapping[str, int], num_missed: Mapping[str, int], num_verified_images: int,
                    num_unverified_images: int, num_open_candidates: Mapping[str, int] | None = None) -> dict:
    """Objects still missed per class, counted on the verified images and
    extrapolated to the unverified ones (see the module docstring).

    Args:
        num_verified: ``{class: verified objects}`` on the verified images
        num_missed: ``{class: verified objects no label covers}``
        num_verified_images: images with verified labels
        num_unverified_images: the other images of the collection
        num_open_candidates: ``{class: open candidates}`` of the ``missing``
            queue (shown next to the estimate: what a reviewer can still add)

    Returns:
        ``{"per_class": {class: {verified, missed_verified, missed_share,
        missed_per_image, estimated_missed_unverified, estimated_missed,
        open_candidates}}, "total": {...same sums...}, "num_verified_images",
        "num_unverified_images", "assumption"}``; ``missed_share`` (share
        of verified objects missed, ``1 - recall``) is None without verified
        objects, and the per-image rates are None without verified images
    """
    if num_verified_images < 0 or num_unverified_images < 0:
        raise ValueError("Image counts must be >= 0")
    open_c = dict(num_open_candidates or {})
    classes = sorted(set(num_verified) | set(num_missed) | set(open_c))

    def row(n, k, cand):
        rate = k / num_verified_images if num_verified_images else None
        extra = None if rate is None else round(rate * num_unverified_images, 2)
        return dict(verified=int(n), missed_verified=int(k), missed_share=round(k / n, 4) if n else None,
                    missed_per_image=None if rate is None else round(rate, 4),
                    estimated_missed_unverified=extra,
                    estimated_missed=None if extra is None else round(k + extra, 2), open_candidates=int(cand))

    per_class = {c: row(num_verified.get(c, 0), num_missed.get(c, 0), open_c.get(c, 0)) for c in classes}
    total = row(sum(num_verified.values()), sum(num_missed.values()), sum(open_c.values()))
    return dict(per_class=per_class, total=total, num_verified_images=int(num_verified_images),
                num_unverified_images=int(num_unverified_images), assumption=ASSUMPTION)


def missed_section(sample_collection, label_field: str, gt_field: str | None, iou: float = 0.5,
                   candidates_field: str | None = None) -> dict | None:
    """:func:`estimate_missed` of a view: its images with ``gt_field`` are
    the verified ones. None without ``gt_field`` (nothing verified to count
    on). ``candidates_field``: where to count the open candidates
    (default ``<label_field>_candidates``)."""
    candidates_field = candidates_field or default_candidates_field(label_field)
    if not gt_field or not sample_collection.has_field(gt_field):
        return None
    verified = sample_collection.exists(gt_field)
    n_verified_images = len(verified)
    gt_lab, gt_box = verified.values([f"{gt_field}.detections.label", f"{gt_field}.detections.bounding_box"])
    if sample_collection.has_field(label_field):
        lab, box, rev = verified.values([f"{label_field}.detections.{a}" for a in ("label", "bounding_box", "review")])
    else:
        lab = box = rev = [None] * n_verified_images
    n_gt: dict[str, int] = {}
    n_missed: dict[str, int] = {}
    for gl, gb, ll, lb, lr in zip(gt_lab, gt_box, lab, box, rev):
        if not gl:
            continue
        kept = [j for j, r in enumerate(lr or []) if r != "rejected"]
        miss = unmatched(np.array(gb), gl, np.array([lb[j] for j in kept]), [ll[j] for j in kept], iou)
        for c, m in zip(gl, miss):
            n_gt[c] = n_gt.get(c, 0) + 1
            n_missed[c] = n_missed.get(c, 0) + int(m)
    open_c: dict[str, int] = {}
    if candidates_field and sample_collection.has_field(candidates_field):
        labels, review = sample_collection.values(
            [f"{candidates_field}.detections.label", f"{candidates_field}.detections.review"], unwind=True)
        for c, r in zip(labels, review):
            if r not in HUMAN_DECISIONS:
                open_c[c] = open_c.get(c, 0) + 1
    return estimate_missed(n_gt, n_missed, n_verified_images, len(sample_collection) - n_verified_images, open_c)
