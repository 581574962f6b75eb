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

import datetime
import hashlib
import logging
from typing import Any

from ..common import provenance
from ..common.identity import Identity, as_identity
from . import decisions
from .decisions import HUMAN_DECISIONS, QUEUES, label_list_path
from .tool_config import public_url, same_host

logger = logging.getLogger(__name__)

#: prefix of the Stoplight run that records a hand-off
RUN_PREFIX = "handoff_"
#: answers read from the tool differ from what was sent when a box
#: coordinate moved more than this (relative to the image size)
DEFAULT_MOVE_TOLERANCE = 0.002


def handoff_run_key(anno_key: str) -> str:
    """Key of the Stoplight run that records the hand-off ``anno_key``."""
    return f"{RUN_PREFIX}{anno_key}"


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

    dataset = sample_collection._root_dataset
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


def handoff_backend(dataset, anno_key: str) -> str | None:
    """The annotation backend a hand-off was sent to (None if ``anno_key``
    is no hand-off of this dataset)."""
    run_key = handoff_run_key(anno_key)
    if not isinstance(anno_key, str) or not dataset.has_run(run_key):
        return None
    return getattr(dataset.get_run_info(run_key).config, "backend", None)


def load_review_answers(
    sample_collection,
    anno_key: str,
    user: "str | Identity | None" = None,
    corrections_field: str | None = None,
    dest_field: str | None = None,
    move_tolerance: float = DEFAULT_MOVE_TOLERANCE,
    cleanup: bool = False,
    assume_all_answered: bool = False,
    loaded_by: "str | Identity | None" = None,
    expect_host: str | None = None,
    **credentials: Any,
) -> dict:
    """Loads the reviewer's answers of a hand-off as review decisions.

    See the module docstring for how each answer becomes a decision. Only
    samples the reviewer answered count. Label Studio says which: tasks with
    a submitted (not skipped) annotation. Other backends (CVAT) return the
    tool's current labels for every sent sample, answered or not, and an
    untouched label would read as "kept"; so for them pass
    ``assume_all_answered=True``, once the review there is complete.

    Args:
        sample_collection: the dataset (or a view of it) that was sent
        anno_key: the key given to :func:`send_for_review`
        user: the reviewer recorded on the decisions; default
            ``"<backend>:<anno_key>"`` (identity source ``annotation-tool``)
        corrections_field: where relabeled, moved and drawn boxes go;
            default ``<label_field>_corrections``
        dest_field: keep the answers as FiftyOne loads them in this
            ``fo.Detections`` field (replaced on every load) instead of a
            temporary field that is deleted afterwards; for Label Studio,
            unanswered tasks show their pre-annotations there
        move_tolerance: a box counts as moved when a coordinate changed by
            more than this fraction of the image size
        cleanup: delete the project/tasks in the tool after loading
        assume_all_answered: count every sent sample as answered (needed
            for backends other than Label Studio)
        loaded_by: who loads them (recorded with the load); default the
            OS user
        expect_host: load only if the hand-off was sent to this URL's
            server (the App passes its configured one: its credentials
            never go to another host)
        **credentials: e.g. ``url`` and ``api_key`` (Label Studio),
            ``username`` and ``password`` (CVAT), when not in FiftyOne's
            annotation config

    Returns:
        summary dict: ``anno_key``, ``user``, ``label_field``,
        ``corrections_field``, ``num_sent``, ``num_answered_samples``,
        ``num_unanswered`` (labels), ``num_accepted``, ``num_rejected``,
        ``num_corrected``, ``num_added``, ``num_unchanged`` (already decided
        by this hand-off the same way), ``num_conflicts``, ``num_missing``
        (deleted from the dataset since), ``conflicts`` (one dict per label
        decided in Stoplight since it was sent: ``label_id``,
        ``sample_id``, ``answer``, ``review``, ``reviewed_by``),
        ``accept_action_id``, ``reject_action_id``

    Raises:
        ValueError: for an unknown ``anno_key``, one not sent by
            :func:`send_for_review`, or bad fields or tolerance
    """
    import fiftyone as fo

    dataset = sample_collection._root_dataset
    if not isinstance(anno_key, str) or anno_key not in dataset.list_annotation_runs():
        raise ValueError(
            f"Unknown annotation key {anno_key!r} on dataset '{dataset.name}'; "
            f"annotation runs: {dataset.list_annotation_runs()}"
        )
    run_key = handoff_run_key(anno_key)
    if not dataset.has_run(run_key):
        raise ValueError(
            f"Annotation run {anno_key!r} was not sent by send_for_review (no run {run_key!r}); "
            "load it with dataset.load_annotations() instead"
        )
    config = dataset.get_run_info(run_key).config
    stored = provenance.load_run_results(dataset, run_key)
    label_field, backend = config.label_field, config.backend
    sent: dict[str, list] = dict(stored.sent)
    loads: list[dict] = list(getattr(stored, "loads", None) or [])
    who = as_identity(user) if user else Identity(f"{backend}:{anno_key}", "annotation-tool")
    user = who.name
    loader = as_identity(loaded_by)
    if expect_host is not None:
        sent_to = getattr(dataset.get_annotation_info(anno_key).config, "url", None)
        if not same_host(sent_to, expect_host):
            raise ValueError(
                f"Hand-off {anno_key!r} was sent to another {backend} server than the one this server is "
                "configured for; its answers are loaded only from that server (from Python, with its URL "
                "and credentials)"
            )
    if (
        isinstance(move_tolerance, bool)
        or not isinstance(move_tolerance, (int, float))
        or not 0 <= move_tolerance < 1
    ):
        raise ValueError(f"Parameter 'move_tolerance' must be a number in [0, 1); got {move_tolerance!r}")
    corrections_field = corrections_field or f"{label_field}_corrections"
    previous_dest = {load.get("dest_field") for load in loads}
    for name, what in ((corrections_field, "corrections_field"), (dest_field, "dest_field")):
        if name is None:
            continue
        if not isinstance(name, str) or not name.isidentifier() or name == label_field:
            raise ValueError(f"Parameter {what!r} must be a plain field name other than {label_field!r}; got {name!r}")
        field = dataset.get_field(name)
        if field is not None and getattr(field, "document_type", None) is not fo.Detections:
            raise ValueError(f"Field {name!r} exists and is not an fo.Detections field; choose another {what!r}")
    if dest_field is not None and dataset.has_field(dest_field) and dest_field not in previous_dest:
        raise ValueError(
            f"Field {dest_field!r} already exists and holds no answers of {anno_key!r}; choose a new 'dest_field'"
        )
    if dest_field == corrections_field:
        raise ValueError("Parameters 'dest_field' and 'corrections_field' must differ")
    if backend != "labelstudio" and not assume_all_answered:
        raise ValueError(
            f"Backend {backend!r} does not say which samples a reviewer finished, and an untouched label "
            "would read as kept (accepted): pass assume_all_answered=True once the review there is complete"
        )

    with provenance.RESULTS_LOCK:
        results = dataset.load_annotation_results(anno_key, **credentials)
    sent_samples = set(_sample_of(sent).values())
    answered = sent_samples if assume_all_answered else _answered_samples(results, sent_samples)

    answers_field = dest_field or f"stoplight_answers_{anno_key}"
    try:
        if dataset.has_field(answers_field):
            # ours: a temporary field of a load that died, or this
            # hand-off's own dest_field, replaced on every load
            dataset.delete_sample_field(answers_field)
        dataset.load_annotations(anno_key, dest_field=answers_field, unexpected="ignore", **credentials)
        answers = _read_answers(dataset, answers_field, sorted(answered))
    finally:
        if dest_field is None and dataset.has_field(answers_field):
            dataset.delete_sample_field(answers_field)

    plan = _plan(sent, answered, answers, move_tolerance)
    list_path = label_list_path(dataset, label_field)
    current = decisions.read_label_states(dataset, list_path, list(sent))
    summary = dict(
        anno_key=anno_key, user=user, label_field=label_field, corrections_field=corrections_field,
        num_sent=len(sent), num_answered_samples=len(answered), num_unanswered=plan["unanswered"],
        num_accepted=0, num_rejected=0, num_corrected=0, num_added=0, num_unchanged=0,
        num_conflicts=0, num_missing=0, conflicts=[], accept_action_id=None, reject_action_id=None,
    )
    to_decide: dict[str, list[str]] = {"accept": [], "reject": []}
    blocked: set[str] = set()
    for lid, answer in plan["answers"].items():
        info = current.get(lid)
        if info is None:
            summary["num_missing"] += 1
            blocked.add(lid)
            continue
        state = info["state"]
        if state["review"] in HUMAN_DECISIONS and state["reviewed_by"] != user:
            summary["num_conflicts"] += 1
            summary["conflicts"].append(
                dict(label_id=lid, sample_id=info["sample_id"], answer=answer,
                     review=state["review"], reviewed_by=state["reviewed_by"])
            )
            blocked.add(lid)
        elif state["review"] == decisions.ACTIONS[answer] and state["reviewed_by"] == user:
            summary["num_unchanged"] += 1
        else:
            to_decide[answer].append(lid)

    source = dict(backend=backend, anno_key=anno_key, url=public_url(config.url))
    for action, ids in to_decide.items():
        if ids:
            # protect="others": a decision someone makes in Stoplight after
            # the read above (up to this write) is kept, and reported
            out = decisions.review_labels(dataset, label_field, action, label_ids=ids, user=who, source=source,
                                          protect="others")
            summary[f"{action}_action_id"] = out["action_id"]
            lost = set(out["conflicts"])
            if lost:
                to_decide[action] = [i for i in ids if i not in lost]
                blocked |= lost
                summary["num_conflicts"] += len(lost)
                fresh = decisions.read_label_states(dataset, list_path, sorted(lost))
                summary["conflicts"].extend(
                    dict(label_id=lid, sample_id=info["sample_id"], answer=action,
                         review=info["state"]["review"], reviewed_by=info["state"]["reviewed_by"])
                    for lid, info in fresh.items()
                )
    summary["num_accepted"] = len(to_decide["accept"])
    summary["num_rejected"] = len(to_decide["reject"])

    corrections = [c for c in plan["corrections"] if c["source_id"] not in blocked]
    summary["num_corrected"] = sum(c["source_id"] is not None for c in corrections)
    summary["num_added"] = sum(c["source_id"] is None for c in corrections)
    _write_corrections(dataset, corrections_field, label_field, anno_key, user, answered, corrections, blocked)

    loads.append(
        dict(
            at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            user=user,
            loaded_by=loader.name,
            loaded_by_source=loader.source,
            dest_field=dest_field,
            **{k: v for k, v in summary.items() if k.startswith("num_") or k.endswith("_action_id")},
            conflicts=summary["conflicts"],
        )
    )
    _save_loads(dataset, run_key, stored, loads)
    if cleanup:
        results.cleanup()
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


