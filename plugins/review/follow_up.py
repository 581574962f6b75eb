"""What a review action sets off around its own write.

Before a decision (or an undo), edits made in the App outside Stoplight on
the same samples are logged first, so the decision's logged ``before`` is
what the person saw; after it, the open yellow labels near the answered
ones are re-ranked. Both live in modules that themselves record decisions
(:mod:`.corrections`, :mod:`.propagation`), so they are imported when
called.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["log_app_edits", "rerank_near_answers"]


def log_app_edits(dataset, label_field: str, sample_ids: Sequence[str]) -> int:
    """Logs edits made outside Stoplight on these samples.

    See :func:`.corrections.sync_label_edits`. Frame-level fields (video
    tracks) have no edit detection.

    Returns:
        the number of edits logged
    """
    from .corrections import sync_label_edits

    if label_field.startswith("frames."):
        return 0
    # a decision writes nothing but decisions: no logged copies of other labels
    return sync_label_edits(dataset, label_field, sample_ids=sample_ids, snapshot=False)["num_corrected"]


def rerank_near_answers(dataset, label_field: str, label_ids: Sequence[str]) -> int:
    """Re-ranks the open yellow labels near the answered ones.

    See :func:`.propagation.rerank_after_answers`.

    Returns:
        the number of labels re-ranked
    """
    from .propagation import rerank_after_answers

    if label_field.startswith("frames."):
        return 0  # the review graph covers sample-level fields
    return rerank_after_answers(dataset, label_field, label_ids)["num_reranked"]
