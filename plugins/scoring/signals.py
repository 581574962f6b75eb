"""Per-label quality signals for auto-labels.

Every function here is pure: it takes numpy arrays (one row per label, in
any order the caller likes), returns numpy arrays of the same length, reads
and writes nothing, and keeps no state between calls. The operator that
uses them reads the arrays from FiftyOne in bulk and writes the results back
as label attributes.

Conventions:

- ``N`` labels, ``C`` classes, ``D`` embedding dimensions.
- ``labels`` are integer class ids in ``[0, C)``.
- Boxes are FiftyOne's ``[top_left_x, top_left_y, width, height]``, relative
  to the image.
- "Agreement" signals are high when the label looks right; "wrongness"
  terms (see :func:`uncertainty`) are high when it looks wrong.
- ``NaN`` means "this signal cannot say anything about this label" (e.g. its
  class has too few members to model); :func:`uncertainty` ignores NaNs.

The signals (all per label):

===================== ========= =============================================
function              range     meaning
===================== ========= =============================================
``hardness``          [0, 1]    normalized entropy of the class scores
``margin``            [0, 1]    top-1 minus top-2 normalized class score
``knn_agreement``     [0, 1]    similarity-weighted share of k nearest
                                neighbours (in embedding space) of the same
                                class
``class_autoencoder`` [0, inf)  reconstruction error ratio (RER) under
``_rer``                        class-wise autoencoders (:mod:`.rer`); > 1
                                means another class explains it better
``clip_agreement``    [-2, 2]   image-text cosine similarity to the own class
                                prompt minus the best other class prompt
``consensus``         [0, 1]    mean confidence of other models' matching
                                predictions
``uncertainty``       [0, 1]    weighted log-odds pool of the available
                                wrongness terms (:mod:`.combination`)
===================== ========= =============================================
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from . import neighbors
from .combination import uncertainty, wrongness_terms  # noqa: F401  (signals of the table)
from .rer import as_class_ids, class_autoencoder_rer  # noqa: F401  (a signal of the table)

# Scores below this total are treated as "no evidence at all".
_EPS = 1e-12


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _device(device: Any = None):
    """``device`` as a torch device: CUDA when available unless given."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _normalize_scores(class_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``class_scores`` as distributions, and which rows were all zero.

    Negative scores (e.g. raw logits passed by mistake) carry no probability
    mass, so they are clipped to 0 before normalizing. NaNs count as 0.
    """
    s = np.asarray(class_scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"class_scores must have shape (N, C), got {s.shape}")
    s = np.where(np.isfinite(s), np.clip(s, 0.0, None), 0.0)
    total = s.sum(axis=1)
    empty = total <= _EPS
    p = s / np.where(empty, 1.0, total)[:, None]
    return p, empty


# ---------------------------------------------------------------------------
# 1. Score-vector signals
# ---------------------------------------------------------------------------


def hardness(class_scores: np.ndarray) -> np.ndarray:
    """Normalized Shannon entropy of each label's class scores.

    The scores (e.g. independent sigmoid scores of a zero-shot detector, which
    need not sum to 1) are first normalized to a distribution
    ``p = s / s.sum()`` (negatives and NaNs clipped to 0), then::

        hardness = -sum_c p_c * log(p_c) / log(C)

    Range ``[0, 1]``: 0 when all mass is on one class (one-hot), 1 when the
    scores are uniform. Edge cases:

    - all-zero row: 1.0 (the detector gave no evidence for any class, which
      is the maximally uncertain case);
    - ``C == 1``: 0.0 (there is nothing to confuse the class with).

    Args:
        class_scores: ``(N, C)`` non-negative scores

    Returns:
        ``(N,)`` float64 normalized entropies in ``[0, 1]``
    """
    p, empty = _normalize_scores(class_scores)
    n, c = p.shape
    if c <= 1:
        return np.zeros(n, dtype=np.float64)
    # 0 * log(0) is 0 by continuity; compute log only where p > 0.
    plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = -plogp.sum(axis=1) / math.log(c)
    h[empty] = 1.0
    return np.clip(h, 0.0, 1.0)


def margin(class_scores: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 of each label's normalized class scores.

    With ``p = s / s.sum()`` as in :func:`hardness`::

        margin = p_(1) - p_(2)

    Range ``[0, 1]``: 1 for one-hot, 0 for a tie between the two best
    classes (and for uniform scores). Edge cases, chosen to agree with
    :func:`hardness`:

    - all-zero row: 0.0 (no evidence, maximally uncertain);
    - ``C == 1``: 1.0 (the single class has all the mass, ``p = [1]``).

    Args:
        class_scores: ``(N, C)`` non-negative scores

    Returns:
        ``(N,)`` float64 gaps between the two best classes, in ``[0, 1]``
    """
    p, empty = _normalize_scores(class_scores)
    if p.shape[1] <= 1:
        return np.where(empty, 0.0, 1.0)
    # partition is O(C) per row; we only need the two largest values.
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    out = top2[:, 0] - top2[:, 1]
    out[empty] = 0.0
    return np.clip(out, 0.0, 1.0)


