"""The label attributes Stoplight gives a meaning to, and who may write them.

One list, enforced by every writer of label attributes: an attribute a
caller names (``embeddings_attr``, say) must not be one of these, and a
writer may only write the protected attributes it owns. Otherwise a request
such as ``compute_label_embeddings(embeddings_attr="review",
overwrite=True)`` would write vectors over every label's review decision,
box or class.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Union

from .label_vocab import ADDED_FROM_ATTR, AUTO_LABEL_ATTR, BULK_ATTR, CANDIDATE_SOURCE_ATTR, LOGGED_ATTRS

#: FiftyOne's own attributes of a ``Detection`` (and of its documents)
LABEL_CORE_ATTRS = (
    "id", "_id", "_cls", "label", "bounding_box", "mask", "mask_path", "confidence",
    "index", "tags", "attributes", "instance",
)
#: written by zero_shot_detect
DETECTION_ATTRS = ("class_scores",)
#: written by a person's review (review.decisions) only
REVIEW_ATTRS = ("review", "reviewed_by", "reviewed_at", "review_action", BULK_ATTR)
#: a correction's logged copies and the detector's class (review.corrections)
CORRECTION_ATTRS = (AUTO_LABEL_ATTR, *LOGGED_ATTRS)
#: written by the triage (assign_queues) only
TRIAGE_ATTRS = ("queue", "p_correct", "review_rank", "audit_rank")
#: float scores written by score_labels only
SCORE_ATTRS = (
    "hardness",
    "margin",
    "mistakenness",
    "mistakenness_loc",
    "knn_agreement",
    "rer",
    "clip_agreement",
    "consensus",
    "uncertainty",
)
#: provenance of final labels and hand-off corrections
PROVENANCE_ATTRS = ("source_field", "source_id", "auto_accepted", "change", "anno_key")

#: every attribute above: no caller-chosen attribute may be one of them
PROTECTED_ATTRS = frozenset(
    LABEL_CORE_ATTRS + DETECTION_ATTRS + REVIEW_ATTRS + CORRECTION_ATTRS + TRIAGE_ATTRS + SCORE_ATTRS
    + PROVENANCE_ATTRS
)


def check_free_attr(name, param: str) -> str:
    """Returns ``name`` if a caller may choose it as a label attribute.

    Raises:
        ValueError: naming ``param``, for a non-identifier, a private name,
            or one of :data:`PROTECTED_ATTRS`
    """
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        raise ValueError(f"Parameter '{param}' must be an identifier; got {name!r}")
    if name in PROTECTED_ATTRS:
        raise ValueError(
            f"Parameter '{param}': {name!r} is a label attribute Stoplight gives a meaning to "
            "(a box, class, score, queue or review decision) and is never overwritten; choose another name"
        )
    return name


def check_writable(attrs: Iterable[str], owned: Iterable[str] = ()) -> None:
    """Raises a ValueError unless every attribute in ``attrs`` is either
    unprotected or among ``owned`` (the writer's own protected attributes)."""
    owned = set(owned)
    bad = sorted(a for a in attrs if (a in PROTECTED_ATTRS and a not in owned) or str(a).startswith("_"))
    if bad:
        raise ValueError(f"Refusing to write protected label attribute(s) {bad}")


#: a FiftyOne field class by name, or ``(list field, element field)``
Kind = Union[str, tuple]

#: how each attribute above is declared on the schema (names of
#: ``fiftyone`` field classes, so this module imports no FiftyOne)
ATTR_KINDS: dict[str, Kind] = {
    **dict.fromkeys(
        ("review", "reviewed_by", "queue", "source_field", "source_id", "change", "anno_key", AUTO_LABEL_ATTR,
         LOGGED_ATTRS[0], CANDIDATE_SOURCE_ATTR, ADDED_FROM_ATTR), "StringField"),
    "reviewed_at": "DateTimeField",
    **dict.fromkeys(("review_action", "review_rank", "audit_rank"), "IntField"),
    **dict.fromkeys((BULK_ATTR, "auto_accepted"), "BooleanField"),
    **dict.fromkeys(("p_correct", *SCORE_ATTRS), "FloatField"),
    **dict.fromkeys((LOGGED_ATTRS[1], *DETECTION_ATTRS), ("ListField", "FloatField")),
}


def declare_label_attrs(dataset, list_path: str, attrs: Iterable[str] | Mapping[str, Kind]) -> None:
    """Declares label attributes on the schema (those not declared yet), so
    the App's sidebar and ``get_field_schema`` show them.

    Args:
        dataset: the dataset
        list_path: the labels' list, e.g. ``"autolabels.detections"`` or
            ``"frames.autolabels.detections"``
        attrs: attribute names declared as :data:`ATTR_KINDS` says, or
            ``{name: kind}`` for attributes of a feature's own
    """
    import fiftyone as fo

    kinds = attrs if isinstance(attrs, Mapping) else {a: ATTR_KINDS[a] for a in attrs}
    frames = list_path.startswith("frames.")
    add = dataset.add_frame_field if frames else dataset.add_sample_field
    for attr, kind in kinds.items():
        path = f"{list_path}.{attr}"
        if dataset.has_field(path):
            continue
        field, element = (kind, None) if isinstance(kind, str) else kind
        extra = {} if element is None else {"subfield": getattr(fo, element)}
        add(path[len("frames."):] if frames else path, getattr(fo, field), **extra)
