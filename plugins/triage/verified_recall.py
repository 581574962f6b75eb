"""Recall on the verified images: the FiftyOne edge of :mod:`.recall`.

The verified images are the samples of the view that have the ground-truth
field of the calibration (``gt_field`` of its ``calibrate_triage`` run);
they are assumed a random sample of the view's images, as the calibration
assumes. Their objects are matched to labels with FiftyOne's own
``evaluate_detections`` (``classwise=True``, the calibration's IoU) without
an ``eval_key``, so nothing is written to the dataset.

Two label sets are measured:

- **auto-labels**: every label of the field except those a person
  corrected (their stored class or box is the person's, not the
  detector's);
- **final labels**: what the final dataset keeps (:mod:`.report`): labels
  accepted or corrected by people, plus undecided green and yellow ones
  (assuming people judge yellow correctly: a yellow label that matches a
  verified object would be accepted). Rejected and undecided red labels
  are dropped.

:func:`found_objects` takes any label fields and filters, so objects found
through other fields (e.g. candidates a person accepted) count too.
"""

from __future__ import annotations

import collections
import logging
from typing import Sequence

import numpy as np

from ..common import fo_private, provenance, split_scan
from ..common.label_vocab import ADDED_FROM_ATTR, HUMAN_DECISIONS, KEPT_DECISIONS, QUEUES
from . import recall as core

logger = logging.getLogger(__name__)

#: the section's (and each interval's) meaning, for readers of the report
METHOD_NOTE = (
    "share of the verified objects (same class, IoU >= {iou}) that labels cover, on {images} verified images; "
    "{level:.0%} Korn-Graubard intervals count images, not objects, as the sampling unit"
)


def auto_label_filter():
    """Labels as the detector produced them: all but corrected ones and
    those people added from missed-object candidates (``added_from``)."""
    from fiftyone import ViewField as F

    return (F("review") != "corrected") & ~F(ADDED_FROM_ATTR).exists()


def final_label_filter():
    """Labels the final dataset keeps (see the module docstring)."""
    from fiftyone import ViewField as F

    undecided = ~F("review").is_in(list(HUMAN_DECISIONS))
    return F("review").is_in(list(KEPT_DECISIONS)) | (undecided & F("queue").is_in(["green", "yellow"]))


def found_objects(verified_view, gt_field: str, label_fields: Sequence[tuple[str, object]], iou: float) -> dict:
    """Which verified objects labels find, and which labels are correct.

    Args:
        verified_view: the verified images
        gt_field: their verified objects (``fo.Detections``)
        label_fields: ``(field, filter)`` pairs: each field's labels that
            pass its filter (a ``ViewField`` expression, or None: all) are
            matched on their own; an object is found when any field's
            labels find it
        iou: least IoU of a match

    Returns:
        dict of aligned object arrays ``image``, ``label``, ``found``,
        ``confidence`` (of the matching label of the first field; NaN
        when none), and of that first field's matched labels
        ``label_image``, ``label_confidence``, ``label_correct``
    """
    sids, gids, glabels = verified_view.values(["id", f"{gt_field}.detections.id", f"{gt_field}.detections.label"])
    counts = [len(g or []) for g in gids]
    gid = [i for g in gids for i in (g or [])]
    pos = {g: j for j, g in enumerate(gid)}
    out = dict(
        image=np.repeat(np.asarray(sids, dtype=object), counts),
        label=np.asarray([l for ls in glabels for l in (ls or [])], dtype=object),
        found=np.zeros(len(gid), dtype=bool),
        confidence=np.full(len(gid), np.nan),
    )
    for j, (field, keep) in enumerate(label_fields):
        view = verified_view if keep is None else verified_view.filter_labels(field, keep, only_matches=False)
        # no eval_key: matches are returned, nothing is written
        res = view.evaluate_detections(field, gt_field=gt_field, iou=iou, classwise=True, progress=False)
        for t, p, c in zip(res.ytrue_ids, res.ypred_ids, res.confs):
            if t is not None and p is not None and t in pos:
                out["found"][pos[t]] = True
                if j == 0:
                    out["confidence"][pos[t]] = c if isinstance(c, (int, float)) else np.nan
        if j == 0:
            psids, pids = view.values(["id", f"{field}.detections.id"])
            image_of = {p: s for s, ps in zip(psids, pids) for p in (ps or [])}
            rows = [(image_of.get(p), c, t is not None) for t, p, c in zip(res.ytrue_ids, res.ypred_ids, res.confs)
                    if p is not None]
            out["label_image"] = np.asarray([r[0] for r in rows], dtype=object)
            out["label_confidence"] = np.asarray(
                [r[1] if isinstance(r[1], (int, float)) else np.nan for r in rows], dtype=np.float64)
            out["label_correct"] = np.asarray([r[2] for r in rows], dtype=bool)
    return out


