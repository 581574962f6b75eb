"""The label map: a 2-D projection of label embeddings, cached, sampled.

- :func:`project_2d` (pure): UMAP when ``umap-learn`` is installed (the
  usual choice for embedding maps, and what FiftyOne's own Embeddings panel
  offers), else PCA in numpy. UMAP above ``fit_size`` labels is fitted on
  a random subset and the rest is ``transform``-ed, so its cost stops
  growing with the neighbour graph of every label.
- :func:`compute_label_map`: reads every label's ``embedding`` in bulk,
  projects once and stores the points as a run on the dataset (key
  ``label_map_<field>``; recomputing replaces it). The panel never projects
  on a redraw: :func:`load_label_map` reads the run (and keeps it in
  process memory until the run changes).
- :func:`sample_per_group` and :func:`map_traces` (pure): what is drawn.
  At most ``max_per_group`` points per colour (default 5,000), chosen by a
  fixed random priority per label, so recolouring or redrawing shows the
  same labels and a rare colour is never crowded out by a common one. The
  trace names say how many of each colour are shown out of how many.
"""

from __future__ import annotations

import datetime
import logging
from typing import Sequence

import numpy as np

from ...common import bulk, provenance
from ...common.fo_private import aggregate_view, dataset_id, root_dataset
from ...common.label_vocab import QUEUE_COLORS, QUEUES, REVIEW_COLORS, UNASSIGNED, review_state
from ...review.decisions import label_list_path

logger = logging.getLogger(__name__)

METHODS = ("auto", "umap", "pca")
METHOD_NAME = "label_map"
#: points drawn per colour at most
MAX_PER_GROUP = 5000
#: above this many points in all, traces use WebGL (``scattergl``)
GL_THRESHOLD = 10000
#: UMAP is fitted on at most this many labels; the others are transformed
FIT_SIZE = 20000

#: Plotly's default qualitative palette, for classes
CLASS_PALETTE = (
    "#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a",
    "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52",
)
COLOR_BY = ("queue", "class", "review")

_CACHE: dict[tuple, dict] = {}


def umap_available() -> bool:
    """Whether ``umap-learn`` can be imported."""
    try:
        import umap  # noqa: F401
    except Exception:  # ImportError, or numba failing to initialise
        return False
    return True


def project_2d(
    X: np.ndarray, method: str = "auto", seed: int = 0, fit_size: int = FIT_SIZE
) -> tuple[np.ndarray, str]:
    """Projects row vectors to 2-D.

    Args:
        X: ``(N, D)`` embeddings
        method: ``"umap"``, ``"pca"``, or ``"auto"`` (UMAP if installed)
        seed: random seed (UMAP, and the UMAP fitting subset)
        fit_size: UMAP is fitted on at most this many rows

    Returns:
        ``((N, 2) float32 coordinates, method used)``; PCA is used for fewer
        than 16 rows (UMAP needs a neighbourhood)

    Raises:
        ValueError: for an unknown method, a non-2-D or non-finite array,
            or ``method="umap"`` without umap-learn
    """
    if method not in METHODS:
        raise ValueError(f"Parameter 'method' must be one of {METHODS}; got {method!r}")
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"Embeddings must be an (N, D) array; got shape {X.shape}")
    if not np.isfinite(X).all():
        bad = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
        raise ValueError(f"Embedding of row {bad} has NaN or infinite values")
    if method == "umap" and not umap_available():
        raise ValueError("method='umap' needs umap-learn (pip install umap-learn); use 'pca' or 'auto'")
    if method == "auto":
        method = "umap" if umap_available() else "pca"
    if len(X) < 16 or X.shape[1] < 2:
        method = "pca"
    if method == "pca":
        return _pca_2d(X), "pca"
    return _umap_2d(X, seed, fit_size), "umap"


