"""Copying reviewed labels into a clean final field.

:func:`finalize_labels` writes, for every sample of a view, the labels of
``label_field`` that are accepted or corrected (``review`` in
``accepted`` / ``corrected``: a corrected label carries the corrected class
and box) and, with ``include_green``, the green ones nobody rejected
(``queue == "green"`` and ``review != "rejected"``) into ``final_field``
as plain ``fo.Detections``: ``label``, ``bounding_box``, ``confidence``,
and these provenance attributes, no scores or embeddings:

================== ==========================================================
attribute          meaning
================== ==========================================================
``source_field``   the field the label was copied from
``source_id``      the id of the label it was copied from
``review``         its review state (``accepted`` or ``corrected``; for
                   green labels also ``pending`` or None)
``reviewed_by``    its reviewer (None if nobody reviewed it)
``reviewed_at``    when it was reviewed
``queue``          its triage queue, if any
``auto_accepted``  True when copied only because it is green
================== ==========================================================

Each final label's id is derived from ``final_field`` and the source
label's id, so re-running writes exactly the same documents: same labels,
same ids, no duplicates; a label rejected since disappears. The source
field is only read, after edits made in the App since Stoplight last
looked are logged as corrections (:func:`.corrections.sync_label_edits`).
Every run is recorded in the runs registry (method ``finalize_labels``).
An existing ``final_field`` that Stoplight did not create as a final field
(human labels, say) is refused unless the caller passes
``adopt_field=True``.
"""

from __future__ import annotations

import hashlib

from ..common import bulk, fo_private, provenance
from ..common.label_attrs import declare_label_attrs
from ..common.label_vocab import KEPT_DECISIONS
from .corrections import sync_label_edits
from ..common.field_owner import check_field_claim, mark_field, purpose_info
from .decisions import label_list_path

#: mask attributes copied when a label has them (``autolabel.segment``)
MASK_KEYS = ("mask", "mask_iou", "mask_stability")
#: provenance attributes of final labels and their FiftyOne field types
FINAL_ATTRS = ("source_field", "source_id", "review", "reviewed_by", "reviewed_at", "queue", "auto_accepted")
#: samples read and written per bulk round trip
_CHUNK = 5_000


def final_label_id(final_field: str, source_id: str) -> str:
    """Deterministic id of the final copy of label ``source_id``."""
    digest = hashlib.sha1(f"stoplight-final:{final_field}:{source_id}".encode()).hexdigest()
    return digest[:24]


def keep_label(review, queue, include_green: bool) -> tuple[bool, bool]:
    """Whether a label with this review state and queue goes into the final
    field, and whether only because it is green: ``(keep, auto)``."""
    if review in KEPT_DECISIONS:
        return True, False
    if include_green and queue == "green" and review != "rejected":
        return True, True
    return False, False


