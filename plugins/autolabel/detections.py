"""From a backend's raw predictions to FiftyOne labels.

:func:`postprocess` is pure numpy (thresholds, prompt -> class, NMS, box
normalization, instance-mask cropping); :func:`detections_doc` turns its
arrays into a serialized ``fo.Detections`` document.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..common.masks import crop_mask, mask_to_mongo
from . import boxes as B
from .backends.base import Predictions
from .ontology import Ontology

#: label attribute holding the per-class score vector, in run class order
CLASS_SCORES_ATTR = "class_scores"


@dataclasses.dataclass
class ImageDetections:
    """Post-processed detections of one image, as arrays.

    Attributes:
        boxes: ``(N, 4)`` FiftyOne relative ``[x, y, w, h]``
        labels: ``(N,)`` class indices into the ontology's classes
        confidence: ``(N,)`` score of the written class
        class_scores: ``(N, C)`` per-class scores, or ``None`` when the
            backend exposes only the top score
        num_invalid: raw predictions dropped because a box coordinate or a
            prompt score was NaN or infinite, or a score was outside
            ``[0, 1]`` (a backend fault, counted so the run can report it)
        masks: ``None`` when the backend predicts no masks, else one 2-D
            bool instance mask per box, cropped to the box (FiftyOne's
            ``Detection.mask`` convention)
    """

    boxes: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray
    class_scores: np.ndarray | None
    num_invalid: int = 0
    masks: list[np.ndarray] | None = None


def postprocess(
    pred: Predictions,
    ontology: Ontology,
    width: int,
    height: int,
    confidence_threshold: float = 0.2,
    class_agnostic_nms: bool = False,
    nms_iou: float = 0.5,
) -> ImageDetections:
    """Applies the ontology, threshold, optional NMS and normalization.

    Each box gets the class with the highest class score (the max over that
    class's prompts). Boxes scoring below ``confidence_threshold`` are
    dropped, as are boxes with no area inside the image and invalid
    predictions: a NaN or infinite coordinate or score, or a score outside
    ``[0, 1]`` (counted in ``num_invalid``; never written as a label). With
    ``class_agnostic_nms``, overlapping boxes of *different* classes
    suppress each other too (useful when several prompts fire on one
    object); same-class duplicates are always suppressed. When the backend
    predicts masks, each kept box gets the part of its soft mask inside the
    written (clipped) box, see :func:`..common.masks.crop_mask`.

    Args:
        pred: one image's raw predictions
        ontology: the prompt -> class mapping the backend was prompted with
        width: original image width in pixels
        height: original image height in pixels
        confidence_threshold: minimum score to keep a box
        class_agnostic_nms: suppress across classes
        nms_iou: IoU above which the lower-scoring box is suppressed
    """
    raw_boxes = np.asarray(pred.boxes, dtype=np.float64)
    prompt_scores = np.asarray(pred.prompt_scores, dtype=np.float64)
    # checked on the raw values: clipping would turn an infinite box into the
    # whole image, and a NaN anywhere in a score vector would be written as
    # class_scores
    with np.errstate(invalid="ignore"):
        valid = (
            np.isfinite(raw_boxes).all(axis=1)
            & np.isfinite(prompt_scores).all(axis=1)
            & (prompt_scores >= 0.0).all(axis=1)
            & (prompt_scores <= 1.0).all(axis=1)
        )
    cls_scores = ontology.class_scores(np.where(valid[:, None], prompt_scores, 0.0))
    if len(cls_scores):
        labels = cls_scores.argmax(axis=1)
        conf = cls_scores[np.arange(len(labels)), labels]
    else:
        labels = np.zeros(0, dtype=int)
        conf = np.zeros(0)

    rel = B.xyxy_to_fiftyone(np.where(valid[:, None], raw_boxes, 0.0), width, height)
    keep = valid & (conf >= confidence_threshold) & (rel[:, 2] > 0) & (rel[:, 3] > 0)
    idx = np.flatnonzero(keep)
    if len(idx):
        order = B.nms(
            raw_boxes[idx],
            conf[idx],
            nms_iou,
            None if class_agnostic_nms else labels[idx],
        )
        idx = idx[order]
    masks = None
    if pred.masks is not None:
        # only the kept boxes: cropping costs the box's pixels
        masks = [crop_mask(pred.masks[i], rel[i], width, height) for i in idx.tolist()]

    return ImageDetections(
        boxes=rel[idx],
        labels=labels[idx],
        confidence=conf[idx],
        class_scores=cls_scores[idx] if pred.has_score_vector else None,
        num_invalid=int((~valid).sum()),
        masks=masks,
    )


def detections_doc(dets: ImageDetections, ontology: Ontology) -> dict:
    """The serialized ``fo.Detections`` document of post-processed arrays.

    Each detection has ``label`` (the class), ``confidence`` and a relative
    ``bounding_box``; when the backend exposes one, ``class_scores`` holds
    the per-class scores in the order of the run's ``classes``, and when it
    predicts masks, ``mask`` holds the instance mask (stored as FiftyOne's
    ``ArrayField`` stores it). The layout
    is FiftyOne's own (``fo.Detections.from_dict(doc)`` rebuilds the
    objects); building it directly skips per-label validation, see
    :mod:`..common.bulk`.
    """
    from ..common.bulk import new_object_ids

    classes = ontology.classes
    names = [classes[label] for label in dets.labels.tolist()]
    boxes = dets.boxes.tolist()
    conf = dets.confidence.tolist()
    ids = new_object_ids(len(names))
    out = [
        {
            "_id": oid,
            "_cls": "Detection",
            "attributes": {},
            "tags": [],
            "label": name,
            "bounding_box": box,
            "confidence": c,
        }
        for oid, name, box, c in zip(ids, names, boxes, conf)
    ]
    if dets.class_scores is not None:
        for d, scores in zip(out, dets.class_scores.tolist()):
            d[CLASS_SCORES_ATTR] = scores
    if dets.masks is not None:
        for d, mask in zip(out, dets.masks):
            d["mask"] = mask_to_mongo(mask)
    return {"_cls": "Detections", "detections": out}
