"""Per-class score vectors of labels from any source, and what a field allows.

Stoplight's own labels keep their per-class scores under ``class_scores``;
predictions imported from another model or tool keep them under another
name (``scores``, ``logits``, ...) or not at all. :func:`scores_are_logits`
decides how a vector is read (logits get a softmax first, so that
``hardness`` and ``margin`` see a distribution), :func:`clip_scores` makes
such vectors from CLIP embeddings for labels without any,
:func:`score_rows` applies a signal to every vector, and
:func:`signal_availability` lists which signals a field's contents allow.
Pure numpy.
"""

from __future__ import annotations

import numpy as np

#: how ``scores_attr`` vectors are read: probabilities, logits, or decided
#: from the data (:func:`scores_are_logits`)
SCORES_KINDS = ("auto", "probabilities", "logits")

#: logit scale of the CLIP fallback for hardness/margin (CLIP's own)
CLIP_LOGIT_SCALE = 100.0


def softmax_rows(rows):
    """Row-wise softmax of logit vectors (an ``(N, C)`` array with NaN rows
    kept NaN, or a ragged list with ``None`` rows kept ``None``)."""

    def soft(a):
        a = np.asarray(a, dtype=np.float64)
        e = np.exp(a - a.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    if isinstance(rows, np.ndarray):
        out = rows.copy()
        if rows.size:
            ok = ~np.isnan(rows).any(axis=1)
            out[ok] = soft(rows[ok])
        return out
    return [None if r is None or len(r) == 0 else soft(r) for r in rows]


def scores_are_logits(rows, scores_attr: str, scores_kind: str) -> bool:
    """Whether the score vectors are logits (``scores_kind="auto"``: the
    attribute's name says ``logit``, or a value is negative, which no
    probability is)."""
    if scores_kind not in SCORES_KINDS:
        raise ValueError(f"Parameter 'scores_kind' must be one of {SCORES_KINDS}; got {scores_kind!r}")
    if scores_kind != "auto":
        return scores_kind == "logits"
    if "logit" in scores_attr.lower():
        return True
    if isinstance(rows, np.ndarray):
        return bool(np.nanmin(rows) < 0) if np.isfinite(rows).any() else False
    return any(r is not None and len(r) and min(r) < 0 for r in rows)


def signal_availability(
    *,
    has_confidence: bool,
    has_scores: bool,
    has_embeddings: bool,
    has_prompts: bool,
    has_consensus: bool,
    has_reference: bool,
    rer: bool = True,
) -> tuple[list[str], list[str]]:
    """``(computable, not computable)`` signal names for what a field holds."""
    can = {
        "hardness": has_scores or (has_embeddings and has_prompts),
        "margin": has_scores or (has_embeddings and has_prompts),
        "knn_agreement": has_embeddings,
        "rer": has_embeddings and rer,
        "clip_agreement": has_embeddings and has_prompts,
        "consensus": has_consensus,
        "mistakenness": has_reference,
        "mistakenness_loc": has_reference,
        "confidence": has_confidence,
    }
    return [k for k, v in can.items() if v], [k for k, v in can.items() if not v]


def availability_note(label_field: str, scores_attr: str, **has) -> str | None:
    """What to tell a user whose field has neither confidence nor score
    vectors: the signals that can still be computed and those that cannot
    (arguments of :func:`signal_availability`); None when it has either."""
    if has["has_confidence"] or has["has_scores"]:
        return None
    can, cannot = signal_availability(**has)
    msg = (
        f"'{label_field}' has no confidence and no per-class scores under '{scores_attr}' "
        "(set 'scores_attr' if the labels keep them under another name): "
        f"signals that can still be computed: {', '.join(can) or 'none'}; "
        f"not computable: {', '.join(cannot)}"
    )
    if not can:
        msg += " (compute label embeddings, or give consensus_fields or a reference_field)"
    return msg


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


def score_rows(rows, fn) -> tuple[np.ndarray, np.ndarray]:
    """``fn`` applied to score rows: an ``(N, C)`` array (NaN rows are
    missing) or a ragged list, grouped by length (vectorized).

    Args:
        rows: the score vectors, as :func:`softmax_rows` takes them
        fn: a signal of :mod:`.signals` taking an ``(M, C)`` array

    Returns:
        ``(values, ok)``: ``fn``'s value of each row (NaN where the row is
        missing) and which rows had a vector
    """
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