def _pca_2d(X: np.ndarray) -> np.ndarray:
    out = np.zeros((len(X), 2), np.float32)
    if len(X) == 0 or X.shape[1] == 0:
        return out
    Xc = X - X.mean(axis=0, dtype=np.float64).astype(np.float32)
    # eigenvectors of the D x D covariance: linear in N, no N x N matrix
    cov = (Xc.T.astype(np.float64) @ Xc.astype(np.float64)) / max(len(X) - 1, 1)
    vals, vecs = np.linalg.eigh(cov)
    comps = vecs[:, ::-1][:, :2]
    # a sign convention, so the same data always gives the same picture
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), np.arange(comps.shape[1])])
    comps = comps * np.where(signs == 0, 1, signs)
    proj = (Xc @ comps.astype(np.float32)).astype(np.float32)
    out[:, : proj.shape[1]] = proj
    return out


def _umap_2d(X: np.ndarray, seed: int, fit_size: int) -> np.ndarray:
    import umap

    reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, len(X) - 1))
    if len(X) <= fit_size:
        return reducer.fit_transform(X).astype(np.float32)
    rng = np.random.default_rng(seed)
    fit = np.sort(rng.choice(len(X), size=fit_size, replace=False))
    out = np.empty((len(X), 2), np.float32)
    out[fit] = reducer.fit_transform(X[fit])
    rest = np.setdiff1d(np.arange(len(X)), fit)
    for start in range(0, len(rest), 50_000):
        chunk = rest[start : start + 50_000]
        out[chunk] = reducer.transform(X[chunk])
    return out


def map_key(label_field: str) -> str:
    """Run key under which the map of ``label_field`` is stored."""
    return f"label_map_{label_field}"


def compute_label_map(
    sample_collection,
    label_field: str,
    embedding_attr: str = "embedding",
    method: str = "auto",
    seed: int = 0,
) -> dict:
    """Projects the embeddings of the collection's labels and stores them.

    Labels without the attribute are left off the map. The run (key
    :func:`map_key`) replaces an earlier map of the same field.

    Args:
        sample_collection: a dataset or view (its labels are mapped)
        label_field: a label list field, e.g. ``"autolabels"``
        embedding_attr: the label attribute holding the vector
        method: ``"auto"``, ``"umap"`` or ``"pca"``
        seed: random seed

    Returns:
        summary dict: ``run_key``, ``method``, ``num_labels``, ``dim``

    Raises:
        ValueError: for a bad field, method, or when no label has an
            embedding
    """
    if method not in METHODS:
        raise ValueError(f"Parameter 'method' must be one of {METHODS}; got {method!r}")
    list_path = label_list_path(sample_collection, label_field)
    sample_ids, label_ids, X = bulk.read_label_vectors(sample_collection, list_path, embedding_attr)
    if not label_ids:
        raise ValueError(
            f"No label of field {label_field!r} has an '{embedding_attr}' attribute; run "
            "compute_label_embeddings first"
        )
    xy, used = project_2d(X, method=method, seed=seed)
    dataset = root_dataset(sample_collection)
    key = map_key(label_field)
    if dataset.has_run(key):
        dataset.delete_run(key)
    config = dataset.init_run(
        stoplight_method=METHOD_NAME,
        label_field=label_field,
        embedding_attr=embedding_attr,
        method=used,
        requested_method=method,
        seed=seed,
        num_labels=len(label_ids),
        dim=int(X.shape[1]),
        created_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds"),
    )
    dataset.register_run(key, config)
    results = dataset.init_run_results(
        key,
        label_ids=list(label_ids),
        sample_ids=list(sample_ids),
        x=np.round(xy[:, 0].astype(np.float64), 5).tolist(),
        y=np.round(xy[:, 1].astype(np.float64), 5).tolist(),
    )
    dataset.save_run_results(key, results, overwrite=True)
    return dict(run_key=key, method=used, num_labels=len(label_ids), dim=int(X.shape[1]))


