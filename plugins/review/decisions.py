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
==================== =========================================================

Only these four attributes are ever written; scores, ``queue`` and every
other attribute of a label are left alone. Every decision is also appended
to the audit log (:mod:`.audit`) with the label's state before and after.

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
import getpass
from typing import Any, Iterable, Sequence

import numpy as np

from . import audit

#: review actions and the state each writes
ACTIONS = {"accept": "accepted", "reject": "rejected", "reset": "pending"}
#: review states a human decided (``pending`` is not a decision)
HUMAN_DECISIONS = ("accepted", "rejected")
#: every label attribute this module writes
REVIEW_ATTRS = ("review", "reviewed_by", "reviewed_at", "review_action")
#: queue names the triage writes on labels (attribute ``queue``)
QUEUES = ("green", "yellow", "red")


def is_decided(review: Sequence[Any]) -> np.ndarray:
    """``(N,)`` bool: whether each ``review`` value is a human decision."""
    return np.isin(np.asarray(list(review), dtype=object), HUMAN_DECISIONS)


def decided_label_ids(sample_collection, label_field: str) -> list[str]:
    """Ids of the labels of ``label_field`` in the collection that a human
    accepted or rejected (those the triage must not override)."""
    label_list_path(sample_collection._root_dataset, label_field)  # validates
    ids, review = _collection_values(sample_collection, label_field, ["id", "review"])
    return [i for i, r in zip(ids, review) if r in HUMAN_DECISIONS]


def resolve_user(user: str | None = None) -> str:
    """``user`` if given, else the operating-system user."""
    if user:
        return str(user)
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers)
        return "unknown"


