"""Answers that teach: every answer re-ranks the open yellow labels near it.

The triage stores, for each yellow label, its nearest labels of the same
class and score region with edge weights (the review graph,
:mod:`..common.label_graph`). After every decision the answered label's
neighbours get its outcome as *evidence* and a propagated probability of
being right (one step of label propagation with the triage's own
P(correct) as prior, Zhou et al. 2004)::

    p'_i = (alpha * p0_i + sum_{j accepted} w_ij) / (alpha + sum_{j answered} w_ij)

Rejected and corrected neighbours count as wrong; accepted ones as right;
bulk decisions (nobody looked at each label), pending labels and edges
lighter than ``MIN_WEIGHT`` give no evidence. Then:

- a label whose answered neighbours weigh more wrong than right is
  **promoted**: it gets a ``review_rank`` before every open label, so the
  near-duplicates of a rejected label are asked next, the lowest ``p'``
  first (whatever the triage thought of them: a label the model already
  doubted is as much worth a look as one it trusted);
- a label whose answered neighbours weigh more right than wrong and whose
  ``p'`` reached ``DEMOTE_ABOVE`` is **demoted** to the end of the queue: a
  run of accepts around it makes it a candidate for one bulk question
  (:func:`find_similar_group`, :func:`accept_similar`);
- a label whose evidence no longer supports either (an undo, a reset) gets
  its triage rank back.

Only ``review_rank`` of open yellow labels is written (guarded in MongoDB:
a label a person decided meanwhile is left alone), so every reader of the
review order — the panels, ``send_for_review(limit=...)`` — sees the new
order at once. The cost per answer is a few indexed reads and writes,
whatever the dataset size.

Concurrency: an answer's evidence is *set* on its neighbours (idempotent),
and ranks are written without the decisions' action guard: two reviewers
re-ranking the same label at once leave one of their ranks. The order is
advice, not a decision; decisions keep the contract of :mod:`.decisions`.
Re-running ``assign_queues`` rebuilds the graph for the labels it assigns:
teaching starts afresh (decided labels keep their decisions).

**Answers given in review order are not a random sample.** They steer the
ranking and the questions; they never feed a guarantee (see the README's
"Review" section). Propagated probabilities live only in the graph and
the order; ``p_correct`` on the labels stays the calibrated triage value.
"""

from __future__ import annotations

from typing import Sequence

from ..common import fo_private
from ..common.label_graph import graph_collection, take_ranks
from ..common.label_vocab import BULK_ATTR, HUMAN_DECISIONS, WRONG_DECISIONS
from . import decisions

#: weight of the triage's P(correct) against the neighbours' answers (in
#: edge weights: a near-duplicate's answer weighs ~1)
ALPHA = 2.0
#: edges lighter than this carry no evidence (only similar labels teach)
MIN_WEIGHT = 0.5
#: demoted labels must reach this propagated P(correct)
DEMOTE_ABOVE = 0.8


def propagated_p(p0: float, evidence: dict, alpha: float = ALPHA) -> float:
    """``p'`` of a label from its prior and its evidence ``{label id:
    signed weight}`` (positive: an accepted neighbour; negative: a rejected
    or corrected one). Pure."""
    right = sum(v for v in evidence.values() if v > 0)
    total = sum(abs(v) for v in evidence.values())
    return (alpha * p0 + right) / (alpha + total)


def status_of(p0: float, evidence: dict, alpha: float = ALPHA) -> str | None:
    """``"up"`` (promote), ``"down"`` (demote) or None, from a label's prior
    and evidence (see the module docstring). Pure."""
    right = sum(v for v in evidence.values() if v > 0)
    wrong = -sum(v for v in evidence.values() if v < 0)
    if wrong > right:
        return "up"
    if right > wrong and propagated_p(p0, evidence, alpha) >= DEMOTE_ABOVE:
        return "down"
    return None


def rerank_after_answers(sample_collection, label_field: str, label_ids: Sequence[str]) -> dict:
    """Puts the answers on ``label_ids`` (their current review state) into
    their neighbours' evidence and re-ranks the neighbours that move.

    Idempotent: an answer's evidence is set, not added, so calling it again
    (or after an undo, with the restored state) leaves each neighbour with
    the evidence of the answers as they stand.

    Args:
        sample_collection: the dataset (or a view of it)
        label_field: the labels' field
        label_ids: labels whose state just changed

    Returns:
        ``{"num_answers"`` (answered labels in the graph),
        ``"num_reranked"``, ``"promoted"``, ``"demoted"``, ``"restored"``
        (label ids)}
    """
    from bson import ObjectId
    from pymongo import UpdateOne

    dataset = fo_private.root_dataset(sample_collection)
    out = dict(num_answers=0, num_reranked=0, promoted=[], demoted=[], restored=[])
    ids = [str(i) for i in label_ids]
    if not ids:
        return out
    coll = graph_collection(dataset)
    answered = []
    for start in range(0, len(ids), 50_000):
        chunk = [ObjectId(i) for i in ids[start : start + 50_000]]
        answered += list(coll.find({"_id": {"$in": chunk}, "f": label_field}, {"n": 1, "w": 1, "s": 1}))
    if not answered:
        return out
    out["num_answers"] = len(answered)
    list_path = decisions.label_list_path(dataset, label_field)
    states = _states_by_sample(dataset, list_path, {str(d["_id"]): d["s"] for d in answered})
    ops, touched = [], set()
    for d in answered:
        lid = str(d["_id"])
        sign = _evidence_sign(states.get(lid))
        for nbr, w in zip(d["n"], d["w"]):
            if w < MIN_WEIGHT:
                continue
            key = f"ev.{lid}"
            ops.append(UpdateOne({"_id": nbr}, {"$set": {key: sign * w}} if sign else {"$unset": {key: ""}}))
            touched.add(nbr)
    if ops:
        coll.bulk_write(ops, ordered=False)
    moved = _rerank(dataset, label_field, list_path, coll, sorted(touched))
    out.update(moved, num_reranked=sum(len(v) for v in moved.values()))
    return out