def load_label_map(dataset, label_field: str) -> dict | None:
    """The stored map of ``label_field`` or None when there is none.

    Returns:
        dict with ``label_ids`` and ``sample_ids`` (``(N,)`` str arrays),
        ``xy`` (``(N, 2)`` float32), ``method``, ``num_labels``,
        ``created_at`` and ``priority`` (``(N,)`` fixed random draw used to
        choose which points to show)
    """
    key = map_key(label_field)
    if not dataset.has_run(key):
        return None
    config = dataset.get_run_info(key).config
    if getattr(config, "stoplight_method", None) != METHOD_NAME:
        return None
    stamp = (dataset_id(dataset), key, getattr(config, "created_at", None))
    if stamp in _CACHE:
        return _CACHE[stamp]
    results = provenance.load_run_results(dataset, key, cache=False)
    label_ids = np.asarray(results.label_ids, dtype=object)
    out = dict(
        label_ids=label_ids,
        sample_ids=np.asarray(results.sample_ids, dtype=object),
        xy=np.c_[np.asarray(results.x, np.float32), np.asarray(results.y, np.float32)],
        method=config.method,
        num_labels=len(label_ids),
        created_at=getattr(config, "created_at", None),
        priority=np.random.default_rng(getattr(config, "seed", 0)).random(len(label_ids)),
    )
    # one map per field is kept: a recomputed map replaces the old entry
    for old in [k for k in _CACHE if k[:2] == stamp[:2]]:
        del _CACHE[old]
    _CACHE[stamp] = out
    return out


def label_states(sample_collection, label_field: str) -> dict[str, np.ndarray]:
    """Id, class, queue and review state of every label in the collection
    (one aggregation; queue None as ``"unassigned"``, review as in
    :func:`..shared.queue_stats.count_labels`).

    Returns:
        dict of aligned ``(N,)`` object arrays ``label_id``, ``label``,
        ``queue``, ``review``
    """
    list_path = label_list_path(sample_collection, label_field)
    lab = f"$_l.{list_path.split('.', 1)[1]}"
    pipeline = [
        {"$project": {"_l": f"${label_field}"}},
        {"$unwind": lab},
        {"$project": {"_id": 0, "i": f"{lab}._id", "l": f"{lab}.label", "q": f"{lab}.queue", "r": f"{lab}.review"}},
    ]
    ids, labels, queues, reviews = [], [], [], []
    for d in aggregate_view(sample_collection, pipeline):
        ids.append(str(d["i"]))
        labels.append(d.get("l"))
        q = d.get("q")
        queues.append(q if q in QUEUES else UNASSIGNED)
        r = d.get("r")
        reviews.append(review_state(r))
    arr = lambda v: np.asarray(v, dtype=object)  # noqa: E731
    return dict(label_id=arr(ids), label=arr(labels), queue=arr(queues), review=arr(reviews))


def join_map(label_map: dict, states: dict) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the map for the labels in ``states``.

    Returns:
        ``(map_rows, state_rows)``: aligned index arrays; labels of the view
        that are not on the map (no embedding, or added since) are left out
    """
    ids = label_map["label_ids"]
    if len(ids) == 0 or len(states["label_id"]) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(ids)
    sorted_ids = ids[order]
    want = states["label_id"]
    pos = np.searchsorted(sorted_ids, want)
    pos = np.minimum(pos, len(sorted_ids) - 1)
    hit = sorted_ids[pos] == want
    return order[pos[hit]], np.flatnonzero(hit)


def sample_per_group(groups: Sequence, priority: np.ndarray, max_per_group: int) -> np.ndarray:
    """Indices of at most ``max_per_group`` items of each group: those with
    the smallest ``priority``. Sorted ascending.

    Args:
        groups: ``(N,)`` group of each item (hashable values)
        priority: ``(N,)`` floats; a fixed random draw gives a stable
            uniform sample per group
        max_per_group: cap per group (>= 1)
    """
    if not isinstance(max_per_group, (int, np.integer)) or max_per_group < 1:
        raise ValueError(f"Parameter 'max_per_group' must be an integer >= 1; got {max_per_group!r}")
    groups = np.asarray(groups, dtype=object)
    priority = np.asarray(priority, dtype=np.float64)
    if len(groups) != len(priority):
        raise ValueError(f"groups and priority differ in length: {len(groups)} vs {len(priority)}")
    if len(groups) == 0:
        return np.zeros(0, np.int64)
    _, codes = np.unique(groups.astype(str), return_inverse=True)
    order = np.lexsort((priority, codes))
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return np.sort(order[rank < max_per_group])


def group_colors(values: Sequence, color_by: str) -> dict:
    """Colour of each group value: fixed for queues and review states,
    Plotly's palette in sorted order for classes."""
    if color_by == "queue":
        return {v: QUEUE_COLORS.get(v, "#9e9e9e") for v in values}
    if color_by == "review":
        return {v: REVIEW_COLORS.get(v, "#9e9e9e") for v in values}
    return {v: CLASS_PALETTE[i % len(CLASS_PALETTE)] for i, v in enumerate(sorted(values, key=str))}


