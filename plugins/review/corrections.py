"""Corrections are decisions: a changed class or box, stored, logged, undoable.

API (stable; the review surface's "change class" / "fix box" keys call it)::

    from stoplight.plugins.review.corrections import correct_label

    out = correct_label(dataset, "autolabels", label_id, label="7")            # change class
    out = correct_label(dataset, "autolabels", label_id,
                        bounding_box=[0.10, 0.20, 0.30, 0.25])                # fix the box
    out = correct_label(dataset, "autolabels", label_id, label="7",
                        bounding_box=[...], user="alice")                     # both
    undo_last(dataset, user="alice")   # puts the previous class and box back

    # the same through the operator
    foo.execute_operator("@stoplight/autolabel/review_labels", ctx={
        "dataset": dataset, "params": {"action": "correct", "label_id": label_id,
                                       "new_label": "7", "bounding_box": [...]}})

``bounding_box`` is FiftyOne's ``[x, y, width, height]`` relative to the
image (``[0, 1]``). The label keeps its id, scores and queue; it gets:

- ``label`` / ``bounding_box``: the corrected values, so the grid,
  ``finalize_labels``, training exports and everything else use them;
- ``review = "corrected"``, ``reviewed_by``, ``reviewed_at``,
  ``review_action``, ``review_bulk = False`` (see :mod:`.decisions`);
- ``logged_label`` / ``logged_bounding_box``: the same values, as logged;
- ``auto_label``: the class the detector gave (kept through later
  corrections), so that calibration learns about the auto-label as
  produced.

The audit log entry (action ``correct``) holds the label before and after
(``label``, ``bounding_box`` and the review state). Calibration counts a
corrected label as a wrong auto-label: the detector's output was not
right. Concurrency is that of every decision (:mod:`.decisions`): a fresh
action id, the log first, then a write guarded by ``review_action``.

Edits made elsewhere — the sample modal's **Annotate** tab of the FiftyOne
App, or any ``sample.save()`` — change ``label`` / ``bounding_box``
without telling Stoplight. :func:`sync_label_edits` finds them by
comparing each label with its logged copy and logs each as a ``corrected``
decision of user :data:`APP_EDIT_USER` (FiftyOne has no hook on label
edits, and the open-source App no login that would name the editor). It
runs before every review action on the samples it touches, on every panel
refresh, and in ``finalize_labels``; a full look only reads samples
written since the last one (``last_modified_at``, an index range). Labels
get their logged copy when the triage assigns queues, or at a full look
(they are taken as unedited: an edit made before Stoplight first looked at
a label cannot be told from the label as it was).
"""

from __future__ import annotations

import datetime
import math
from typing import Sequence

from ..common.identity import as_identity
from ..common.label_docs import prepare_label_docs
from ..common.label_vocab import AUTO_LABEL_ATTR, BULK_ATTR, LOGGED_ATTRS
from ..common import audit, fo_private
from . import decisions

#: the user recorded on edits found by :func:`sync_label_edits`
APP_EDIT_USER = "fiftyone-app"
#: samples written within this many seconds before a full look are read
#: again by the next one (same-millisecond writes, clocks slightly apart)
SETTLE_S = 5.0
#: an action on more samples than this looks at the samples written since
#: the last full look instead of listing its own
MAX_LISTED_SAMPLES = 10_000


def check_box(bounding_box) -> list[float]:
    """``bounding_box`` as 4 floats ``[x, y, w, h]`` inside the image.

    Raises:
        ValueError: naming the problem
    """
    if isinstance(bounding_box, str):
        parts = [p for p in bounding_box.replace(",", " ").split() if p]
        try:
            bounding_box = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"Parameter 'bounding_box' must be 4 numbers [x, y, w, h]; got {bounding_box!r}") from None
    try:
        box = [float(v) for v in bounding_box]
    except (TypeError, ValueError):
        raise ValueError(f"Parameter 'bounding_box' must be 4 numbers [x, y, w, h]; got {bounding_box!r}") from None
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise ValueError(f"Parameter 'bounding_box' must be 4 finite numbers [x, y, w, h]; got {bounding_box!r}")
    x, y, w, h = box
    eps = 1e-6
    if w <= 0 or h <= 0 or x < -eps or y < -eps or x + w > 1 + eps or y + h > 1 + eps:
        raise ValueError(
            "Parameter 'bounding_box' must be [x, y, w, h] relative to the image: w, h > 0 and the box "
            f"inside [0, 1]; got {box}"
        )
    return box


