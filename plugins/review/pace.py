"""The pace people actually review at, measured from the audit log.

The triage report prices the yellow queue at ``seconds_per_box`` (3 s by
default, an assumption). Once people have reviewed, the audit log knows
better: every action has its time (``at``), its reviewer and how many
labels it decided. :func:`review_pace` reads the gaps between a reviewer's
consecutive answers inside review sessions (a pause longer than
``max_gap_s`` ends a session: lunch is not review time) and returns the
median seconds per label. Bulk decisions (a whole queue, a cluster) and
undos are not answers and are left out, as are decisions loaded from an
annotation tool (their times are load times).
"""

from __future__ import annotations

import numpy as np

from ..common import audit, fo_private

#: a pause longer than this (seconds) between two answers ends a session
MAX_GAP_S = 120.0
#: fewer measured gaps than this: no pace (the default is kept)
MIN_GAPS = 20
#: actions that are a person's answers
ANSWER_ACTIONS = ("accept", "reject", "correct", "reset")


def review_pace(sample_collection, label_field: str | None = None, max_gap_s: float = MAX_GAP_S,
                min_gaps: int = MIN_GAPS) -> dict | None:
    """Median seconds per label of the answers logged on the dataset.

    Args:
        sample_collection: the dataset (or a view of it)
        label_field: only answers on this field (None: all)
        max_gap_s: longest pause counted as review time
        min_gaps: fewest measured gaps for a pace

    Returns:
        ``{"seconds_per_label", "num_gaps", "num_reviewers", "sessions"}``,
        or None when fewer than ``min_gaps`` gaps were measured
    """
    query = {"action": {"$in": list(ANSWER_ACTIONS)}, "bulk": {"$ne": True}, "source": {"$exists": False}}
    if label_field is not None:
        query["field"] = label_field
    by_user: dict[str, list] = {}
    actions = audit.actions_collection(fo_private.root_dataset(sample_collection))
    for h in actions.find(query, {"user": 1, "at": 1, "num_labels": 1}):
        by_user.setdefault(h["user"], []).append((h["at"], max(int(h.get("num_labels") or 1), 1)))
    per_label, sessions = [], 0
    for rows in by_user.values():
        rows.sort()
        in_session = False
        for (t0, _), (t1, n) in zip(rows, rows[1:]):
            gap = (t1 - t0).total_seconds()
            if 0 < gap <= max_gap_s:
                per_label.append(gap / n)
                sessions += not in_session
                in_session = True
            else:
                in_session = False
    if len(per_label) < min_gaps:
        return None
    return dict(seconds_per_label=round(float(np.median(per_label)), 2), num_gaps=len(per_label),
                num_reviewers=len(by_user), sessions=sessions)