def map_traces(
    xy: np.ndarray,
    label_ids: Sequence[str],
    groups: Sequence,
    priority: np.ndarray,
    color_by: str = "queue",
    max_per_group: int = MAX_PER_GROUP,
    gl_threshold: int = GL_THRESHOLD,
    selected: set | None = None,
) -> list[dict]:
    """Plotly scatter traces, one per colour, of a per-colour sample.

    With ``selected`` (label ids, e.g. a lasso the grid now shows), those
    points are drawn highlighted and the others dimmed (Plotly's
    ``selectedpoints``), so the map keeps showing what was selected after
    it is redrawn.

    Args:
        xy: ``(N, 2)`` coordinates
        label_ids: ``(N,)`` label ids (each point's ``ids`` entry: what a
            click or a lasso reports back)
        groups: ``(N,)`` colour value of each point
        priority: ``(N,)`` fixed random draw (see :func:`sample_per_group`)
        color_by: ``"queue"``, ``"class"`` or ``"review"``
        max_per_group: points drawn per colour at most
        gl_threshold: above this many drawn points, WebGL traces
        selected: label ids to highlight

    Returns:
        list of trace dicts; each ``name`` reads ``"<value> (shown/total)"``
    """
    if color_by not in COLOR_BY:
        raise ValueError(f"Parameter 'color_by' must be one of {COLOR_BY}; got {color_by!r}")
    groups = np.asarray([str(g) if g is not None else "(none)" for g in groups], dtype=object)
    label_ids = np.asarray(label_ids, dtype=object)
    keep = sample_per_group(groups, priority, max_per_group)
    uniq, counts = np.unique(groups, return_counts=True) if len(groups) else ([], [])
    total_of = dict(zip(uniq, counts))
    values = list(uniq)
    if color_by == "queue":
        order = {"green": 0, "yellow": 1, "red": 2, "unassigned": 3}
        values.sort(key=lambda v: (order.get(v, 9), v))
    colors = group_colors(values, color_by)
    kind = "scattergl" if len(keep) > gl_threshold else "scatter"
    traces = []
    kept_groups = groups[keep]
    for v in values:
        idx = keep[kept_groups == v]
        trace = dict(
            type=kind,
            mode="markers",
            name=f"{v} ({len(idx):,}/{int(total_of[v]):,})",
            x=np.round(xy[idx, 0].astype(np.float64), 4).tolist(),
            y=np.round(xy[idx, 1].astype(np.float64), 4).tolist(),
            ids=label_ids[idx].tolist(),
            marker=dict(color=colors[v], size=6, opacity=0.8),
            hovertemplate=f"{v}<extra></extra>",
        )
        if selected:
            trace.update(
                selectedpoints=[k for k, i in enumerate(trace["ids"]) if i in selected],
                selected=dict(marker=dict(size=9, opacity=1.0)),
                unselected=dict(marker=dict(opacity=0.12)),
            )
        traces.append(trace)
    return traces
