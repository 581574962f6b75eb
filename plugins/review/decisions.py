"""Human review decisions on labels: accept, reject, reset, undo.

A decision is stored on the label itself, as attributes of each element of
``<label_field>.<list>`` (e.g. ``autolabels.detections``):

==================== =========================================================
attribute            meaning
==================== =========================================================
``review``           ``pending`` | ``accepted`` | ``rejected`` (absent or
                     None: never reviewed, i.e. pending)
``reviewed_by``      who made the decision
``reviewed_at``      when (naive UTC ``datetime``, millisecond precision, as
                     MongoDB stores it)
``review_action``    id of the audit-log action that wrote this state (see
                     below); links a label to its log entries
``review_bulk``      True when the decision was made for a group of labels
                     at once (a queue, a class, selected samples, "accept
                     these N similar"): nobody looked at each label, so the
                     report shows it as bulk and calibration never counts it
                     as a human check
==================== =========================================================

Only these attributes are ever written by accept / reject / reset; scores,
``queue`` and every other attribute of a label are left alone. A
correction (:mod:`.corrections`) also writes the label's ``label`` and
``bounding_box`` (and their logged copies). Every decision is also appended
to the audit log (:mod:`..common.audit`) with the label's state before and after.

Who decided
-----------
``reviewed_by`` is the name of an :class:`~..common.identity.Identity`
(login, the server's pinned reviewer, a self-declared name, the OS user, a
Python caller or an annotation tool); the log stores its source as
``user_source`` (see :mod:`..common.identity`). Undo of "my last action"
only undoes actions of the same identity, name *and* source. A decision on
a label that holds another named reviewer's decision is allowed (it is a
person's deliberate choice), and logged as such: the entry's label carries
``overrides`` (the earlier reviewer) and the action header
``num_overridden`` and ``overridden_reviewers``.

Ordering and concurrency
------------------------
Several reviewers (processes, App sessions) may decide on overlapping
labels at the same time. The contract is: every decision is in the log,
and each label's stored state equals its *last logged* decision, where
"last" means the largest action id. This holds by construction:

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

Undo reverts the labels of the user's last action that is not itself an
undo and has not been undone, restoring each label to its state before
that action (the ``after`` of its previous logged decision, or the
``before`` recorded by the action when there is none). A label that
someone decided again since (its state no longer equals the action's
``after``) is left alone and counted as a conflict: a human decision is
never silently overwritten. The undo is itself a logged action with its
own, larger id, so repeated undos walk back through the user's actions.
"""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Sequence

from ..common.bulk import DB_NOW
from ..common.identity import Identity, as_identity
from ..common.label_vocab import AUTO_LABEL_ATTR, BULK_ATTR, HUMAN_DECISIONS, LOGGED_ATTRS, QUEUES, is_decided
from ..common import audit

#: review actions and the state each writes
ACTIONS = {"accept": "accepted", "reject": "rejected", "reset": "pending"}
#: every label attribute this module writes
REVIEW_ATTRS = ("review", "reviewed_by", "reviewed_at", "review_action", BULK_ATTR)
#: the label's content a correction changes (logged before and after);
#: ``auto_label`` keeps the class the detector gave through corrections
CONTENT_KEYS = ("label", "bounding_box", AUTO_LABEL_ATTR)

__all__ = [
    "ACTIONS", "CONTENT_KEYS", "HUMAN_DECISIONS", "QUEUES", "REVIEW_ATTRS", "decided_label_ids", "is_decided",
    "label_list_path", "resolve_user", "review_labels", "undo_last",
]


def decided_label_ids(sample_collection, label_field: str) -> list[str]:
    """Ids of the labels of ``label_field`` in the collection that a human
    accepted or rejected (those the triage must not override)."""
    label_list_path(sample_collection._root_dataset, label_field)  # validates
    ids, review = _collection_values(sample_collection, label_field, ["id", "review"])
    return [i for i, r in zip(ids, review) if r in HUMAN_DECISIONS]


def resolve_user(user: "str | Identity | None" = None) -> str:
    """The name recorded for ``user`` (see :func:`..common.identity.as_identity`)."""
    return as_identity(user).name


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
            f"'{sample_collection._root_dataset.name}'; label fields: {fields}"
        )
    list_name = getattr(getattr(field, "document_type", None), "_LABEL_LIST_FIELD", None)
    if list_name is None:
        raise ValueError(
            f"Field {label_field!r} is not a label list field (e.g. fo.Detections); got {field}"
        )
    return f"{label_field}.{list_name}"


