"""The append-only audit log of review decisions, kept in MongoDB.

Each dataset has its own pair of collections in FiftyOne's database, named
after the dataset's sample collection (``samples.<id>``), so that renaming
a dataset keeps its log:

- ``stoplight_review.<samples.id>.entries``: one document per sample per
  decision: ``action_id``, ``action`` (accept, reject, reset, correct,
  undo), ``user``, ``user_source`` (how the name is known, see
  :mod:`.identity`), ``at`` (naive UTC, like FiftyOne), ``field``,
  ``sample_id`` and ``labels``, a list of ``{label_id, before, after}``
  (each state ``{review, reviewed_by, reviewed_at, review_action,
  review_bulk}``; a correction's, and the undo of one, also ``label`` and
  ``bounding_box``: the label before and after; plus ``overrides`` when the
  label held another reviewer's decision and ``conflict`` when the decision
  lost a race and was not applied); undo entries also carry ``undoes``, and
  entries of decisions from elsewhere ``source``. One document per sample
  rather than per label keeps a 100k-label decision to ~10k inserts;
  :func:`read_log` hands out one flat entry per label;
- ``stoplight_review.<samples.id>.actions``: one header document per
  action: ``_id`` (= ``action_id``), ``action``, ``user``,
  ``user_source``, ``at``, ``field``, ``num_labels``, ``bulk`` (decided as
  a group, see :mod:`..review.decisions`), ``num_overridden`` /
  ``overridden_reviewers`` (labels that held another reviewer's decision),
  ``num_conflicts`` (set when some lost a race) and, for an undo,
  ``undoes``.

(``stoplight_review.<samples.id>.graph``, the review graph of
:mod:`.label_graph`, is dropped with them.)

Nothing here updates or deletes a document except :func:`mark_conflicts`
(an action marking its own entries that lost a race, right after its
write), :func:`delete_log`
(for when the dataset itself is deleted) and :func:`delete_orphan_logs`
(logs whose dataset is gone: FiftyOne has no deletion hook, so every new
review action drops them). A clone of a dataset (new sample collection)
starts with an empty log; its labels keep their ``review`` attributes.

Action ids come from one atomic counter per dataset
(``find_one_and_update`` with ``$inc`` on ``stoplight_review.counters``),
so they are unique and increase in the order actions *start*, across every
process writing to the same database. :mod:`..review.decisions` uses them as the
order of decisions.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from . import fo_private

#: per-label fields of an entry's ``before``/``after`` state
STATE_KEYS = ("review", "reviewed_by", "reviewed_at", "review_action", "review_bulk")

_COUNTERS = "stoplight_review.counters"
#: the collections kept per dataset: the log, and the review graph of
#: :mod:`.label_graph`
SUFFIXES = ("entries", "actions", "graph")
#: ids per ``$in`` query: keeps each query far below MongoDB's 16 MB limit
CHUNK = 50_000


def _db():
    import fiftyone.core.odm.database as fod

    return fod.get_db_conn()


def _prefix(dataset) -> str:
    return f"stoplight_review.{fo_private.sample_collection_name(fo_private.root_dataset(dataset))}"


def entries_collection(dataset):
    """The pymongo collection of per-sample entries of ``dataset``'s log."""
    coll = _db()[f"{_prefix(dataset)}.entries"]
    # create_index is a no-op when the index exists
    coll.create_index([("user", 1), ("action_id", 1)])
    coll.create_index([("labels.label_id", 1), ("action_id", 1)])
    return coll


def actions_collection(dataset):
    """The pymongo collection of per-action headers of ``dataset``'s log."""
    coll = _db()[f"{_prefix(dataset)}.actions"]
    coll.create_index([("user", 1), ("_id", -1)])
    return coll


def counters():
    """The pymongo collection of per-dataset counters (action ids, and the
    time of the last full look for label edits, :mod:`..review.corrections`)."""
    return _db()[_COUNTERS]