def _sample_of(sent: dict[str, list]) -> dict[str, str]:
    return {lid: v[0] for lid, v in sent.items()}


def _answered_samples(results, sent_samples: set[str]) -> set[str]:
    """Ids of the sent samples answered in Label Studio.

    FiftyOne's Label Studio download returns the pre-annotations of tasks
    nobody annotated as if they were answers, which would read as "kept";
    so only tasks with a submitted, not skipped annotation count.
    """
    api = results.connect_to_api()
    # FiftyOne's API wrapper holds the SDK's client; it has no public
    # accessor for task states
    project = api._client.get_project(results.project_id)
    tasks = project.get_tasks(selected_ids=list(results.uploaded_tasks))
    answered = set()
    for task in tasks:
        if any(not a.get("was_cancelled") for a in task.get("annotations") or []):
            answered.add(results.uploaded_tasks[task["id"]])
    return answered & sent_samples


def _read_answers(dataset, field: str, sample_ids: list[str]) -> dict[str, list]:
    """``{sample_id: [fo.Detection, ...]}`` loaded into ``field``."""
    if not sample_ids:
        return {}
    ids, dets = dataset.select(sample_ids).values(["id", f"{field}.detections"])
    return {sid: list(d or []) for sid, d in zip(ids, dets)}


def _plan(sent: dict, answered: set[str], answers: dict[str, list], tol: float) -> dict:
    """The decision (``accept``/``reject``) for each answered sent label and
    the corrections, from what was sent and what came back."""
    out: dict[str, Any] = dict(answers={}, corrections=[], unanswered=0)
    sent_ids = set(sent)
    for lid, (sid, label, box) in sent.items():
        if sid not in answered:
            out["unanswered"] += 1
            continue
        back = {d.id: d for d in answers.get(sid, [])}
        if lid not in back:
            out["answers"][lid] = "reject"
            continue
        d = back[lid]
        relabeled = d.label != label
        moved = max(abs(a - b) for a, b in zip(d.bounding_box, box)) > tol
        if not relabeled and not moved:
            out["answers"][lid] = "accept"
            continue
        out["answers"][lid] = "reject"
        change = "+".join(c for c, on in (("relabel", relabeled), ("move", moved)) if on)
        out["corrections"].append(
            dict(sample_id=sid, source_id=lid, label=d.label, box=list(d.bounding_box), change=change)
        )
    for sid in answered:
        for d in answers.get(sid, []):
            if d.id not in sent_ids:
                out["corrections"].append(
                    dict(sample_id=sid, source_id=None, label=d.label, box=list(d.bounding_box), change="added")
                )
    return out