# ---------------------------------------------------------------------------
# 2. kNN agreement
# ---------------------------------------------------------------------------


def knn_agreement(
    embeddings: np.ndarray,
    labels: np.ndarray,
    k: int = 10,
    batch_size: int | None = None,
    device: Any = None,
    exact_limit: int = neighbors.EXACT_LIMIT,
    list_size: int = neighbors.LIST_SIZE,
    nprobe: int = neighbors.NPROBE,
    seed: int = 0,
) -> np.ndarray:
    """Similarity-weighted share of each label's nearest neighbours of its class.

    Embeddings are L2-normalized, so the dot product is the cosine
    similarity. For label ``i`` with nearest other labels ``j_1..j_k``
    (self excluded) and weights ``w_j = max(sim(i, j), 0)``::

        knn_agreement_i = sum_j w_j * [y_j == y_i] / sum_j w_j

    Range ``[0, 1]``. Negative similarities get weight 0: a neighbour pointing
    the other way is not evidence for or against the class. If all ``k``
    weights are 0, the unweighted share is used. With fewer than 2 labels
    there are no neighbours and the result is NaN. ``k`` is capped at
    ``N - 1``.

    Neighbours (:mod:`.neighbors`): exact up to ``exact_limit`` labels
    (batched matrix products, cost ``N^2``); above it an IVF index
    (spherical k-means into ``N / list_size`` lists, each label searched in
    its ``nprobe`` nearest lists; cost linear in ``N``). The index may miss
    some true neighbours and take the next-nearest instead, so the share is
    computed over a slightly wider neighbourhood; recall and the effect on
    this score are measured in ``benchmarks/README.md``. A label whose
    probed lists hold fewer than ``k`` others votes with those it has.

    Args:
        embeddings: ``(N, D)`` float embeddings (any scale)
        labels: ``(N,)`` integer class ids
        k: number of neighbours
        batch_size: query rows per exact matrix product; default keeps one
            similarity block near 256 MB
        device: torch device; default CUDA when available, else CPU
        exact_limit: largest ``N`` searched exactly
        list_size: target labels per IVF list
        nprobe: IVF lists searched per label
        seed: seed of the IVF k-means (results are reproducible)

    Returns:
        ``(N,)`` float64 array in ``[0, 1]`` (NaN where undefined)
    """
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {x.shape}")
    n = x.shape[0]
    lab = as_class_ids(labels, n)
    if k < 1:
        raise ValueError("k must be >= 1")
    if n < 2:
        return np.full(n, np.nan)
    dev = _device(device)
    sims, idx = neighbors.knn(
        x, k, exact_limit=exact_limit, list_size=list_size, nprobe=nprobe,
        batch_size=batch_size, seed=seed, device=dev,
    )
    return neighbor_agreement(sims, idx, lab)


