"""The ``missing`` queue: a person adds a missed object with one key.

Candidates of objects the auto-labels missed live in their own
``fo.Detections`` field (default ``<label_field>_candidates``, whose
``info`` names the label field, see
:func:`..common.field_owner.candidates_info`): boxes below the labeling
threshold (``zero_shot_detect(candidates_threshold=...)``), another model's
or prompt set's boxes, and verified objects nobody labeled
(:mod:`..autolabel.candidates`). Each has ``queue="missing"``.

Two answers:

- :func:`add_missing` accepts a candidate: the candidate gets
  ``review="accepted"`` and a copy of its box becomes a new label of the
  label field, already ``accepted`` by the same person, with
  ``added_from`` (the candidate's id). Both happen in ONE MongoDB update of
  the sample (atomic per document), guarded by the candidate's
  ``review_action`` still being the one read (compare-and-set, as every
  decision of :mod:`.decisions`): of two reviewers racing on one
  candidate, exactly one adds the label; the other's action is logged and
  marked ``conflict``, and adds nothing.
- :func:`dismiss_missing` rejects candidates (a plain decision of
  :func:`.decisions.review_labels` on the candidates field).

Both are logged in the dataset's review log (:mod:`..common.audit`) with the
reviewer's identity: ``add`` actions carry ``label_field`` and, per entry,
``after.added_label_id``. A candidate a person already decided is never
decided again (counted as a conflict): human decisions are sacred.
:func:`.decisions.undo_last` undoes an ``add`` through :func:`undo_add`:
the added label is removed and the candidate is open again, unless someone
decided either since (a conflict; left alone).
"""

from __future__ import annotations

from typing import Iterable

from ..common.bulk import DB_NOW
from ..common.field_owner import candidates_label_field
from ..common.identity import Identity, as_identity
from ..common.label_attrs import declare_label_attrs
from ..common.label_vocab import ADDED_FROM_ATTR, BULK_ATTR, HUMAN_DECISIONS, LOGGED_ATTRS
from ..common import audit, fo_private
from . import decisions

#: candidate attributes copied onto the label it becomes
COPIED_ATTRS = ("label", "bounding_box", "confidence", "class_scores", "candidate_source")


def label_field_of(dataset, candidates_field: str) -> str:
    """The label field whose candidates ``candidates_field`` holds.

    Raises:
        ValueError: if ``candidates_field`` is no candidates field (the
            label field comes from the field's own ``info``, never from a
            request: nobody can direct additions into another field)
    """
    decisions.label_list_path(dataset, candidates_field)  # validates
    label_field = candidates_label_field(dataset, candidates_field)
    if label_field is None:
        raise ValueError(
            f"Field {candidates_field!r} holds no missed-object candidates (it was not created by "
            "zero_shot_detect(candidates_threshold=...) or the candidates functions)"
        )
    return label_field


