"""Scores every auto-label with the quality signals of :mod:`.signals`.

FiftyOne I/O stays at the edges: all label attributes are read with one bulk
``values()`` call per field, the pure functions of :mod:`.signals` compute
the scores on numpy arrays, and all scores are written back with one bulk
update per sample (:func:`..common.bulk.write_label_attrs`). Re-running
updates the scores only: no other attribute of a label is written, in
particular never the human review attributes
(:data:`..common.label_attrs.PROTECTED_ATTRS`).

Per-label attributes written on ``{label_field}.detections`` (a public
contract; ``None`` means "this signal says nothing about this label"):

=================== ==========================================================
attribute           meaning
=================== ==========================================================
``hardness``        :func:`.signals.hardness` of the label's ``class_scores``;
                    for labels without ``class_scores``, of
                    ``softmax(100 * cos(label embedding, prompt text
                    embeddings))`` when the latest ``compute_label_embeddings``
                    run on the field stored prompt text embeddings; else None
``margin``          :func:`.signals.margin`, same inputs as ``hardness``
``mistakenness``    with ``reference_field``: 0 if the label is matched to a
                    reference label of the same class; 1 if it is matched to a
                    reference label of another class; 1 if it is unmatched
                    (against a human reference, an unmatched auto-label is a
                    false positive). None without ``reference_field``
``mistakenness_loc`` with ``reference_field``: ``1 - IoU`` with the matched
                    reference label; None when unmatched
``knn_agreement``   :func:`.signals.knn_agreement` of the stored label
                    embeddings (``embeddings_attr``)
``rer``             :func:`.signals.class_autoencoder_rer` of the same
                    embeddings (``rer=True``)
``clip_agreement``  :func:`.signals.clip_agreement` of the label embedding and
                    the class prompts' text embeddings, when the latest
                    ``compute_label_embeddings`` run on the field has a prompt
                    equal to the class name of every scored class
``consensus``       :func:`.signals.consensus` against ``consensus_fields``
``uncertainty``     :func:`.signals.uncertainty` (a weighted pool of log-odds,
                    :mod:`.combination`) of all signals above that exist
                    (hardness, knn_agreement, clip_agreement, rer,
                    consensus) plus the label's ``confidence``
=================== ==========================================================

Matching against ``reference_field`` uses FiftyOne's own
``evaluate_detections(classwise=False, iou=iou)`` (so a box matched to a
reference box of another class is found) under a temporary evaluation key
that is deleted afterwards, whether scoring succeeds or not.

Per-sample fields written with ``reference_field`` (integers):

- ``{label_field}_possible_missing``: reference labels of the sample that no
  auto-label matched;
- ``{label_field}_possible_spurious``: unmatched auto-labels of the sample
  with ``confidence >= spurious_confidence``.

Every run is recorded (method ``score_labels``) with its parameters,
counts, per-class means of every signal, and, with RER, the dataset
difficulty (mean RER) and per-class mean RER.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..common.fields import check_detections_field
from ..common.limits import check_int
from ..common.progress import Progress
from ..common.progress import run as run_progress
from ..common import bulk, label_attrs, provenance, temp_evals
from . import signals
from .score_vectors import (
    SCORES_KINDS, availability_note, scores_are_logits, signal_availability, softmax_rows,
)
from .embeddings import load_label_embeddings

logger = logging.getLogger(__name__)

#: float label attributes this module may write (the one list is in
#: :mod:`..common.label_attrs`, with every attribute no writer may take)
SCORE_ATTRS = label_attrs.SCORE_ATTRS

#: logit scale of the CLIP fallback for hardness/margin (CLIP's own)
CLIP_LOGIT_SCALE = 100.0


def possible_missing_field(label_field: str) -> str:
    """Name of the per-sample count of unmatched reference labels."""
    return f"{label_field}_possible_missing"


def possible_spurious_field(label_field: str) -> str:
    """Name of the per-sample count of confident unmatched auto-labels."""
    return f"{label_field}_possible_spurious"


# ---------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------


def mistakenness_from_matches(
    labels: Sequence[str], matched_labels: Sequence[str | None], ious: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mistakenness and localization mistakenness from match results.

    Args:
        labels: class of each auto-label
        matched_labels: class of the reference label each auto-label is
            matched to, ``None`` when unmatched
        ious: IoU of each match (ignored where unmatched)

    Returns:
        ``(mistakenness, mistakenness_loc)``: ``0`` for a same-class match,
        ``1`` for a cross-class match or no match; ``1 - IoU`` for matches,
        NaN when unmatched
    """
    n = len(labels)
    mist = np.ones(n, dtype=np.float64)
    loc = np.full(n, np.nan)
    for i, (lab, ref) in enumerate(zip(labels, matched_labels)):
        if ref is None:
            continue
        mist[i] = 0.0 if ref == lab else 1.0
        iou = ious[i]
        loc[i] = 1.0 - float(iou) if iou is not None and np.isfinite(iou) else np.nan
    return mist, np.clip(loc, 0.0, 1.0)


