"""The review graph: each yellow label's nearest labels of the same class
and score region, kept in MongoDB so that an answer can re-rank its
neighbours in milliseconds.

Built by the triage when it assigns queues (:func:`build_label_graph`),
read by the review core after every answer (:mod:`..review.propagation`).
One document per yellow label in the collection
``stoplight_review.<samples collection>.graph`` of FiftyOne's database (the
audit log's prefix, so deleting the log or the dataset drops it too)::

    {_id: <label ObjectId>, f: <label field>, s: <sample ObjectId>,
     c: <class>, p0: <P(correct) at triage>, r0: <review_rank at triage>,
     n: [<neighbour label ObjectId>, ...], ns: [<their sample ObjectIds>],
     w: [<edge weights>], ev: {<answered label id>: signed weight},
     st: None | "up" | "down"}

plus one ``{_id: "ranks:<field>", lo, hi}`` document: the smallest and
largest ``review_rank`` handed out so far, so that a promoted label gets a
rank before every other and a demoted one after, without a scan.

Edges (a label ``i`` and one of its ``k`` nearest neighbours ``j``, same
class, ``|p0_i - p0_j| <= region``) carry the Gaussian weight of label
propagation (Zhou et al. 2004), ``w_ij = exp(-d_ij^2 / sigma_c^2)``, with
``d`` the Euclidean distance of the L2-normalised embeddings and
``sigma_c`` the class's median distance from a label to its farthest kept
neighbour: near-duplicates weigh about 1, a typical far neighbour about
0.37, whatever the embedding's own scale.
"""

from __future__ import annotations

import datetime
from typing import Sequence

import numpy as np

from . import fo_private

#: neighbours kept per label
DEFAULT_K = 10
#: largest P(correct) difference of an edge
DEFAULT_REGION = 0.25
#: rows per similarity block (memory: block x class size floats)
_BLOCK = 2048
_INSERT = 5000


def graph_collection(dataset):
    """The pymongo collection of ``dataset``'s review graph (indexed by
    label field)."""
    import fiftyone.core.odm.database as fod

    name = f"stoplight_review.{fo_private.sample_collection_name(fo_private.root_dataset(dataset))}.graph"
    coll = fod.get_db_conn()[name]
    coll.create_index([("f", 1)])
    return coll