#: matches kept per process (the panel asks again on every refresh)
CACHE_SIZE = 8
_cache: "collections.OrderedDict[tuple, dict]" = collections.OrderedDict()


def found_objects_cached(verified_view, gt_field: str, label_fields: Sequence[tuple[str, object]],
                         iou: float) -> dict:
    """:func:`found_objects`, reused while the verified images are the same
    samples and none was written since (their ids and newest
    ``last_modified_at``: one aggregation, which every FiftyOne and
    Stoplight write moves on)."""
    import fiftyone as fo

    ids, newest = verified_view.aggregate([fo.Values("id"), fo.Max("last_modified_at")])
    key = (fo_private.view_dataset(verified_view).name, hash(tuple(ids)), str(newest), gt_field, iou,
           tuple((f, str(k)) for f, k in label_fields))
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    out = found_objects(verified_view, gt_field, label_fields, iou)
    _cache[key] = out
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return out


def labeling_threshold(dataset, label_field: str) -> float | None:
    """The confidence threshold the field's labels were kept at: the highest
    of its completed ``zero_shot_detect`` runs (None when there is none)."""
    thresholds = [getattr(cfg, "confidence_threshold", None) for _, cfg in provenance.stoplight_runs(
        dataset, "zero_shot_detect", label_field=label_field, status="completed")]
    return max((t for t in thresholds if isinstance(t, (int, float))), default=None)


def counts_at_or_above(sample_collection, label_field: str, thresholds: list[float]) -> tuple[list, list, int]:
    """Labels of the view scored at or above each threshold, the yellow ones
    among them, and how many labels of any score have a queue: one
    ``$bucket`` aggregation (no label is read into Python)."""
    edges = [float(t) for t in thresholds] + [max(2.0, float(thresholds[-1]) + 1.0)]
    lab = "$_l"
    pipeline = [
        {"$project": {"_l": f"${label_field}.detections"}},
        {"$unwind": lab},
        {"$bucket": {
            "groupBy": f"{lab}.confidence", "boundaries": edges, "default": "other",
            "output": {"n": {"$sum": 1},
                       "yellow": {"$sum": {"$cond": [{"$eq": [f"{lab}.queue", "yellow"]}, 1, 0]}},
                       "queued": {"$sum": {"$cond": [{"$in": [f"{lab}.queue", list(QUEUES)]}, 1, 0]}}},
        }},
    ]
    n, yellow = np.zeros(len(thresholds), np.int64), np.zeros(len(thresholds), np.int64)
    queued = 0
    for d in split_scan.aggregate(sample_collection, pipeline):
        queued += d["queued"]
        if d["_id"] == "other":
            continue
        i = int(np.searchsorted(edges, d["_id"], side="right")) - 1
        n[i] += d["n"]
        yellow[i] += d["yellow"]
    at_or_above = lambda a: np.cumsum(a[::-1])[::-1].tolist()  # noqa: E731
    return at_or_above(n), at_or_above(yellow), int(queued)


