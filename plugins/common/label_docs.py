"""How Stoplight lays out a label's document: the attributes people look
for first, and the logged copy of its class and box.

The FiftyOne App's label tooltip shows ``label`` and ``confidence`` and then
every other attribute in the order the label document stores them (checked
in the App's source, 1.22: ``Object.entries(label)``). Scores, the ten
``class_scores`` and the embedding would come first and push the queue
and review state out of sight. :func:`prepare_label_docs` rewrites each
label once, inside MongoDB, so that :data:`.label_vocab.TOOLTIP_FIRST`
(queue, P(correct), review state, reviewer, rank) follow the class and
confidence; later ``$set`` writes keep a key where it is. It also gives
the label its logged class and box (:data:`.label_vocab.LOGGED_ATTRS`),
against which edits made outside Stoplight are found.

Only labels without a logged copy are rewritten, so a second call costs a
query, and labels people edited keep their edit (the copy is taken from
the label as it is: Stoplight assumes a label it has never seen is
unedited).
"""

from __future__ import annotations

from . import fo_private
from .label_attrs import declare_label_attrs
from .label_vocab import LOGGED_ATTRS, TOOLTIP_FIRST

#: label documents' first keys, in this order
FIRST_KEYS = ("_id", "_cls", "label", "bounding_box", "confidence", *TOOLTIP_FIRST)
#: samples per update
_CHUNK = 10_000


def declare_logged_attrs(dataset, list_path: str) -> None:
    """Declares the logged class and box on the schema."""
    declare_label_attrs(dataset, list_path, LOGGED_ATTRS)


def prepare_label_docs(dataset, list_path: str, sample_ids=None) -> int:
    """Orders and snapshots every label of ``list_path`` that has no logged
    copy yet (see the module docstring).

    Args:
        dataset: the dataset
        list_path: ``"<field>.<list>"``, e.g. ``"autolabels.detections"``
        sample_ids: only these samples (ids or ObjectIds); default all

    Returns:
        the number of samples rewritten
    """
    from bson import ObjectId

    declare_logged_attrs(dataset, list_path)
    missing = {"$eq": [{"$type": f"$$this.{LOGGED_ATTRS[1]}"}, "missing"]}
    # a key set to null keeps its place for the value written later; the
    # tooltip hides nulls
    head = {k: (f"$$this.{k}" if k in ("_id", "_cls", "label", "bounding_box", "confidence")
                else {"$ifNull": [f"$$this.{k}", None]}) for k in FIRST_KEYS}
    fill = {LOGGED_ATTRS[0]: {"$ifNull": ["$$this.label", None]},
            LOGGED_ATTRS[1]: {"$ifNull": ["$$this.bounding_box", None]}}
    update = [{"$set": {
        list_path: {"$map": {"input": f"${list_path}",
                             "in": {"$cond": [missing, {"$mergeObjects": [head, "$$this", fill]}, "$$this"]}}},
        "last_modified_at": "$$NOW",
    }}]
    base = {list_path: {"$elemMatch": {LOGGED_ATTRS[1]: {"$exists": False}}}}
    coll = fo_private.sample_collection(dataset)
    if sample_ids is None:
        return coll.update_many(base, update).modified_count
    oids = list(dict.fromkeys(ObjectId(str(s)) for s in sample_ids))
    n = 0
    for start in range(0, len(oids), _CHUNK):
        n += coll.update_many(dict(base, _id={"$in": oids[start : start + _CHUNK]}), update).modified_count
    return n