def knn_edges(embeddings: np.ndarray, groups: np.ndarray, p0: np.ndarray, k: int = DEFAULT_K,
              region: float = DEFAULT_REGION) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest rows of the same group within ``region`` of
    its ``p0``, and the edge weights (see the module docstring). Pure.

    Args:
        embeddings: ``(N, D)`` label embeddings (normalised here)
        groups: ``(N,)`` group of each row (the class): edges stay inside
        p0: ``(N,)`` P(correct) of each row
        k: neighbours per row
        region: largest ``|p0_i - p0_j|`` of an edge

    Returns:
        ``(nbrs, weights)``: ``(N, k)`` int row indices (-1 where a row has
        fewer neighbours) and ``(N, k)`` float weights (0 there), nearest
        first
    """
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    nbrs = np.full((n, k), -1, dtype=np.int64)
    dist = np.full((n, k), np.inf, dtype=np.float32)
    if n == 0 or k < 1:
        return nbrs, np.zeros((n, max(k, 0)), dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    p0 = np.asarray(p0, dtype=np.float64)
    _, g = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    for gi in np.unique(g):
        rows = np.nonzero(g == gi)[0]
        xg, pg = x[rows], p0[rows]
        kk = min(k, len(rows) - 1)
        if kk < 1:
            continue
        for b0 in range(0, len(rows), _BLOCK):
            blk = slice(b0, min(b0 + _BLOCK, len(rows)))
            # squared distance of unit vectors: 2 - 2 cos
            d2 = np.maximum(2.0 - 2.0 * (xg[blk] @ xg.T), 0.0)
            d2[np.arange(blk.stop - blk.start), np.arange(blk.start, blk.stop)] = np.inf  # not itself
            far = np.abs(pg[blk, None] - pg[None, :]) > region
            d2[far] = np.inf
            part = np.argpartition(d2, kk - 1, axis=1)[:, :kk]
            pd = np.take_along_axis(d2, part, axis=1)
            order = np.argsort(pd, axis=1, kind="stable")
            part, pd = np.take_along_axis(part, order, axis=1), np.take_along_axis(pd, order, axis=1)
            ok = np.isfinite(pd)
            nbrs[rows[blk], :kk] = np.where(ok, rows[part], -1)
            dist[rows[blk], :kk] = np.where(ok, np.sqrt(pd), np.inf)
    # one scale per class: the median distance to the farthest kept
    # neighbour, so a near-duplicate weighs ~1 and a typical far one ~e^-1
    w = np.zeros((n, k), dtype=np.float32)
    farthest = np.max(np.where(np.isfinite(dist), dist, -1.0), axis=1)  # -1: no neighbour
    for gi in np.unique(g):
        rows = np.nonzero(g == gi)[0]
        found = farthest[rows][farthest[rows] >= 0]
        sigma = max(float(np.median(found)), 1e-9) if len(found) else 1.0
        with np.errstate(over="ignore", invalid="ignore"):
            w[rows] = np.where(nbrs[rows] >= 0, np.exp(-(dist[rows] ** 2) / sigma**2), 0.0)
    return nbrs, w


def build_label_graph(dataset, label_field: str, label_ids: Sequence, sample_ids: Sequence, labels: Sequence[str],
                      p0: np.ndarray, ranks: np.ndarray, embeddings: np.ndarray, replace_ids: Sequence = (),
                      k: int = DEFAULT_K, region: float = DEFAULT_REGION) -> dict:
    """Stores the review graph of the given (yellow) labels.

    Documents of ``replace_ids`` (every label the triage just assigned) are
    dropped first, so labels that left yellow leave the graph; the rank
    counters widen to cover ``ranks``.

    Args:
        dataset: the dataset
        label_field: the labels' field
        label_ids: ``(N,)`` label ids (str or ObjectId) of the graph's labels
        sample_ids: ``(N,)`` their sample ids
        labels: ``(N,)`` their classes
        p0: ``(N,)`` their P(correct)
        ranks: ``(N,)`` their ``review_rank``
        embeddings: ``(N, D)`` their embeddings
        replace_ids: label ids whose old documents are dropped
        k: neighbours per label
        region: largest P(correct) difference of an edge

    Returns:
        ``{"num_labels", "num_edges", "seconds"}``
    """
    from bson import ObjectId

    t0 = datetime.datetime.now()
    coll = graph_collection(dataset)
    drop = [ObjectId(str(i)) for i in replace_ids]
    for start in range(0, len(drop), 50_000):
        coll.delete_many({"_id": {"$in": drop[start : start + 50_000]}})
    nbrs, w = knn_edges(embeddings, np.asarray(labels, dtype=object), p0, k=k, region=region)
    lids = [ObjectId(str(i)) for i in label_ids]
    sids = [ObjectId(str(i)) for i in sample_ids]
    docs, edges = [], 0
    for i, lid in enumerate(lids):
        keep = nbrs[i] >= 0
        js = nbrs[i][keep]
        edges += len(js)
        docs.append(dict(
            _id=lid, f=label_field, s=sids[i], c=str(labels[i]), p0=float(p0[i]), r0=int(ranks[i]),
            n=[lids[j] for j in js], ns=[sids[j] for j in js], w=[round(float(v), 5) for v in w[i][keep]],
            ev={}, st=None,
        ))
    for start in range(0, len(docs), _INSERT):
        coll.insert_many(docs[start : start + _INSERT], ordered=False)
    if len(ranks):
        coll.update_one({"_id": f"ranks:{label_field}"},
                        {"$min": {"lo": int(np.min(ranks))}, "$max": {"hi": int(np.max(ranks))}}, upsert=True)
    return dict(num_labels=len(docs), num_edges=edges,
                seconds=round((datetime.datetime.now() - t0).total_seconds(), 3))


def take_ranks(dataset, label_field: str, count: int, before: bool) -> list[int]:
    """``count`` fresh ranks, all before (``before=True``) or after every
    rank handed out so far, in order; atomic across processes."""
    from pymongo import ReturnDocument

    if count <= 0:
        return []
    key = "lo" if before else "hi"
    doc = graph_collection(dataset).find_one_and_update(
        {"_id": f"ranks:{label_field}"}, {"$inc": {key: -count if before else count}},
        upsert=True, return_document=ReturnDocument.AFTER,
    )
    end = int(doc[key])
    return list(range(end, end + count)) if before else list(range(end - count + 1, end + 1))