def add_missing(sample_collection, candidates_field: str, label_ids: Iterable[str] | str,
                user: "str | Identity | None" = None) -> dict:
    """Adds candidates as new labels of their label field, logged as one
    ``add`` decision of ``user`` (see the module docstring).

    Args:
        sample_collection: the dataset (or a view of it)
        candidates_field: the candidates field, e.g. ``"autolabels_candidates"``
        label_ids: ids of the candidates to add
        user: the reviewer; default the operating-system user

    Returns:
        summary dict: ``action`` (``"add"``), ``action_id`` (None when
        nothing was open to add), ``user``, ``user_source``,
        ``label_field``, ``candidates_field``, ``num_added``,
        ``added_label_ids`` (``{candidate id: new label id}``),
        ``num_conflicts`` and ``conflicts`` (candidates someone decided
        before, or meanwhile: nothing added for them)

    Raises:
        ValueError: for a field that holds no candidates, an unknown or
            invalid candidate id, or no ids
    """
    from bson import ObjectId

    dataset = fo_private.root_dataset(sample_collection)
    label_field = label_field_of(dataset, candidates_field)
    cand_path = decisions.label_list_path(dataset, candidates_field)
    label_path = decisions.label_list_path(dataset, label_field)
    ids = _ids(label_ids)
    who = as_identity(user)
    current = decisions.read_label_states(dataset, cand_path, ids)
    unknown = [i for i in ids if i not in current]
    if unknown:
        raise ValueError(f"{len(unknown)} candidate id(s) not found in field {candidates_field!r}, e.g. {unknown[:5]}")
    decided = [i for i in ids if current[i]["state"].get("review") in HUMAN_DECISIONS]
    open_ids = [i for i in ids if i not in decided]
    summary = dict(action="add", action_id=None, user=who.name, user_source=who.source, label_field=label_field,
                   candidates_field=candidates_field, num_added=0, added_label_ids={},
                   num_conflicts=len(decided), conflicts=list(decided))
    if not open_ids:
        return summary

    audit.delete_orphan_logs()
    action_id = audit.next_action_id(dataset)
    now = decisions.now_ms()
    state = dict(review="accepted", reviewed_by=who.name, reviewed_at=now, review_action=action_id)
    state[BULK_ATTR] = False
    new_ids = {cid: ObjectId() for cid in open_ids}
    changes = [(current[c]["sample_id"], c, current[c]["state"], dict(state, added_label_id=str(new_ids[c])))
               for c in open_ids]
    common = dict(action_id=action_id, action="add", user=who.name, user_source=who.source, at=now,
                  field=candidates_field, label_field=label_field)
    header = dict(common, num_labels=len(changes), bulk=False, num_overridden=0, overridden_reviewers=[])
    header["_id"] = header.pop("action_id")
    _declare(dataset, cand_path, label_path)
    audit.append(dataset, header, decisions.log_entries(common, changes))  # intent first

    docs = _candidate_docs(dataset, cand_path, open_ids)
    lost = []
    for sid, cid, before, _ in changes:
        new = {k: docs[cid][k] for k in COPIED_ATTRS if docs[cid].get(k) is not None}
        new.update(_id=new_ids[cid], _cls="Detection", attributes={}, tags=[], **state)
        new[ADDED_FROM_ATTR] = cid
        new.update(zip(LOGGED_ATTRS, (new["label"], new["bounding_box"])))  # not an edit made elsewhere
        if not _write_add(dataset, cand_path, label_path, sid, cid, before.get("review_action"), state, new):
            lost.append(cid)
    if lost:
        audit.mark_conflicts(dataset, action_id, sorted(lost))
    _reload(dataset, {c[0] for c in changes})
    added = {cid: str(new_ids[cid]) for cid in open_ids if cid not in lost}
    summary.update(action_id=action_id, num_added=len(added), added_label_ids=added,
                   num_conflicts=len(decided) + len(lost), conflicts=decided + sorted(lost))
    return summary


def dismiss_missing(sample_collection, candidates_field: str, label_ids: Iterable[str] | str,
                    user: "str | Identity | None" = None) -> dict:
    """Dismisses candidates (``review="rejected"``): no object is missing
    there. A logged decision of :func:`.decisions.review_labels`;
    candidates a person already decided are left alone (conflicts).

    Returns:
        the summary of :func:`.decisions.review_labels`
    """
    label_field_of(fo_private.root_dataset(sample_collection), candidates_field)  # a candidates field
    return decisions.review_labels(sample_collection, candidates_field, "reject", label_ids=_ids(label_ids),
                                   user=user, propagate=False, protect="all")