def label_list_path(sample_collection, label_field: str) -> str:
    """``"<field>.<list>"`` (e.g. ``"autolabels.detections"``) of a label
    list field.

    Raises:
        ValueError: if ``label_field`` is missing or not a label list field
    """
    import fiftyone as fo

    if not isinstance(label_field, str) or not label_field:
        raise ValueError(f"Parameter 'label_field' must be a field name; got {label_field!r}")
    if label_field.startswith("frames."):
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
    user: str | None = None,
    source: dict | None = None,
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

    Returns:
        summary dict: ``action``, ``action_id`` (None when no label
        matched: nothing is written or logged), ``user``, ``label_field``,
        ``num_labels``, ``num_samples``, ``num_changed`` (labels whose
        ``review`` changed)

    Raises:
        ValueError: for an unknown action, field, queue, label id or sample
            id, or when nothing is selected
    """
    if action not in ACTIONS:
        hint = " (use undo_last() to undo)" if action == "undo" else ""
        raise ValueError(f"Parameter 'action' must be one of {sorted(ACTIONS)}; got {action!r}{hint}")
    if queue is not None and queue not in QUEUES:
        raise ValueError(f"Parameter 'queue' must be one of {QUEUES}; got {queue!r}")
    # the dataset's field, also when the view is a patches view
    list_path = label_list_path(sample_collection._root_dataset, label_field)
    label_ids = _unique(label_ids)
    sample_ids = _unique(sample_ids)
    if label_ids and sample_ids:
        raise ValueError("Give 'label_ids' or 'sample_ids', not both")
    if not label_ids and not sample_ids and queue is None and label is None:
        raise ValueError(
            "Nothing selected: select labels or samples, or give 'queue' or 'label' "
            f"to review every such label of field {label_field!r} in the view"
        )
    user = resolve_user(user)
    dataset = sample_collection._root_dataset

    if label_ids:
        candidates = label_ids
    else:
        view = sample_collection
        if sample_ids:
            view = _select_samples(sample_collection, sample_ids)
        (candidates,) = _collection_values(view, label_field, ["id"])
    current = _read_labels(dataset, list_path, candidates)
    if label_ids:
        missing = [i for i in label_ids if i not in current]
        if missing:
            raise ValueError(
                f"{len(missing)} label id(s) not found in field {label_field!r} of dataset "
                f"'{dataset.name}', e.g. {missing[:5]}"
            )
    rows = [
        (lid, info)
        for lid, info in current.items()
        if (queue is None or info["queue"] == queue) and (label is None or info["label"] == label)
    ]
    summary = dict(
        action=action, action_id=None, user=user, label_field=label_field,
        num_labels=0, num_samples=0, num_changed=0,
    )
    if not rows:
        return summary

    audit.delete_orphan_logs()
    action_id = audit.next_action_id(dataset)
    now = _now()
    after = dict(review=ACTIONS[action], reviewed_by=user, reviewed_at=now, review_action=action_id)
    common = dict(action_id=action_id, action=action, user=user, at=now, field=label_field)
    if source:
        common["source"] = dict(source)
    entries = _entries(common, [(info["sample_id"], lid, info["state"], after) for lid, info in rows])
    header = dict(common, num_labels=len(rows))
    header["_id"] = header.pop("action_id")
    _declare(dataset, list_path)
    audit.append(dataset, header, entries)
    _write(dataset, list_path, [(info["sample_id"], lid, after) for lid, info in rows], action_id)
    summary.update(
        action_id=action_id,
        num_labels=len(rows),
        num_samples=len({info["sample_id"] for _, info in rows}),
        num_changed=sum(info["state"]["review"] != after["review"] for _, info in rows),
    )
    return summary


def undo_last(sample_collection, user: str | None = None) -> dict:
    """Reverts the last not-yet-undone action of ``user`` on the dataset.

    Labels someone decided again since that action keep their newer state
    (counted in ``num_conflicts``); labels deleted since are counted in
    ``num_missing``. See the module docstring.

    Args:
        sample_collection: the dataset (or a view of it)
        user: the reviewer whose action to undo; default the OS user

    Returns:
        summary dict: ``action`` (``"undo"``), ``action_id``,
        ``undone_action_id``, ``undone_action``, ``user``, ``label_field``,
        ``num_labels`` (reverted), ``num_conflicts``, ``num_missing``

    Raises:
        ValueError: if the user has nothing left to undo on this dataset
    """
    dataset = sample_collection._root_dataset
    user = resolve_user(user)
    target = _last_undoable(dataset, user)
    if target is None:
        raise ValueError(f"Nothing to undo for user {user!r} on dataset '{dataset.name}'")
    label_field = target["field"]
    list_path = label_list_path(dataset, label_field)
    entries = audit.action_entries(dataset, target["_id"])
    current = _read_labels(dataset, list_path, [e["label_id"] for e in entries])

    revert, conflicts, missing = [], 0, 0
    for e in entries:
        info = current.get(e["label_id"])
        if info is None:
            missing += 1
        elif _same_decision(info["state"], e["after"]):
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
    now = _now()
    changes = []
    for e, info in revert:
        restored = dict(prior.get(e["label_id"], e["before"]), review_action=action_id)
        restored = {k: restored.get(k) for k in audit.STATE_KEYS}
        changes.append((info["sample_id"], e["label_id"], info["state"], restored))
    common = dict(action_id=action_id, action="undo", user=user, at=now, field=label_field, undoes=target["_id"])
    header = dict(common, num_labels=len(changes))
    header["_id"] = header.pop("action_id")
    audit.append(dataset, header, _entries(common, changes))
    _write(dataset, list_path, [(sid, lid, after) for sid, lid, _, after in changes], action_id)
    return dict(
        action="undo", action_id=action_id, undone_action_id=target["_id"],
        undone_action=target["action"], user=user, label_field=label_field,
        num_labels=len(changes), num_conflicts=conflicts, num_missing=missing,
    )


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _unique(ids) -> list[str]:
    if ids is None:
        return []
    if isinstance(ids, str):
        ids = [ids]
    return list(dict.fromkeys(str(i) for i in ids))


def _now() -> datetime.datetime:
    # naive UTC truncated to ms: what MongoDB stores, so values read back
    # compare equal to the logged ones
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _entries(common: dict, changes) -> list[dict]:
    """Audit-log documents, one per sample, from ``(sample_id, label_id,
    before, after)`` tuples."""
    by_sample: dict[str, list[dict]] = {}
    for sid, lid, before, after in changes:
        by_sample.setdefault(sid, []).append(dict(label_id=lid, before=before, after=after))
    return [dict(common, sample_id=sid, labels=labels) for sid, labels in by_sample.items()]


def _same_decision(a: dict, b: dict) -> bool:
    # review_action is left out: an undo restores an earlier decision under
    # its own action id, and that decision is still the earlier one
    return all(a.get(k) == b.get(k) for k in ("review", "reviewed_by", "reviewed_at"))


def _select_samples(sample_collection, sample_ids: list[str]):
    view = sample_collection.select(sample_ids)
    found = set(view.values("id"))
    missing = [i for i in sample_ids if i not in found]
    if missing:
        raise ValueError(f"{len(missing)} sample id(s) not in the view, e.g. {missing[:5]}")
    return view


def _read_labels(dataset, list_path: str, label_ids: Sequence[str]) -> dict[str, dict]:
    """Owning sample, class, queue and review state of each found label,
    read straight from the dataset's collection (one query per 50k ids)."""
    from bson import ObjectId
    from bson.errors import InvalidId

    oids = []
    for i in label_ids:
        try:
            oids.append(ObjectId(i))
        except (InvalidId, TypeError):
            raise ValueError(f"Invalid label id {i!r}") from None
    keys = ("label", "queue", *audit.STATE_KEYS)
    projection = {f"{list_path}._id": 1, **{f"{list_path}.{k}": 1 for k in keys}}
    coll = dataset._sample_collection
    field, list_name = list_path.split(".")
    wanted = set(map(str, label_ids))
    out: dict[str, dict] = {}
    for start in range(0, len(oids), audit._CHUNK):
        query = {f"{list_path}._id": {"$in": oids[start : start + audit._CHUNK]}}
        for doc in coll.find(query, projection):
            sid = str(doc["_id"])
            for lab in (doc.get(field) or {}).get(list_name) or []:
                lid = str(lab["_id"])
                if lid in wanted:
                    out[lid] = dict(
                        sample_id=sid,
                        label=lab.get("label"),
                        queue=lab.get("queue"),
                        state={k: lab.get(k) for k in audit.STATE_KEYS},
                    )
    # keep the caller's order: the log reads in selection order
    return {i: out[i] for i in dict.fromkeys(map(str, label_ids)) if i in out}


