"""Reading and writing the review state of labels, by compare-and-set.

The state a decision writes (``review``, ``reviewed_by``, ``reviewed_at``,
``review_action`` and ``review_bulk``, see :mod:`.decisions`) is read from
and written to the dataset's MongoDB collection directly, and every write is
logged first in the audit log (:mod:`..common.audit`).

Ordering and concurrency
------------------------
Several reviewers (processes, App sessions) may decide on overlapping
labels at the same time. The contract is: every decision is in the log,
and each label's stored state equals its *last logged* decision, where
"last" means the largest action id. This holds by construction
(:func:`record_action`):

1. an action first takes a fresh action id from an atomic per-dataset
   counter in MongoDB (``find_one_and_update`` + ``$inc``), so ids are
   unique and totally ordered across processes;
2. it appends its entries to the log (intent first: a crash after this
   step leaves a logged decision that re-running the action re-applies);
3. it writes each label with a *conditional* filtered positional update:
   the array filter matches the label only while its stored
   ``review_action`` is missing or smaller than the action's own id.

So whatever order the writes reach MongoDB in, a label ends with the state
of the highest action id that touched it, and an action that lost a race
(took a smaller id but wrote later) changes nothing: it is logged, and
superseded, exactly as if it had run first. Per-document updates are atomic
in MongoDB, so no lock is needed and a crashed reviewer cannot block
others. A timestamp would not do as the order: clocks of different
machines disagree, and two actions can share a millisecond.
"""

from __future__ import annotations

import datetime
from typing import Any, Sequence

from ..common import audit, fo_private
from ..common.bulk import DB_NOW
from ..common.identity import Identity, as_identity
from ..common.label_attrs import REVIEW_ATTRS, declare_label_attrs
from ..common.label_vocab import AUTO_LABEL_ATTR, HUMAN_DECISIONS, LOGGED_ATTRS

#: the label's content a correction changes (logged before and after);
#: ``auto_label`` keeps the class the detector gave through corrections
CONTENT_KEYS = ("label", "bounding_box", AUTO_LABEL_ATTR)

__all__ = [
    "CONTENT_KEYS", "REVIEW_ATTRS", "declare_review_attrs", "frame_path", "label_list_path", "log_entries",
    "now_ms", "overrides_reviewer", "read_label_states", "record_action", "write_label_states",
]


def label_list_path(sample_collection, label_field: str, allow_frames: bool = False) -> str:
    """``"<field>.<list>"`` (e.g. ``"autolabels.detections"``) of a label
    list field.

    Args:
        sample_collection: the dataset or view
        label_field: the field
        allow_frames: accept frame-level fields (``frames.<field>``, e.g.
            video tracks); the result then starts with ``frames.``

    Raises:
        ValueError: if ``label_field`` is missing or not a label list field
    """
    import fiftyone as fo

    if not isinstance(label_field, str) or not label_field:
        raise ValueError(f"Parameter 'label_field' must be a field name; got {label_field!r}")
    if label_field.startswith("frames.") and not allow_frames:
        raise ValueError(f"Frame label fields are not supported; got label_field={label_field!r}")
    field = sample_collection.get_field(label_field)
    if field is None:
        fields = sorted(sample_collection.get_field_schema(embedded_doc_type=fo.Label))
        raise ValueError(
            f"Unknown label field {label_field!r} on dataset "
            f"'{fo_private.root_dataset(sample_collection).name}'; label fields: {fields}"
        )
    list_name = getattr(getattr(field, "document_type", None), "_LABEL_LIST_FIELD", None)
    if list_name is None:
        raise ValueError(
            f"Field {label_field!r} is not a label list field (e.g. fo.Detections); got {field}"
        )
    return f"{label_field}.{list_name}"


def frame_path(list_path: str) -> str | None:
    """``list_path`` without ``frames.`` for a frame-level field, else None."""
    return list_path[len("frames."):] if list_path.startswith("frames.") else None


def overrides_reviewer(state: dict, who: Identity) -> bool:
    """Whether a label in ``state`` holds a decision of another named reviewer."""
    return state.get("review") in HUMAN_DECISIONS and state.get("reviewed_by") != who.name


