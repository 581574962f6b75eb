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

Where the parts live
--------------------
This module decides (accept, reject, reset). How a label's state is read
and written, and how concurrent reviewers are ordered (a per-dataset action
id and a compare-and-set write), is in :mod:`.label_states`; undo of a
reviewer's last action in :mod:`.undo`. Their public names are importable
from here too.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from ..common import audit, fo_private
from ..common.identity import Identity, as_identity
from ..common.label_vocab import BULK_ATTR, HUMAN_DECISIONS, QUEUES, is_decided
from .follow_up import log_app_edits, rerank_near_answers
from .label_states import (
    CONTENT_KEYS,
    REVIEW_ATTRS,
    declare_review_attrs,
    frame_path,
    label_list_path,
    log_entries,
    now_ms,
    overrides_reviewer,
    read_label_states,
    record_action,
    write_label_states,
)
from .undo import undo_last

#: review actions and the state each writes
ACTIONS = {"accept": "accepted", "reject": "rejected", "reset": "pending"}

__all__ = [
    "ACTIONS", "CONTENT_KEYS", "HUMAN_DECISIONS", "QUEUES", "REVIEW_ATTRS", "decided_label_ids", "is_decided",
    "label_list_path", "resolve_user", "review_labels", "undo_last",
    # building blocks of this package's other modules (from .label_states)
    "declare_review_attrs", "log_entries", "now_ms", "read_label_states", "record_action", "write_label_states",
]


def decided_label_ids(sample_collection, label_field: str) -> list[str]:
    """Ids of the labels of ``label_field`` in the collection that a human
    accepted or rejected (those the triage must not override)."""
    label_list_path(fo_private.root_dataset(sample_collection), label_field)  # validates
    ids, review = _collection_values(sample_collection, label_field, ["id", "review"])
    return [i for i, r in zip(ids, review) if r in HUMAN_DECISIONS]


def resolve_user(user: "str | Identity | None" = None) -> str:
    """The name recorded for ``user`` (see :func:`..common.identity.as_identity`)."""
    return as_identity(user).name


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
    written, and :mod:`.label_states` for how concurrent reviewers are
    ordered.

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
    list_path, label_ids, sample_ids = _check_request(sample_collection, label_field, action, label_ids, sample_ids,
                                                      queue, label)
    who = as_identity(user)
    bulk = not label_ids if bulk is None else bool(bulk)
    dataset = fo_private.root_dataset(sample_collection)
    current = _read_candidates(sample_collection, label_field, list_path, label_ids, sample_ids)
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
    summary["num_app_edits"] = log_app_edits(dataset, label_field, [info["sample_id"] for _, info in rows])
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
    summary.update(_outcome(applied, protected, lost, after, who), action_id=action_id)
    if propagate:
        summary["num_reranked"] = rerank_near_answers(dataset, label_field, [lid for lid, _ in applied])
    return summary


def _check_request(sample_collection, label_field: str, action: str, label_ids, sample_ids, queue, label):
    """Validates what :func:`review_labels` was asked; returns the field's
    list path and the unique label and sample ids."""
    if action not in ACTIONS:
        hint = " (use undo_last() to undo)" if action == "undo" else ""
        hint = " (use correct_label() to correct)" if action == "correct" else hint
        raise ValueError(f"Parameter 'action' must be one of {sorted(ACTIONS)}; got {action!r}{hint}")
    if queue is not None and queue not in QUEUES:
        raise ValueError(f"Parameter 'queue' must be one of {QUEUES}; got {queue!r}")
    # the dataset's field, also when the view is a patches view
    list_path = label_list_path(fo_private.root_dataset(sample_collection), label_field, allow_frames=True)
    label_ids = _unique(label_ids)
    sample_ids = _unique(sample_ids)
    if frame_path(list_path) and not label_ids:
        raise ValueError(f"Frame label field {label_field!r}: give 'label_ids' (e.g. a track's labels, see review_tracks)")
    if label_ids and sample_ids:
        raise ValueError("Give 'label_ids' or 'sample_ids', not both")
    if not label_ids and not sample_ids and queue is None and label is None:
        raise ValueError(
            "Nothing selected: select labels or samples, or give 'queue' or 'label' "
            f"to review every such label of field {label_field!r} in the view"
        )
    return list_path, label_ids, sample_ids


def _read_candidates(sample_collection, label_field: str, list_path: str, label_ids: list[str],
                     sample_ids: list[str]) -> dict[str, dict]:
    """The current state of the labels chosen by id, by sample, or every
    label of the collection (see :func:`.label_states.read_label_states`)."""
    dataset = fo_private.root_dataset(sample_collection)
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
    return current


def _outcome(applied: list[tuple[str, dict]], protected: list[str], lost: set[str], after: dict,
             who: Identity) -> dict:
    """The counts of :func:`review_labels`' summary once the action is written."""
    overriding = [info["state"] for _, info in applied if overrides_reviewer(info["state"], who)]
    return dict(
        num_labels=len(applied),
        num_samples=len({info["sample_id"] for _, info in applied}),
        num_changed=sum(info["state"]["review"] != after["review"] for _, info in applied),
        num_conflicts=len(protected) + len(lost),
        conflicts=list(protected) + sorted(lost),
        num_overridden=len(overriding),
        overridden_reviewers=sorted({state["reviewed_by"] or "" for state in overriding}),
    )


def _unique(ids) -> list[str]:
    if ids is None:
        return []
    if isinstance(ids, str):
        ids = [ids]
    return list(dict.fromkeys(str(i) for i in ids))


def _is_protected(state: dict, protect: str | None, who: Identity) -> bool:
    if protect is None or state.get("review") not in HUMAN_DECISIONS:
        return False
    return protect == "all" or state.get("reviewed_by") != who.name


def _select_samples(sample_collection, sample_ids: list[str]):
    view = sample_collection.select(sample_ids)
    found = set(view.values("id"))
    missing = [i for i in sample_ids if i not in found]
    if missing:
        raise ValueError(f"{len(missing)} sample id(s) not in the view, e.g. {missing[:5]}")
    return view
