"""The stages of a scoring run (:func:`.scores.iter_score_labels`), one function each.

A run reads every label once into a :class:`LabelTable`, then each stage
adds its signals to one :class:`ScoreResults` (scores per label, counts,
notes and timings for the run record):

1. :func:`read_labels`: ids, classes, confidences, boxes, score vectors;
2. :func:`read_embeddings` and :func:`class_score_signals`: ``hardness``
   and ``margin``, from score vectors or else from CLIP;
3. :func:`reference_signals`: ``mistakenness``, ``mistakenness_loc`` and
   the per-sample possible missing/spurious counts;
4. :func:`embedding_signals`: ``knn_agreement``, ``rer``, ``clip_agreement``;
5. :func:`consensus_signal`: ``consensus`` against other models' fields;
6. :func:`uncertainty_signal`: the pool of every signal that exists;
7. :func:`write_scores` and :func:`per_class_stats`.

The parameters are checked before (:func:`.scores.iter_score_labels`).

FiftyOne I/O stays in the read and write stages (and the reference match);
the signals themselves are the pure functions of :mod:`.signals`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from typing import Any, Iterator, Sequence

import numpy as np

from ..common import bulk, fo_private, label_attrs, provenance
from . import signals
from .embeddings import load_label_embeddings
from .reference import (
    match_reference,
    mistakenness_from_matches,
    possible_missing_field,
    possible_spurious_field,
)
from .score_vectors import (
    availability_note,
    clip_scores,
    score_rows,
    scores_are_logits,
    signal_availability,
    softmax_rows,
)

logger = logging.getLogger(__name__)

#: the signals pooled into ``uncertainty`` (with the label's confidence)
UNCERTAINTY_INPUTS = ("hardness", "knn_agreement", "clip_agreement", "rer", "consensus")


@dataclasses.dataclass
class LabelTable:
    """Every label of the scored field, one row each (see :func:`read_labels`)."""

    #: every sample of the collection, in order (with labels or not)
    sample_ids: list[str]
    #: per row: the label's id, class (or None), confidence (NaN if none),
    #: relative ``[x, y, w, h]`` box, index into ``sample_ids`` and sample id
    label_ids: list[str]
    labels: list[str | None]
    confidence: np.ndarray
    boxes: list
    sample_index: np.ndarray
    owner_ids: list[str]
    #: the row of each label id
    row_of: dict[str, int]
    #: score vectors: an ``(n, C)`` array with NaN rows, or ragged rows
    class_scores: Any
    #: the classes present, sorted, and their ids
    class_names: list[str]
    class_id: dict[str, int]

    @property
    def n(self) -> int:
        """Number of labels."""
        return len(self.label_ids)


@dataclasses.dataclass
class LabelEmbeddings:
    """The stored label embeddings and the prompts of their run (see
    :func:`read_embeddings`)."""

    #: the table row of each embedding, and the ``(len(rows), D)`` vectors
    rows: np.ndarray
    vectors: np.ndarray
    #: the latest embedding run on the field, its prompts and their
    #: ``(P, D)`` text embeddings (None when unusable)
    run_key: str | None
    prompts: list[str]
    text: np.ndarray | None


@dataclasses.dataclass
class ScoreResults:
    """What the stages add up to: per-label scores, and the counts, extra
    facts, notes and timings of the run summary (in the order added)."""

    scores: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, key: str) -> Iterator[None]:
        """Stores the block's duration under ``timings[key]`` if it succeeds."""
        t0 = time.perf_counter()
        yield
        self.timings[key] = time.perf_counter() - t0