def now_ms() -> datetime.datetime:
    """Now, as naive UTC truncated to ms: what MongoDB stores, so values
    read back compare equal to the logged ones."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def read_label_states(dataset, list_path: str, label_ids: Sequence[str]) -> dict[str, dict]:
    """Owning sample, class, box, queue and review state of each found
    label, read straight from the dataset's collection (one query per 50k
    ids).

    Returns:
        ``{label_id: {sample_id, label, bounding_box, auto_label, queue,
        p_correct, state}}`` in the order of ``label_ids`` (``state``: the
        :data:`..common.audit.STATE_KEYS`); labels not found are absent

    Raises:
        ValueError: for an id that is not an ObjectId
    """
    from bson import ObjectId
    from bson.errors import InvalidId

    oids = []
    for i in label_ids:
        try:
            oids.append(ObjectId(i))
        except (InvalidId, TypeError):
            raise ValueError(f"Invalid label id {i!r}") from None
    keys = ("label", "bounding_box", AUTO_LABEL_ATTR, "queue", "p_correct", *audit.STATE_KEYS)
    coll = fo_private.sample_collection(dataset)
    if frame_path(list_path):  # the "sample" is the label's frame document
        list_path, coll = frame_path(list_path), fo_private.frame_collection(dataset)
    projection = {f"{list_path}._id": 1, **{f"{list_path}.{k}": 1 for k in keys}}
    field, list_name = list_path.split(".")
    wanted = set(map(str, label_ids))
    out: dict[str, dict] = {}
    for start in range(0, len(oids), audit.CHUNK):
        query = {f"{list_path}._id": {"$in": oids[start : start + audit.CHUNK]}}
        for doc in coll.find(query, projection):
            sid = str(doc["_id"])
            for lab in (doc.get(field) or {}).get(list_name) or []:
                lid = str(lab["_id"])
                if lid in wanted:
                    out[lid] = dict(
                        sample_id=sid,
                        label=lab.get("label"),
                        bounding_box=lab.get("bounding_box"),
                        queue=lab.get("queue"),
                        auto_label=lab.get(AUTO_LABEL_ATTR),
                        p_correct=lab.get("p_correct"),
                        state={k: lab.get(k) for k in audit.STATE_KEYS},
                    )
    # keep the caller's order: the log reads in selection order
    return {i: out[i] for i in dict.fromkeys(map(str, label_ids)) if i in out}


def declare_review_attrs(dataset, list_path: str, content: bool = False) -> None:
    """Declares the review attributes (and with ``content`` the logged
    class and box of corrections) so the App and schema show them."""
    declare_label_attrs(dataset, list_path, REVIEW_ATTRS + ((*LOGGED_ATTRS, AUTO_LABEL_ATTR) if content else ()))


def log_entries(common: dict, changes, who: Identity | None = None) -> list[dict]:
    """Audit-log documents, one per sample, from ``(sample_id, label_id,
    before, after)`` tuples; a label that held another named reviewer's
    decision carries ``overrides`` (that reviewer)."""
    by_sample: dict[str, list[dict]] = {}
    for sid, lid, before, after in changes:
        entry = dict(label_id=lid, before=before, after=after)
        if who is not None and overrides_reviewer(before, who):
            entry["overrides"] = before.get("reviewed_by")
        by_sample.setdefault(sid, []).append(entry)
    return [dict(common, sample_id=sid, labels=labels) for sid, labels in by_sample.items()]


def record_action(dataset, list_path: str, label_field: str, action: str, user: "str | Identity", at,
                  action_id: int, changes: Sequence[tuple[str, str, dict, dict]], source: dict | None = None,
                  header_extra: dict | None = None) -> set[str]:
    """Logs and writes one action: its header and entries appended to the
    audit log first (intent), then each label written by compare-and-set on
    the state read (see the module docstring); entries of labels that
    changed in between are marked ``conflict``. Returns their ids.

    Args:
        dataset: the dataset
        list_path: ``"<field>.<list>"`` of the labels
        label_field: the field (logged)
        action: the action's name (``accept``, ``correct``, ``undo``, ...)
        user: the reviewer (a name or an :class:`~..common.identity.Identity`)
        at: the action's time (:func:`now_ms`)
        action_id: its id from :func:`..common.audit.next_action_id`
        changes: ``(sample_id, label_id, before, after)`` per label;
            ``after`` is the state written (``review*`` attributes, and for
            corrections ``label`` / ``bounding_box``)
        source: stored on the header and entries when given
        header_extra: more header (and entry) fields, e.g. ``undoes``
    """
    who = as_identity(user)
    common = dict(action_id=action_id, action=action, user=who.name, user_source=who.source, at=at,
                  field=label_field, **(header_extra or {}))
    if source:
        common["source"] = dict(source)
    overriding = [st for _, _, st, _ in changes if overrides_reviewer(st, who)]
    header = dict(common, num_labels=len(changes), num_overridden=len(overriding),
                  overridden_reviewers=sorted({st.get("reviewed_by") or "" for st in overriding}))
    header["_id"] = header.pop("action_id")
    declare_review_attrs(dataset, list_path, content=any("label" in c[3] for c in changes))
    audit.append(dataset, header, log_entries(common, changes, who))
    return write_label_states(dataset, list_path, changes, action_id)


def write_label_states(dataset, list_path: str, rows: Sequence[tuple[str, str, dict, dict]],
                       action_id: int) -> set[str]:
    """Writes each ``(sample_id, label_id, state read, new state)`` with one
    update per sample, each label guarded by its ``review_action`` still
    being the one read (compare-and-set); returns the ids of the labels
    that lost a race (changed between the read and this write) and marks
    their log entries ``conflict``.

    Labels of a sample that get the same state (all of them, for accept,
    reject and reset) share one array filter (``_id`` in a list), so an
    update has one ``$set`` path per attribute and distinct state, not per
    label. A state with ``label`` / ``bounding_box`` (a correction, or its
    undo) also sets the logged copies (:data:`..common.label_vocab.LOGGED_ATTRS`),
    so that edit detection sees Stoplight's own write as known.
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    frames = frame_path(list_path) is not None
    write_path = frame_path(list_path) if frames else list_path  # frames: "samples" are frame documents
    by_sample: dict[str, dict[tuple, tuple[dict, object, list]]] = {}
    for sid, lid, before, state in rows:
        groups = by_sample.setdefault(sid, {})
        expected = before.get("review_action")
        key = (expected, *((k, _hashable(v)) for k, v in sorted(state.items())))
        groups.setdefault(key, (state, expected, []))[2].append(ObjectId(lid))
    ops = []
    for sid, groups in by_sample.items():
        update: dict[str, Any] = {}
        filters = []
        for j, (state, expected, oids) in enumerate(groups.values()):
            # None also matches labels that never had a review_action
            filters.append({f"g{j}._id": {"$in": oids}, f"g{j}.review_action": expected})
            values = {attr: state.get(attr) for attr in audit.STATE_KEYS}
            if "label" in state:
                values.update({k: state.get(k) for k in CONTENT_KEYS})
                values.update(zip(LOGGED_ATTRS, (state.get(k) for k in ("label", "bounding_box"))))
            for attr, v in values.items():
                update[f"{write_path}.$[g{j}].{attr}"] = v
        ops.append(UpdateOne({"_id": ObjectId(sid)}, {"$set": update, **DB_NOW}, array_filters=filters))
    if not ops:
        return set()
    if frames:
        fo_private.bulk_write(dataset, ops, frames=True)
    else:
        fo_private.bulk_write(dataset, ops, ids=list(by_sample))
    lost = _lost_races(dataset, list_path, [lid for _, lid, _, _ in rows], action_id)
    if lost:
        audit.mark_conflicts(dataset, action_id, sorted(lost))
    return lost