def _collection_values(sample_collection, label_field: str, attrs: Sequence[str]) -> list[list]:
    """Flat per-label lists of ``attrs`` of the labels the collection shows:
    those of a label list field, or, in a patches view, its one label per
    patch."""
    field = sample_collection.get_field(label_field)
    list_name = getattr(getattr(field, "document_type", None), "_LABEL_LIST_FIELD", None)
    if list_name is None:  # a patches view: one label per sample
        cols = sample_collection.values([f"{label_field}.{a}" for a in attrs])
        keep = [i for i, v in enumerate(cols[0]) if v is not None]
        return [[col[i] for i in keep] for col in cols]
    cols = sample_collection.values([f"{label_field}.{list_name}.{a}" for a in attrs])
    return [[v for per_sample in col if per_sample for v in per_sample] for col in cols]


def review_labels(
    sample_collection,
    label_field: str,
    action: str,
    label_ids: Iterable[str] | None = None,
    sample_ids: Iterable[str] | None = None,
    queue: str | None = None,
    label: str | None = None,
    user: "str | Identity | None" = None,
    source: dict | None = None,
    bulk: bool | None = None,
    propagate: bool = True,
    protect: str | None = None,
) -> dict:
    """Accepts, rejects or resets labels, logging every decision.

    The labels are: ``label_ids`` (any labels of the dataset), or the labels
    of ``sample_ids`` in the collection, or, with neither, every label of
    the collection (which then needs ``queue`` or ``label``). ``queue`` and
    ``label`` narrow any of these. See the module docstring for what is
    written and how concurrent reviewers are ordered.

    Args:
        sample_collection: a dataset or view (its dataset is written; in a
            patches view, its source dataset)
        label_field: a label list field, e.g. ``"autolabels"``
        action: ``"accept"``, ``"reject"`` or ``"reset"`` (back to pending)
        label_ids: ids of the labels to decide
        sample_ids: ids of samples of the collection whose labels to decide
        queue: only labels whose ``queue`` is this (green, yellow, red)
        label: only labels of this class
        user: the reviewer; default the operating-system user
        source: where the decision came from when not from Stoplight itself
            (e.g. ``{"backend": "labelstudio", "anno_key": ...}`` for
            answers loaded from an annotation tool); stored as ``source``
            on the action's audit-log header and entries
        bulk: whether the labels were decided as a group without a person
            looking at each (stored as ``review_bulk``); default: True
            unless ``label_ids`` chose them
        propagate: re-rank the open yellow labels near the decided ones
            (:mod:`.propagation`); False for a plain decision
        protect: leave alone labels holding a human decision when read:
            ``"all"`` (any; e.g. a bulk accept of pending labels), or
            ``"others"`` (made by someone other than ``user``); they are
            counted as conflicts. Default: a person may re-decide (logged
            as overriding the earlier reviewer)

    Returns:
        summary dict: ``action``, ``action_id`` (None when no label
        matched: nothing is written or logged), ``user``, ``user_source``,
        ``label_field``, ``num_labels`` (decided), ``num_samples``,
        ``num_changed`` (labels whose ``review`` changed), ``num_conflicts``
        and ``conflicts`` (label ids left alone: decided by someone else
        meanwhile, or protected), ``num_overridden`` and
        ``overridden_reviewers`` (labels that held another reviewer's
        decision), ``bulk``, ``num_reranked`` (open labels whose
        review order the answers changed), ``num_app_edits`` (edits made
        outside Stoplight found and logged first, see
        :func:`.corrections.sync_label_edits`)

    Raises:
        ValueError: for an unknown action, field, queue, label id or sample
            id, or when nothing is selected
    """
    if action not in ACTIONS:
        hint = " (use undo_last() to undo)" if action == "undo" else ""
        hint = " (use correct_label() to correct)" if action == "correct" else hint
        raise ValueError(f"Parameter 'action' must be one of {sorted(ACTIONS)}; got {action!r}{hint}")
    if queue is not None and queue not in QUEUES:
        raise ValueError(f"Parameter 'queue' must be one of {QUEUES}; got {queue!r}")
    # the dataset's field, also when the view is a patches view
    list_path = label_list_path(sample_collection._root_dataset, label_field, allow_frames=True)
    label_ids = _unique(label_ids)
    sample_ids = _unique(sample_ids)
    if _frame_path(list_path) and not label_ids:
        raise ValueError(f"Frame label field {label_field!r}: give 'label_ids' (e.g. a track's labels, see review_tracks)")
    if label_ids and sample_ids:
        raise ValueError("Give 'label_ids' or 'sample_ids', not both")
    if not label_ids and not sample_ids and queue is None and label is None:
        raise ValueError(
            "Nothing selected: select labels or samples, or give 'queue' or 'label' "
            f"to review every such label of field {label_field!r} in the view"
        )
    who = as_identity(user)
    bulk = not label_ids if bulk is None else bool(bulk)
    dataset = sample_collection._root_dataset

    if label_ids:
        candidates = label_ids
    else:
        view = sample_collection
        if sample_ids:
            view = _select_samples(sample_collection, sample_ids)
        (candidates,) = _collection_values(view, label_field, ["id"])
    current = read_label_states(dataset, list_path, candidates)
    if label_ids:
        missing = [i for i in label_ids if i not in current]
        if missing:
            raise ValueError(
                f"{len(missing)} label id(s) not found in field {label_field!r} of dataset "
                f"'{dataset.name}', e.g. {missing[:5]}"
            )
    rows, protected = [], []
    for lid, info in current.items():
        if (queue is not None and info["queue"] != queue) or (label is not None and info["label"] != label):
            continue
        if _is_protected(info["state"], protect, who):
            protected.append(lid)
        else:
            rows.append((lid, info))
    summary = dict(
        action=action, action_id=None, user=who.name, user_source=who.source, label_field=label_field,
        num_labels=0, num_samples=0, num_changed=0, num_conflicts=len(protected), conflicts=list(protected),
        num_overridden=0, overridden_reviewers=[], bulk=bulk, num_reranked=0, num_app_edits=0,
    )
    if not rows:
        return summary
    # edits made in the App since Stoplight last looked are logged first, so
    # that this decision's `before` is what the person saw
    summary["num_app_edits"] = _sync_edits(dataset, label_field, [info["sample_id"] for _, info in rows])
    if summary["num_app_edits"]:
        current = read_label_states(dataset, list_path, [lid for lid, _ in rows])
        rows = [(lid, current[lid]) for lid, _ in rows if lid in current]

    audit.delete_orphan_logs()
    action_id = audit.next_action_id(dataset)
    now = now_ms()
    after = dict(review=ACTIONS[action], reviewed_by=who.name, reviewed_at=now, review_action=action_id)
    after[BULK_ATTR] = bulk
    changes = [(info["sample_id"], lid, info["state"], after) for lid, info in rows]
    lost = record_action(dataset, list_path, label_field, action, who, now, action_id, changes, source=source,
                         header_extra=dict(bulk=bulk))
    applied = [(lid, info) for lid, info in rows if lid not in lost]
    summary.update(
        action_id=action_id,
        num_labels=len(applied),
        num_samples=len({info["sample_id"] for _, info in applied}),
        num_changed=sum(info["state"]["review"] != after["review"] for _, info in applied),
        num_conflicts=len(protected) + len(lost),
        conflicts=list(protected) + sorted(lost),
        num_overridden=sum(_overrides(info["state"], who) for _, info in applied),
        overridden_reviewers=sorted({info["state"]["reviewed_by"] or "" for _, info in applied
                                     if _overrides(info["state"], who)}),
    )
    if propagate:
        summary["num_reranked"] = _propagate(dataset, label_field, [lid for lid, _ in applied])
    return summary


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
    overridden = sorted({st.get("reviewed_by") or "" for _, _, st, _ in changes if _overrides(st, who)})
    header = dict(common, num_labels=len(changes), num_overridden=sum(_overrides(st, who) for _, _, st, _ in changes),
                  overridden_reviewers=overridden)
    header["_id"] = header.pop("action_id")
    declare_review_attrs(dataset, list_path, content=any("label" in c[3] for c in changes))
    audit.append(dataset, header, log_entries(common, changes, who))
    return write_label_states(dataset, list_path, changes, action_id)