def undo_add(dataset, target: dict, who: Identity) -> dict:
    """Undoes the ``add`` action ``target`` (a header of the log, see
    :func:`.decisions.undo_last`): each added label is removed and its
    candidate gets its state from before, in one update per candidate,
    only while neither was decided again since (else a conflict, left
    alone)."""
    from bson import ObjectId

    cand_path = decisions.label_list_path(dataset, target["field"])
    label_path = decisions.label_list_path(dataset, target["label_field"])
    entries = [e for e in audit.action_entries(dataset, target["_id"]) if not e.get("conflict")]
    action_id = audit.next_action_id(dataset)
    now = decisions.now_ms()
    changes = []
    for e in entries:
        restored = {k: e["before"].get(k) for k in audit.STATE_KEYS}
        restored["review_action"] = action_id
        changes.append((e["sample_id"], e["label_id"], e["after"],
                        dict(restored, removed_label_id=e["after"]["added_label_id"])))
    common = dict(action_id=action_id, action="undo", user=who.name, user_source=who.source, at=now,
                  field=target["field"], label_field=target["label_field"], undoes=target["_id"])
    header = dict(common, num_labels=len(changes), num_overridden=0, overridden_reviewers=[])
    header["_id"] = header.pop("action_id")
    audit.append(dataset, header, decisions.log_entries(common, changes))
    lost = []
    coll = fo_private.sample_collection(dataset)
    for sid, cid, _, after in changes:
        added = ObjectId(after["removed_label_id"])
        query = {"_id": ObjectId(sid),
                 cand_path: {"$elemMatch": {"_id": ObjectId(cid), "review_action": target["_id"]}},
                 label_path: {"$elemMatch": {"_id": added, "review_action": target["_id"]}}}
        update = {"$set": {f"{cand_path}.$[c].{k}": after[k] for k in audit.STATE_KEYS},
                  "$pull": {label_path: {"_id": added}}, **DB_NOW}
        if coll.update_one(query, update, array_filters=[{"c._id": ObjectId(cid)}]).modified_count != 1:
            lost.append(cid)
    if lost:
        audit.mark_conflicts(dataset, action_id, sorted(lost))
    _reload(dataset, {c[0] for c in changes})
    return dict(action="undo", action_id=action_id, undone_action_id=target["_id"], undone_action="add",
                user=who.name, user_source=who.source, label_field=target["field"],
                num_labels=len(changes) - len(lost), num_conflicts=len(lost), num_missing=0)


def _write_add(dataset, cand_path: str, label_path: str, sid: str, cid: str, expected, state: dict,
               new: dict) -> bool:
    """One atomic update of the sample: the candidate's decision and the new
    label, only while the candidate's ``review_action`` is ``expected``
    (None also matches a missing one). Whether it was written."""
    from bson import ObjectId

    coll = fo_private.sample_collection(dataset)
    field = label_path.split(".")[0]
    # a sample without labels holds None in the field: give it an empty list
    # first (harmless if the add then loses its race)
    coll.update_one({"_id": ObjectId(sid), field: None},
                    {"$set": {field: {"_cls": "Detections", label_path.split(".")[1]: []}}})
    query = {"_id": ObjectId(sid), cand_path: {"$elemMatch": {"_id": ObjectId(cid), "review_action": expected}}}
    update = {"$set": {f"{cand_path}.$[c].{k}": v for k, v in state.items()}, "$push": {label_path: new}, **DB_NOW}
    return coll.update_one(query, update, array_filters=[{"c._id": ObjectId(cid)}]).modified_count == 1


def _candidate_docs(dataset, cand_path: str, ids) -> dict[str, dict]:
    from bson import ObjectId

    field, list_name = cand_path.split(".")
    out = {}
    oids = [ObjectId(i) for i in ids]
    for doc in fo_private.sample_collection(dataset).find({f"{cand_path}._id": {"$in": oids}}, {cand_path: 1}):
        for lab in (doc.get(field) or {}).get(list_name) or []:
            out[str(lab["_id"])] = lab
    return out


def _declare(dataset, cand_path: str, label_path: str) -> None:
    decisions.declare_review_attrs(dataset, cand_path)
    decisions.declare_review_attrs(dataset, label_path, content=True)
    declare_label_attrs(dataset, label_path, (ADDED_FROM_ATTR,))


def _reload(dataset, sample_ids) -> None:
    """In-memory samples of this process see the raw writes."""
    fo_private.reload_sample_docs(dataset, list(sample_ids))


def _ids(label_ids) -> list[str]:
    if isinstance(label_ids, str):
        label_ids = [label_ids]
    ids = list(dict.fromkeys(str(i) for i in (label_ids or [])))
    if not ids:
        raise ValueError("Parameter 'label_ids' must name at least one candidate")
    return ids