def next_action_id(dataset) -> int:
    """Reserves the next action id of ``dataset`` (1, 2, ...), atomically."""
    from pymongo import ReturnDocument

    doc = _db()[_COUNTERS].find_one_and_update(
        {"_id": fo_private.sample_collection_name(fo_private.root_dataset(dataset))},
        {"$inc": {"seq": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    return int(doc["seq"])


def append(dataset, action: dict, entries: Sequence[dict]) -> None:
    """Appends one action header and its per-sample entries to the log."""
    if entries:
        entries_collection(dataset).insert_many(list(entries), ordered=False)
    actions_collection(dataset).insert_one(dict(action))


def user_actions(dataset, user: str, source: str | None = None) -> Iterator[dict]:
    """The action headers of ``user``, newest first; with ``source``, only
    those of that identity source (headers logged before sources were
    recorded match any)."""
    query: dict = {"user": user}
    if source is not None:
        query["user_source"] = {"$in": [source, None]}  # None: also missing
    return actions_collection(dataset).find(query).sort("_id", -1)


def mark_conflicts(dataset, action_id: int, label_ids: Sequence[str]) -> None:
    """Marks the entries of ``action_id`` on ``label_ids`` as not applied
    (``conflict``: the label changed between the action's read and its
    write), and counts them on the action's header."""
    ids = list(label_ids)
    entries_collection(dataset).update_many(
        {"action_id": action_id, "labels.label_id": {"$in": ids}},
        {"$set": {"labels.$[x].conflict": True}},
        array_filters=[{"x.label_id": {"$in": ids}}],
    )
    actions_collection(dataset).update_one({"_id": action_id}, {"$set": {"num_conflicts": len(ids)}})


def read_after(dataset, label_ids: Sequence[str], action_id: int) -> set[str]:
    """The labels whose log shows a decision after ``action_id`` that read
    the state ``action_id`` wrote (so that state was applied)."""
    ids = list(label_ids)
    pipeline = [
        {"$match": {"labels.label_id": {"$in": ids}, "action_id": {"$gt": action_id}}},
        {"$unwind": "$labels"},
        {"$match": {"labels.label_id": {"$in": ids}, "labels.before.review_action": action_id}},
        {"$group": {"_id": "$labels.label_id"}},
    ]
    return {doc["_id"] for doc in entries_collection(dataset).aggregate(pipeline)}


def _flatten(docs) -> Iterator[dict]:
    for doc in docs:
        doc.pop("_id", None)
        labels = doc.pop("labels")
        for lab in labels:
            yield dict(doc, **lab)


def action_entries(dataset, action_id: int) -> list[dict]:
    """The per-label entries of one action (see :func:`read_log`)."""
    return list(_flatten(entries_collection(dataset).find({"action_id": action_id})))


def read_log(dataset, user: str | None = None, label_ids: Iterable[str] | None = None) -> list[dict]:
    """One flat entry per label decision, in decision order.

    Args:
        dataset: the dataset (or a view of it)
        user: only this user's decisions
        label_ids: only decisions on these label ids

    Returns:
        dicts with ``action_id``, ``action``, ``user``, ``at``, ``field``,
        ``sample_id``, ``label_id``, ``before``, ``after`` (and ``undoes``),
        sorted by ``action_id``
    """
    query: dict = {}
    if user is not None:
        query["user"] = user
    coll = entries_collection(dataset)
    if label_ids is None:
        return list(_flatten(coll.find(query).sort([("action_id", 1), ("_id", 1)])))
    ids = list(dict.fromkeys(label_ids))
    wanted = set(ids)
    out: list[dict] = []
    for i in range(0, len(ids), CHUNK):
        docs = coll.find(dict(query, **{"labels.label_id": {"$in": ids[i : i + CHUNK]}}))
        out.extend(e for e in _flatten(docs) if e["label_id"] in wanted)
    # a document can match two chunks; label decisions are unique per action
    out = list({(e["action_id"], e["label_id"]): e for e in out}.values())
    out.sort(key=lambda e: e["action_id"])
    return out


def states_before(dataset, label_ids: Sequence[str], action_id: int, after_id: int = 0) -> dict[str, dict]:
    """The state each label had right before ``action_id``, per the log.

    That is the ``after`` of the label's latest logged decision with an
    action id in ``(after_id, action_id)``. Labels with no such decision
    are absent from the result. Callers pass as ``after_id`` an id known
    to precede every wanted decision (the smallest ``review_action`` the
    labels had when the action read them: any earlier decision was already
    superseded), so the query reads only the decisions that raced with it.
    """
    coll = entries_collection(dataset)
    out: dict[str, dict] = {}
    ids = list(label_ids)
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        pipeline = [
            {"$match": {"labels.label_id": {"$in": chunk}, "action_id": {"$gt": after_id, "$lt": action_id}}},
            {"$unwind": "$labels"},
            # a decision that lost a race was never the label's state
            {"$match": {"labels.label_id": {"$in": chunk}, "labels.conflict": {"$ne": True}}},
            {"$sort": {"labels.label_id": 1, "action_id": -1}},
            {"$group": {"_id": "$labels.label_id", "after": {"$first": "$labels.after"}}},
        ]
        for doc in coll.aggregate(pipeline, allowDiskUse=True):
            out[doc["_id"]] = doc["after"]
    return out


def delete_log(dataset) -> None:
    """Drops ``dataset``'s audit log and counter (e.g. before deleting it)."""
    db = _db()
    for suffix in SUFFIXES:
        db.drop_collection(f"{_prefix(dataset)}.{suffix}")
    db[_COUNTERS].delete_one({"_id": fo_private.sample_collection_name(fo_private.root_dataset(dataset))})


def delete_orphan_logs() -> list[str]:
    """Drops the audit logs whose dataset has been deleted.

    A log belongs to the sample collection ``samples.<id>`` in its name;
    when that collection no longer exists, neither does the dataset (ids
    are never reused). Called before every review action.

    Returns:
        the sample collection names whose logs were dropped
    """
    db = _db()
    names = set(db.list_collection_names())
    gone = set()
    for name in names:
        if not name.startswith("stoplight_review.samples."):
            continue
        owner = name[len("stoplight_review."):].rsplit(".", 1)[0]
        if owner not in names:
            gone.add(owner)
    for doc in db[_COUNTERS].find({}, {"_id": 1}):
        if isinstance(doc["_id"], str) and doc["_id"].startswith("samples.") and doc["_id"] not in names:
            gone.add(doc["_id"])
    for owner in sorted(gone):
        for suffix in SUFFIXES:
            db.drop_collection(f"stoplight_review.{owner}.{suffix}")
        db[_COUNTERS].delete_one({"_id": owner})
    return sorted(gone)