def neighbor_agreement(sims, idx, labels: np.ndarray) -> np.ndarray:
    """:func:`knn_agreement` from given neighbour lists.

    Args:
        sims: ``(N, k)`` cosine similarities of the neighbours (array or
            tensor; ``-inf`` = no neighbour in that place)
        idx: ``(N, k)`` neighbour row indices (``-1`` = none)
        labels: ``(N,)`` integer class ids

    Returns:
        ``(N,)`` float64 array in ``[0, 1]`` (NaN for a row with no neighbour)
    """
    import torch

    s = torch.as_tensor(sims).to(torch.float64)
    i = torch.as_tensor(idx).long()
    lab_t = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=i.device)
    valid = i >= 0
    same = (lab_t[i.clamp_min(0)] == lab_t[:, None]) & valid
    same = same.to(torch.float64)
    w = torch.where(valid, s.clamp_min(0.0), torch.zeros_like(s))
    wsum = w.sum(dim=1)
    nvalid = valid.sum(dim=1)
    weighted = (w * same).sum(dim=1) / wsum.clamp_min(_EPS)
    plain = same.sum(dim=1) / nvalid.clamp_min(1)
    out = torch.where(wsum > _EPS, weighted, plain)
    out = torch.where(nvalid > 0, out, torch.full_like(out, float("nan")))
    return out.cpu().numpy()


# ---------------------------------------------------------------------------
# 3. Class-wise autoencoders: :mod:`.rer` (:func:`class_autoencoder_rer`)
# 4. Image-text agreement
# ---------------------------------------------------------------------------


def clip_agreement(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 65536,
) -> np.ndarray:
    """Cosine similarity to the own class prompt minus the best other one.

    With ``v_i`` the (L2-normalized) image embedding of label ``i``'s crop
    and ``t_c`` the (L2-normalized) text embedding of class ``c``'s prompt::

        clip_agreement_i = cos(v_i, t_{y_i}) - max_{c != y_i} cos(v_i, t_c)

    Range ``[-2, 2]`` (in practice CLIP's similarities sit in a narrow band
    and the values are within about ``+-0.1``). Positive: the image-text
    model also prefers the label's class; negative: it prefers another
    class. With ``C == 1`` there is no competing class and the result is
    NaN (no evidence either way).

    Args:
        image_embeddings: ``(N, D)`` crop embeddings
        text_embeddings: ``(C, D)`` class prompt embeddings, same space
        labels: ``(N,)`` integer class ids in ``[0, C)``
        batch_size: labels per ``(batch, C)`` similarity block

    Returns:
        ``(N,)`` float64 array in ``[-2, 2]`` (NaN when ``C == 1``)
    """
    img = np.asarray(image_embeddings, dtype=np.float64)
    txt = np.asarray(text_embeddings, dtype=np.float64)
    if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1]:
        raise ValueError(
            f"need (N, D) image and (C, D) text embeddings, got {img.shape} and {txt.shape}"
        )
    n, c = img.shape[0], txt.shape[0]
    lab = as_class_ids(labels, n, c)
    if c < 2:
        return np.full(n, np.nan)
    txt = txt / np.maximum(np.linalg.norm(txt, axis=1, keepdims=True), _EPS)
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        v = img[start:stop]
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), _EPS)
        sim = v @ txt.T  # (b, C)
        rows = np.arange(stop - start)
        own = sim[rows, lab[start:stop]]
        sim[rows, lab[start:stop]] = -np.inf
        out[start:stop] = own - sim.max(axis=1)
    return out


