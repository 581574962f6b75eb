"""Undo of a reviewer's last action.

Undo reverts the labels of the user's last action that is not itself an
undo and has not been undone, restoring each label to its state before
that action (the ``after`` of its previous logged decision, or the
``before`` recorded by the action when there is none). A label that
someone decided again since (its state no longer equals the action's
``after``) is left alone and counted as a conflict: a human decision is
never silently overwritten. The undo is itself a logged action with its
own, larger id (see :mod:`.label_states`), so repeated undos walk back
through the user's actions. Only actions of the same identity, name *and*
source, are undone.
"""

from __future__ import annotations

from ..common import audit, fo_private
from ..common.identity import Identity, as_identity
from .follow_up import log_app_edits, rerank_near_answers
from .label_states import CONTENT_KEYS, label_list_path, now_ms, read_label_states, record_action

__all__ = ["undo_last"]


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
    dataset = fo_private.root_dataset(sample_collection)
    who = as_identity(user)
    target = _last_undoable(dataset, who)
    if target is None:
        raise ValueError(f"Nothing to undo for user {who.name!r} ({who.source}) on dataset '{dataset.name}'")
    if target["action"] == "add":  # a missed object added: its label goes again
        from .missing import undo_add

        return undo_add(dataset, target, who)
    label_field = target["field"]
    list_path = label_list_path(dataset, label_field, allow_frames=True)
    revert, conflicts, missing = _revertible(dataset, list_path, label_field, target)
    prior = _prior_states(dataset, target, [e for e, _ in revert])

    action_id = audit.next_action_id(dataset)
    changes = [_restore(e, info, prior.get(e["label_id"], e["before"]), action_id) for e, info in revert]
    lost = record_action(dataset, list_path, label_field, "undo", who, now_ms(), action_id, changes,
                         header_extra=dict(undoes=target["_id"]))
    rerank_near_answers(dataset, label_field, [e["label_id"] for e, _ in revert if e["label_id"] not in lost])
    return dict(
        action="undo", action_id=action_id, undone_action_id=target["_id"],
        undone_action=target["action"], user=who.name, user_source=who.source, label_field=label_field,
        num_labels=len(changes) - len(lost), num_conflicts=conflicts + len(lost), num_missing=missing,
    )


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


def _revertible(dataset, list_path: str, label_field: str, target: dict) -> tuple[list[tuple[dict, dict]], int, int]:
    """The target action's log entries whose labels still hold what it
    wrote, each with the label's current state; and the numbers of labels
    changed since (conflicts) and deleted since (missing)."""
    # entries that lost a race were never applied: nothing of them to undo
    entries = [e for e in audit.action_entries(dataset, target["_id"]) if not e.get("conflict")]
    log_app_edits(dataset, label_field, list({e["sample_id"] for e in entries}))
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
    return revert, conflicts, missing


def _prior_states(dataset, target: dict, entries: list[dict]) -> dict[str, dict]:
    """``{label_id: state}`` logged before the target action, for the labels
    whose recorded ``before`` may be stale; the others are absent."""
    # the recorded `before` is exact unless a decision raced with the
    # action; only those (ids after the labels' review_action then) are read
    prior: dict[str, dict] = {}
    for fresh in (True, False):
        group = [e for e in entries if (e["before"]["review_action"] is None) == fresh]
        if group:
            after_id = 0 if fresh else min(e["before"]["review_action"] for e in group)
            prior.update(audit.states_before(dataset, [e["label_id"] for e in group], target["_id"], after_id))
    return prior


def _restore(entry: dict, info: dict, was: dict, action_id: int) -> tuple[str, str, dict, dict]:
    """The ``(sample_id, label_id, before, after)`` change that puts a label
    back to ``was`` under the undo's own action id."""
    restored = {k: was.get(k) for k in audit.STATE_KEYS}
    restored["review_action"] = action_id
    before = dict(info["state"])
    if "label" in entry["after"]:  # a correction: its content goes back too
        for k in CONTENT_KEYS:
            restored[k] = was[k] if k in was else entry["before"].get(k)
            before[k] = info[k]
    return info["sample_id"], entry["label_id"], before, restored


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