def _declare(dataset, list_path: str) -> None:
    """Declares the review attributes so the App and schema show them."""
    import fiftyone as fo

    kinds = dict(
        review=fo.StringField,
        reviewed_by=fo.StringField,
        reviewed_at=fo.DateTimeField,
        review_action=fo.IntField,
    )
    for attr, kind in kinds.items():
        if not dataset.has_field(f"{list_path}.{attr}"):
            dataset.add_sample_field(f"{list_path}.{attr}", kind)


def _write(dataset, list_path: str, rows: Sequence[tuple[str, str, dict]], action_id: int) -> None:
    """Writes each ``(sample_id, label_id, state)`` with one update per
    sample, each label guarded by ``review_action < action_id``.

    Labels of a sample that get the same state (all of them, for accept,
    reject and reset) share one array filter (``_id`` in a list), so an
    update has four ``$set`` paths per distinct state, not per label.
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    by_sample: dict[str, dict[tuple, tuple[dict, list]]] = {}
    for sid, lid, state in rows:
        groups = by_sample.setdefault(sid, {})
        key = tuple(state.get(k) for k in audit.STATE_KEYS)
        groups.setdefault(key, (state, []))[1].append(ObjectId(lid))
    now = datetime.datetime.utcnow()  # FiftyOne's last_modified_at is naive UTC
    ops = []
    for sid, groups in by_sample.items():
        update: dict[str, Any] = {"last_modified_at": now}
        filters = []
        for j, (state, oids) in enumerate(groups.values()):
            # $not/$gte also matches labels with no review_action yet
            filters.append({f"g{j}._id": {"$in": oids}, f"g{j}.review_action": {"$not": {"$gte": action_id}}})
            for attr in audit.STATE_KEYS:
                update[f"{list_path}.$[g{j}].{attr}"] = state.get(attr)
        ops.append(UpdateOne({"_id": ObjectId(sid)}, {"$set": update}, array_filters=filters))
    if ops:
        dataset._bulk_write(ops, ids=list(by_sample))


def _last_undoable(dataset, user: str) -> dict | None:
    # an undo always has a larger id than the action it undoes, so walking
    # newest first sees every undo before its target
    undone = set()
    for header in audit.user_actions(dataset, user):
        if header["action"] == "undo":
            undone.add(header["undoes"])
        elif header["_id"] not in undone:
            return header
    return None
