"""More candidates of missed objects, from other sources than the labeling
threshold: another model's or prompt set's boxes, and verified objects
nobody labeled.

A source box becomes a candidate (appended to the candidates field,
default ``<label_field>_candidates``, with ``queue="missing"``) when no
label of ``label_field`` that a person did not reject covers it (IoU >=
``iou``; with ``classwise``, of the same class) and no candidate there
repeats it already. A person then adds or dismisses each in the
``missing`` queue (:mod:`..review.missing`). Candidates already in the
field, decided or not, are never touched.

Matching: :func:`..common.box_match.unmatched`.
"""

from __future__ import annotations

import numpy as np

from ..common import fo_private
from ..common.box_match import unmatched
from ..common.field_owner import candidates_info, candidates_label_field
from ..common.label_attrs import declare_label_attrs
from ..common.label_vocab import CANDIDATE_SOURCE_ATTR, DEFAULT_LABEL_FIELD, MISSING_QUEUE, candidates_field as default_field

#: attribute of a candidate from another field: the id of its source box
SOURCE_LABEL_ATTR = "source_label_id"


def add_candidates_from_field(sample_collection, source_field: str, label_field: str = DEFAULT_LABEL_FIELD,
                              candidates_field: str | None = None, iou: float = 0.5,
                              classwise: bool = True) -> dict:
    """Adds the boxes of ``source_field`` (a second model's, or the same
    model's with another prompt set) that no label of ``label_field``
    covers as candidates of missed objects.

    Example usage::

        zero_shot_detect(ds, backend="yoloe", classes=classes, label_field="yoloe")
        add_candidates_from_field(ds, "yoloe", "autolabels")

    Args:
        sample_collection: a dataset or view (its samples are looked at)
        source_field: the other ``fo.Detections`` field
        label_field: the auto-labels
        candidates_field: default ``<label_field>_candidates``
        iou: least IoU at which a label covers a source box
        classwise: a label covers only source boxes of its own class

    Returns:
        ``{"candidates_field", "num_candidates" (added), "num_samples"}``
    """
    return _add_unmatched(sample_collection, source_field, label_field, candidates_field, iou, classwise,
                          source=source_field)


def add_candidates_from_verified(sample_collection, gt_field: str = "ground_truth",
                                 label_field: str = DEFAULT_LABEL_FIELD, candidates_field: str | None = None,
                                 iou: float = 0.5, classwise: bool = True) -> dict:
    """Adds the verified objects nobody labeled: the boxes of ``gt_field``
    on the samples that have it (the verified images) that no label of
    ``label_field`` covers. Their ``candidate_source`` is
    ``verified:<gt_field>``; they carry no confidence. Arguments and result
    as :func:`add_candidates_from_field`."""
    view = sample_collection.exists(gt_field)
    return _add_unmatched(view, gt_field, label_field, candidates_field, iou, classwise,
                          source=f"verified:{gt_field}", with_confidence=False)