def correct_label(
    sample_collection,
    label_field: str,
    label_id: str,
    label: str | None = None,
    bounding_box: Sequence[float] | None = None,
    user: str | None = None,
    source: dict | None = None,
    propagate: bool = True,
) -> dict:
    """Changes a label's class and/or box, as a logged ``corrected`` decision.

    See the module docstring for what is written. Edits made in the App
    since Stoplight last looked at the label's sample are logged first, so
    that ``before`` is what the person corrected.

    Args:
        sample_collection: a dataset or view (its dataset is written)
        label_field: a label list field, e.g. ``"autolabels"``
        label_id: the label to correct
        label: the right class (None: keep)
        bounding_box: the right box ``[x, y, w, h]`` relative to the image
            (None: keep); only for detections
        user: the reviewer; default the operating-system user
        source: where the correction came from (stored on the log entry)
        propagate: re-rank the open labels near it (a correction is a
            wrong auto-label, like a rejection)

    Returns:
        summary dict: ``action`` (``"correct"``), ``action_id``, ``user``,
        ``label_field``, ``label_id``, ``sample_id``, ``before`` and
        ``after`` (``{"label", "bounding_box"}``), ``num_labels`` (1),
        ``num_reranked``

    Raises:
        ValueError: for an unknown field or label, a bad class or box, or a
            correction that changes nothing
    """
    import fiftyone as fo

    dataset = fo_private.root_dataset(sample_collection)
    list_path = decisions.label_list_path(dataset, label_field)
    if label is None and bounding_box is None:
        raise ValueError("Give the right class ('label') and/or box ('bounding_box') to correct a label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise ValueError(f"Parameter 'label' must be a non-empty class name; got {label!r}")
    box = None
    if bounding_box is not None:
        if dataset.get_field(label_field).document_type is not fo.Detections:
            raise ValueError(f"Parameter 'bounding_box': field {label_field!r} does not hold boxes (fo.Detections)")
        box = check_box(bounding_box)
    if not isinstance(label_id, str) or not label_id:
        raise ValueError(f"Parameter 'label_id' must be a label id; got {label_id!r}")
    who = as_identity(user)
    user = who.name
    found = decisions.read_label_states(dataset, list_path, [label_id])
    if label_id not in found:
        raise ValueError(f"Label id {label_id!r} not found in field {label_field!r} of dataset '{dataset.name}'")
    if sync_label_edits(dataset, label_field, sample_ids=[found[label_id]["sample_id"]])["num_corrected"]:
        found = decisions.read_label_states(dataset, list_path, [label_id])
    info = found[label_id]
    new_label = label.strip() if label is not None else info["label"]
    new_box = box if box is not None else info["bounding_box"]
    if new_label == info["label"] and (new_box is None or _same_box(new_box, info["bounding_box"])):
        raise ValueError(
            f"The correction changes nothing: label {label_id!r} already is {new_label!r} with that box "
            "(accept it instead)"
        )

    audit.delete_orphan_logs()
    action_id = audit.next_action_id(dataset)
    now = decisions.now_ms()
    before = dict(info["state"], label=info["label"], bounding_box=info["bounding_box"])
    before[AUTO_LABEL_ATTR] = info["auto_label"]
    after = dict(review="corrected", reviewed_by=user, reviewed_at=now, review_action=action_id,
                 label=new_label, bounding_box=new_box)
    after[AUTO_LABEL_ATTR] = info["auto_label"] if info["auto_label"] is not None else info["label"]
    after[BULK_ATTR] = False
    lost = decisions.record_action(dataset, list_path, label_field, "correct", who, now, action_id,
                                   [(info["sample_id"], label_id, before, after)], source=source,
                                   header_extra=dict(bulk=False))
    reranked = 0
    if propagate and not lost:
        from .propagation import rerank_after_answers

        reranked = rerank_after_answers(dataset, label_field, [label_id])["num_reranked"]
    return dict(
        action="correct", action_id=action_id, user=user, user_source=who.source, label_field=label_field,
        label_id=label_id, sample_id=info["sample_id"],
        before=dict(label=info["label"], bounding_box=info["bounding_box"]),
        after=dict(label=new_label, bounding_box=new_box),
        # a decision made on the label between the read and the write wins
        num_labels=0 if lost else 1, num_conflicts=len(lost), num_reranked=reranked,
    )


def sync_label_edits(sample_collection, label_field: str, sample_ids: Sequence[str] | None = None,
                     snapshot: bool = True) -> dict:
    """Logs labels whose class or box changed outside Stoplight as
    ``corrected`` decisions (user :data:`APP_EDIT_USER`); a full look also
    gives labels without a logged copy one
    (:func:`..common.label_docs.prepare_label_docs`).

    Args:
        sample_collection: the dataset (or a view of it)
        label_field: a label list field
        sample_ids: look only at these samples, and write nothing but the
            corrections found (what a review action does before deciding);
            default: a full look at every sample written since the last
            one (all samples the first time)
        snapshot: with a full look, give labels without a logged copy one
            (False: write nothing but corrections found, and keep the
            look's starting point for the next full look)

    Returns:
        ``{"num_corrected", "num_snapshotted", "action_id", "label_ids"}``
        (``action_id`` None when nothing was edited)
    """
    from bson import ObjectId

    dataset = fo_private.root_dataset(sample_collection)
    list_path = decisions.label_list_path(dataset, label_field)
    out = dict(num_corrected=0, num_snapshotted=0, action_id=None, label_ids=[])
    if sample_ids is not None and len(sample_ids) > MAX_LISTED_SAMPLES:
        sample_ids = None  # a large action: the samples written since the last look are fewer
    edited, unlogged = [], []
    if sample_ids is not None:
        if not len(sample_ids):
            return out
        oids = [ObjectId(str(s)) for s in dict.fromkeys(sample_ids)]
        started = None
        for start in range(0, len(oids), 50_000):
            e, u = _scan(dataset, list_path, {"_id": {"$in": oids[start : start + 50_000]}})
            edited += e
            unlogged += u
    else:
        started = decisions.now_ms()
        since = _watermark(dataset, label_field)
        edited, unlogged = _scan(dataset, list_path, {} if since is None else {"last_modified_at": {"$gt": since}})
    if unlogged and started is not None and snapshot:
        out["num_snapshotted"] = _snapshot(dataset, list_path, unlogged)
    if edited:
        action_id = audit.next_action_id(dataset)
        now = decisions.now_ms()
        changes = []
        for sid, lab in edited:
            state = {k: lab.get(k) for k in audit.STATE_KEYS}
            before = dict(state, label=lab.get(LOGGED_ATTRS[0]), bounding_box=lab.get(LOGGED_ATTRS[1]))
            before[AUTO_LABEL_ATTR] = lab.get(AUTO_LABEL_ATTR)
            after = dict(review="corrected", reviewed_by=APP_EDIT_USER, reviewed_at=now, review_action=action_id,
                         label=lab.get("label"), bounding_box=lab.get("bounding_box"))
            after[AUTO_LABEL_ATTR] = before[AUTO_LABEL_ATTR] if before[AUTO_LABEL_ATTR] is not None else before["label"]
            after[BULK_ATTR] = False
            changes.append((str(sid), str(lab["_id"]), before, after))
        decisions.record_action(dataset, list_path, label_field, "correct", APP_EDIT_USER, now, action_id, changes,
                                source=dict(via="fiftyone_app", detected_by="sync_label_edits"))
        out.update(num_corrected=len(changes), action_id=action_id, label_ids=[c[1] for c in changes])
        from .propagation import rerank_after_answers

        rerank_after_answers(dataset, label_field, out["label_ids"])
    if started is not None and snapshot:
        _set_watermark(dataset, label_field, started - datetime.timedelta(seconds=SETTLE_S))
    return out


def _same_box(a, b) -> bool:
    if b is None:
        return False
    return all(abs(float(x) - float(y)) <= 1e-9 for x, y in zip(a, b))


def _scan(dataset, list_path: str, match: dict) -> tuple[list, list]:
    """``(edited, unlogged)``: ``(sample_id, label doc)`` of labels whose
    class or box differs from the logged copy, and sample ids holding
    labels with no logged copy."""
    logged_label, logged_box = (f"$$this.{a}" for a in LOGGED_ATTRS)
    unlogged = {"$eq": [{"$type": logged_box}, "missing"]}
    edited = {"$and": [
        {"$not": [unlogged]},
        {"$or": [
            {"$ne": [{"$ifNull": ["$$this.label", None]}, {"$ifNull": [logged_label, None]}]},
            {"$ne": [{"$ifNull": ["$$this.bounding_box", None]}, {"$ifNull": [logged_box, None]}]},
        ]},
    ]}
    keep = ("_id", "label", "bounding_box", AUTO_LABEL_ATTR, *LOGGED_ATTRS, *audit.STATE_KEYS)
    pipeline = [
        {"$match": match},
        {"$project": {
            "e": {"$filter": {"input": {"$ifNull": [f"${list_path}", []]}, "cond": edited}},
            "u": {"$anyElementTrue": [{"$map": {"input": {"$ifNull": [f"${list_path}", []]}, "in": unlogged}}]},
        }},
        {"$match": {"$or": [{"u": True}, {"e.0": {"$exists": True}}]}},
        {"$project": {"u": 1, **{f"e.{k}": 1 for k in keep}}},
    ]
    edits, missing = [], []
    for doc in fo_private.sample_collection(dataset).aggregate(pipeline, allowDiskUse=True):
        if doc.get("u"):
            missing.append(doc["_id"])
        edits.extend((doc["_id"], lab) for lab in doc.get("e") or [])
    return edits, missing


def _snapshot(dataset, list_path: str, sample_oids: list) -> int:
    """Gives every label of these samples that has none a logged copy of
    its class and box (and the tooltip's attribute order)."""
    return prepare_label_docs(dataset, list_path, sample_oids)


def _watermark(dataset, label_field: str):
    key = fo_private.sample_collection_name(fo_private.root_dataset(dataset))
    doc = audit.counters().find_one({"_id": key}, {"edits_since": 1})
    return ((doc or {}).get("edits_since") or {}).get(label_field)


def _set_watermark(dataset, label_field: str, when) -> None:
    key = fo_private.sample_collection_name(fo_private.root_dataset(dataset))
    audit.counters().update_one({"_id": key},
                                {"$set": {f"edits_since.{label_field}": when}}, upsert=True)
