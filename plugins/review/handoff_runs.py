"""The Stoplight run that records a hand-off (``handoff_<anno_key>``).

Its config holds the parameters of :func:`.handoff.send_for_review` and the
time and counts of the last load; its results the labels as sent and every
load of answers (:mod:`.handoff_answers`).
"""

from __future__ import annotations

__all__ = ["RUN_PREFIX", "handoff_backend", "handoff_run_key"]

#: prefix of the Stoplight run that records a hand-off
RUN_PREFIX = "handoff_"
#: answers read from the tool differ from what was sent when a box


def handoff_run_key(anno_key: str) -> str:
    """Key of the Stoplight run that records the hand-off ``anno_key``."""
    return f"{RUN_PREFIX}{anno_key}"


def handoff_backend(dataset, anno_key: str) -> str | None:
    """The annotation backend a hand-off was sent to (None if ``anno_key``
    is no hand-off of this dataset)."""
    run_key = handoff_run_key(anno_key)
    if not isinstance(anno_key, str) or not dataset.has_run(run_key):
        return None
    return getattr(dataset.get_run_info(run_key).config, "backend", None)