def _evidence_sign(state: dict | None) -> int:
    if state is None or state.get(BULK_ATTR):
        return 0
    review = state.get("review")
    if review == "accepted":
        return 1
    return -1 if review in WRONG_DECISIONS else 0


def _rerank(dataset, label_field, list_path, coll, label_oids) -> dict:
    """New ranks for the graph labels ``label_oids`` whose status changed."""
    docs = list(coll.find({"_id": {"$in": label_oids}}, {"s": 1, "p0": 1, "r0": 1, "ev": 1, "st": 1}))
    changes = []
    for d in docs:
        p = propagated_p(d["p0"], d.get("ev") or {})
        st = status_of(d["p0"], d.get("ev") or {})
        if st != d.get("st"):
            changes.append((d, st, p))
    if not changes:
        return dict(promoted=[], demoted=[], restored=[])
    # only labels still open and yellow move; decided ones keep their state
    states = _states_by_sample(dataset, list_path, {str(d["_id"]): d["s"] for d, _, _ in changes})
    changes = [(d, st, p) for d, st, p in changes
               if (states.get(str(d["_id"])) or {}).get("review") not in HUMAN_DECISIONS
               and (states.get(str(d["_id"])) or {}).get("queue") == "yellow"]
    if not changes:
        return dict(promoted=[], demoted=[], restored=[])
    ups = sorted([c for c in changes if c[1] == "up"], key=lambda c: c[2])
    downs = sorted([c for c in changes if c[1] == "down"], key=lambda c: -c[2])
    new_rank = {}
    for group, before in ((ups, True), (downs, False)):
        for (d, _, _), r in zip(group, take_ranks(dataset, label_field, len(group), before)):
            new_rank[d["_id"]] = r
    for d, st, _ in changes:
        if st is None:
            new_rank[d["_id"]] = d["r0"]
    _write_ranks(dataset, list_path, [(d["s"], d["_id"], new_rank[d["_id"]]) for d, _, _ in changes])
    from pymongo import UpdateOne

    coll.bulk_write([UpdateOne({"_id": d["_id"]}, {"$set": {"st": st}}) for d, st, _ in changes], ordered=False)
    return dict(
        promoted=[str(d["_id"]) for d, _, _ in ups],
        demoted=[str(d["_id"]) for d, _, _ in downs],
        restored=[str(d["_id"]) for d, st, _ in changes if st is None],
    )


def _states_by_sample(dataset, list_path: str, sample_of: dict) -> dict[str, dict]:
    """``{label_id: {review, queue, review_bulk}}`` of labels, read by their
    samples (an ``_id`` lookup, not a scan of label ids)."""
    from bson import ObjectId

    field, list_name = list_path.split(".")
    wanted = set(sample_of)
    sids = list({ObjectId(str(s)) for s in sample_of.values()})
    proj = {f"{list_path}.{k}": 1 for k in ("_id", "review", "queue", BULK_ATTR)}
    out = {}
    for start in range(0, len(sids), 50_000):
        for doc in fo_private.sample_collection(dataset).find({"_id": {"$in": sids[start : start + 50_000]}}, proj):
            for lab in (doc.get(field) or {}).get(list_name) or []:
                lid = str(lab["_id"])
                if lid in wanted:
                    out[lid] = {k: lab.get(k) for k in ("review", "queue", BULK_ATTR)}
    return out


def _write_ranks(dataset, list_path: str, rows) -> None:
    """Sets ``review_rank`` of ``(sample_id, label_id, rank)`` while the
    label is open (no human decision) and yellow."""
    import datetime

    from pymongo import UpdateOne

    now = datetime.datetime.utcnow()
    ops = []
    for sid, lid, rank in rows:
        ops.append(UpdateOne(
            {"_id": sid},
            {"$set": {f"{list_path}.$[l].review_rank": int(rank), "last_modified_at": now}},
            array_filters=[{"l._id": lid, "l.review": {"$nin": list(HUMAN_DECISIONS)}, "l.queue": "yellow"}],
        ))
    if ops:
        fo_private.bulk_write(dataset, ops, ids=list({str(r[0]) for r in rows}))


