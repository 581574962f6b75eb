"""Hand-off of a triage queue to an annotation tool, and its answers back.

:func:`send_for_review` sends the open labels of a queue (by default the
yellow labels nobody decided yet) to Label Studio, CVAT or any other
FiftyOne annotation backend through FiftyOne's own annotation API
(``view.annotate(...)``): each label becomes a pre-annotation the reviewer
can keep, delete, relabel or move. :func:`load_review_answers` brings the
answers back with FiftyOne's ``load_annotations`` into a temporary field
and turns them into review decisions through :mod:`.decisions`, so the
audit log, the ``review`` / ``reviewed_by`` / ``reviewed_at`` attributes and
undo work exactly as for decisions made in the App:

========================== ================================================
answer                     outcome
========================== ================================================
label kept unchanged       ``accepted``
label deleted              ``rejected``
class changed / box moved  ``rejected``; the corrected label is stored in
                           ``corrections_field`` (see below)
box drawn by the reviewer  stored in ``corrections_field``
sample not answered yet    nothing (the labels stay pending)
========================== ================================================

Corrections are new labels, never edits of the auto-label: the auto-label
keeps its box, class and scores (the triage learns from its rejection), and
``<label_field>_corrections`` (an ``fo.Detections`` field) gets one label
per correction with ``source_field``, ``source_id`` (the corrected label;
None for a drawn box), ``change`` (``relabel``, ``move``, ``relabel+move``
or ``added``), ``anno_key``, ``review`` (``accepted``: a person drew it),
``reviewed_by`` and ``reviewed_at``. Their ids are derived from the
annotation key and what they correct, so re-loading writes the same labels.
``finalize_labels(dataset, "<label_field>_corrections", ...)`` copies them
to a final field of their own.

Human decisions are never overwritten: a label someone accepted or
rejected in Stoplight after it was sent is left alone and reported in
``conflicts``. A decision made in the milliseconds between a load reading
a label's state and writing its own is kept too (the load's write is a
compare-and-set, see :mod:`.decisions`), and reported in ``conflicts``. Loading again is idempotent: labels already decided by this
hand-off with the same answer are not written again; an answer the
reviewer changed in the tool since the last load replaces the hand-off's
own earlier decision (and only that).

Sending is here; loading the answers is :mod:`.handoff_answers`, and the
run that records a hand-off :mod:`.handoff_runs` (both importable from
here).

Provenance: the annotation run is in FiftyOne's annotation runs registry
(``dataset.list_annotation_runs()``, key ``anno_key``); Stoplight records
a custom run ``handoff_<anno_key>`` (``dataset.list_runs()``) with the
parameters, the labels sent (as sent) and every load with its counts and
who loaded it; each decision is logged with ``user = "<backend>:<anno_key>"``
(identity source ``annotation-tool``) and ``source = {"backend",
"anno_key", "url"}`` in the audit log. No credential is stored anywhere:
URLs are kept without user info, query or fragment, API keys and passwords
only reach FiftyOne's annotation backend (which keeps them out of its run
documents). From the App, the tool's URL and credentials come from the
server's configuration only (:mod:`.tool_config`).
"""

from __future__ import annotations

import logging
from typing import Any

from ..common import fo_private, provenance
from ..common.identity import as_identity
from .decisions import HUMAN_DECISIONS, QUEUES, label_list_path
from .handoff_answers import DEFAULT_MOVE_TOLERANCE, load_review_answers
from .handoff_runs import RUN_PREFIX, handoff_backend, handoff_run_key
from .tool_config import public_url

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MOVE_TOLERANCE", "RUN_PREFIX", "handoff_backend", "handoff_run_key", "load_review_answers",
    "send_for_review",
]


