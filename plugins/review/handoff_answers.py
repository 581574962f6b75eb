"""Answers of a hand-off brought back from the annotation tool.

:func:`load_review_answers` runs in stages: it opens the hand-off's run
record, fetches the reviewer's answers from the tool, matches them to the
labels that were sent, applies them as review decisions without
overwriting a human decision made in Stoplight since, writes the
corrections, and records the load on the run. See :mod:`.handoff` for how
each answer becomes a decision.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

from ..common import fo_private, provenance
from ..common.identity import Identity, as_identity
from ..common.label_vocab import HUMAN_DECISIONS
from . import decisions
from .handoff_runs import handoff_run_key
from .label_states import label_list_path
from .tool_config import public_url, same_host

#: answers read from the tool differ from what was sent when a box
#: coordinate moved more than this (relative to the image size)
DEFAULT_MOVE_TOLERANCE = 0.002

__all__ = ["DEFAULT_MOVE_TOLERANCE", "load_review_answers"]


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

    See :mod:`.handoff` for how each answer becomes a decision. Only
    samples the reviewer answered count. Label Studio says which: tasks with
    a submitted (not skipped) annotation. Other backends (CVAT) return the
    tool's current labels for every sent sample, answered or not, and an
    untouched label would read as "kept"; so for them pass
    ``assume_all_answered=True``, once the review there is complete.

    Args:
        sample_collection: the dataset (or a view of it) that was sent
        anno_key: the key given to :func:`.handoff.send_for_review`
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
            :func:`.handoff.send_for_review`, or bad fields or tolerance
    """
    dataset = fo_private.root_dataset(sample_collection)
    run = _open_handoff(dataset, anno_key)
    label_field, backend = run["label_field"], run["backend"]
    who = as_identity(user) if user else Identity(f"{backend}:{anno_key}", "annotation-tool")
    user = who.name
    loader = as_identity(loaded_by)
    _check_host(dataset, anno_key, backend, expect_host)
    _check_tolerance(move_tolerance)
    corrections_field = corrections_field or f"{label_field}_corrections"
    _check_fields(dataset, anno_key, run, corrections_field, dest_field, assume_all_answered)

    sent = run["sent"]
    results, answered, answers = _fetch_answers(dataset, anno_key, sent, dest_field, assume_all_answered,
                                                credentials)
    plan = _plan(sent, answered, answers, move_tolerance)
    list_path = label_list_path(dataset, label_field)
    summary = dict(
        anno_key=anno_key, user=user, label_field=label_field, corrections_field=corrections_field,
        num_sent=len(sent), num_answered_samples=len(answered), num_unanswered=plan["unanswered"],
        num_accepted=0, num_rejected=0, num_corrected=0, num_added=0, num_unchanged=0,
        num_conflicts=0, num_missing=0, conflicts=[], accept_action_id=None, reject_action_id=None,
    )
    to_decide, blocked = _match_to_labels(dataset, list_path, sent, plan["answers"], user, summary)
    source = dict(backend=backend, anno_key=anno_key, url=public_url(run["config"].url))
    blocked |= _apply_answers(dataset, label_field, list_path, to_decide, who, source, summary)

    corrections = [c for c in plan["corrections"] if c["source_id"] not in blocked]
    summary["num_corrected"] = sum(c["source_id"] is not None for c in corrections)
    summary["num_added"] = sum(c["source_id"] is None for c in corrections)
    _write_corrections(dataset, corrections_field, label_field, anno_key, user, answered, corrections, blocked)

    _record_load(dataset, run, summary, user, loader, dest_field)
    if cleanup:
        results.cleanup()
    return summary