# ---------------------------------------------------------------------------
# 5. Cross-model consensus
# ---------------------------------------------------------------------------


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of ``[x, y, w, h]`` boxes ``a[i]`` and ``b[i]``."""
    iw = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _match_one_model(
    boxes: np.ndarray,
    labels: np.ndarray,
    sample_index: np.ndarray,
    o_boxes: np.ndarray,
    o_labels: np.ndarray,
    o_conf: np.ndarray,
    o_sample: np.ndarray,
    iou: float,
    max_pairs: int,
) -> np.ndarray:
    """Per main label: confidence of the other model's best same-class match."""
    n = boxes.shape[0]
    out = np.zeros(n, dtype=np.float64)
    if n == 0 or o_boxes.shape[0] == 0:
        return out
    # One integer key per (image, class); candidate pairs share a key.
    n_cls = int(max(labels.max(), o_labels.max())) + 1
    key = sample_index * n_cls + labels
    o_key = o_sample * n_cls + o_labels
    order = np.argsort(o_key, kind="stable")
    o_key_sorted = o_key[order]
    lo = np.searchsorted(o_key_sorted, key, side="left")
    hi = np.searchsorted(o_key_sorted, key, side="right")
    counts = hi - lo
    # Chunks of main labels so that no chunk expands to more than
    # ``max_pairs`` candidate pairs (crowded images can make many).
    cum = np.cumsum(counts)
    start = 0
    while start < n:
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + max_pairs, side="right"))
        stop = max(stop, start + 1)
        idx = np.arange(start, stop)
        cnt = counts[idx]
        if cnt.sum():
            i = np.repeat(idx, cnt)
            # Offsets 0..cnt-1 within each label's candidate range.
            offs = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            j = order[np.repeat(lo[idx], cnt) + offs]
            ov = _iou_xywh(boxes[i], o_boxes[j])
            ok = ov >= iou
            i, j, ov = i[ok], j[ok], ov[ok]
            if i.size:
                # Best match per label: highest IoU, ties to higher confidence.
                srt = np.lexsort((-o_conf[j], -ov, i))
                i, j = i[srt], j[srt]
                first = np.ones(i.size, dtype=bool)
                first[1:] = i[1:] != i[:-1]
                out[i[first]] = o_conf[j[first]]
        start = stop
    return out


def consensus(
    boxes: np.ndarray,
    labels: np.ndarray,
    sample_index: np.ndarray,
    other: Sequence[tuple],
    iou: float = 0.5,
    weights: Sequence[float] | None = None,
    max_pairs: int = 5_000_000,
) -> np.ndarray:
    """Agreement of other models' predictions with each label.

    For each other model ``m``, let ``j*`` be its prediction on the same
    image, with the same class, that has the highest IoU with label ``i``
    (ties broken by higher confidence). Then::

        s_m(i) = conf_m(j*)   if IoU(i, j*) >= iou,   else 0
        consensus_i = sum_m w_m * s_m(i) / sum_m w_m

    Range ``[0, 1]`` for confidences in ``[0, 1]``. Weights default to 1 per
    model (each model one vote, however many boxes it predicts). A model's
    missing confidences (``None`` for the whole model, or NaN entries) count
    as 1: a prediction without a score is a full vote. With no other models
    the result is NaN (no evidence).

    Matching is done in bulk: pairs are formed by joining on
    ``(sample_index, label)`` with a sort and ``searchsorted``, IoUs are
    computed element-wise, and the best pair per label is picked with a
    ``lexsort``; there is no per-image Python loop.

    Args:
        boxes: ``(N, 4)`` ``[x, y, w, h]`` relative boxes of the labels
        labels: ``(N,)`` integer class ids
        sample_index: ``(N,)`` integer id of each label's image
        other: per other model, ``(boxes (M, 4), labels (M,),
            confidences (M,) or None, sample_index (M,))`` in the same
            class-id and image-id spaces
        iou: least IoU of a match
        weights: per other model, non-negative weights
        max_pairs: most candidate pairs expanded at once (memory bound)

    Returns:
        ``(N,)`` float64 array in ``[0, 1]`` (NaN with no other models)
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = b.shape[0]
    lab = as_class_ids(labels, n)
    smp = as_class_ids(sample_index, n)
    if not other:
        return np.full(n, np.nan)
    w = np.ones(len(other)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(other),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be one non-negative number per other model, not all 0")
    total = np.zeros(n, dtype=np.float64)
    for wm, model in zip(w, other):
        o_boxes, o_labels, o_conf, o_sample = model
        ob = np.asarray(o_boxes, dtype=np.float64).reshape(-1, 4)
        m = ob.shape[0]
        ol = as_class_ids(o_labels, m)
        os_ = as_class_ids(o_sample, m)
        if o_conf is None:
            oc = np.ones(m)
        else:
            oc = np.asarray(o_conf, dtype=np.float64).reshape(m)
            oc = np.where(np.isnan(oc), 1.0, oc)
        total += wm * _match_one_model(b, lab, smp, ob, ol, oc, os_, iou, max_pairs)
    return total / w.sum()