def read_labels(
    sample_collection, label_field: str, scores_attr: str, scores_kind: str, out: ScoreResults
) -> LabelTable:
    """Reads every label of ``label_field`` in one bulk ``values()`` call,
    and their score vectors ``scores_attr`` (softmaxed when they are
    logits, :func:`.score_vectors.scores_are_logits`)."""
    root = f"{label_field}.detections"
    # values() reads undeclared (dynamic) attributes too
    fields = ["id", f"{root}.id", f"{root}.label", f"{root}.confidence", f"{root}.bounding_box"]
    cols = list(sample_collection.values(fields))
    sample_ids = cols[0]
    lid, lab, conf, boxes, sidx, owner_sid = [], [], [], [], [], []
    for si, (sid, ids, labels, confs, bbs) in enumerate(zip(*cols)):
        ids = ids or []
        for j, label_id in enumerate(ids):
            lid.append(label_id)
            lab.append(labels[j] if labels else None)
            c = confs[j] if confs else None
            conf.append(np.nan if c is None else float(c))
            bb = bbs[j] if bbs else None
            boxes.append(bb if bb is not None and len(bb) == 4 else [0.0, 0.0, 0.0, 0.0])
            sidx.append(si)
            owner_sid.append(sid)
    del cols
    pos = {label_id: i for i, label_id in enumerate(lid)}
    cscores = _read_class_scores(sample_collection, root, pos, len(lid), scores_attr)
    if scores_are_logits(cscores, scores_attr, scores_kind):
        cscores = softmax_rows(cscores)
        out.notes.append(f"'{scores_attr}' read as logits: hardness and margin of their softmax")
    class_names = sorted({c for c in lab if c is not None})
    return LabelTable(
        sample_ids=sample_ids,
        label_ids=lid,
        labels=lab,
        confidence=np.asarray(conf, dtype=np.float64),
        boxes=boxes,
        sample_index=np.asarray(sidx, dtype=np.int64),
        owner_ids=owner_sid,
        row_of=pos,
        class_scores=cscores,
        class_names=class_names,
        class_id={c: i for i, c in enumerate(class_names)},
    )


def _read_class_scores(sample_collection, root: str, pos: dict, n: int, attr: str = "class_scores"):
    """Every label's score vector ``attr``: an ``(n, C)`` array with NaN rows
    for labels without one, or a list of rows when the lengths differ.

    Read from raw BSON (:func:`..common.bulk.read_label_vectors`: a third of
    the time of ``values()`` and no Python float per number); vectors of
    different lengths (runs with different class lists in one field) fall
    back to ``values()``.
    """
    try:
        _, lids, vecs = bulk.read_label_vectors(sample_collection, root, attr)
    except ValueError:
        rows: list = [None] * n
        for ids, css in zip(*sample_collection.values([f"{root}.id", f"{root}.{attr}"])):
            for label_id, cs in zip(ids or [], css or []):
                if label_id in pos:
                    rows[pos[label_id]] = cs
        return rows
    out = np.full((n, vecs.shape[1] if len(lids) else 0), np.nan)
    rows_of = np.asarray([pos.get(i, -1) for i in lids], dtype=np.int64)
    ok = rows_of >= 0
    out[rows_of[ok]] = vecs[ok]
    return out


def latest_embeddings_run(dataset, label_field: str, embeddings_attr: str):
    """``(run_key, results)`` of the latest completed ``compute_label_embeddings``
    run on ``label_field``/``embeddings_attr``, or ``(None, None)``."""
    runs = [key for key, cfg in provenance.stoplight_runs(
        dataset, "compute_label_embeddings", label_field=label_field, status="completed")
        if getattr(cfg, "embeddings_attr", "embedding") == embeddings_attr]
    if not runs:
        return None, None
    key = runs[-1]
    try:
        return key, provenance.load_run_results(dataset, key)
    except Exception as e:  # unreadable results: treat as no text embeddings
        logger.warning("Could not load results of run %s: %s", key, e)
        return key, None


