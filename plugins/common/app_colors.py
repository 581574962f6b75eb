"""Queues visible in the grid: the dataset's App colour scheme colours a
label field's boxes by their ``queue`` (green / yellow / red).

FiftyOne keeps one colour scheme per dataset
(``dataset.app_config.color_scheme``, a ``fo.ColorScheme``): with
``color_by="value"``, a field entry ``{"path", "colorByAttribute",
"valueColors"}`` colours each label by one of its attributes. The triage
sets it when it assigns queues, so every user sees the queues without
configuring anything; entries of other fields and the rest of the scheme
are kept, and an entry the user made for the field with another attribute
is respected.
"""

from __future__ import annotations

from . import fo_private
from .label_vocab import QUEUE_COLORS


def queue_color_entry(label_field: str) -> dict:
    """The colour-scheme entry that colours ``label_field`` by queue."""
    return dict(
        path=label_field,
        colorByAttribute="queue",
        valueColors=[dict(value=q, color=c) for q, c in QUEUE_COLORS.items() if q != "unassigned"],
    )


def set_queue_colors(dataset, label_field: str) -> bool:
    """Makes the App colour ``label_field``'s labels by queue.

    Args:
        dataset: the dataset (its ``app_config`` is saved)
        label_field: the triaged field

    Returns:
        whether the scheme changed (False: already so, or the user colours
        the field by another attribute)
    """
    import fiftyone as fo

    dataset = fo_private.root_dataset(dataset)
    scheme = dataset.app_config.color_scheme
    fields = [dict(f) for f in (scheme.fields or [])] if scheme is not None else []
    entry = queue_color_entry(label_field)
    mine = [f for f in fields if f.get("path") == label_field]
    if mine and mine[0].get("colorByAttribute") not in (None, "queue"):
        return False  # the user's own choice
    if mine and mine[0] == entry and scheme.color_by == "value":
        return False
    fields = [f for f in fields if f.get("path") != label_field] + [entry]
    if scheme is None:
        scheme = fo.ColorScheme(color_by="value", fields=fields)
    else:
        scheme.color_by = "value"
        scheme.fields = fields
    dataset.app_config.color_scheme = scheme
    dataset.save()
    return True