def _add_unmatched(view, source_field, label_field, candidates_field, iou, classwise, source,
                   with_confidence=True) -> dict:
    from bson import ObjectId
    from pymongo import UpdateOne

    import fiftyone as fo

    from ..common.bulk import DB_NOW, declare_field

    dataset = fo_private.root_dataset(view)
    candidates_field = candidates_field or default_field(label_field)
    for name, field in (("source_field", source_field), ("label_field", label_field)):
        _check_detections(dataset, field, name)
    if not isinstance(candidates_field, str) or not candidates_field.replace("_", "a").isalnum() \
            or candidates_field.startswith("_"):
        raise ValueError(f"Parameter 'candidates_field' must be a plain field name; got {candidates_field!r}")
    if len({source_field, label_field, candidates_field}) < 3:
        raise ValueError("Parameters 'source_field', 'label_field' and 'candidates_field' must differ")
    if not (isinstance(iou, (int, float)) and 0.0 < iou <= 1.0):
        raise ValueError(f"Parameter 'iou' must be in (0, 1]; got {iou!r}")
    if dataset.has_field(candidates_field):
        _check_detections(dataset, candidates_field, "candidates_field")
        if candidates_label_field(dataset, candidates_field) != label_field:
            raise ValueError(f"Parameter 'candidates_field': field {candidates_field!r} exists and holds no "
                             f"candidates of {label_field!r}")
    else:
        declare_field(dataset, candidates_field, fo.Detections, info=candidates_info(label_field))
    declare_label_attrs(dataset, f"{candidates_field}.detections",
                        dict.fromkeys((CANDIDATE_SOURCE_ATTR, SOURCE_LABEL_ATTR, "queue"), "StringField"))

    paths = [f"{source_field}.detections.{a}" for a in ("id", "label", "bounding_box", "confidence")]
    paths += [f"{label_field}.detections.{a}" for a in ("label", "bounding_box", "review")]
    paths += [f"{candidates_field}.detections.{a}" for a in ("label", "bounding_box")]
    sids, *cols = view.values(["id", *paths])
    cols = [[v or [] for v in col] for col in cols]
    ops, written, n_added = [], [], 0
    for i, sid in enumerate(sids):
        s_id, s_lab, s_box, s_conf, l_lab, l_box, l_rev, c_lab, c_box = (col[i] for col in cols)
        if not s_id:
            continue
        # a label a person rejected covers nothing
        kept = [j for j, r in enumerate(l_rev) if r != "rejected"]
        other_lab = [l_lab[j] for j in kept] + list(c_lab)
        other_box = [l_box[j] for j in kept] + list(c_box)
        new = unmatched(np.array(s_box), s_lab, np.array(other_box), other_lab, iou, classwise)
        docs = [_candidate(s_lab[j], s_box[j], s_conf[j] if with_confidence else None, s_id[j], source) for j in np.flatnonzero(new)]
        if not docs:
            continue
        n_added += len(docs)
        written.append(sid)
        if c_lab or _has_list(dataset, candidates_field, sid):
            ops.append(UpdateOne({"_id": ObjectId(sid)},
                                 {"$push": {f"{candidates_field}.detections": {"$each": docs}}, **DB_NOW}))
        else:
            ops.append(UpdateOne({"_id": ObjectId(sid)},
                                 {"$set": {candidates_field: {"_cls": "Detections", "detections": docs}},
                                  **DB_NOW}))
    if ops:
        fo_private.bulk_write(dataset, ops, ids=written)
    return dict(candidates_field=candidates_field, num_candidates=n_added, num_samples=len(ops))


def _candidate(label, box, confidence, source_id, source) -> dict:
    from bson import ObjectId

    doc = dict(_id=ObjectId(), _cls="Detection", attributes={}, tags=[], label=label,
               bounding_box=[float(v) for v in box], queue=MISSING_QUEUE)
    if confidence is not None:
        doc["confidence"] = float(confidence)
    doc[CANDIDATE_SOURCE_ATTR] = source
    doc[SOURCE_LABEL_ATTR] = str(source_id)
    return doc


def _has_list(dataset, field: str, sid: str) -> bool:
    """Whether the sample's ``field`` holds a Detections document (maybe
    with an empty list): then candidates are appended, else it is set."""
    from bson import ObjectId

    doc = fo_private.sample_collection(dataset).find_one({"_id": ObjectId(sid)}, {field: 1})
    return isinstance((doc or {}).get(field), dict)


def _check_detections(dataset, field: str, param: str) -> None:
    import fiftyone as fo

    f = dataset.get_field(field) if isinstance(field, str) and field else None
    if f is None or getattr(f, "document_type", None) is not fo.Detections:
        raise ValueError(f"Parameter '{param}' must name a fo.Detections field of dataset "
                         f"'{dataset.name}'; got {field!r}")