def _open_handoff(dataset, anno_key: str) -> dict:
    """The hand-off's run record: ``run_key``, ``config``, ``label_field``,
    ``backend``, ``stored`` (the run's results), ``sent`` (``{label_id:
    [sample_id, label, box]}``) and ``loads`` (the earlier loads)."""
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
    return dict(
        run_key=run_key, config=config, label_field=config.label_field, backend=config.backend, stored=stored,
        sent=dict(stored.sent), loads=list(getattr(stored, "loads", None) or []),
    )


def _check_host(dataset, anno_key: str, backend: str, expect_host: str | None) -> None:
    """Refuses a hand-off sent to another server than ``expect_host``'s."""
    if expect_host is None:
        return
    sent_to = getattr(dataset.get_annotation_info(anno_key).config, "url", None)
    if not same_host(sent_to, expect_host):
        raise ValueError(
            f"Hand-off {anno_key!r} was sent to another {backend} server than the one this server is "
            "configured for; its answers are loaded only from that server (from Python, with its URL "
            "and credentials)"
        )


def _check_tolerance(move_tolerance) -> None:
    if (
        isinstance(move_tolerance, bool)
        or not isinstance(move_tolerance, (int, float))
        or not 0 <= move_tolerance < 1
    ):
        raise ValueError(f"Parameter 'move_tolerance' must be a number in [0, 1); got {move_tolerance!r}")


def _check_fields(dataset, anno_key: str, run: dict, corrections_field: str, dest_field: str | None,
                  assume_all_answered: bool) -> None:
    """Validates the fields :func:`load_review_answers` writes, and that the
    backend says which samples were answered (or the caller vouches)."""
    import fiftyone as fo

    label_field, backend = run["label_field"], run["backend"]
    previous_dest = {load.get("dest_field") for load in run["loads"]}
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


def _fetch_answers(dataset, anno_key: str, sent: dict[str, list], dest_field: str | None,
                   assume_all_answered: bool, credentials: dict) -> tuple[Any, set[str], dict[str, list]]:
    """FiftyOne's annotation results, the answered sent samples and their
    answers (``{sample_id: [fo.Detection, ...]}``), loaded from the tool
    into ``dest_field`` or a temporary field deleted afterwards."""
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
    return results, answered, answers


def _match_to_labels(dataset, list_path: str, sent: dict[str, list], answers: dict[str, str], user: str,
                     summary: dict) -> tuple[dict[str, list[str]], set[str]]:
    """Sorts the answers by the labels' current state: the label ids to
    accept and to reject, and those blocked (deleted since, or decided in
    Stoplight by someone else: counted in ``summary``). A label this
    hand-off already decided the same way counts as unchanged."""
    current = decisions.read_label_states(dataset, list_path, list(sent))
    to_decide: dict[str, list[str]] = {"accept": [], "reject": []}
    blocked: set[str] = set()
    for lid, answer in answers.items():
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
    return to_decide, blocked


def _apply_answers(dataset, label_field: str, list_path: str, to_decide: dict[str, list[str]], who: Identity,
                   source: dict, summary: dict) -> set[str]:
    """Records the accept and reject decisions; a label someone decided in
    Stoplight between the read and this write keeps that decision (counted
    in ``summary``). Returns the ids of those labels."""
    lost_all: set[str] = set()
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
                lost_all |= lost
                summary["num_conflicts"] += len(lost)
                fresh = decisions.read_label_states(dataset, list_path, sorted(lost))
                summary["conflicts"].extend(
                    dict(label_id=lid, sample_id=info["sample_id"], answer=action,
                         review=info["state"]["review"], reviewed_by=info["state"]["reviewed_by"])
                    for lid, info in fresh.items()
                )
    summary["num_accepted"] = len(to_decide["accept"])
    summary["num_rejected"] = len(to_decide["reject"])
    return lost_all


def _record_load(dataset, run: dict, summary: dict, user: str, loader: Identity, dest_field: str | None) -> None:
    """Appends this load, with its counts and who loaded it, to the run."""
    loads = run["loads"]
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
    _save_loads(dataset, run["run_key"], run["stored"], loads)


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
