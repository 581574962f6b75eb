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

This module holds the run (:func:`iter_score_labels`, :func:`score_labels`);
its stages are in :mod:`.score_stages`, the reference matching in
:mod:`.reference` (names re-exported here).
"""

from __future__ import annotations

import functools
import logging
from typing import Callable, Iterator, Sequence

from ..common.fields import check_detections_field, check_other_detections_field
from ..common.limits import check_int
from ..common.progress import Progress, sdk_function
from ..common import fo_private, label_attrs, provenance
from ..common.label_vocab import DEFAULT_LABEL_FIELD
from .reference import (  # noqa: F401  (re-exported: imported from here by callers)
    mistakenness_from_matches,
    possible_missing_field,
    possible_spurious_field,
)
from .score_stages import (  # noqa: F401  (latest_embeddings_run re-exported)
    LabelTable,
    ScoreResults,
    class_score_signals,
    consensus_signal,
    embedding_signals,
    latest_embeddings_run,
    per_class_stats,
    read_embeddings,
    read_labels,
    reference_signals,
    uncertainty_signal,
    write_scores,
)
from .score_vectors import CLIP_LOGIT_SCALE, SCORES_KINDS, clip_scores  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

#: float label attributes this module may write (the one list is in
#: :mod:`..common.label_attrs`, with every attribute no writer may take)
SCORE_ATTRS = label_attrs.SCORE_ATTRS

#: progress steps of a run: reading, four signal stages, writing (then done)
_STAGES = 6


def iter_score_labels(
    sample_collection,
    label_field: str = DEFAULT_LABEL_FIELD,
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
    """Scores every auto-label of ``label_field`` with the available signals.

    Written once as a generator: ``iter_score_labels`` yields :class:`Progress`
    events (operators forward them to the App) and returns the summary;
    ``score_labels`` runs it to its end with a progress bar and returns the summary
    (:func:`..common.progress.sdk_function`).

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
        progress: ``score_labels`` only: a progress bar (``True``), nothing (``False``), or a
            callable receiving :class:`Progress` events

    Returns:
        the run summary: counts, per-class means, notes on skipped signals,
        dataset difficulty and per-class RER (with embeddings), timings
    """
    consensus_fields = _check_params(
        sample_collection, label_field, reference_field, iou, spurious_confidence, scores_attr,
        scores_kind, embeddings_attr, consensus_fields, consensus_iou, k,
    )
    dataset = fo_private.view_dataset(sample_collection)
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
    out = ScoreResults()
    yield Progress(0, _STAGES, "Reading labels")
    with out.timed("read_s"):
        table = read_labels(sample_collection, label_field, scores_attr, scores_kind, out)

    run_key = run_key or provenance.new_run_key(f"{label_field}_scores")
    record = provenance.start_run(
        dataset, run_key, method="score_labels", num_labels=table.n,
        num_samples=len(table.sample_ids), **params
    )
    summary = functools.partial(_summary, run_key, label_field, reference_field, table, out)
    with provenance.recorded_run(dataset, run_key, record, summary) as run:
        yield Progress(1, _STAGES, "Class-score signals")
        with out.timed("class_scores_s"):
            embs = read_embeddings(sample_collection, table, label_field, embeddings_attr, out)
            class_score_signals(
                table, embs, out, label_field, scores_attr,
                has_consensus=bool(consensus_fields), has_reference=bool(reference_field), rer=rer,
            )
        yield Progress(2, _STAGES, "Matching against the reference")
        sample_counts = None
        with out.timed("reference_s"):
            if reference_field:
                sample_counts = reference_signals(
                    sample_collection, table, out, label_field, reference_field, iou,
                    spurious_confidence,
                )
        yield Progress(3, _STAGES, "Embedding signals")
        with out.timed("embedding_signals_s"):
            embedding_signals(table, embs, out, embeddings_attr, k, rer, device)
        yield Progress(4, _STAGES, "Consensus")
        with out.timed("consensus_s"):
            consensus_signal(sample_collection, table, out, consensus_fields, consensus_iou)
        uncertainty_signal(table, out)
        yield Progress(5, _STAGES, "Writing scores")
        with out.timed("write_s"):
            written = write_scores(sample_collection, table, out, label_field, sample_counts)
        out.counts["num_scored_labels"] = table.n
        out.extra["per_class"] = per_class_stats(table, out)
        out.extra["signals"] = written
        yield Progress(_STAGES, _STAGES, f"Scored {table.n} labels")
    for note in out.notes:
        logger.info("score_labels: %s", note)
    return run.summary


def _summary(
    run_key: str,
    label_field: str,
    reference_field: str | None,
    table: LabelTable,
    out: ScoreResults,
    status: str,
) -> dict:
    """The run summary (also stored in the run record)."""
    return dict(
        run_key=run_key,
        status=status,
        label_field=label_field,
        reference_field=reference_field or None,
        num_labels=table.n,
        num_samples=len(table.sample_ids),
        **out.counts,
        **out.extra,
        notes=out.notes,
        timings={k_: round(v, 4) for k_, v in out.timings.items()},
    )


def _check_params(
    sample_collection,
    label_field: str,
    reference_field: str | None,
    iou: float,
    spurious_confidence: float,
    scores_attr: str,
    scores_kind: str,
    embeddings_attr: str,
    consensus_fields: Sequence[str] | str | None,
    consensus_iou: float,
    k: int,
) -> list[str]:
    """Checks the parameters of :func:`score_labels`.

    Returns:
        ``consensus_fields`` as a list (a string is split at commas and
        spaces)

    Raises:
        ValueError: for a parameter out of its range or a field that is
            missing, not ``fo.Detections``, or the scored field itself
    """
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
        check_other_detections_field(sample_collection, reference_field, "reference_field", label_field)
    for f in consensus_fields:
        if f == label_field:
            raise ValueError("Parameter 'consensus_fields' must not contain 'label_field'")
        check_detections_field(sample_collection, f, "consensus_fields")
    return consensus_fields


score_labels = sdk_function(iter_score_labels, "score_labels")