def clip_scores(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """``softmax(100 * cos(image, text))`` over the prompts, one row per label."""
    img = np.asarray(image_embeddings, dtype=np.float64)
    txt = np.asarray(text_embeddings, dtype=np.float64)
    img = img / np.maximum(np.linalg.norm(img, axis=1, keepdims=True), 1e-12)
    txt = txt / np.maximum(np.linalg.norm(txt, axis=1, keepdims=True), 1e-12)
    logits = CLIP_LOGIT_SCALE * (img @ txt.T)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _score_rows(rows, fn) -> tuple[np.ndarray, np.ndarray]:
    """``fn`` applied to score rows: an ``(N, C)`` array (NaN rows are
    missing) or a ragged list, grouped by length (vectorized)."""
    if isinstance(rows, np.ndarray):
        out = np.full(rows.shape[0], np.nan)
        ok = np.zeros(rows.shape[0], dtype=bool)
        if rows.shape[0] and rows.shape[1]:
            ok = ~np.isnan(rows).any(axis=1)
            if ok.any():
                out[ok] = fn(rows[ok])
        return out, ok
    out = np.full(len(rows), np.nan)
    ok = np.zeros(len(rows), dtype=bool)
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        if r is not None and len(r) > 0:
            by_len.setdefault(len(r), []).append(i)
    for idx in by_len.values():
        arr = np.asarray([rows[i] for i in idx], dtype=np.float64)
        out[idx] = fn(arr)
        ok[idx] = True
    return out, ok


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


def _nan_to_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _mean(a: np.ndarray) -> float | None:
    a = np.asarray(a, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


# ---------------------------------------------------------------------------
# FiftyOne edges
# ---------------------------------------------------------------------------


def latest_embeddings_run(dataset, label_field: str, embeddings_attr: str):
    """``(run_key, results)`` of the latest completed ``compute_label_embeddings``
    run on ``label_field``/``embeddings_attr``, or ``(None, None)``."""
    best = None
    for key in dataset.list_runs():
        try:
            cfg = dataset.get_run_info(key).config
        except Exception:  # a run of another tool with an unknown config
            continue
        if getattr(cfg, "stoplight_method", None) != "compute_label_embeddings":
            continue
        if getattr(cfg, "label_field", None) != label_field:
            continue
        if getattr(cfg, "embeddings_attr", "embedding") != embeddings_attr:
            continue
        if getattr(cfg, "status", None) != "completed":
            continue
        stamp = (getattr(cfg, "started_at", "") or "", key)
        if best is None or stamp > best[0]:
            best = (stamp, key)
    if best is None:
        return None, None
    key = best[1]
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


def _declare_float_attrs(dataset, label_field: str, attrs) -> None:
    import fiftyone as fo

    for attr in attrs:
        path = f"{label_field}.detections.{attr}"
        if not dataset.has_field(path):
            dataset.add_sample_field(path, fo.FloatField)


def _match_reference(sample_collection, label_field, reference_field, iou):
    """Matches in bulk with a temporary ``evaluate_detections``; deletes it.

    Returns:
        ``(pred_match, pred_iou, ref_ids, ref_matched)``: per sample, lists
        aligned with its auto-labels (matched reference id or None, IoU or
        None) and with its reference labels (id, whether matched)
    """
    dataset = sample_collection._dataset
    temp_evals.delete_orphans(dataset)  # left by a killed run
    eval_key = temp_evals.new_key()
    pred = f"{label_field}.detections"
    gt = f"{reference_field}.detections"
    try:
        sample_collection.evaluate_detections(
            label_field,
            gt_field=reference_field,
            eval_key=eval_key,
            iou=iou,
            classwise=False,
            progress=False,
        )
        pred_match, pred_iou, ref_ids, ref_match = sample_collection.values(
            [f"{pred}.{eval_key}_id", f"{pred}.{eval_key}_iou", f"{gt}.id", f"{gt}.{eval_key}_id"]
        )
    finally:
        if eval_key in dataset.list_evaluations():
            dataset.delete_evaluation(eval_key)
    clean = lambda v: v if v else None  # noqa: E731  ("" means unmatched)
    pred_match = [[clean(m) for m in (ms or [])] for ms in pred_match]
    pred_iou = [list(v or []) for v in pred_iou]
    ref_matched = [[bool(m) for m in (ms or [])] for ms in ref_match]
    ref_ids = [list(v or []) for v in ref_ids]
    return pred_match, pred_iou, ref_ids, ref_matched


def iter_score_labels(
    sample_collection,
    label_field: str = "autolabels",
    reference_field: str | None = None,
    iou: float = 0.5,
    spurious_confidence: float = 0.95,
    scores_attr: str = "class_scores",
    scores_kind: str = "auto",
    embeddings_attr: str = "embedding",
    consensus_fields: Sequence[str] | str | None = None,
    consensus_iou: float = 0.5,
    k: int = 10,
    rer: bool = True,
    run_key: str | None = None,
    device: str | None = None,
) -> Iterator[Progress]:
    """Generator form of :func:`score_labels`.

    Yields :class:`Progress` events (in stages) and returns the run summary
    (the ``StopIteration`` value). Arguments are those of
    :func:`score_labels`.
    """
    import fiftyone as fo

    # ------------------------------------------------------------ validation
    if isinstance(consensus_fields, str):
        consensus_fields = [f for f in consensus_fields.replace(",", " ").split() if f]
    consensus_fields = list(consensus_fields or [])
    for name, value in (("iou", iou), ("consensus_iou", consensus_iou)):
        if not (isinstance(value, (int, float)) and 0.0 < value <= 1.0):
            raise ValueError(f"Parameter '{name}' must be in (0, 1]; got {value!r}")
    if not (isinstance(spurious_confidence, (int, float)) and 0.0 <= spurious_confidence <= 1.0):
        raise ValueError(
            f"Parameter 'spurious_confidence' must be in [0, 1]; got {spurious_confidence!r}"
        )
    check_int(k, "k", 1, "neighbors")
    label_attrs.check_free_attr(embeddings_attr, "embeddings_attr")
    if not isinstance(scores_attr, str) or not scores_attr.isidentifier() or scores_attr.startswith("_"):
        raise ValueError(f"Parameter 'scores_attr' must be a label attribute name; got {scores_attr!r}")
    if scores_kind not in SCORES_KINDS:
        raise ValueError(f"Parameter 'scores_kind' must be one of {SCORES_KINDS}; got {scores_kind!r}")
    check_detections_field(sample_collection, label_field, "label_field")
    if reference_field:
        if reference_field == label_field:
            raise ValueError("Parameter 'reference_field' must differ from 'label_field'")
        check_detections_field(sample_collection, reference_field, "reference_field")
    for f in consensus_fields:
        if f == label_field:
            raise ValueError("Parameter 'consensus_fields' must not contain 'label_field'")
        check_detections_field(sample_collection, f, "consensus_fields")

    dataset = sample_collection._dataset
    root = f"{label_field}.detections"
    params = dict(
        label_field=label_field,
        reference_field=reference_field or None,
        iou=float(iou),
        spurious_confidence=float(spurious_confidence),
        scores_attr=scores_attr,
        scores_kind=scores_kind,
        embeddings_attr=embeddings_attr,
        consensus_fields=consensus_fields,
        consensus_iou=float(consensus_iou),
        k=int(k),
        rer=bool(rer),
        device=device,
    )
    stages = 6
    notes: list[str] = []
    timings: dict[str, float] = {}

    # ------------------------------------------------------------ bulk read
    yield Progress(0, stages, "Reading labels")
    t0 = time.perf_counter()
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
    n = len(lid)
    conf_a = np.asarray(conf, dtype=np.float64)
    sidx_a = np.asarray(sidx, dtype=np.int64)
    pos = {label_id: i for i, label_id in enumerate(lid)}
    cscores = _read_class_scores(sample_collection, root, pos, n, scores_attr)
    if scores_are_logits(cscores, scores_attr, scores_kind):
        cscores = softmax_rows(cscores)
        notes.append(f"'{scores_attr}' read as logits: hardness and margin of their softmax")
    class_names = sorted({c for c in lab if c is not None})
    class_id = {c: i for i, c in enumerate(class_names)}
    timings["read_s"] = time.perf_counter() - t0

    run_key = run_key or provenance.new_run_key(f"{label_field}_scores")
    record = provenance.start_run(
        dataset, run_key, method="score_labels", num_labels=n, num_samples=len(sample_ids), **params
    )
    scores: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    extra: dict[str, Any] = {}

    def make_summary(status: str) -> dict:
        return dict(
            run_key=run_key,
            status=status,
            label_field=label_field,
            reference_field=reference_field or None,
            num_labels=n,
            num_samples=len(sample_ids),
            **counts,
            **extra,
            notes=notes,
            timings={k_: round(v, 4) for k_, v in timings.items()},
        )

    with provenance.recorded_run(dataset, run_key, record, make_summary) as run:
        # ------------------------------------------------- hardness / margin
        yield Progress(1, stages, "Class-score signals")
        t0 = time.perf_counter()
        hard, from_scores = _score_rows(cscores, signals.hardness)
        marg, _ = _score_rows(cscores, signals.margin)
        counts["num_hardness_from_class_scores"] = int(from_scores.sum())

        # ---------------------------------------------- embeddings, CLIP
        emb_path = f"{root}.{embeddings_attr}"
        if not sample_collection.has_field(emb_path) and sample_collection.count(emb_path):
            # embeddings set by hand as dynamic attributes: declare them so
            # that load_label_embeddings (and the App) sees them
            bulk.declare_field(dataset, label_field, fo.Detections, {embeddings_attr: fo.FloatField})
        emb_ids, _, emb = load_label_embeddings(sample_collection, label_field, embeddings_attr)
        emb_rows = np.asarray([pos.get(i, -1) for i in emb_ids], dtype=np.int64)
        keep = emb_rows >= 0
        keep &= np.asarray([lab[r] is not None if r >= 0 else False for r in emb_rows], dtype=bool)
        emb_rows = emb_rows[keep]
        if len(emb_ids) and not keep.all():
            emb = emb[keep]  # a copy: 2 GB at 1M x 512, so only when needed
        counts["num_embedded_labels"] = int(emb_rows.size)
        emb_key, emb_results = latest_embeddings_run(dataset, label_field, embeddings_attr)
        prompts, txt = _text_embeddings(emb_results)
        extra["embeddings_run_key"] = emb_key
        if txt is not None and emb_rows.size and txt.shape[1] != emb.shape[1]:
            notes.append(
                f"text embeddings of run {emb_key} have dimension {txt.shape[1]}, "
                f"label embeddings {emb.shape[1]}: CLIP signals skipped"
            )
            txt = None

        num_clip_hardness = 0
        if txt is not None and len(prompts) >= 2 and emb_rows.size:
            missing = ~from_scores[emb_rows]
            if missing.any():
                rows = emb_rows[missing]
                p = clip_scores(emb[missing], txt)
                hard[rows] = signals.hardness(p)
                marg[rows] = signals.margin(p)
                num_clip_hardness = int(rows.size)
        counts["num_hardness_from_clip"] = num_clip_hardness
        has = dict(
            has_confidence=bool(np.isfinite(conf_a).any()),
            has_scores=bool(from_scores.any()),
            has_embeddings=bool(emb_rows.size),
            has_prompts=txt is not None and len(prompts) >= 2,
            has_consensus=bool(consensus_fields),
            has_reference=bool(reference_field),
        )
        extra["signals_available"], extra["signals_unavailable"] = signal_availability(**has, rer=rer)
        note = availability_note(label_field, scores_attr, **has, rer=rer)
        if note:
            notes.append(note)
            logger.warning("score_labels: %s", note)
        scores["hardness"], scores["margin"] = hard, marg
        if not np.isfinite(hard).any():
            notes.append(f"no label has '{scores_attr}' (or CLIP prompts): hardness/margin not set")
        timings["class_scores_s"] = time.perf_counter() - t0

        # ------------------------------------------------------ reference
        yield Progress(2, stages, "Matching against the reference")
        t0 = time.perf_counter()
        missing_counts = spurious_counts = None
        if reference_field:
            pred_match, pred_iou, ref_ids, ref_matched = _match_reference(
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
            mist, loc = mistakenness_from_matches(lab, matched_labels, np.asarray(ious))
            scores["mistakenness"], scores["mistakenness_loc"] = mist, loc
            unmatched = np.asarray([m is None for m in matched_labels], dtype=bool)
            spurious = unmatched & (np.nan_to_num(conf_a, nan=-1.0) >= spurious_confidence)
            spurious_counts = np.bincount(sidx_a[spurious], minlength=len(sample_ids)).tolist()
            missing_counts = [sum(1 for m in ms if not m) for ms in ref_matched]
            counts.update(
                num_matched_same_class=int((~unmatched & (mist == 0)).sum()),
                num_matched_other_class=int((~unmatched & (mist == 1)).sum()),
                num_unmatched=int(unmatched.sum()),
                num_possible_missing=int(sum(missing_counts)),
                num_possible_spurious=int(sum(spurious_counts)),
            )
        timings["reference_s"] = time.perf_counter() - t0

        # ---------------------------------------------------- kNN and RER
        yield Progress(3, stages, "Embedding signals")
        t0 = time.perf_counter()
        if emb_rows.size:
            y = np.asarray([class_id[lab[r]] for r in emb_rows], dtype=np.int64)
            knn = np.full(n, np.nan)
            knn[emb_rows] = signals.knn_agreement(emb, y, k=k, device=device)
            scores["knn_agreement"] = knn
            if rer:
                # the autoencoders train on the labels their neighbours agree
                # with (robust pools, :mod:`.rer`), from the kNN just computed
                r_vals, _, info = signals.class_autoencoder_rer(
                    emb, y, num_classes=len(class_names), device=device,
                    train_mask=knn[emb_rows] >= 0.5,
                )
                r_all = np.full(n, np.nan)
                r_all[emb_rows] = r_vals
                scores["rer"] = r_all
                extra["difficulty"] = _nan_to_none(info["difficulty"])
                extra["per_class_rer"] = {
                    c: _nan_to_none(v) for c, v in zip(class_names, info["per_class_rer"])
                }
                untrained = [c for c, t in zip(class_names, info["trained"]) if not t]
                if untrained:
                    notes.append(
                        f"classes with fewer than 5 embedded labels get no RER: {untrained}"
                    )
            if txt is not None:
                prompt_idx = {p: i for i, p in enumerate(prompts)}
                present = sorted(set(y.tolist()))
                if all(class_names[c] in prompt_idx for c in present) and len(prompts) >= 2:
                    y_prompt = np.asarray([prompt_idx[class_names[c]] for c in y], dtype=np.int64)
                    ca = np.full(n, np.nan)
                    ca[emb_rows] = signals.clip_agreement(emb, txt, y_prompt)
                    scores["clip_agreement"] = ca
                else:
                    notes.append(
                        f"prompts of run {emb_key} are not the class names: clip_agreement skipped"
                    )
            elif emb_key is None:
                notes.append("no compute_label_embeddings run on this field: clip_agreement skipped")
            else:
                notes.append(f"run {emb_key} has no prompt text embeddings: clip_agreement skipped")
        else:
            notes.append(
                f"no label has '{embeddings_attr}': knn_agreement, rer and clip_agreement skipped"
            )
        timings["embedding_signals_s"] = time.perf_counter() - t0

        # ------------------------------------------------------ consensus
        yield Progress(4, stages, "Consensus")
        t0 = time.perf_counter()
        if consensus_fields and n:
            sample_pos = {sid: i for i, sid in enumerate(sample_ids)}
            all_classes = dict(class_id)
            other = []
            for f in consensus_fields:
                o_sid, o_lab, o_box, o_conf = sample_collection.values(
                    ["id", f"{f}.detections.label", f"{f}.detections.bounding_box",
                     f"{f}.detections.confidence"]
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
                other.append(
                    (np.asarray(ob, dtype=np.float64).reshape(-1, 4), np.asarray(ol, dtype=np.int64),
                     np.asarray(oc, dtype=np.float64), np.asarray(os_, dtype=np.int64))
                )
            has_label = np.asarray([l is not None for l in lab], dtype=bool)
            cons = np.full(n, np.nan)
            if has_label.any():
                y_all = np.asarray([class_id[l] for l in lab if l is not None], dtype=np.int64)
                cons[has_label] = signals.consensus(
                    np.asarray(boxes, dtype=np.float64)[has_label], y_all, sidx_a[has_label],
                    other, iou=consensus_iou,
                )
            scores["consensus"] = cons
        timings["consensus_s"] = time.perf_counter() - t0

        # ---------------------------------------------------- uncertainty
        if n:
            inputs = {
                name: scores[name]
                for name in ("hardness", "knn_agreement", "clip_agreement", "rer", "consensus")
                if name in scores
            }
            scores["uncertainty"] = signals.uncertainty(confidence=conf_a, **inputs)

        # ---------------------------------------------------------- write
        yield Progress(5, stages, "Writing scores")
        t0 = time.perf_counter()
        written = [a for a in SCORE_ATTRS if a in scores]
        _declare_float_attrs(dataset, label_field, written)
        bulk.write_label_attrs(
            sample_collection,
            root,
            owner_sid,
            lid,
            {attr: [_nan_to_none(v) for v in scores[attr]] for attr in written},
            owned=SCORE_ATTRS,
        )
        if reference_field:
            for name, vals in (
                (possible_missing_field(label_field), missing_counts),
                (possible_spurious_field(label_field), spurious_counts),
            ):
                if not dataset.has_field(name):
                    dataset.add_sample_field(name, fo.IntField)
                sample_collection.set_values(name, [int(v) for v in vals], validate=False)
        timings["write_s"] = time.perf_counter() - t0
        counts["num_scored_labels"] = n
        extra["per_class"] = _per_class_stats(lab, class_names, scores, conf_a)
        extra["signals"] = written
        yield Progress(stages, stages, f"Scored {n} labels")
    for note in notes:
        logger.info("score_labels: %s", note)
    return run.summary


def _per_class_stats(lab, class_names, scores, conf) -> dict:
    """``{class: {"count": n, "mean_<signal>": mean or None, ...}}``."""
    lab_a = np.asarray([l if l is not None else "" for l in lab], dtype=object)
    out = {}
    for c in class_names:
        m = lab_a == c
        stats: dict[str, Any] = {"count": int(m.sum()), "mean_confidence": _mean(conf[m])}
        for name, vals in scores.items():
            stats[f"mean_{name}"] = _mean(vals[m])
        out[c] = stats
    return out


def score_labels(
    sample_collection,
    label_field: str = "autolabels",
    reference_field: str | None = None,
    iou: float = 0.5,
    spurious_confidence: float = 0.95,
    scores_attr: str = "class_scores",
    scores_kind: str = "auto",
    embeddings_attr: str = "embedding",
    consensus_fields: Sequence[str] | str | None = None,
    consensus_iou: float = 0.5,
    k: int = 10,
    rer: bool = True,
    run_key: str | None = None,
    device: str | None = None,
    progress: bool | Callable[[Progress], None] = True,
) -> dict:
    """Scores every auto-label of ``label_field`` with the available signals.

    See the module docstring for the attributes written and their
    definitions. Example usage::

        from stoplight.plugins.scoring.scores import score_labels

        summary = score_labels(ds, "autolabels", reference_field="ground_truth")
        ds.sort_by("autolabels.detections.uncertainty", reverse=True)

    Args:
        sample_collection: a dataset or view
        label_field: the ``fo.Detections`` field to score
        reference_field: an optional ``fo.Detections`` field of reference
            (e.g. human) labels; enables ``mistakenness``,
            ``mistakenness_loc`` and the per-sample possible missing/spurious
            counts
        iou: least IoU of a match with the reference
        spurious_confidence: least confidence of an unmatched auto-label to
            count as possibly spurious
        scores_attr: the label attribute holding each label's per-class
            score vector, for ``hardness`` and ``margin`` (``class_scores``
            for Stoplight's own labels; e.g. ``scores`` or ``logits`` for
            predictions imported from another model)
        scores_kind: ``"probabilities"`` (any non-negative scores, normalized
            to sum 1), ``"logits"`` (softmax first) or ``"auto"``: logits when
            the attribute's name contains ``logit`` or a value is negative
        embeddings_attr: the label attribute holding embeddings (see
            :func:`.embeddings.compute_label_embeddings`); without any,
            ``knn_agreement``, ``rer`` and ``clip_agreement`` are skipped
        consensus_fields: other ``fo.Detections`` fields (other models'
            predictions) for ``consensus``
        consensus_iou: least IoU of a consensus match
        k: neighbours of ``knn_agreement``
        rer: whether to train the class-wise autoencoders for ``rer``
        run_key: key of the run record; ``None`` generates one
        device: torch device; ``None`` uses CUDA when available
        progress: a progress bar (``True``), nothing (``False``), or a
            callable receiving :class:`Progress` events

    Returns:
        the run summary: counts, per-class means, notes on skipped signals,
        dataset difficulty and per-class RER (with embeddings), timings
    """
    gen = iter_score_labels(
        sample_collection,
        label_field=label_field,
        reference_field=reference_field,
        iou=iou,
        spurious_confidence=spurious_confidence,
        scores_attr=scores_attr,
        scores_kind=scores_kind,
        embeddings_attr=embeddings_attr,
        consensus_fields=consensus_fields,
        consensus_iou=consensus_iou,
        k=k,
        rer=rer,
        run_key=run_key,
        device=device,
    )
    return run_progress(gen, progress)
