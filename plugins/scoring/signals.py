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
``_rer``                        class-wise autoencoders; > 1 means another
                                class explains the label better
``clip_agreement``    [-2, 2]   image-text cosine similarity to the own class
                                prompt minus the best other class prompt
``consensus``         [0, 1]    mean confidence of other models' matching
                                predictions
``uncertainty``       [0, 1]    mean of the available wrongness terms
===================== ========= =============================================
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from . import neighbors

# Scores below this total are treated as "no evidence at all".
_EPS = 1e-12

# Elements of one (batch x reference) similarity block (~256 MB in float32).
_BLOCK_ELEMENTS = 2**26


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _device(device: Any = None):
    """``device`` as a torch device: CUDA when available unless given."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _as_labels(labels: np.ndarray, n: int, num_classes: int | None = None) -> np.ndarray:
    """Validates integer class ids of length ``n`` (in ``[0, num_classes)``)."""
    lab = np.asarray(labels)
    if lab.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {lab.shape}")
    if n and not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.equal(np.mod(lab, 1), 0)):
            raise ValueError("labels must be integer class ids")
    lab = lab.astype(np.int64)
    if n and lab.min() < 0:
        raise ValueError("labels must be non-negative class ids")
    if num_classes is not None and n and lab.max() >= num_classes:
        raise ValueError(f"labels must be < num_classes={num_classes}, got {lab.max()}")
    return lab


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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Written with exp of a non-positive number only, so it never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


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
        ``(N,)`` float64 array in ``[0, 1]``
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
        ``(N,)`` float64 array in ``[0, 1]``
    """
    p, empty = _normalize_scores(class_scores)
    n, c = p.shape
    if c <= 1:
        out = np.ones(n, dtype=np.float64)
        out[empty] = 0.0
        return out
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
    lab = _as_labels(labels, n)
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
# 3. Class-wise autoencoders
# ---------------------------------------------------------------------------


def _ae_init(c: int, dims: Sequence[int], gen, dev) -> list:
    """Stacked weights ``(C, in, out)`` and biases ``(C, 1, out)`` per layer.

    Uniform ``+-1/sqrt(fan_in)``, torch's ``nn.Linear`` default, drawn from
    ``gen`` so that training is reproducible.
    """
    import torch

    params = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(c, fan_in, fan_out, generator=gen) * 2 - 1) * bound
        b = (torch.rand(c, 1, fan_out, generator=gen) * 2 - 1) * bound
        params += [w.to(dev).requires_grad_(), b.to(dev).requires_grad_()]
    return params


def _ae_forward(params: list, x):
    """All class autoencoders at once: ``x`` is ``(C, B, D)``, one batch per class."""
    import torch

    h = x
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = torch.baddbmm(params[2 * i + 1], h, params[2 * i])
        if i < n_layers - 1:
            h = torch.relu(h)
    return h


def _ae_errors(params: list, x):
    """Mean squared reconstruction error of every row of ``x`` ``(B, D)``
    under every class autoencoder: ``(B, C)``.

    Same result as :func:`_ae_forward` on ``x`` repeated per class, cheaper:
    the first layer of all classes is one ``(B, D) x (D, C * H)`` product
    (one large GEMM instead of ``C`` over a repeated input), and the error
    is formed in place.
    """
    import torch

    c, d, h = params[0].shape
    w1 = params[0].permute(1, 0, 2).reshape(d, c * h)
    hid = torch.relu(torch.addmm(params[1].reshape(1, c * h), x, w1))
    hid = hid.view(-1, c, h).transpose(0, 1)  # (C, B, H)
    n_layers = len(params) // 2
    for i in range(1, n_layers):
        hid = torch.baddbmm(params[2 * i + 1], hid, params[2 * i])
        if i < n_layers - 1:
            hid = torch.relu(hid)
    return hid.sub_(x).pow_(2).mean(dim=2).T