def send_for_review(
    sample_collection,
    label_field: str,
    anno_key: str,
    queue: str | None = "yellow",
    backend: str = "labelstudio",
    limit: int | None = None,
    classes: list[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    user: str | None = None,
    launch_editor: bool = False,
    **backend_kwargs: Any,
) -> dict:
    """Sends the undecided labels of a queue to an annotation tool.

    The labels sent are those of ``label_field`` in the collection whose
    ``queue`` is ``queue`` and whose ``review`` is not a human decision;
    with ``limit``, only the first ``limit`` of them in ``review_rank``
    order (1 = look first; labels without a rank last). Their samples are
    uploaded with FiftyOne's ``annotate()`` and these labels as editable
    pre-annotations; the tool offers every class of the field (plus
    ``classes``) for relabeling.

    Args:
        sample_collection: a dataset or view of image samples
        label_field: an ``fo.Detections`` field with triage queues
        anno_key: the annotation run key (a new, valid identifier)
        queue: the queue to send (``green``, ``yellow``, ``red``), or None
            for every undecided label
        backend: a FiftyOne annotation backend, e.g. ``"labelstudio"`` or
            ``"cvat"``
        limit: send at most this many labels (the first by ``review_rank``)
        classes: extra classes the reviewer may choose
        url: the tool's URL (default: FiftyOne's annotation config)
        api_key: Label Studio API key (default: FiftyOne's annotation
            config, e.g. ``FIFTYONE_LABELSTUDIO_API_KEY``)
        user: who sends them (recorded); default the OS user
        launch_editor: open the tool in a browser
        **backend_kwargs: more backend parameters, e.g. ``username`` and
            ``password`` for CVAT, ``project_name``

    Returns:
        summary dict: ``anno_key``, ``run_key``, ``backend``,
        ``label_field``, ``queue``, ``num_samples``, ``num_labels``,
        ``classes``

    Raises:
        ValueError: for a bad parameter, an ``anno_key`` in use, or when
            there is no label to send
    """
    import fiftyone as fo
    from fiftyone import ViewField as F

    dataset = fo_private.root_dataset(sample_collection)
    label_list_path(dataset, label_field)  # validates the field
    if dataset.get_field(label_field).document_type is not fo.Detections:
        raise ValueError(f"Field {label_field!r} must be an fo.Detections field to send it for review")
    if sample_collection.media_type != "image":
        raise ValueError(f"Only image samples can be sent; the view has media type {sample_collection.media_type!r}")
    _check_anno_key(anno_key)
    if anno_key in dataset.list_annotation_runs() or dataset.has_run(handoff_run_key(anno_key)):
        raise ValueError(
            f"Annotation key {anno_key!r} is already used on dataset '{dataset.name}'; choose another "
            "or delete it (dataset.delete_annotation_run / dataset.delete_run)"
        )
    if queue is not None and queue not in QUEUES:
        raise ValueError(f"Parameter 'queue' must be one of {QUEUES} or None; got {queue!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"Parameter 'limit' must be a positive integer or None; got {limit!r}")
    if not isinstance(backend, str) or not backend:
        raise ValueError(f"Parameter 'backend' must be an annotation backend name; got {backend!r}")
    extra = _check_classes(classes)

    undecided = ~F("review").is_in(list(HUMAN_DECISIONS))
    match = undecided if queue is None else (F("queue") == queue) & undecided
    view = sample_collection.filter_labels(label_field, match, only_matches=True)
    ids, ranks = _label_values(view, label_field, ["id", "review_rank"])
    if not ids:
        raise ValueError(
            f"No undecided labels{f' in queue {queue!r}' if queue else ''} in field {label_field!r} of the view; "
            "nothing to send (run assign_queues first?)"
        )
    if limit is not None and limit < len(ids):
        order = sorted(range(len(ids)), key=lambda i: (ranks[i] is None, ranks[i] if ranks[i] is not None else 0))
        chosen = [ids[i] for i in order[:limit]]
        view = view.select_labels(ids=chosen, fields=label_field)
    sample_ids, sent = _snapshot(view, label_field)

    # every class of the field, so that the reviewer can relabel to any
    all_classes = sorted(set(dataset.distinct(f"{label_field}.detections.label")) | set(extra))
    label_schema = {label_field: {"type": "detections", "classes": all_classes, "attributes": False}}
    credentials = {k: v for k, v in dict(url=url, api_key=api_key).items() if v is not None}
    if backend == "labelstudio":
        # the project's title says where it came from (Label Studio adds a
        # timestamp if it is taken); Label Studio refuses titles over 50 characters
        backend_kwargs.setdefault("project_name", f"stoplight_{dataset.name}_{anno_key}"[:50])
    try:
        view.annotate(
            anno_key,
            backend=backend,
            label_schema=label_schema,
            launch_editor=launch_editor,
            **credentials,
            **backend_kwargs,
        )
    except Exception:
        # FiftyOne registers the run before uploading: a failed upload
        # must not leave a half-made run that blocks the key
        if anno_key in dataset.list_annotation_runs():
            try:
                dataset.delete_annotation_run(anno_key)
            except Exception:  # noqa: BLE001 (the upload's error matters)
                logger.warning("Could not delete the failed annotation run %r", anno_key, exc_info=True)
        raise

    run_key = handoff_run_key(anno_key)
    sender = as_identity(user)
    record = provenance.start_run(
        dataset, run_key, method="send_for_review", anno_key=anno_key, backend=backend,
        url=public_url(url or getattr(dataset.get_annotation_info(anno_key).config, "url", None)),
        label_field=label_field, queue=queue, limit=limit, classes=all_classes,
        sent_by=sender.name, sent_by_source=sender.source,
    )
    summary = dict(
        anno_key=anno_key, run_key=run_key, backend=backend, label_field=label_field, queue=queue,
        num_samples=len(sample_ids), num_labels=len(sent), classes=all_classes,
    )
    provenance.finish_run(dataset, run_key, record, dict(summary, sent=sent, loads=[]))
    return summary


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _check_anno_key(anno_key) -> None:
    if not isinstance(anno_key, str) or not anno_key.isidentifier():
        raise ValueError(f"Parameter 'anno_key' must be a valid identifier (letters, digits, _); got {anno_key!r}")


def _check_classes(classes) -> list[str]:
    if classes is None:
        return []
    if isinstance(classes, str) or not all(isinstance(c, str) and c.strip() for c in classes):
        raise ValueError(f"Parameter 'classes' must be a list of non-empty class names; got {classes!r}")
    return list(classes)


def _label_values(view, label_field: str, attrs: list[str]) -> list[list]:
    cols = view.values([f"{label_field}.detections.{a}" for a in attrs])
    return [[v for per_sample in col if per_sample for v in per_sample] for col in cols]


def _snapshot(view, label_field: str) -> tuple[list[str], dict[str, list]]:
    """Sample ids and ``{label_id: [sample_id, label, box]}`` of the labels
    as they are sent (what the reviewer sees)."""
    sample_ids, dets = view.values(["id", f"{label_field}.detections"])
    sent = {}
    for sid, per_sample in zip(sample_ids, dets):
        for d in per_sample or []:
            sent[d.id] = [sid, d.label, list(d.bounding_box)]
    return sample_ids, sent