def undo_last(sample_collection, user: "str | Identity | None" = None) -> dict:
    """Reverts the last not-yet-undone action of ``user`` on the dataset.

    Labels someone decided (or edited) again since that action keep their
    newer state (counted in ``num_conflicts``); labels deleted since are
    counted in ``num_missing``. Undoing a correction puts the label's
    previous class and box back. See the module docstring.

    Args:
        sample_collection: the dataset (or a view of it)
        user: the reviewer whose action to undo; default the OS user

    Returns:
        summary dict: ``action`` (``"undo"``), ``action_id``,
        ``undone_action_id``, ``undone_action``, ``user``, ``user_source``,
        ``label_field``, ``num_labels`` (reverted), ``num_conflicts``,
        ``num_missing``

    Raises:
        ValueError: if the identity has nothing left to undo on this dataset
    """
    dataset = sample_collection._root_dataset
    who = as_identity(user)
    target = _last_undoable(dataset, who)
    if target is None:
        raise ValueError(f"Nothing to undo for user {who.name!r} ({who.source}) on dataset '{dataset.name}'")
    if target["action"] == "add":  # a missed object added: its label goes again
        from .missing import undo_add

        return undo_add(dataset, target, who)
    label_field = target["field"]
    list_path = label_list_path(dataset, label_field, allow_frames=True)
    # entries that lost a race were never applied: nothing of them to undo
    entries = [e for e in audit.action_entries(dataset, target["_id"]) if not e.get("conflict")]
    _sync_edits(dataset, label_field, list({e["sample_id"] for e in entries}))
    current = read_label_states(dataset, list_path, [e["label_id"] for e in entries])

    revert, conflicts, missing = [], 0, 0
    for e in entries:
        info = current.get(e["label_id"])
        if info is None:
            missing += 1
        elif _same_decision(info["state"], e["after"]) and _same_content(info, e["after"]):
            revert.append((e, info))
        else:
            conflicts += 1
    # the recorded `before` is exact unless a decision raced with the
    # action; only those (ids after the labels' review_action then) are read
    prior = {}
    for fresh in (True, False):
        group = [e for e, _ in revert if (e["before"]["review_action"] is None) == fresh]
        if group:
            after_id = 0 if fresh else min(e["before"]["review_action"] for e in group)
            prior.update(audit.states_before(dataset, [e["label_id"] for e in group], target["_id"], after_id))

    action_id = audit.next_action_id(dataset)
    now = now_ms()
    changes = []
    for e, info in revert:
        was = prior.get(e["label_id"], e["before"])
        restored = {k: was.get(k) for k in audit.STATE_KEYS}
        restored["review_action"] = action_id
        before = dict(info["state"])
        if "label" in e["after"]:  # a correction: its content goes back too
            for k in CONTENT_KEYS:
                restored[k] = was[k] if k in was else e["before"].get(k)
                before[k] = info[k]
        changes.append((info["sample_id"], e["label_id"], before, restored))
    lost = record_action(dataset, list_path, label_field, "undo", who, now, action_id, changes,
                         header_extra=dict(undoes=target["_id"]))
    _propagate(dataset, label_field, [e["label_id"] for e, _ in revert if e["label_id"] not in lost])
    return dict(
        action="undo", action_id=action_id, undone_action_id=target["_id"],
        undone_action=target["action"], user=who.name, user_source=who.source, label_field=label_field,
        num_labels=len(changes) - len(lost), num_conflicts=conflicts + len(lost), num_missing=missing,
    )