def _correction_id(anno_key: str, c: dict) -> str:
    """Deterministic id: the same answer gives the same label on re-load."""
    if c["source_id"] is not None:
        key = f"{anno_key}:{c['source_id']}:{c['label']}:{[round(x, 4) for x in c['box']]}"
    else:
        key = f"{anno_key}:{c['sample_id']}:added:{c['label']}:{[round(x, 4) for x in c['box']]}"
    return hashlib.sha1(f"stoplight-correction:{key}".encode()).hexdigest()[:24]


def _write_corrections(dataset, field, label_field, anno_key, user, answered, corrections, blocked) -> None:
    """Replaces this hand-off's corrections on the answered samples (keeping
    those of labels in conflict, and every other label of the field)."""
    import fiftyone as fo

    if not corrections and not dataset.has_field(field):
        return
    if not dataset.has_field(field):
        dataset.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    by_sample: dict[str, list[dict]] = {}
    for c in corrections:
        by_sample.setdefault(c["sample_id"], []).append(c)
    sample_ids = sorted(answered)
    if not sample_ids:
        return
    ids, existing = dataset.select(sample_ids).values(["id", field])
    now = decisions.now_ms()
    updates = {}
    for sid, old in zip(ids, existing):
        old_dets = list(old.detections) if old is not None else []
        keep = [d for d in old_dets if _attr(d, "anno_key") != anno_key or _attr(d, "source_id") in blocked]
        old_by_id = {d.id: d for d in old_dets}
        new = []
        for c in by_sample.get(sid, []):
            cid = _correction_id(anno_key, c)
            if cid in old_by_id:  # the same answer as last time: keep it as is
                new.append(old_by_id[cid])
                continue
            d = fo.Detection(
                label=c["label"], bounding_box=c["box"], source_field=label_field, source_id=c["source_id"],
                change=c["change"], anno_key=anno_key, review="accepted", reviewed_by=user, reviewed_at=now,
            )
            d.id = cid
            new.append(d)
        final = keep + new
        if [d.id for d in final] != [d.id for d in old_dets]:
            updates[sid] = fo.Detections(detections=final)
    if updates:
        dataset.set_values(field, updates, key_field="id")


def _attr(label, name: str):
    return label[name] if label.has_field(name) else None


def _save_loads(dataset, run_key: str, stored, loads: list[dict]) -> None:
    """Appends a load to the hand-off run: its results keep every load,
    its config the time and counts of the last one."""
    config = dataset.get_run_info(run_key).config.serialize()
    for key in ("method", "cls", "type"):
        config.pop(key, None)
    last = loads[-1]
    config.update(last_loaded_at=last["at"], num_loads=len(loads),
                  **{f"last_{k}": v for k, v in last.items() if k.startswith("num_")})
    dataset.update_run_config(run_key, dataset.init_run(**config))
    kept = {k: v for k, v in stored.serialize().items() if k not in ("cls", "loads")}
    dataset.save_run_results(run_key, dataset.init_run_results(run_key, loads=loads, **kept), overwrite=True)