def recall_section(sample_collection, label_field: str, gt_field: str | None, iou: float,
                   confidence_level: float, seconds_per_box: float, verified_ids: Sequence[str] | None = None) -> dict:
    """The report's ``recall`` section for the view's verified images: those
    of ``verified_ids`` that have ``gt_field`` (None: every image of the
    view that has it).

    Returns:
        dict: ``gt_field``, ``iou``, ``images`` (verified images),
        ``objects``, ``auto`` and ``final`` (:func:`.recall.recall_by_class`
        of the auto-labels and of the final labels; ``final`` None before
        queues are assigned), ``labeling_threshold``, ``curve``
        (:func:`.recall.threshold_curve`; review counts the yellow labels,
        or every label before queues are assigned; empty when no label has
        a confidence), ``review_basis`` and
        ``note``; with no verified images, only ``reason`` and the fields
    """
    out = dict(gt_field=gt_field, iou=iou, confidence_level=confidence_level)
    if not gt_field:
        return dict(out, reason="the calibration has no verified labels field (gt_field)")
    if not sample_collection.has_field(gt_field):
        return dict(out, reason=f"the verified labels field '{gt_field}' is not in this view")
    verified = sample_collection if verified_ids is None else sample_collection.select(list(verified_ids))
    verified = verified.exists(gt_field)
    if not len(verified):
        return dict(out, reason=f"no verified image (with '{gt_field}') in this view")
    auto = found_objects_cached(verified, gt_field, [(label_field, auto_label_filter())], iou)
    n_obj = len(auto["found"])
    if n_obj == 0:
        return dict(out, images=len(verified), reason=f"the verified images hold no object in '{gt_field}'")

    labeling_t = labeling_threshold(fo_private.view_dataset(sample_collection), label_field)
    lowest = None if labeling_t is not None else sample_collection.min(f"{label_field}.detections.confidence")
    thresholds = core.curve_thresholds(labeling_t, np.asarray([lowest if lowest is not None else np.nan]))
    view_labels, view_yellow, queued = counts_at_or_above(sample_collection, label_field, thresholds)
    has_queues = queued > 0
    view_review = view_yellow if has_queues else view_labels
    final = found_objects_cached(verified, gt_field, [(label_field, final_label_filter())], iou) if has_queues else None
    # labels without a confidence (imported from another tool) have no curve
    curve = [] if labeling_t is None and lowest is None else core.threshold_curve(
        thresholds, auto["confidence"], auto["image"], auto["label_confidence"], auto["label_correct"],
        auto["label_image"], view_labels, view_review, seconds_per_box, confidence_level,
    )
    return dict(
        out,
        images=len(verified),
        objects=n_obj,
        auto=core.recall_by_class(auto["found"], auto["image"], auto["label"], confidence_level),
        final=core.recall_by_class(final["found"], final["image"], final["label"], confidence_level)
        if final is not None else None,
        labeling_threshold=labeling_t,
        curve=curve,
        review_basis="yellow" if has_queues else "all labels",
        note=METHOD_NOTE.format(iou=iou, images=len(verified), level=confidence_level),
    )


def calibration_recall(sample_collection, label_field: str, calibration_key: str, calibration: dict,
                       seconds_per_box: float) -> dict:
    """:func:`recall_section` on the verified images of a calibration (its
    ``verified_sample_ids`` in the view; calibrations stored before they
    were recorded: the view's images that have the ground-truth field),
    with the ground-truth field and IoU of its ``calibrate_triage`` run."""
    cfg = fo_private.view_dataset(sample_collection).get_run_info(calibration_key).config
    gt_field = getattr(cfg, "gt_field", None)
    try:
        return recall_section(sample_collection, label_field, gt_field, getattr(cfg, "iou", None) or 0.5,
                              calibration["confidence_level"], seconds_per_box,
                              verified_ids=calibration.get("verified_sample_ids"))
    except ValueError as e:  # e.g. gt_field is no longer fo.Detections: the rest of the report stands
        logger.warning("Recall not measured: %s", e)
        return dict(gt_field=gt_field, reason=f"could not match the verified labels: {e}")
