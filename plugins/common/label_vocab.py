"""The words every feature uses for a label's state: queues, review states,
and the attributes Stoplight keeps on each label.

One place for the vocabulary, so that triage, review, training and the
panels agree on what "decided" or "kept" means. Plain constants and one
array test; nothing here touches a database.

Review states (attribute ``review``):

============= ================================================================
state         meaning
============= ================================================================
``pending``   nobody decided (also: attribute missing or None)
``accepted``  a person (or a bulk action, see ``review_bulk``) accepted it
``rejected``  the label is wrong and is dropped
``corrected`` a person changed its class or box: the label now holds the
              corrected values; the auto-label as produced was wrong
============= ================================================================
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

#: the label field Stoplight labels into unless told otherwise
DEFAULT_LABEL_FIELD = "autolabels"

#: triage queues (attribute ``queue``)
GREEN, YELLOW, RED = "green", "yellow", "red"
QUEUES = (GREEN, YELLOW, RED)
#: how counts and panels name labels with no (or an unknown) queue
UNASSIGNED = "unassigned"
#: every review state; anything else reads as ``pending``
REVIEW_STATES = ("pending", "accepted", "rejected", "corrected")
#: queue of candidate boxes of objects the auto-labels may have missed
#: (boxes below the labeling threshold, another model's boxes, verified
#: objects nobody labeled); they live in their own field, see
#: :func:`candidates_field`, and a person adds or dismisses each
MISSING_QUEUE = "missing"
#: attribute of a candidate naming where it came from (``below_threshold``,
#: another field's name, ``verified:<gt_field>``)
CANDIDATE_SOURCE_ATTR = "candidate_source"
#: attribute of a label added from a candidate: the candidate's id
ADDED_FROM_ATTR = "added_from"
#: review states a person decided: no automatic step may overwrite them
HUMAN_DECISIONS = ("accepted", "rejected", "corrected")
#: decided labels that go into final fields and training sets
KEPT_DECISIONS = ("accepted", "corrected")
#: decisions that say the auto-label, as the detector produced it, was wrong
WRONG_DECISIONS = ("rejected", "corrected")

#: True on a decision made for a group of labels at once (a whole queue,
#: class or selection of samples, a lasso, "accept these N similar"):
#: nobody looked at each label, so it is never counted as a human check
BULK_ATTR = "review_bulk"
#: the class the detector gave, kept on a corrected label (calibration
#: learns about the auto-label as produced, not the corrected class)
AUTO_LABEL_ATTR = "auto_label"
#: the class and box as Stoplight last logged them; a label whose class or
#: box differs was edited outside Stoplight (e.g. the App's Annotate tab)
LOGGED_ATTRS = ("logged_label", "logged_bounding_box")

#: attributes the App's label tooltip should show first (it shows
#: ``label`` and ``confidence``, then the label's other attributes in the
#: order they are stored)
TOOLTIP_FIRST = ("queue", "p_correct", "review", "reviewed_by", "review_rank")

#: colours of the queues in the grid, the panels and the label map
QUEUE_COLORS = {"green": "#2e9e44", "yellow": "#e6b800", "red": "#d32f2f", "unassigned": "#9e9e9e"}
#: colours of the review states in the label map
REVIEW_COLORS = {"pending": "#9e9e9e", "accepted": "#2e9e44", "rejected": "#d32f2f", "corrected": "#1e88e5"}


def is_decided(review: Sequence[Any]) -> np.ndarray:
    """``(N,)`` bool: whether each ``review`` value is a human decision."""
    return np.isin(np.asarray(list(review), dtype=object), HUMAN_DECISIONS)


def review_state(value) -> str:
    """A stored ``review`` value as one of :data:`REVIEW_STATES`."""
    return value if isinstance(value, str) and value in HUMAN_DECISIONS else "pending"


def candidates_field(label_field: str) -> str:
    """The default field of the missed-object candidates of ``label_field``."""
    return f"{label_field}_candidates"