def finalize_labels(
    sample_collection,
    label_field: str,
    final_field: str | None = None,
    include_green: bool = False,
    run_key: str | None = None,
    adopt_field: bool = False,
) -> dict:
    """Copies accepted (and optionally green, unrejected) labels to
    ``final_field`` for every sample of the collection.

    The samples come from the collection; each sample's labels are read in
    full from its dataset, so label filters of a view never drop accepted
    labels from the final field. In a patches view, the patches' source
    samples are finalized.

    Args:
        sample_collection: a dataset or view of image samples
        label_field: an ``fo.Detections`` field with review decisions
        final_field: the field to write; default ``<label_field>_final``
        include_green: also copy labels in the green queue that nobody
            rejected
        run_key: key of the run record; default generated
        adopt_field: replace ``final_field`` even though it exists and
            Stoplight did not create it as a final field (e.g. human
            labels); by default that is refused (:mod:`..common.field_owner`)

    Returns:
        summary dict: ``run_key``, ``final_field``, ``num_samples``,
        ``num_source_labels``, ``num_final_labels``, ``num_accepted``
        (accepted or corrected by a person), ``num_green``

    Raises:
        ValueError: for an unknown or non-Detections ``label_field``, a
            ``final_field`` equal to it or holding something else, or
            video samples
    """
    import fiftyone as fo

    dataset = fo_private.root_dataset(sample_collection)
    list_path = label_list_path(dataset, label_field)
    if dataset.get_field(label_field).document_type is not fo.Detections:
        raise ValueError(f"Field {label_field!r} must be an fo.Detections field to finalize")
    final_field = final_field or f"{label_field}_final"
    if final_field == label_field:
        raise ValueError("Parameter 'final_field' must differ from 'label_field' (the source is never overwritten)")
    if not final_field.isidentifier():
        raise ValueError(f"Parameter 'final_field' must be a plain field name; got {final_field!r}")
    if sample_collection.media_type != "image":
        raise ValueError(f"Only image samples can be finalized; the view has media type {sample_collection.media_type!r}")
    existing = dataset.get_field(final_field)
    if existing is not None and getattr(existing, "document_type", None) is not fo.Detections:
        raise ValueError(f"Field {final_field!r} exists and is not an fo.Detections field; choose another 'final_field'")
    # a final field is rewritten whole (None on samples without labels):
    # only ours, or one the caller explicitly takes over
    check_field_claim(dataset, final_field, "final", adopt_field, "final_field")

    if fo_private.is_patches(sample_collection):
        sample_ids = list(dict.fromkeys(sample_collection.values("sample_id")))
    else:
        sample_ids = sample_collection.values("id")

    sync_label_edits(dataset, label_field, snapshot=False)  # the source is only written when edits are found
    run_key = run_key or provenance.new_run_key(f"finalize_{final_field}")
    record = provenance.start_run(
        dataset, run_key, method="finalize_labels", label_field=label_field,
        final_field=final_field, include_green=bool(include_green), num_view_samples=len(sample_ids),
    )
    summary = dict(
        run_key=run_key, final_field=final_field, num_samples=0, num_source_labels=0,
        num_final_labels=0, num_accepted=0, num_green=0,
    )
    try:
        bulk.declare_field(dataset, final_field, fo.Detections, info=purpose_info("final"))
        if adopt_field:
            mark_field(dataset, final_field, "final")
        declare_label_attrs(dataset, f"{final_field}.detections", FINAL_ATTRS)
        for attr in MASK_KEYS[1:]:
            if dataset.has_field(f"{list_path}.{attr}") and not dataset.has_field(f"{final_field}.detections.{attr}"):
                dataset.add_sample_field(f"{final_field}.detections.{attr}", fo.FloatField)
        for start in range(0, len(sample_ids), _CHUNK):
            chunk = sample_ids[start : start + _CHUNK]
            docs = _final_docs(dataset, list_path, final_field, chunk, include_green, summary)
            bulk.write_docs(dataset, final_field, docs)
            summary["num_samples"] += len(docs)
    except Exception as e:
        provenance.finish_run(dataset, run_key, record, dict(summary, status="failed", error=str(e)))
        raise
    provenance.finish_run(dataset, run_key, record, summary)
    return summary


def _final_docs(dataset, list_path, final_field, sample_ids, include_green, summary) -> dict:
    """``{sample_id: final Detections document or None}`` of a chunk."""
    from bson import ObjectId

    field, list_name = list_path.split(".")
    keys = ("label", "bounding_box", "confidence", "review", "reviewed_by", "reviewed_at", "queue", *MASK_KEYS)
    # subpaths only: the whole field would pull every attribute (embeddings
    # too); `_cls` tells an empty Detections from a missing one
    projection = {f"{field}._cls": 1, f"{list_path}._id": 1, **{f"{list_path}.{k}": 1 for k in keys}}
    docs = {}
    cursor = fo_private.sample_collection(dataset).find({"_id": {"$in": [ObjectId(i) for i in sample_ids]}}, projection)
    for doc in cursor:
        src = doc.get(field)
        if not src:
            docs[str(doc["_id"])] = None  # never labeled: no claim about its contents
            continue
        dets = []
        for lab in src.get(list_name) or []:
            summary["num_source_labels"] += 1
            keep, auto = keep_label(lab.get("review"), lab.get("queue"), include_green)
            if not keep:
                continue
            sid = str(lab["_id"])
            dets.append(
                {
                    "_id": ObjectId(final_label_id(final_field, sid)),
                    "_cls": "Detection",
                    "attributes": {},
                    "tags": [],
                    "label": lab.get("label"),
                    "bounding_box": lab.get("bounding_box"),
                    "confidence": lab.get("confidence"),
                    "source_field": field,
                    "source_id": sid,
                    "review": lab.get("review"),
                    "reviewed_by": lab.get("reviewed_by"),
                    "reviewed_at": lab.get("reviewed_at"),
                    "queue": lab.get("queue"),
                    "auto_accepted": auto,
                    # instance masks (segment_labels, SAM 3) travel with the label
                    **{k: lab[k] for k in MASK_KEYS if lab.get(k) is not None},
                }
            )
            summary["num_green" if auto else "num_accepted"] += 1
        summary["num_final_labels"] += len(dets)
        docs[str(doc["_id"])] = {"_cls": "Detections", list_name: dets}
    return docs