# ---------------------------------------------------------------------------
# Building blocks shared by this package's modules
# ---------------------------------------------------------------------------


def now_ms() -> datetime.datetime:
    """Now, as naive UTC truncated to ms: what MongoDB stores, so values
    read back compare equal to the logged ones."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def log_entries(common: dict, changes, who: Identity | None = None) -> list[dict]:
    """Audit-log documents, one per sample, from ``(sample_id, label_id,
    before, after)`` tuples; a label that held another named reviewer's
    decision carries ``overrides`` (that reviewer)."""
    by_sample: dict[str, list[dict]] = {}
    for sid, lid, before, after in changes:
        entry = dict(label_id=lid, before=before, after=after)
        if who is not None and _overrides(before, who):
            entry["overrides"] = before.get("reviewed_by")
        by_sample.setdefault(sid, []).append(entry)
    return [dict(common, sample_id=sid, labels=labels) for sid, labels in by_sample.items()]


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
    coll = dataset._sample_collection
    if _frame_path(list_path):  # the "sample" is the label's frame document
        list_path, coll = _frame_path(list_path), dataset._frame_collection
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
    import fiftyone as fo

    kinds = dict(
        review=fo.StringField,
        reviewed_by=fo.StringField,
        reviewed_at=fo.DateTimeField,
        review_action=fo.IntField,
        **{BULK_ATTR: fo.BooleanField},
    )
    if content:
        kinds[LOGGED_ATTRS[0]] = fo.StringField
        kinds[AUTO_LABEL_ATTR] = fo.StringField
    frame_path = _frame_path(list_path)
    for attr, kind in kinds.items():
        if not dataset.has_field(f"{list_path}.{attr}"):
            if frame_path:
                dataset.add_frame_field(f"{frame_path}.{attr}", kind)
            else:
                dataset.add_sample_field(f"{list_path}.{attr}", kind)
    if content and not dataset.has_field(f"{list_path}.{LOGGED_ATTRS[1]}"):
        dataset.add_sample_field(f"{list_path}.{LOGGED_ATTRS[1]}", fo.ListField, subfield=fo.FloatField)


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

    frames = _frame_path(list_path) is not None
    write_path = _frame_path(list_path) if frames else list_path  # frames: "samples" are frame documents
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
        dataset._bulk_write(ops, frames=True)
    else:
        dataset._bulk_write(ops, ids=list(by_sample))
    lost = _lost_races(dataset, list_path, [lid for _, lid, _, _ in rows], action_id)
    if lost:
        audit.mark_conflicts(dataset, action_id, sorted(lost))
    return lost


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def _unique(ids) -> list[str]:
    if ids is None:
        return []
    if isinstance(ids, str):
        ids = [ids]
    return list(dict.fromkeys(str(i) for i in ids))


def _overrides(state: dict, who: Identity) -> bool:
    """Whether a label in ``state`` holds a decision of another named reviewer."""
    return state.get("review") in HUMAN_DECISIONS and state.get("reviewed_by") != who.name


def _is_protected(state: dict, protect: str | None, who: Identity) -> bool:
    if protect is None or state.get("review") not in HUMAN_DECISIONS:
        return False
    return protect == "all" or state.get("reviewed_by") != who.name


def _same_decision(a: dict, b: dict) -> bool:
    # review_action is left out: an undo restores an earlier decision under
    # its own action id, and that decision is still the earlier one
    return all(a.get(k) == b.get(k) for k in ("review", "reviewed_by", "reviewed_at"))


def _same_content(info: dict, after: dict) -> bool:
    """Whether a label still holds the class and box an action wrote (always
    True for actions that did not write them)."""
    if "label" not in after:
        return True
    return info["label"] == after["label"] and list(info["bounding_box"] or []) == list(after["bounding_box"] or [])


def _select_samples(sample_collection, sample_ids: list[str]):
    view = sample_collection.select(sample_ids)
    found = set(view.values("id"))
    missing = [i for i in sample_ids if i not in found]
    if missing:
        raise ValueError(f"{len(missing)} sample id(s) not in the view, e.g. {missing[:5]}")
    return view


def _frame_path(list_path: str) -> str | None:
    """``list_path`` without ``frames.`` for a frame-level field, else None."""
    return list_path[len("frames."):] if list_path.startswith("frames.") else None


def _sync_edits(dataset, label_field: str, sample_ids: Sequence[str]) -> int:
    """Logs edits made outside Stoplight on these samples (see
    :func:`.corrections.sync_label_edits`); the number logged. Frame-level
    fields (video tracks) have no edit detection."""
    from .corrections import sync_label_edits

    if label_field.startswith("frames."):
        return 0
    # a decision writes nothing but decisions: no logged copies of other labels
    return sync_label_edits(dataset, label_field, sample_ids=sample_ids, snapshot=False)["num_corrected"]


def _propagate(dataset, label_field: str, label_ids: Sequence[str]) -> int:
    """Re-ranks the open yellow labels near the answered ones (see
    :func:`.propagation.rerank_after_answers`); the number re-ranked."""
    from .propagation import rerank_after_answers

    if label_field.startswith("frames."):
        return 0  # the review graph covers sample-level fields
    return rerank_after_answers(dataset, label_field, label_ids)["num_reranked"]


def _lost_races(dataset, list_path: str, label_ids: Sequence[str], action_id: int) -> set[str]:
    """The labels of an action that its compare-and-set did not write.

    One query finds the samples still holding one of the labels with
    another ``review_action`` (none, without a race). A label already past
    the action (a later decision) was written by it if a later logged
    decision read the action's state.
    """
    from bson import ObjectId

    frames = _frame_path(list_path) is not None
    coll = dataset._frame_collection if frames else dataset._sample_collection
    if frames:
        list_path = _frame_path(list_path)
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


def _last_undoable(dataset, who: Identity) -> dict | None:
    # an undo always has a larger id than the action it undoes, so walking
    # newest first sees every undo before its target
    undone = set()
    for header in audit.user_actions(dataset, who.name, who.source):
        if header["action"] == "undo":
            undone.add(header["undoes"])
        elif header["_id"] not in undone:
            return header
    return None
