"""The queue assignment run: score every label with a stored calibration,
write its queue, and order the yellow queue for review.

Attributes written on ``{label_field}.detections`` (a public contract, see
:mod:`.workflow`): ``queue``, ``p_correct`` and ``review_rank``; labels
that carry a human decision are never written.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..common import bulk, fo_private, label_attrs, label_graph, provenance
from ..common.app_colors import set_queue_colors
from ..common.fields import check_detections_field
from ..common.label_docs import prepare_label_docs
from ..common.label_vocab import BULK_ATTR, DEFAULT_LABEL_FIELD, HUMAN_DECISIONS, is_decided
from ..common.progress import Progress, sdk_function
from . import calibration as cal_mod
from . import model, queues
from .calibrate_run import load_calibration
from .label_arrays import flatten, read_labels
from .report import CENTS_PER_BOX, SECONDS_PER_BOX, USD_PER_GPU_HOUR, build_report
from .stored_report import labeling_gpu_hours
from .verified_recall import calibration_recall

QUEUE_ATTRS = label_attrs.TRIAGE_ATTRS
#: samples per bulk write (progress granularity)
WRITE_CHUNK = 5000

__all__ = ["QUEUE_ATTRS", "WRITE_CHUNK", "assign_queues", "iter_assign_queues"]


def iter_assign_queues(
    sample_collection,
    label_field: str = DEFAULT_LABEL_FIELD,
    calibration_key: str = "triage",
    diversity_attr: str | None = "embedding",
    num_groups: int = 16,
    run_key: str | None = None,
    graph_k: int = label_graph.DEFAULT_K,
    seconds_per_box: float = SECONDS_PER_BOX,
    cents_per_box: float = CENTS_PER_BOX,
    usd_per_gpu_hour: float = USD_PER_GPU_HOUR,
    gpu_hours: float | None = None,
) -> Iterator[Progress]:
    """Writes ``queue``, ``p_correct`` and ``review_rank`` on every label.

    Written once as a generator: ``iter_assign_queues`` yields :class:`Progress`
    events (operators forward them to the App) and returns the summary;
    ``assign_queues`` runs it to its end and returns the summary
    (:func:`..common.progress.sdk_function`).

    Labels with a human decision keep everything they have. Yellow labels
    get ``review_rank``: most informative first, interleaved across classes
    and (when ``diversity_attr`` embeddings exist) ``num_groups`` embedding
    clusters per run.

    Example usage::

        from fiftyone import ViewField as F
        from stoplight.plugins.triage.workflow import assign_queues

        summary = assign_queues(ds, "autolabels", calibration_key="triage")
        ds.filter_labels("autolabels", F("queue") == "yellow").sort_by(
            F("autolabels.detections.review_rank").min())

    Args:
        sample_collection: the labels to triage (a dataset or view)
        label_field: the auto-labels
        calibration_key: the :func:`calibrate_triage` run to apply
        diversity_attr: label attribute with embeddings for diverse review
            order (None: classes only)
        num_groups: embedding clusters for the review order
        run_key: key of this run's record; None generates one
        graph_k: neighbours per yellow label in the review graph from which
            answers re-rank the queue (``diversity_attr`` embeddings; 0:
            no graph, answers do not re-rank)
        seconds_per_box: review time per yellow label (report)
        cents_per_box: price of drawing a box by hand (report)
        usd_per_gpu_hour: GPU price (report)
        gpu_hours: GPU time of the labeling; None sums the wall time of the
            ``zero_shot_detect`` runs on ``label_field``
        progress: ``assign_queues`` only: progress bar (True), none (False), or a callable

    Returns:
        the summary with counts per queue and ``report`` (see
        :func:`.report.build_report`)
    """
    check_detections_field(sample_collection, label_field, "label_field")
    dataset = fo_private.view_dataset(sample_collection)
    calibration = load_calibration(dataset, calibration_key)
    run_key = run_key or provenance.new_run_key(f"{label_field}_queues")
    yield Progress(0, 1, "Reading labels")
    labels, p, q = _score(sample_collection, label_field, calibration, calibration_key)
    n = len(labels["label_id"])
    decided = is_decided(labels["review"])
    free = ~decided
    rank, yellow, graph_rows = _review_order(sample_collection, label_field, labels, p, q, free, diversity_attr,
                                             num_groups)

    # what an audit would certify beyond this green (kept on the run record,
    # which the panel reads; the plan needs the scores computed here)
    from .green_audit import DEFAULT_MAX_CHECKS, plan_for

    audit_plan = plan_for(calibration, p, q, free, calibration["target_precision"],
                          calibration["confidence_level"], DEFAULT_MAX_CHECKS) if n else None
    record = provenance.start_run(
        dataset, run_key, method="assign_queues", label_field=label_field,
        calibration_key=calibration_key, diversity_attr=diversity_attr, num_groups=num_groups,
        audit_plan=audit_plan,
    )
    status = "failed"
    written = 0
    try:
        label_attrs.declare_label_attrs(dataset, f"{label_field}.detections", ("queue", "p_correct", "review_rank"))
        total = max(int(free.sum()), 1)
        for written in _write_queues(sample_collection, label_field, labels, free, q, p, rank):
            yield Progress(written, total, "Writing queues")
        yield Progress(written, total, "Preparing the review")
        summary_graph = _prepare_review(dataset, label_field, labels, yellow, p, rank, graph_rows, graph_k)
        status = "completed"
    except (GeneratorExit, KeyboardInterrupt):
        status = "interrupted"
        raise
    finally:
        counts = {f"num_{name}": int(((q == name) & free).sum()) for name in queues.QUEUES}
        summary = dict(
            run_key=run_key, status=status, calibration_key=calibration_key, label_field=label_field,
            num_labels=n, num_written=written, num_human_decided=int(decided.sum()), **counts,
        )
        if status == "completed":
            summary["review_graph"] = summary_graph
        provenance.finish_run(dataset, run_key, record, summary)
    summary["report"] = _report(sample_collection, label_field, calibration, calibration_key, labels, p, q,
                                decided, dict(seconds_per_box=seconds_per_box, cents_per_box=cents_per_box,
                                              usd_per_gpu_hour=usd_per_gpu_hour, gpu_hours=gpu_hours))
    summary["report"]["audit_plan"] = audit_plan
    summary["report"]["recall"] = calibration_recall(
        sample_collection, label_field, calibration_key, calibration, summary["report"]["workload"]["seconds_per_box"])
    return summary


assign_queues = sdk_function(iter_assign_queues, "assign_queues", progress=False)


def _score(sample_collection, label_field: str, calibration: dict,
           calibration_key: str) -> tuple[dict, np.ndarray, np.ndarray]:
    """Every label of the view read (:func:`.label_arrays.read_labels`),
    with its cross-fitted P(correct) and its queue."""
    dataset = fo_private.view_dataset(sample_collection)
    labels = read_labels(sample_collection, label_field, calibration["signals"])
    n = len(labels["label_id"])
    x = model.prepare_features(labels, calibration["signals"])
    folds = model.fold_of(labels["sample_id"].tolist(), calibration["folds"])
    p = cal_mod.score_labels(calibration, x, labels["label"].tolist(), folds) if n else np.zeros(0)
    q = queues.assign(calibration, p, labels["label"], folds) if n else np.zeros(0, dtype=object)
    # labels an audit certified stay green (the audit's certificate covers them)
    from .green_audit import certified_label_ids

    audited = certified_label_ids(dataset, label_field, calibration_key) if n else set()
    if audited:
        q[np.fromiter((str(v) in audited for v in labels["label_id"]), dtype=bool, count=n)] = queues.GREEN
    return labels, p, q


def _review_order(sample_collection, label_field: str, labels: dict, p: np.ndarray, q: np.ndarray,
                  free: np.ndarray, diversity_attr: str | None, num_groups: int):
    """``review_rank`` of the open yellow labels (None elsewhere), their
    positions, and ``(positions in yellow, embeddings)`` of those with an
    embedding for the review graph (None without embeddings)."""
    dataset = fo_private.view_dataset(sample_collection)
    rank = np.full(len(labels["label_id"]), None, dtype=object)
    yellow = np.nonzero(free & (q == queues.YELLOW))[0]
    groups = labels["label"][yellow].astype(str)
    graph_rows = None  # (positions in `yellow`, their embeddings) for the review graph
    if len(yellow) and diversity_attr and dataset.has_field(f"{label_field}.detections.{diversity_attr}"):
        _, lids, emb = bulk.read_label_vectors(sample_collection, f"{label_field}.detections", diversity_attr)
        if len(lids):
            pos = {lid: i for i, lid in enumerate(lids)}
            rows = np.array([pos.get(str(l), -1) for l in labels["label_id"][yellow]])
            cluster = np.full(len(yellow), -1)
            have = rows >= 0
            if have.any():
                cluster[have] = queues.embedding_groups(emb[rows[have]], num_groups)
                graph_rows = (np.nonzero(have)[0], emb[rows[have]])
            groups = np.char.add(np.char.add(groups, "|"), cluster.astype(str))
    rank[yellow] = queues.review_rank(p[yellow], groups)
    return rank, yellow, graph_rows


def _write_queues(sample_collection, label_field: str, labels: dict, free: np.ndarray, q: np.ndarray,
                  p: np.ndarray, rank: np.ndarray) -> Iterator[int]:
    """Writes queue, P(correct) and rank of the undecided labels,
    :data:`WRITE_CHUNK` samples per bulk write; yields the number of labels
    written so far after each."""
    idx = np.nonzero(free)[0]
    sids = labels["sample_id"][idx]
    boundaries = np.r_[0, np.flatnonzero(sids[1:] != sids[:-1]) + 1, len(idx)]
    n_samples = len(boundaries) - 1
    written = 0
    for c0 in range(0, n_samples, WRITE_CHUNK):
        a, b = boundaries[c0], boundaries[min(c0 + WRITE_CHUNK, n_samples)]
        part = idx[a:b]
        bulk.write_label_attrs(
            sample_collection, f"{label_field}.detections", labels["sample_id"][part],
            labels["label_id"][part],
            {"queue": q[part].tolist(), "p_correct": [round(float(v), 6) for v in p[part]],
             "review_rank": [None if r is None else int(r) for r in rank[part]]},
            owned=QUEUE_ATTRS,
            # a label a person decides while this run computes is left
            # alone: checked by MongoDB in the write itself
            unless={"review": HUMAN_DECISIONS},
        )
        written += len(part)
        yield written


def _report(sample_collection, label_field: str, calibration: dict, calibration_key: str, labels: dict,
            p: np.ndarray, q: np.ndarray, decided: np.ndarray, report_params: dict) -> dict:
    """The report (:func:`.report.build_report`) of the labels as triaged;
    labels with a human decision keep their stored queue in it."""
    dataset = fo_private.view_dataset(sample_collection)
    stored = read_labels(sample_collection, label_field, ["queue", "p_correct"]) if decided.any() else None
    final_q = q.copy()
    final_p = p.copy()
    in_bulk = None
    if stored is not None:
        final_q[decided] = stored["queue"][decided]
        final_p[decided] = stored["p_correct"][decided]
        if sample_collection.has_field(f"{label_field}.detections.{BULK_ATTR}"):
            in_bulk = flatten(sample_collection.values(f"{label_field}.detections.{BULK_ATTR}"))
    return build_report(
        calibration, labels["label"], final_q, final_p, labels["review"], bulk=in_bulk,
        **{**report_params, "gpu_hours": report_params["gpu_hours"] or labeling_gpu_hours(dataset, label_field)},
    )


def _prepare_review(dataset, label_field: str, labels: dict, yellow: np.ndarray, p: np.ndarray, rank: np.ndarray,
                    graph_rows, graph_k: int) -> dict:
    """What the review needs after queues are written: the labels laid out
    for the App and snapshotted, the field coloured by queue, and the
    yellow labels' review graph (replacing that of every label assigned)."""
    prepare_label_docs(dataset, f"{label_field}.detections", np.unique(labels["sample_id"]).tolist())
    set_queue_colors(dataset, label_field)
    if graph_rows is None or graph_k < 1:
        return dict(num_labels=0, num_edges=0, seconds=0.0)
    pos, emb = graph_rows
    at = yellow[pos]
    return label_graph.build_label_graph(
        dataset, label_field, labels["label_id"][at], labels["sample_id"][at], labels["label"][at],
        p[at], rank[at].astype(np.int64), emb, replace_ids=labels["label_id"], k=graph_k,
    )
