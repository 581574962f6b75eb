"""The ``review_queue`` panel: one question at a time, answered from a key.

- :mod:`.panel`: the App layer (:class:`ReviewQueue`, the methods its JS
  component calls)
- :mod:`.questions`: the questions, their order and the counts
"""

from . import questions
from .panel import (
    ANSWERS,
    BATCH,
    COMPONENT,
    MAX_GROUP_SHOWN,
    ReviewQueue,
    answers_errors,
    reviewer,
    reviewer_identity,
    view_key,
)

__all__ = [
    "ANSWERS",
    "BATCH",
    "COMPONENT",
    "MAX_GROUP_SHOWN",
    "ReviewQueue",
    "answers_errors",
    "questions",
    "reviewer",
    "reviewer_identity",
    "view_key",
]