def _lost_races(dataset, list_path: str, label_ids: Sequence[str], action_id: int) -> set[str]:
    """The labels of an action that its compare-and-set did not write.

    One query finds the samples still holding one of the labels with
    another ``review_action`` (none, without a race). A label already past
    the action (a later decision) was written by it if a later logged
    decision read the action's state.
    """
    from bson import ObjectId

    frames = frame_path(list_path) is not None
    coll = fo_private.frame_collection(dataset) if frames else fo_private.sample_collection(dataset)
    if frames:
        list_path = frame_path(list_path)
    field, list_name = list_path.split(".")
    wanted = set(map(str, label_ids))
    other: dict[str, int | None] = {}
    ids = list(wanted)
    for start in range(0, len(ids), audit.CHUNK):
        oids = [ObjectId(i) for i in ids[start : start + audit.CHUNK]]
        query = {list_path: {"$elemMatch": {"_id": {"$in": oids}, "review_action": {"$ne": action_id}}}}
        projection = {f"{list_path}._id": 1, f"{list_path}.review_action": 1}
        for doc in coll.find(query, projection):
            for lab in (doc.get(field) or {}).get(list_name) or []:
                lid = str(lab["_id"])
                if lid in wanted and lab.get("review_action") != action_id:
                    other[lid] = lab.get("review_action")
    later = [lid for lid, ra in other.items() if isinstance(ra, int) and ra > action_id]
    seen = audit.read_after(dataset, later, action_id) if later else set()
    return {lid for lid in other if lid not in seen}


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v
