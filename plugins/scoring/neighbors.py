"""k nearest neighbours of every embedding among all the others (cosine).

Two pure functions, both torch matrix products on CPU or GPU:

- :func:`exact_knn`: every row against every row in ``(batch, N)`` blocks
  with a top-k per block. Cost ``N^2 D``: about 4 s at 20k x 512-d, 75 s at
  100k on two CPU cores (measured, ``benchmarks/README.md``).
- :func:`ivf_knn`: an inverted-file index (the IVF-Flat of FAISS, built
  with torch): spherical k-means splits the rows into ``N / list_size``
  lists, each row is searched only in the lists of its ``nprobe`` nearest
  centroids. With a fixed ``list_size`` (and lists capped at a multiple
  of it) the search costs ``N * nprobe * list_size * D``, linear in ``N``;
  the coarse quantizer (k-means, then every row against every centroid)
  adds ``~N^2 D / list_size``: small at 100k, about a fifth of the kNN time
  at 500k. A two-level quantizer would bound it; not needed yet.

:func:`knn` picks between them by ``N`` (:data:`EXACT_LIMIT`). The
neighbour lists exclude the row itself. Rows are L2-normalized, so dot
products are cosine similarities.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: largest N searched exactly by :func:`knn`; above it, :func:`ivf_knn`.
#: At 20k labels exact search costs about as much as the index (a few
#: seconds on two CPU cores); past that the quadratic cost dominates.
EXACT_LIMIT = 20_000
#: target number of rows per inverted list of :func:`ivf_knn`
LIST_SIZE = 512
#: inverted lists searched per row by :func:`ivf_knn`
NPROBE = 16
# Elements of one similarity block (~256 MB in float32).
_BLOCK_ELEMENTS = 2**26


def _device(device: Any = None):
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _normalized(embeddings, dev):
    """``(N, D)`` float32 unit rows on ``dev``; validates the shape."""
    import torch

    if isinstance(embeddings, torch.Tensor):
        x = embeddings.to(device=dev, dtype=torch.float32)
    else:
        arr = np.asarray(embeddings)
        if arr.ndim != 2:
            raise ValueError(f"embeddings must have shape (N, D), got {arr.shape}")
        x = torch.as_tensor(np.ascontiguousarray(arr, dtype=np.float32), device=dev)
    if x.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {tuple(x.shape)}")
    return torch.nn.functional.normalize(x, dim=1)


def _empty(n: int, k: int, dev):
    import torch

    sims = torch.full((n, k), -math.inf, dtype=torch.float32, device=dev)
    idx = torch.full((n, k), -1, dtype=torch.int64, device=dev)
    return sims, idx


def exact_knn(embeddings, k: int, batch_size: int | None = None, device: Any = None):
    """The ``k`` most similar other rows of every row, by brute force.

    Args:
        embeddings: ``(N, D)`` array or tensor (any scale; normalized here)
        k: neighbours per row; capped at ``N - 1``
        batch_size: query rows per ``(batch, N)`` similarity block; default
            keeps a block near 256 MB
        device: torch device; default CUDA when available, else CPU

    Returns:
        ``(sims, idx)``: ``(N, k')`` float32 cosine similarities in
        decreasing order and ``(N, k')`` int64 row indices (torch tensors on
        ``device``), ``k' = min(k, N - 1)``
    """
    import torch

    dev = _device(device)
    x = _normalized(embeddings, dev)
    n = x.shape[0]
    kk = max(0, min(int(k), n - 1))
    if batch_size is None:
        batch_size = int(max(1, min(8192, _BLOCK_ELEMENTS // max(n, 1))))
    sims, idx = _empty(n, kk, dev)
    if kk == 0:
        return sims, idx
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        block = x[start:stop] @ x.T  # (b, N)
        rows = torch.arange(stop - start, device=dev)
        block[rows, rows + start] = -math.inf  # a row is not its own neighbour
        sims[start:stop], idx[start:stop] = torch.topk(block, kk, dim=1)
    return sims, idx


def _segment_sums(x, groups, num_groups: int):
    """Per-group row sums of ``x`` and group sizes.

    A sort and a float64 running sum: ``index_add_`` is single-threaded and
    several times slower on CPU.
    """
    import torch

    order = torch.argsort(groups)
    counts = torch.bincount(groups, minlength=num_groups)
    # running[j] = sum of the first j rows in group order
    running = torch.cat([x.new_zeros(1, x.shape[1], dtype=torch.float64),
                         torch.cumsum(x[order].double(), dim=0)])
    ends = torch.cumsum(counts, dim=0)
    sums = running[ends] - running[ends - counts]
    return sums.to(x.dtype), counts


def spherical_kmeans(
    x, num_centroids: int, iters: int = 10, max_train: int | None = None, seed: int = 0
):
    """Unit centroids of ``x`` (unit rows) by spherical k-means.

    Trained on a random subsample of at most ``max_train`` rows (default
    ``32 * num_centroids``: a coarse quantizer needs only rough cells, and
    the training cost grows with the square of the number of centroids)
    from random rows; an emptied cluster restarts at a random training row.

    Args:
        x: ``(N, D)`` float32 torch tensor of unit rows
        num_centroids: number of centroids (at most ``N``)
        iters: Lloyd iterations
        max_train: training rows
        seed: seed of the subsample and the initialization

    Returns:
        ``(num_centroids, D)`` float32 tensor of unit rows on ``x``'s device
    """
    import torch

    n = x.shape[0]
    num_centroids = max(1, min(int(num_centroids), n))
    gen = torch.Generator().manual_seed(seed)
    if max_train is None:
        max_train = 32 * num_centroids
    train = x
    if n > max_train:
        train = x[torch.randperm(n, generator=gen)[:max_train].to(x.device)]
    m = train.shape[0]
    cent = train[torch.randperm(m, generator=gen)[:num_centroids].to(x.device)].clone()
    block = int(max(1, _BLOCK_ELEMENTS // num_centroids))
    for _ in range(iters):
        assign = torch.cat(
            [(train[s : s + block] @ cent.T).argmax(dim=1) for s in range(0, m, block)]
        )
        sums, counts = _segment_sums(train, assign, num_centroids)
        empty = counts == 0
        if empty.any():
            pick = torch.randint(0, m, (int(empty.sum()),), generator=gen).to(x.device)
            sums[empty] = train[pick]
        cent = torch.nn.functional.normalize(sums, dim=1)
    return cent


def ivf_knn(
    embeddings,
    k: int,
    list_size: int = LIST_SIZE,
    nprobe: int = NPROBE,
    kmeans_iters: int = 10,
    seed: int = 0,
    device: Any = None,
    max_list_factor: float = 4.0,
):
    """Approximate ``k`` most similar other rows of every row (IVF-Flat).

    Index: spherical k-means (:func:`spherical_kmeans`) with
    ``ceil(N / list_size)`` centroids; every row goes into the list of its
    nearest centroid, unless that list already holds
    ``max_list_factor * list_size`` rows closer to it; then into the next
    of its probes with room (:func:`_capped_homes`: bounds the cost of
    unequal lists). Search: every row is compared exactly with the
    members of the lists of its ``nprobe`` nearest centroids (its own list
    among them) and keeps the ``k`` most similar. A true neighbour is
    missed only when it lies in a list whose centroid is not among the
    row's ``nprobe`` nearest; recall against :func:`exact_knn` is measured
    in ``benchmarks/README.md``.

    The work is done list by list: all rows probing a list form one
    ``(queries, members)`` matrix product, and each row's running top-k is
    merged with the block's. Memory: the embeddings, the running top-k
    (``N x k``) and one block.

    Args:
        embeddings: ``(N, D)`` array or tensor (any scale; normalized here)
        k: neighbours per row; capped at ``N - 1``
        list_size: target rows per list (sets the number of lists)
        nprobe: lists searched per row
        kmeans_iters: Lloyd iterations of the coarse quantizer
        seed: seed of the k-means
        max_list_factor: largest list, in multiples of ``list_size``
        device: torch device; default CUDA when available, else CPU

    Returns:
        ``(sims, idx)`` as in :func:`exact_knn`. A row whose probed lists
        hold fewer than ``k`` other rows gets ``-inf`` / ``-1`` in the
        missing places.
    """
    import torch

    if list_size < 1 or nprobe < 1:
        raise ValueError("list_size and nprobe must be >= 1")
    dev = _device(device)
    x = _normalized(embeddings, dev)
    n = x.shape[0]
    kk = max(0, min(int(k), n - 1))
    sims, idx = _empty(n, kk, dev)
    if kk == 0:
        return sims, idx
    nlist = max(1, math.ceil(n / list_size))
    cent = spherical_kmeans(x, nlist, iters=kmeans_iters, seed=seed)
    nlist = cent.shape[0]
    npr = min(int(nprobe), nlist)

    # Probes: the npr nearest centroids of every row (the first is its list).
    block = int(max(1, _BLOCK_ELEMENTS // nlist))
    probes = torch.cat(
        [torch.topk(x[s : s + block] @ cent.T, npr, dim=1).indices for s in range(0, n, block)]
    )
    home_rank = _capped_homes(probes, x, cent, nlist, int(max_list_factor * list_size))
    home = torch.gather(probes, 1, home_rank[:, None]).squeeze(1)
    members_order, members_bounds = _group(home, nlist)
    # where each row sits in its own list's member block (to mask itself)
    slot = torch.empty(n, dtype=torch.int64, device=dev)
    starts = torch.as_tensor(members_bounds[:-1], device=dev)
    slot[members_order] = torch.arange(n, device=dev) - starts[home[members_order]]
    # (row, probe) pairs grouped by list; pair f = row * npr + probe rank
    pair_order, pair_bounds = _group(probes.reshape(-1), nlist)
    # Every pair's top-k goes to its own slot; one top-k over a row's
    # slots at the end (cheaper than merging running top-k lists).
    buf_s = torch.full((n * npr, kk), -math.inf, dtype=torch.float32, device=dev)
    buf_i = torch.full((n * npr, kk), -1, dtype=torch.int32, device=dev)
    for lst in range(nlist):
        members = members_order[members_bounds[lst] : members_bounds[lst + 1]]
        pairs_all = pair_order[pair_bounds[lst] : pair_bounds[lst + 1]]
        if members.numel() == 0 or pairs_all.numel() == 0:
            continue
        xm = torch.index_select(x, 0, members).T.contiguous()
        top = min(kk, members.numel())
        step = int(max(1, _BLOCK_ELEMENTS // members.numel()))
        for s in range(0, pairs_all.numel(), step):
            pairs = pairs_all[s : s + step]
            queries = torch.div(pairs, npr, rounding_mode="floor")
            block_sims = torch.index_select(x, 0, queries) @ xm  # (q, m)
            # A row is not its own neighbour: in its home list its own
            # column is masked.
            own = torch.nonzero(pairs % npr == home_rank[queries]).squeeze(1)
            block_sims[own, slot[queries[own]]] = -math.inf
            bs, bi = torch.topk(block_sims, top, dim=1)
            if top < kk:
                bs = torch.nn.functional.pad(bs, (0, kk - top), value=-math.inf)
                bi = torch.nn.functional.pad(bi, (0, kk - top), value=0)
            buf_s.index_copy_(0, pairs, bs)
            buf_i.index_copy_(0, pairs, members[bi].to(torch.int32))
    buf_i[torch.isinf(buf_s)] = -1
    sims, best = torch.topk(buf_s.view(n, npr * kk), kk, dim=1)
    idx = torch.gather(buf_i.view(n, npr * kk), 1, best).long()
    return sims, idx


def _capped_homes(probes, x, cent, nlist: int, capacity: int):
    """Probe rank of each row's home list, with at most ``capacity`` rows per list.

    k-means lists can be very unequal (hub centroids near a dense cluster's
    center attract many rows), and the search costs the sum over lists of
    queries x members, so one list of 10x the mean size costs as much as
    a hundred. Rows go to their nearest centroid's list while it has room,
    the most similar first; the rest try their next probes in order, and
    rows no probe has room for stay in their nearest list. Every home is
    one of the row's probes, so a row is always searched in its own list.
    """
    import torch

    n, npr = probes.shape
    rank = torch.full((n,), -1, dtype=torch.int64, device=probes.device)
    room = torch.full((nlist,), capacity, dtype=torch.int64, device=probes.device)
    for r in range(npr):
        todo = torch.nonzero(rank < 0).squeeze(1)
        if todo.numel() == 0:
            break
        lists = probes[todo, r]
        # in chunks: the gathered rows of all todo rows would be 2 GB at 500k
        sim = torch.cat([
            (x[todo[c : c + 65536]] * cent[lists[c : c + 65536]]).sum(dim=1)
            for c in range(0, todo.numel(), 65536)
        ])
        # within each list, the most similar rows first
        order = torch.argsort(sim, descending=True, stable=True)
        order = order[torch.argsort(lists[order], stable=True)]
        lists_sorted = lists[order]
        counts = torch.bincount(lists_sorted, minlength=nlist)
        first = torch.cumsum(counts, 0) - counts
        pos = torch.arange(order.numel(), device=probes.device) - first[lists_sorted]
        fits = pos < room[lists_sorted]
        rank[todo[order[fits]]] = r
        room -= torch.bincount(lists_sorted[fits], minlength=nlist)
    return rank.clamp_min(0)


def _group(keys, num_groups: int):
    """Positions of ``keys`` sorted by key, and each key's ``[start, stop)``."""
    import torch

    order = torch.argsort(keys, stable=True)
    counts = torch.bincount(keys, minlength=num_groups)
    bounds = [0] + torch.cumsum(counts, dim=0).tolist()
    return order, bounds


def knn(
    embeddings,
    k: int,
    exact_limit: int = EXACT_LIMIT,
    list_size: int = LIST_SIZE,
    nprobe: int = NPROBE,
    batch_size: int | None = None,
    seed: int = 0,
    device: Any = None,
):
    """:func:`exact_knn` up to ``exact_limit`` rows, :func:`ivf_knn` above.

    Returns:
        ``(sims, idx)`` as in :func:`exact_knn`
    """
    n = len(embeddings)
    if n <= exact_limit:
        return exact_knn(embeddings, k, batch_size=batch_size, device=device)
    return ivf_knn(embeddings, k, list_size=list_size, nprobe=nprobe, seed=seed, device=device)


def recall_at_k(approx_idx, exact_idx) -> float:
    """Mean share of each row's exact ``k`` neighbours found by the approximation.

    Args:
        approx_idx: ``(N, k)`` neighbour indices (``-1`` = missing)
        exact_idx: ``(N, k)`` exact neighbour indices

    Returns:
        recall@k in ``[0, 1]``
    """
    a = np.asarray(approx_idx)
    e = np.asarray(exact_idx)
    if a.shape != e.shape or a.ndim != 2:
        raise ValueError(f"need two (N, k) arrays of one shape, got {a.shape} and {e.shape}")
    if a.size == 0:
        return float("nan")
    # Row-wise set intersection through a (rows, k, k) comparison, in chunks.
    hits = 0
    step = 65536
    for s in range(0, a.shape[0], step):
        eb = e[s : s + step]
        found = (eb[:, :, None] == a[s : s + step, None, :]).any(axis=2)
        hits += int((found & (eb >= 0)).sum())
    return hits / e.size
