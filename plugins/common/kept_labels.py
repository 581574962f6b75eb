"""Which labels a run works on: accepted, green, or all.

Several runs act on "the labels people may rely on": masks are computed for
them (``segment_labels``), they seed video tracks (``track_labels``). The
rule is the one ``finalize_labels(include_green=True)`` and the training
export use:

==================== =========================================================
``include``          labels kept
==================== =========================================================
``accepted``         ``review == "accepted"`` (a person accepted them)
``accepted+green``   also ``queue == "green"`` labels nobody rejected
``all``              every label
==================== =========================================================

Pure Python; no FiftyOne import.
"""

from __future__ import annotations

from typing import Any, Sequence

from .label_vocab import HUMAN_DECISIONS  # noqa: F401  (its importers name it here)

#: the values of the ``include`` parameter
INCLUDE = ("accepted", "accepted+green", "all")


def check_include(include: Any) -> str:
    """Returns ``include`` if valid.

    Raises:
        ValueError: naming the parameter, for any other value
    """
    if include not in INCLUDE:
        raise ValueError(f"Parameter 'include' must be one of {INCLUDE}; got {include!r}")
    return include


def is_kept(review: Any, queue: Any, include: str) -> bool:
    """Whether a label with this ``review`` state and ``queue`` is kept."""
    if include == "all":
        return True
    if review == "accepted":
        return True
    return include == "accepted+green" and queue == "green" and review != "rejected"


def kept_flags(reviews: Sequence[Any], queues: Sequence[Any], include: str) -> list[bool]:
    """:func:`is_kept` of aligned sequences of review states and queues."""
    check_include(include)
    return [is_kept(r, q, include) for r, q in zip(reviews, queues)]
