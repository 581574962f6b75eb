"""Human review in place: decisions on labels, their audit log, finalizing.

- :mod:`.decisions`: accept / reject / reset / undo (core)
- :mod:`.corrections`: a changed class or box as a ``corrected`` decision;
  edits made in the App found and logged
- :mod:`.propagation`: every answer re-ranks the open labels near it;
  "accept these N similar labels" as one question
- :mod:`..common.audit`: the append-only audit log in MongoDB
- :mod:`.finalize`: accepted labels into a clean final field
- :mod:`.handoff`: a queue sent to an annotation tool, its answers back
- :mod:`.operators`: the App layer
"""

from .corrections import correct_label, sync_label_edits
from .decisions import HUMAN_DECISIONS, decided_label_ids, is_decided, review_labels, undo_last
from .finalize import finalize_labels
from .handoff import load_review_answers, send_for_review
from .propagation import accept_similar, find_similar_group, rerank_after_answers

__all__ = [
    "HUMAN_DECISIONS",
    "accept_similar",
    "correct_label",
    "decided_label_ids",
    "finalize_labels",
    "find_similar_group",
    "is_decided",
    "load_review_answers",
    "rerank_after_answers",
    "review_labels",
    "send_for_review",
    "sync_label_edits",
    "undo_last",
]
