"""Human review in place: decisions on labels, their audit log, finalizing.

- :mod:`.decisions`: accept / reject / reset / undo (core)
- :mod:`.audit`: the append-only audit log in MongoDB
- :mod:`.finalize`: accepted labels into a clean final field
- :mod:`.handoff`: a queue sent to an annotation tool, its answers back
- :mod:`.operators`: the App layer
"""

from .decisions import HUMAN_DECISIONS, decided_label_ids, is_decided, review_labels, undo_last
from .finalize import finalize_labels
from .handoff import load_review_answers, send_for_review

__all__ = [
    "HUMAN_DECISIONS",
    "decided_label_ids",
    "finalize_labels",
    "is_decided",
    "load_review_answers",
    "review_labels",
    "send_for_review",
    "undo_last",
]