# ---------------------------------------------------------------------------
# One question for a tight cluster: "accept these N similar labels?"
# ---------------------------------------------------------------------------

#: least edge weight inside a group
TIGHT = 0.5
#: accepted labels (one at a time) the cluster needs before it is offered
MIN_ACCEPTS = 3
#: largest group offered at once
MAX_GROUP = 500


def find_similar_group(sample_collection, label_field: str, label_id: str, tight: float = TIGHT,
                       min_accepts: int = MIN_ACCEPTS, max_group: int = MAX_GROUP) -> dict:
    """The open yellow labels of ``label_id``'s tight cluster, when a run of
    accepts vouches for it.

    The cluster: labels reachable from ``label_id`` over graph edges of
    weight at least ``tight`` (same class and score region, see
    :mod:`..common.label_graph`). It is offered only when at least
    ``min_accepts`` of its labels were accepted one at a time and none was
    rejected or corrected; the group is then its open yellow labels (at
    most ``max_group``, the closest to accepted ones first).

    Args:
        sample_collection: the dataset or a view (only labels in it are
            offered)
        label_field: the labels' field
        label_id: where to start, e.g. the label just accepted
        tight: least edge weight followed
        min_accepts: accepted labels the cluster needs
        max_group: most labels offered

    Returns:
        ``{"label_id", "label" (class), "label_ids", "sample_ids",
        "num_accepted", "num_rejected", "reason"}``: ``label_ids`` empty and
        ``reason`` set when nothing is offered
    """
    from bson import ObjectId

    dataset = fo_private.root_dataset(sample_collection)
    list_path = decisions.label_list_path(dataset, label_field)
    coll = graph_collection(dataset)
    start = coll.find_one({"_id": ObjectId(str(label_id)), "f": label_field})
    out = dict(label_id=str(label_id), label=None, label_ids=[], sample_ids=[], num_accepted=0, num_rejected=0,
               reason=None)
    if start is None:
        out["reason"] = "the label is not in the review graph (not yellow at triage, or no embedding)"
        return out
    out["label"] = start["c"]
    seen = {start["_id"]: start}
    frontier = [start]
    while frontier and len(seen) < 20 * max_group:
        nxt = {nb for d in frontier for nb, w in zip(d["n"], d["w"]) if w >= tight and nb not in seen}
        if not nxt:
            break
        docs = list(coll.find({"_id": {"$in": list(nxt)}}, {"n": 1, "w": 1, "s": 1, "ev": 1}))
        for d in docs:
            seen[d["_id"]] = d
        frontier = docs
    states = _states_by_sample(dataset, list_path, {str(k): d["s"] for k, d in seen.items()})
    accepted = [k for k in seen if _evidence_sign(states.get(str(k))) > 0]
    wrong = [k for k in seen if _evidence_sign(states.get(str(k))) < 0]
    out.update(num_accepted=len(accepted), num_rejected=len(wrong))
    if wrong:
        out["reason"] = f"{len(wrong)} label(s) of this cluster were rejected or corrected"
        return out
    if len(accepted) < min_accepts:
        out["reason"] = f"{len(accepted)} of its labels accepted so far; {min_accepts} needed"
        return out
    in_view = _ids_in_view(sample_collection, label_field, [str(k) for k in seen])
    open_ = [k for k in seen if states.get(str(k), {}).get("review") not in HUMAN_DECISIONS
             and states.get(str(k), {}).get("queue") == "yellow" and str(k) in in_view]
    # closest to accepted labels first: most positive evidence
    open_.sort(key=lambda k: -sum(v for v in (seen[k].get("ev") or {}).values() if v > 0))
    chosen = open_[:max_group]
    out.update(label_ids=[str(k) for k in chosen], sample_ids=[str(seen[k]["s"]) for k in chosen])
    if not chosen:
        out["reason"] = "no open yellow label left in this cluster"
    return out


def accept_similar(sample_collection, label_field: str, label_ids: Sequence[str], anchor_id: str | None = None,
                   user: str | None = None) -> dict:
    """Accepts a group found by :func:`find_similar_group` as one logged,
    undoable bulk action (``review_bulk`` True: nobody looked at each).

    Args:
        sample_collection: the dataset or a view
        label_field: the labels' field
        label_ids: the group, exactly as shown to the person
        anchor_id: the label the group was found from (logged)
        user: the reviewer

    Returns:
        the summary of :func:`.decisions.review_labels`

    Raises:
        ValueError: for an empty group or unknown labels
    """
    if not label_ids:
        raise ValueError("No similar labels to accept: the group is empty")
    source = dict(kind="similar", anchor=str(anchor_id) if anchor_id else None)
    return decisions.review_labels(sample_collection, label_field, "accept", label_ids=list(label_ids), user=user,
                                   source=source, bulk=True)


def _ids_in_view(sample_collection, label_field: str, label_ids: list[str]) -> set[str]:
    if sample_collection is fo_private.root_dataset(sample_collection):
        return set(label_ids)
    shown = sample_collection.select_labels(ids=label_ids, fields=label_field)
    return set(shown.distinct(f"{label_field}.detections.id"))