def class_autoencoder_rer(
    embeddings: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    hidden: int = 256,
    bottleneck: int = 10,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 1e-3,
    min_steps: int = 300,
    max_train_per_class: int = 8192,
    min_class_size: int = 5,
    trim: float = 0.1,
    seed: int = 0,
    device: Any = None,
    eval_batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Reconstruction error ratio under class-wise autoencoders.

    After "Class-wise Autoencoders Measure Classification Difficulty and
    Detect Label Mistakes" (arXiv:2412.02596). For each class ``c`` a shallow
    autoencoder ``D -> hidden -> bottleneck -> hidden -> D`` (ReLU between
    layers, linear output) is trained with Adam on the MSE of that class's
    L2-normalized embeddings. With ``e_c(x)`` the mean squared
    reconstruction error of ``x`` under class ``c``'s autoencoder::

        RER_i = e_{y_i}(x_i) / min_{c != y_i} e_c(x_i)

    Range ``[0, inf)``; ``RER > 1`` means another class's autoencoder
    reconstructs the label better than its own class's does (a likely label
    mistake); typical correct labels have ``RER < 1``.

    Training: all ``C`` autoencoders are stacked into one batched model
    (weights ``(C, in, out)``, applied with ``torch.baddbmm``) and trained in
    one loop; the loss is the sum of the per-class mean MSEs, so each
    class's gradient is exactly its own loss's gradient and Adam's
    element-wise updates make this equal to ``C`` independent Adam runs.
    Each step draws ``batch_size`` members of every class uniformly (with
    replacement) from that class's training pool, which is all its members,
    or a random ``max_train_per_class`` of them for large classes (a 10-d
    bottleneck needs no more). The number of steps is
    ``max(min_steps, epochs * ceil(largest pool / batch_size))``, so
    training costs the same for every dataset whose classes have more than
    ``max_train_per_class`` labels (320 steps by default) and only the
    evaluation grows with ``N``: linear time overall.
    Everything random comes from ``seed``, so results are reproducible on
    a given device.

    Departure from the paper (robustness): in every batch, the ``trim``
    fraction of samples with the largest reconstruction error is left out
    of the loss (the "small-loss trick" of noisy-label training). Without
    it, a class's autoencoder spends part of its bottleneck on memorizing
    the few mislabeled members that RER is meant to find (a lone label of
    another class is a large-variance direction of its class), and their
    RER falls below 1; in our constructed case this happened for 3 of 4
    seeds without trimming and 0 of 4 with ``trim=0.1``. ``trim=0``
    reproduces the paper's plain MSE.

    Small classes: classes with fewer than ``min_class_size`` members get no
    autoencoder (their column of ``per_class_error`` is NaN and they are not
    candidates for the minimum), and their labels' RER is NaN, so they are
    left out of the dataset difficulty. With fewer than two trained classes
    every RER is NaN.

    Args:
        embeddings: ``(N, D)`` float embeddings (any scale; L2-normalized here)
        labels: ``(N,)`` integer class ids in ``[0, num_classes)``
        num_classes: ``C``
        hidden: width of the hidden layers
        bottleneck: width of the code
        epochs: passes over the largest training pool
        batch_size: members drawn per class per step
        lr: Adam learning rate
        min_steps: least number of optimizer steps (small datasets)
        max_train_per_class: largest training pool of one class
        min_class_size: least members for a class to get an autoencoder
        trim: fraction of each batch's largest errors left out of the loss
        seed: seed of initialization and sampling
        device: torch device; default CUDA when available, else CPU
        eval_batch_size: labels per evaluation chunk; default keeps the
            ``(C, chunk, D)`` reconstruction near 256 MB

    Returns:
        ``(rer, per_class_error, info)``: ``rer`` ``(N,)``;
        ``per_class_error`` ``(N, C)``, the MSE of every label under every
        class's autoencoder; ``info`` a dict with ``difficulty`` (mean of
        the finite RERs, NaN if none), ``per_class_rer`` ``(C,)`` (mean
        finite RER of each class's labels, NaN if none), ``class_sizes``
        ``(C,)``, ``trained`` ``(C,)`` bool, ``final_loss`` ``(C,)`` (last
        training MSE, NaN if untrained) and ``steps``.
    """
    import torch

    x_np = np.asarray(embeddings)
    if x_np.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {x_np.shape}")
    n, d = x_np.shape
    lab = _as_labels(labels, n, num_classes)
    if not 0.0 <= trim < 1.0:
        raise ValueError("trim must be in [0, 1)")
    c = int(num_classes)
    sizes = np.bincount(lab, minlength=c)[:c]
    trained = sizes >= max(1, min_class_size)
    valid = np.flatnonzero(trained)
    per_class_error = np.full((n, c), np.nan)
    rer = np.full(n, np.nan)
    info: dict = {
        "difficulty": float("nan"),
        "per_class_rer": np.full(c, np.nan),
        "class_sizes": sizes,
        "trained": trained,
        "final_loss": np.full(c, np.nan),
        "steps": 0,
    }
    if n == 0 or valid.size == 0:
        return rer, per_class_error, info

    dev = _device(device)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.nn.functional.normalize(torch.as_tensor(x_np, dtype=torch.float32), dim=1).to(dev)

    # Training pools: member indices of every trained class, concatenated,
    # with per-class offsets so one randint call samples all classes.
    pools = []
    for cls in valid:
        members = np.flatnonzero(lab == cls)
        if members.size > max_train_per_class:
            members = np.sort(rng.choice(members, max_train_per_class, replace=False))
        pools.append(members)
    pool_sizes = torch.tensor([p.size for p in pools], dtype=torch.float64)
    pool_offsets = torch.tensor(np.concatenate([[0], np.cumsum([p.size for p in pools])[:-1]]))
    pool_flat = torch.as_tensor(np.concatenate(pools), device=dev)
    v = valid.size
    steps = max(min_steps, epochs * math.ceil(max(p.size for p in pools) / batch_size))

    params = _ae_init(v, [d, hidden, bottleneck, hidden, d], gen, dev)
    opt = torch.optim.Adam(params, lr=lr)
    last = torch.zeros(v)
    keep = max(1, int(math.ceil((1.0 - trim) * batch_size)))
    for _ in range(steps):
        # floor(u * size) is uniform over each class's pool; generated on the
        # CPU generator so the sequence does not depend on the device.
        u = torch.rand(v, batch_size, generator=gen, dtype=torch.float64)
        pick = (u * pool_sizes[:, None]).long().clamp_max((pool_sizes - 1).long()[:, None])
        idx = pool_flat[(pick + pool_offsets[:, None]).to(dev)]
        xb = x[idx]  # (V, B, D)
        per_sample = ((_ae_forward(params, xb) - xb) ** 2).mean(dim=2)  # (V, B)
        if keep < batch_size:
            # Small-loss trick: the largest errors of the batch do not train.
            per_sample = torch.topk(per_sample, keep, dim=1, largest=False).values
        err = per_sample.mean(dim=1)  # (V,)
        opt.zero_grad(set_to_none=True)
        err.sum().backward()
        opt.step()
        last = err.detach()
    info["steps"] = steps
    info["final_loss"][valid] = last.cpu().numpy()

    # Reconstruction error of every label under every trained autoencoder.
    if eval_batch_size is None:
        eval_batch_size = int(max(1, min(65536, _BLOCK_ELEMENTS // max(1, v * max(d, hidden)))))
    errors = np.empty((n, v), dtype=np.float64)
    with torch.no_grad():
        for start in range(0, n, eval_batch_size):
            xb = x[start : start + eval_batch_size]
            errors[start : start + xb.shape[0]] = _ae_errors(params, xb).cpu().numpy()
    per_class_error[:, valid] = errors

    if v >= 2:
        own_ok = trained[lab]
        own = np.where(own_ok, per_class_error[np.arange(n), np.where(own_ok, lab, 0)], np.nan)
        others = per_class_error.copy()
        others[:, ~trained] = np.inf
        others[np.arange(n), lab] = np.inf
        best_other = others.min(axis=1)
        # A perfect reconstruction elsewhere (error 0) makes the ratio inf,
        # which is the right limit; guard only 0/0.
        with np.errstate(divide="ignore", invalid="ignore"):
            rer = np.where(own_ok, own / best_other, np.nan)
        rer = np.where(own_ok & (own == 0) & (best_other == 0), 1.0, rer)
        finite = np.isfinite(rer)
        if finite.any():
            info["difficulty"] = float(rer[finite].mean())
            sums = np.bincount(lab[finite], weights=rer[finite], minlength=c)[:c]
            cnts = np.bincount(lab[finite], minlength=c)[:c]
            with np.errstate(invalid="ignore", divide="ignore"):
                info["per_class_rer"] = np.where(cnts > 0, sums / np.maximum(cnts, 1), np.nan)
    return rer, per_class_error, info


# ---------------------------------------------------------------------------
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
    lab = _as_labels(labels, n, c)
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
    lab = _as_labels(labels, n)
    smp = _as_labels(sample_index, n)
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
        ol = _as_labels(o_labels, m)
        os_ = _as_labels(o_sample, m)
        if o_conf is None:
            oc = np.ones(m)
        else:
            oc = np.asarray(o_conf, dtype=np.float64).reshape(m)
            oc = np.where(np.isnan(oc), 1.0, oc)
        total += wm * _match_one_model(b, lab, smp, ob, ol, oc, os_, iou, max_pairs)
    return total / w.sum()


# ---------------------------------------------------------------------------
# 6. Combined uncertainty
# ---------------------------------------------------------------------------


def wrongness_terms(
    *,
    hardness: np.ndarray | None = None,
    knn_agreement: np.ndarray | None = None,
    clip_agreement: np.ndarray | None = None,
    rer: np.ndarray | None = None,
    consensus: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    clip_scale: float = 100.0,
) -> dict[str, np.ndarray]:
    """Each available signal mapped to a "wrongness" term in ``[0, 1]``.

    =================== ==========================================
    signal              term (higher = more likely wrong)
    =================== ==========================================
    ``hardness``        ``hardness``
    ``knn_agreement``   ``1 - knn_agreement``
    ``clip_agreement``  ``sigmoid(-clip_scale * clip_agreement)``
    ``rer``             ``sigmoid(log rer) = rer / (1 + rer)``
    ``consensus``       ``1 - consensus``
    ``confidence``      ``1 - confidence``
    =================== ==========================================

    The CLIP term is the probability of the best competing class in a
    two-way softmax at CLIP's own logit scale (100): 0.5 when the two
    prompts tie. The RER term is 0.5 at ``RER = 1``, the point where another
    class explains the label as well as its own. Inputs are clipped to their
    documented ranges; NaNs stay NaN.

    Returns:
        ``{name: (N,) array}`` for the signals given
    """
    given = {
        "hardness": hardness,
        "knn_agreement": knn_agreement,
        "clip_agreement": clip_agreement,
        "rer": rer,
        "consensus": consensus,
        "confidence": confidence,
    }
    terms = {}
    for name, value in given.items():
        if value is None:
            continue
        a = np.asarray(value, dtype=np.float64).reshape(-1)
        if name == "hardness":
            t = np.clip(a, 0, 1)
        elif name == "clip_agreement":
            t = _sigmoid(-clip_scale * np.clip(a, -2, 2))
        elif name == "rer":
            # rer / (1 + rer), written to stay finite for rer = inf.
            r = np.clip(a, 0, None)
            with np.errstate(invalid="ignore"):
                t = np.where(np.isinf(r), 1.0, r / (1.0 + r))
        else:
            t = 1.0 - np.clip(a, 0, 1)
        terms[name] = t
    return terms


def uncertainty(
    *,
    hardness: np.ndarray | None = None,
    knn_agreement: np.ndarray | None = None,
    clip_agreement: np.ndarray | None = None,
    rer: np.ndarray | None = None,
    consensus: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    weights: Mapping[str, float] | None = None,
    clip_scale: float = 100.0,
) -> np.ndarray:
    """One uncertainty score per label from whichever signals are available.

    The weighted mean of the available wrongness terms (see
    :func:`wrongness_terms`)::

        uncertainty_i = sum_s w_s * t_s(i) / sum_s w_s   over signals s with
                                                        a finite t_s(i)

    Range ``[0, 1]``; increasing in ``hardness`` and ``rer``, decreasing in
    ``knn_agreement``, ``clip_agreement``, ``consensus`` and ``confidence``.
    Signals that are not passed (``None``) or NaN for a label are left out of
    that label's mean, so labels are scored by what is known about them;
    a label with no finite term gets NaN. Weights default to 1 per signal.
    ``margin`` is not an input: it measures the same thing as ``hardness``
    and would count that evidence twice.

    Args:
        hardness, knn_agreement, clip_agreement, rer, consensus, confidence:
            ``(N,)`` arrays or ``None``
        weights: ``{signal name: non-negative weight}``; missing names get 1
        clip_scale: logit scale of the CLIP term

    Returns:
        ``(N,)`` float64 array in ``[0, 1]`` (NaN where nothing is known)
    """
    terms = wrongness_terms(
        hardness=hardness,
        knn_agreement=knn_agreement,
        clip_agreement=clip_agreement,
        rer=rer,
        consensus=consensus,
        confidence=confidence,
        clip_scale=clip_scale,
    )
    if not terms:
        raise ValueError("uncertainty needs at least one signal")
    lengths = {t.shape[0] for t in terms.values()}
    if len(lengths) != 1:
        raise ValueError(f"signals have different lengths: {sorted(lengths)}")
    weights = dict(weights or {})
    unknown = set(weights) - set(terms) - {
        "hardness", "knn_agreement", "clip_agreement", "rer", "consensus", "confidence"
    }
    if unknown:
        raise ValueError(f"unknown signal weights: {sorted(unknown)}")
    num = np.zeros(lengths.pop())
    den = np.zeros_like(num)
    for name, t in terms.items():
        w = float(weights.get(name, 1.0))
        if w < 0:
            raise ValueError(f"weight of {name} must be non-negative")
        ok = np.isfinite(t)
        num += np.where(ok, w * np.where(ok, t, 0.0), 0.0)
        den += np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(out, 0.0, 1.0)