def _text_embeddings(results) -> tuple[list[str], np.ndarray | None]:
    if results is None:
        return [], None
    prompts = list(getattr(results, "prompts", None) or [])
    txt = getattr(results, "text_embeddings", None)
    if not prompts or txt is None:
        return [], None
    arr = np.asarray(txt, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != len(prompts):
        return [], None
    return prompts, arr


def read_embeddings(
    sample_collection, table: LabelTable, label_field: str, embeddings_attr: str, out: ScoreResults
) -> LabelEmbeddings:
    """The stored embeddings of the table's labels that have a class, and
    the prompt text embeddings of the latest embedding run on the field
    (dropped, with a note, when their dimension differs)."""
    import fiftyone as fo

    dataset = fo_private.view_dataset(sample_collection)
    emb_path = f"{label_field}.detections.{embeddings_attr}"
    if not sample_collection.has_field(emb_path) and sample_collection.count(emb_path):
        # embeddings set by hand as dynamic attributes: declare them so
        # that load_label_embeddings (and the App) sees them
        bulk.declare_field(dataset, label_field, fo.Detections, {embeddings_attr: fo.FloatField})
    emb_ids, _, emb = load_label_embeddings(sample_collection, label_field, embeddings_attr)
    emb_rows = np.asarray([table.row_of.get(i, -1) for i in emb_ids], dtype=np.int64)
    keep = emb_rows >= 0
    keep &= np.asarray([table.labels[r] is not None if r >= 0 else False for r in emb_rows], dtype=bool)
    emb_rows = emb_rows[keep]
    if len(emb_ids) and not keep.all():
        emb = emb[keep]  # a copy: 2 GB at 1M x 512, so only when needed
    emb_key, emb_results = latest_embeddings_run(dataset, label_field, embeddings_attr)
    prompts, txt = _text_embeddings(emb_results)
    if txt is not None and emb_rows.size and txt.shape[1] != emb.shape[1]:
        out.notes.append(
            f"text embeddings of run {emb_key} have dimension {txt.shape[1]}, "
            f"label embeddings {emb.shape[1]}: CLIP signals skipped"
        )
        txt = None
    return LabelEmbeddings(emb_rows, emb, emb_key, prompts, txt)


def class_score_signals(
    table: LabelTable,
    embs: LabelEmbeddings,
    out: ScoreResults,
    label_field: str,
    scores_attr: str,
    *,
    has_consensus: bool,
    has_reference: bool,
    rer: bool,
) -> None:
    """``hardness`` and ``margin`` of each label's score vector, or, for
    labels without one, of its CLIP scores against the prompts; notes what
    the field allows (:func:`.score_vectors.signal_availability`)."""
    hard, from_scores = score_rows(table.class_scores, signals.hardness)
    marg, _ = score_rows(table.class_scores, signals.margin)
    out.counts["num_hardness_from_class_scores"] = int(from_scores.sum())
    out.counts["num_embedded_labels"] = int(embs.rows.size)
    out.extra["embeddings_run_key"] = embs.run_key

    num_clip_hardness = 0
    if embs.text is not None and len(embs.prompts) >= 2 and embs.rows.size:
        missing = ~from_scores[embs.rows]
        if missing.any():
            rows = embs.rows[missing]
            p = clip_scores(embs.vectors[missing], embs.text)
            hard[rows] = signals.hardness(p)
            marg[rows] = signals.margin(p)
            num_clip_hardness = int(rows.size)
    out.counts["num_hardness_from_clip"] = num_clip_hardness

    has = dict(
        has_confidence=bool(np.isfinite(table.confidence).any()),
        has_scores=bool(from_scores.any()),
        has_embeddings=bool(embs.rows.size),
        has_prompts=embs.text is not None and len(embs.prompts) >= 2,
        has_consensus=has_consensus,
        has_reference=has_reference,
    )
    out.extra["signals_available"], out.extra["signals_unavailable"] = signal_availability(
        **has, rer=rer
    )
    note = availability_note(label_field, scores_attr, **has, rer=rer)
    if note:
        out.notes.append(note)
        logger.warning("score_labels: %s", note)
    out.scores["hardness"], out.scores["margin"] = hard, marg
    if not np.isfinite(hard).any():
        out.notes.append(f"no label has '{scores_attr}' (or CLIP prompts): hardness/margin not set")


def reference_signals(
    sample_collection,
    table: LabelTable,
    out: ScoreResults,
    label_field: str,
    reference_field: str,
    iou: float,
    spurious_confidence: float,
) -> tuple[list[int], list[int]]:
    """``mistakenness`` and ``mistakenness_loc`` against ``reference_field``.

    Returns:
        ``(missing, spurious)`` per sample of ``table.sample_ids``: its
        reference labels that no auto-label matched, and its unmatched
        auto-labels with ``confidence >= spurious_confidence``
    """
    pred_match, pred_iou, ref_ids, ref_matched = match_reference(
        sample_collection, label_field, reference_field, iou
    )
    ref_label = {}
    rl = sample_collection.values(f"{reference_field}.detections.label")
    for ids, labels in zip(ref_ids, rl):
        for i, l in zip(ids, labels or []):
            ref_label[i] = l
    matched_labels, ious = [], []
    for ms, vs in zip(pred_match, pred_iou):
        for j, m in enumerate(ms):
            matched_labels.append(ref_label.get(m, "\0unknown") if m else None)
            v = vs[j] if j < len(vs) else None
            ious.append(np.nan if v is None else float(v))
    mist, loc = mistakenness_from_matches(table.labels, matched_labels, np.asarray(ious))
    out.scores["mistakenness"], out.scores["mistakenness_loc"] = mist, loc
    unmatched = np.asarray([m is None for m in matched_labels], dtype=bool)
    spurious = unmatched & (np.nan_to_num(table.confidence, nan=-1.0) >= spurious_confidence)
    spurious_counts = np.bincount(
        table.sample_index[spurious], minlength=len(table.sample_ids)
    ).tolist()
    missing_counts = [sum(1 for m in ms if not m) for ms in ref_matched]
    out.counts.update(
        num_matched_same_class=int((~unmatched & (mist == 0)).sum()),
        num_matched_other_class=int((~unmatched & (mist == 1)).sum()),
        num_unmatched=int(unmatched.sum()),
        num_possible_missing=int(sum(missing_counts)),
        num_possible_spurious=int(sum(spurious_counts)),
    )
    return missing_counts, spurious_counts


def embedding_signals(
    table: LabelTable,
    embs: LabelEmbeddings,
    out: ScoreResults,
    embeddings_attr: str,
    k: int,
    rer: bool,
    device: str | None,
) -> None:
    """``knn_agreement``, ``rer`` (with ``rer``) and ``clip_agreement`` of
    the labels with an embedding; a note for each signal skipped."""
    if not embs.rows.size:
        out.notes.append(
            f"no label has '{embeddings_attr}': knn_agreement, rer and clip_agreement skipped"
        )
        return
    y = np.asarray([table.class_id[table.labels[r]] for r in embs.rows], dtype=np.int64)
    knn = np.full(table.n, np.nan)
    knn[embs.rows] = signals.knn_agreement(embs.vectors, y, k=k, device=device)
    out.scores["knn_agreement"] = knn
    if rer:
        # the autoencoders train on the labels their neighbours agree
        # with (robust pools, :mod:`.rer`), from the kNN just computed
        _rer_signal(table, embs, y, knn[embs.rows] >= 0.5, out, device)
    if embs.text is not None:
        _clip_agreement_signal(table, embs, y, out)
    elif embs.run_key is None:
        out.notes.append("no compute_label_embeddings run on this field: clip_agreement skipped")
    else:
        out.notes.append(f"run {embs.run_key} has no prompt text embeddings: clip_agreement skipped")


def _rer_signal(
    table: LabelTable, embs: LabelEmbeddings, y, train_mask, out: ScoreResults, device
) -> None:
    """``rer`` of the embedded labels, with the dataset difficulty and the
    per-class mean RER for the run summary."""
    class_names = table.class_names
    r_vals, _, info = signals.class_autoencoder_rer(
        embs.vectors, y, num_classes=len(class_names), device=device, train_mask=train_mask,
    )
    r_all = np.full(table.n, np.nan)
    r_all[embs.rows] = r_vals
    out.scores["rer"] = r_all
    out.extra["difficulty"] = _nan_to_none(info["difficulty"])
    out.extra["per_class_rer"] = {
        c: _nan_to_none(v) for c, v in zip(class_names, info["per_class_rer"])
    }
    untrained = [c for c, t in zip(class_names, info["trained"]) if not t]
    if untrained:
        out.notes.append(f"classes with fewer than 5 embedded labels get no RER: {untrained}")


def _clip_agreement_signal(table: LabelTable, embs: LabelEmbeddings, y, out: ScoreResults) -> None:
    """``clip_agreement`` of the embedded labels, when the run's prompts
    are the class names of every embedded class (at least two)."""
    class_names = table.class_names
    prompt_idx = {p: i for i, p in enumerate(embs.prompts)}
    present = sorted(set(y.tolist()))
    if all(class_names[c] in prompt_idx for c in present) and len(embs.prompts) >= 2:
        y_prompt = np.asarray([prompt_idx[class_names[c]] for c in y], dtype=np.int64)
        ca = np.full(table.n, np.nan)
        ca[embs.rows] = signals.clip_agreement(embs.vectors, embs.text, y_prompt)
        out.scores["clip_agreement"] = ca
    else:
        out.notes.append(
            f"prompts of run {embs.run_key} are not the class names: clip_agreement skipped"
        )


def consensus_signal(
    sample_collection,
    table: LabelTable,
    out: ScoreResults,
    consensus_fields: Sequence[str],
    consensus_iou: float,
) -> None:
    """``consensus`` of every label with a class against the labels of
    ``consensus_fields`` (other models' predictions); nothing without them."""
    if not consensus_fields or not table.n:
        return
    sample_pos = {sid: i for i, sid in enumerate(table.sample_ids)}
    # one id space for the classes of every field (classes only another
    # model found get new ids)
    all_classes = dict(table.class_id)
    other = [_other_labels(sample_collection, f, sample_pos, all_classes) for f in consensus_fields]
    has_label = np.asarray([l is not None for l in table.labels], dtype=bool)
    cons = np.full(table.n, np.nan)
    if has_label.any():
        y_all = np.asarray([table.class_id[l] for l in table.labels if l is not None], dtype=np.int64)
        cons[has_label] = signals.consensus(
            np.asarray(table.boxes, dtype=np.float64)[has_label], y_all,
            table.sample_index[has_label], other, iou=consensus_iou,
        )
    out.scores["consensus"] = cons


def _other_labels(sample_collection, field: str, sample_pos: dict, all_classes: dict) -> tuple:
    """``(boxes, class ids, confidences, sample indices)`` of the labels of
    ``field`` that have a class and a box, as :func:`.signals.consensus`
    takes another model's predictions."""
    o_sid, o_lab, o_box, o_conf = sample_collection.values(
        ["id", f"{field}.detections.label", f"{field}.detections.bounding_box",
         f"{field}.detections.confidence"]
    )
    ob, ol, oc, os_ = [], [], [], []
    for sid, ls, bs, cs in zip(o_sid, o_lab, o_box, o_conf):
        for j, l in enumerate(ls or []):
            bb = bs[j] if bs else None
            if l is None or bb is None or len(bb) != 4:
                continue
            ol.append(all_classes.setdefault(l, len(all_classes)))
            ob.append(bb)
            c = cs[j] if cs else None
            oc.append(np.nan if c is None else float(c))
            os_.append(sample_pos[sid])
    return (np.asarray(ob, dtype=np.float64).reshape(-1, 4), np.asarray(ol, dtype=np.int64),
            np.asarray(oc, dtype=np.float64), np.asarray(os_, dtype=np.int64))


def uncertainty_signal(table: LabelTable, out: ScoreResults) -> None:
    """``uncertainty``: :func:`.signals.uncertainty` of the label's
    confidence and every signal of :data:`UNCERTAINTY_INPUTS` computed."""
    if table.n:
        inputs = {name: out.scores[name] for name in UNCERTAINTY_INPUTS if name in out.scores}
        out.scores["uncertainty"] = signals.uncertainty(confidence=table.confidence, **inputs)


def write_scores(
    sample_collection,
    table: LabelTable,
    out: ScoreResults,
    label_field: str,
    sample_counts: tuple[list[int], list[int]] | None,
) -> list[str]:
    """Writes the scores in one bulk update per sample, and with a
    reference the per-sample ``(missing, spurious)`` counts.

    Only the attributes of :data:`..common.label_attrs.SCORE_ATTRS` are
    written (never a review attribute); labels keep every other attribute.

    Returns:
        the score attributes written
    """
    import fiftyone as fo

    dataset = fo_private.view_dataset(sample_collection)
    written = [a for a in label_attrs.SCORE_ATTRS if a in out.scores]
    label_attrs.declare_label_attrs(dataset, f"{label_field}.detections", written)
    bulk.write_label_attrs(
        sample_collection,
        f"{label_field}.detections",
        table.owner_ids,
        table.label_ids,
        {attr: [_nan_to_none(v) for v in out.scores[attr]] for attr in written},
        owned=label_attrs.SCORE_ATTRS,
    )
    if sample_counts is not None:
        missing_counts, spurious_counts = sample_counts
        for name, vals in (
            (possible_missing_field(label_field), missing_counts),
            (possible_spurious_field(label_field), spurious_counts),
        ):
            if not dataset.has_field(name):
                dataset.add_sample_field(name, fo.IntField)
            sample_collection.set_values(name, [int(v) for v in vals], validate=False)
    return written


def per_class_stats(table: LabelTable, out: ScoreResults) -> dict:
    """``{class: {"count": n, "mean_confidence": ..., "mean_<signal>": mean
    or None, ...}}`` over the labels of each class."""
    lab_a = np.asarray([l if l is not None else "" for l in table.labels], dtype=object)
    stats_of = {}
    for c in table.class_names:
        m = lab_a == c
        stats: dict[str, Any] = {"count": int(m.sum()), "mean_confidence": _mean(table.confidence[m])}
        for name, vals in out.scores.items():
            stats[f"mean_{name}"] = _mean(vals[m])
        stats_of[c] = stats
    return stats_of


def _nan_to_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _mean(a: np.ndarray) -> float | None:
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None
