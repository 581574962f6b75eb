"""Audit of a candidate green set on FiftyOne views: ``audit_green``.

The FiftyOne edge of :mod:`.acceptance`. The first call plans the audit
from the calibration alone (nested candidate sets of undecided labels),
draws its random sample, records everything as a run (key ``audit_key``)
and marks the sampled labels with ``audit_rank`` (1 = ask first). People
answer through any review path (``review_labels`` accept / reject, the
panels, an annotation tool); each later call reads their answers from the
labels' ``review`` attribute and tells where the audit stands. Once a set
is certified its undecided labels are written ``queue = "green"``; labels a
person decided keep their decision.

Answers: ``accepted`` counts as correct; ``rejected`` (and any other human
decision, e.g. a correction) as wrong; a sampled label that no longer
exists counts as wrong (conservative). A bulk decision (``review_bulk``:
a whole queue accepted at once) answers nothing: nobody looked. Only the drawn sample counts: a
decision on another candidate label changes nothing in the bound.

What is stored (run ``audit_key``): the config holds the parameters, the
plan (thresholds, sizes, planned sample), the seed, the sample (label and
sample ids, set level of each, in draw order), the latest answers and
state; the run results hold the full candidate list (label ids, sample
ids, set levels), needed only to write the certified labels.
"""

from __future__ import annotations

import datetime
import secrets
from typing import Sequence

import numpy as np

from ..common import bulk, fo_private, heartbeats, provenance
from ..common.fields import check_detections_field
from ..common.label_attrs import declare_label_attrs
from ..common.label_vocab import BULK_ATTR, DEFAULT_LABEL_FIELD, HUMAN_DECISIONS
from . import acceptance, model, queues
from . import calibration as cal_mod
from .audit_runs import CORRECT, MAX_CHECKS, UNDECIDED, check_audit_params, check_same_audit, load_audit_config
from .workflow import load_calibration, read_labels

METHOD = "audit_green"
#: the label attribute that orders the audit's questions (1 = first)
RANK_ATTR = "audit_rank"
#: an audit is proposed only when it is expected to add at least this many
#: green labels per answer asked (less: not worth a person's time)
MIN_GAIN_PER_ANSWER = 0.5
DEFAULT_MAX_CHECKS = 300
METHOD_TEXT = (
    "acceptance sampling: one uniform random sample without replacement of the largest candidate set; "
    "each nested set certified by an exact hypergeometric single sampling plan at the full error "
    "probability, tested from the smallest set up (fixed-sequence, no multiplicity correction); "
    "sample fixed before the first answer, so stopping and resuming is safe"
)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def audit_green(
    sample_collection,
    label_field: str = DEFAULT_LABEL_FIELD,
    calibration_key: str | None = None,
    audit_key: str = "audit",
    target_precision: float | None = None,
    confidence_level: float | None = None,
    max_checks: int | None = None,
    restart: bool = False,
    seed: int | None = None,
) -> dict:
    """Starts or continues the audit of a candidate green set.

    The first call (or ``restart=True``) chooses the candidate sets from
    the calibration ``calibration_key`` and the undecided labels of
    ``label_field`` in the view, draws the sample and stores the audit as
    run ``audit_key``; later calls read the answers people gave and report
    (and, once certified, apply) the result. See :mod:`.acceptance` for the
    statistics. Example usage::

        from stoplight.plugins.triage.green_audit import audit_green

        result = audit_green(ds, "autolabels", max_checks=300)
        # ... people accept or reject result["pending"] (review_labels) ...
        result = audit_green(ds, "autolabels")
        print(result["status"], result["candidates"], result["lower_bound"])

    Args:
        sample_collection: the labels that may become green (a dataset or view)
        label_field: the auto-labels
        calibration_key: the :func:`.workflow.calibrate_triage` run whose
            P(correct) ranks the candidates (default ``"triage"``; a
            continuing audit keeps its own)
        audit_key: run key of the audit; calling again continues it
        target_precision: precision to certify (default: the calibration's)
        confidence_level: probability that the certificate holds (default:
            the calibration's)
        max_checks: most answers the audit may ask for (default 300)
        restart: discard the audit under ``audit_key`` and draw a new one
            (its answers stay on the labels as human decisions)
        seed: seed of the random sample (default: a fresh random one; it is
            recorded either way)

    Returns:
        ``status`` (``needs_answers`` | ``certified`` | ``not_certifiable``),
        ``pending`` (``[{"sample_id", "label_id"}]`` still to answer, in the
        order to ask), ``checked`` and ``correct`` (answers counted so far),
        ``candidates`` (size of the set the status is about), ``lower_bound``
        (exact lower confidence bound on the certified set's precision, or
        None), ``target_precision``, ``confidence_level``, and
        ``certified_labels`` (labels made green), ``sets`` (per nested set:
        its threshold, size, sample, answers, wrong, allowed wrong and
        state), ``planned_checks``, ``audit_key``, ``statistics`` (the method) and
        ``message``
    """
    check_audit_params(audit_key, target_precision, confidence_level, max_checks)
    if str(label_field).startswith("frames."):
        # frame labels come in tracks, decided whole (review_tracks): an
        # audit of frames would count answers nobody gave (.track_audit)
        raise ValueError(f"Parameter 'label_field': audit_green audits image labels; {label_field!r} holds "
                         "video frame labels, which are audited per track (audit_tracks in triage.track_audit_run)")
    check_detections_field(sample_collection, label_field, "label_field")
    dataset = fo_private.view_dataset(sample_collection)
    dataset.reload()  # the audit may have been started or answered by another process
    existing = _load_config(dataset, audit_key)
    if existing is not None and restart:
        _clear_ranks(dataset, label_field, existing.get("sample_label_ids") or [], existing.get("sample_ids") or [])
        dataset.delete_run(audit_key)
        existing = None
    if existing is None:
        calibration_key = calibration_key or "triage"
        calibration = load_calibration(dataset, calibration_key)
        target = float(target_precision if target_precision is not None else calibration["target_precision"])
        confidence = float(confidence_level if confidence_level is not None else calibration["confidence_level"])
        config = _start(sample_collection, dataset, label_field, calibration_key, calibration, audit_key,
                        target, confidence, max_checks or DEFAULT_MAX_CHECKS, seed)
    else:
        config = existing
        check_same_audit(config, label_field=label_field, calibration_key=calibration_key,
                         target_precision=target_precision, confidence_level=confidence_level,
                         max_checks=max_checks)
    return _advance(dataset, audit_key, config)


def _load_config(dataset, audit_key: str) -> dict | None:
    return load_audit_config(dataset, audit_key, METHOD)


def plan_for(calibration: dict, p: np.ndarray, queue: np.ndarray, free: np.ndarray, target: float,
             confidence: float, max_checks: int) -> dict:
    """The audit plan (:func:`.acceptance.plan_audit`) for labels already
    scored: ``p`` their P(correct), ``queue`` their queue under the
    calibration, ``free`` whether nobody decided them. Adds
    ``expected_gain``: labels beyond the calibration's green that the plan
    expects to certify, on average."""
    fixed = free & (queue == queues.GREEN)
    vs, vy, vfixed = _verified(calibration)
    plan = acceptance.plan_audit(p[free], fixed[free], vs, vy, vfixed, target, 1.0 - confidence, max_checks)
    if plan["thresholds"]:
        prob = np.asarray(plan["certify_probability"])
        sizes = np.asarray(plan["sizes"])
        # the largest set's chance is the chance of the whole chain; the
        # expected size certified: each set weighed by P(certified exactly it)
        exactly = np.clip(np.r_[prob[0], prob[1:] - prob[:-1]] if len(prob) > 1 else prob, 0, 1)
        plan["expected_gain"] = round(float((exactly * (sizes - int(fixed.sum()))).sum()), 1)
        if plan["expected_gain"] < MIN_GAIN_PER_ANSWER * plan["sample"]:
            # e.g. the digits: 300 questions for ~2 more green labels
            gain, n = plan["expected_gain"], plan["sample"]
            plan.update(thresholds=[], sizes=[], sample=0, expected_precision=[], certify_probability=[],
                        reason=f"an audit of {n} answers would add about {gain:,.0f} green labels on average "
                               f"(fewer than {MIN_GAIN_PER_ANSWER} per answer): the calibration's green already "
                               "holds the labels worth certifying")
    plan["num_fixed_green"] = int(fixed.sum())
    plan["max_checks"] = int(max_checks)
    plan["target_precision"], plan["confidence_level"] = float(target), float(confidence)
    return plan


def _start(sample_collection, dataset, label_field, calibration_key, calibration, audit_key,
           target, confidence, max_checks, seed) -> dict:
    """Plans, draws and records a new audit; returns its config."""
    delta = 1.0 - confidence
    labels = read_labels(sample_collection, label_field, calibration["signals"])
    x = model.prepare_features(labels, calibration["signals"])
    folds = model.fold_of(labels["sample_id"].tolist(), calibration["folds"])
    n = len(labels["label_id"])
    p = cal_mod.score_labels(calibration, x, labels["label"].tolist(), folds) if n else np.zeros(0)
    q = queues.assign(calibration, p, labels["label"], folds) if n else np.zeros(0, dtype=object)
    free = np.array([r in UNDECIDED for r in labels["review"]], dtype=bool)
    fixed = free & (q == queues.GREEN)
    plan = plan_for(calibration, p, q, free, target, confidence, max_checks)
    seed = int(seed) if seed is not None else secrets.randbits(32)
    config = dict(
        audit_key=audit_key, label_field=label_field, calibration_key=calibration_key,
        calibration_started_at=getattr(dataset.get_run_info(calibration_key).config, "started_at", None),
        target_precision=target, confidence_level=confidence, max_checks=int(max_checks), seed=seed,
        statistics=METHOD_TEXT, plan=plan, thresholds=[], sizes=[], sample_label_ids=[], sample_ids=[],
        sample_levels=[], num_undecided=int(free.sum()), num_fixed_green=int(fixed.sum()),
    )
    candidates = dict(label_ids=[], sample_ids=[], levels=[])
    if plan["thresholds"]:
        idx = np.nonzero(free & (fixed | (p >= plan["thresholds"][0])))[0]
        # a stable order of the candidates, so the seed alone reproduces the draw
        idx = idx[np.argsort(labels["label_id"][idx].astype(str), kind="stable")]
        levels = np.zeros(len(idx), dtype=np.int64)
        for t in plan["thresholds"][1:]:
            levels += fixed[idx] | (p[idx] >= t)
        pos = acceptance.draw_sample(len(idx), plan["sample"], seed)
        levels, sizes, thresholds = _prune(levels, pos, plan, target, delta)
        config.update(
            thresholds=thresholds, sizes=sizes,
            sample_label_ids=[str(v) for v in labels["label_id"][idx[pos]]],
            sample_ids=[str(v) for v in labels["sample_id"][idx[pos]]],
            sample_levels=levels[pos].tolist(),
        )
        candidates = dict(label_ids=[str(v) for v in labels["label_id"][idx]],
                          sample_ids=[str(v) for v in labels["sample_id"][idx]], levels=levels.tolist())
    record = provenance.start_run(dataset, audit_key, method=METHOD, **config)
    # an audit waits for people, not for this process: no heartbeat (its
    # status leaves "running" as soon as the plan is stored)
    heartbeats.stop(dataset, audit_key)
    config.update(record)
    results = dataset.init_run_results(audit_key, candidates=candidates)
    dataset.save_run_results(audit_key, results, overwrite=True)
    config["ranks"] = _write_ranks(dataset, label_field, config)
    return config


def _verified(calibration: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled verified labels: cross-fitted scores, outcomes, and whether
    the calibration's green holds each."""
    ver = calibration["verified"]
    names = list(ver)
    vs = np.concatenate([np.asarray(ver[c]["scores"], dtype=np.float64) for c in names]) if names else np.zeros(0)
    vy = np.concatenate([np.asarray(ver[c]["correct"], dtype=bool) for c in names]) if names else np.zeros(0, bool)
    vf = np.concatenate([np.asarray(ver[c]["fold"], dtype=np.int64) for c in names]) if names else np.zeros(0, int)
    vl = np.concatenate([[c] * len(ver[c]["scores"]) for c in names]).astype(object) if names else np.zeros(0, object)
    vfixed = queues.assign(calibration, vs, vl, vf) == queues.GREEN if len(vs) else np.zeros(0, bool)
    return vs, vy, vfixed


def _prune(levels: np.ndarray, pos: np.ndarray, plan: dict, target: float, delta: float):
    """Drops the nested sets whose drawn sample can never certify them
    (known from the draw alone, before any answer), renumbering levels."""
    keep = []
    for j, size in enumerate(plan["sizes"]):
        m = int((levels[pos] >= j).sum())
        if acceptance.allowed_wrong(size, m, target, delta) >= 0:
            keep.append(j)
    new = np.full(len(levels), -1, dtype=np.int64)
    for r, j in enumerate(keep):
        new[levels >= j] = r
    # labels of dropped larger sets only: still candidates of nothing kept
    return new, [plan["sizes"][j] for j in keep], [plan["thresholds"][j] for j in keep]


def _answers(dataset, label_field: str, config: dict) -> list[bool | None]:
    """The answer of each sampled label, read from its ``review``."""
    lids, sids = config["sample_label_ids"], config["sample_ids"]
    if not lids:
        return []
    from fiftyone import ViewField as F

    view = dataset.select(sorted(set(sids))).filter_labels(
        label_field, F("_id").is_in([_oid(v) for v in lids]), only_matches=False
    )
    ids, reviews, bulks = view.values(
        [f"{label_field}.detections.id", f"{label_field}.detections.review", f"{label_field}.detections.{BULK_ATTR}"],
        unwind=True,
    )
    got = dict(zip(ids, zip(reviews, bulks)))
    out = []
    for lid in lids:
        if lid not in got:
            out.append(False)  # the label is gone: counted as wrong
            continue
        review, in_bulk = got[lid]
        # a bulk decision (a whole queue at once) is nobody's answer: the
        # question stays open until a person decides this label
        out.append(None if review in UNDECIDED or in_bulk else review in CORRECT)
    return out


def _oid(value: str):
    from bson import ObjectId

    return ObjectId(value)


def _advance(dataset, audit_key: str, config: dict, write: bool = True) -> dict:
    """Reads the answers, updates the state and (``write``) records it and
    applies a certificate."""
    label_field = config["label_field"]
    target, confidence = config["target_precision"], config["confidence_level"]
    delta = 1.0 - confidence
    answers = _answers(dataset, label_field, config)
    sizes = config["sizes"]
    if not sizes:
        state = dict(status="not_certifiable", certified=None, sets=[], ask=[])
    else:
        state = acceptance.audit_state(np.asarray(config["sample_levels"]), answers, sizes, target, delta)
    for s, t in zip(state["sets"], config["thresholds"]):
        s["threshold"] = None if t == float("inf") else round(float(t), 6)
    certified_labels = 0
    if state["certified"] is not None:
        if write:
            certified_labels = _apply(dataset, audit_key, config, state["certified"])
        else:
            certified_labels = int(state["sets"][state["certified"]]["size"])
    pending = [dict(sample_id=config["sample_ids"][i], label_id=config["sample_label_ids"][i])
               for i in state["ask"]]
    about = state["certified"] if state["status"] == "certified" else _focus(state)
    chosen = state["sets"][about] if about is not None and state["sets"] else None
    cert = state["sets"][state["certified"]] if state["certified"] is not None else None
    result = dict(
        status=state["status"],
        pending=pending,
        checked=int(chosen["answered"]) if chosen else 0,
        correct=int(chosen["answered"] - chosen["wrong"]) if chosen else 0,
        candidates=int(chosen["size"]) if chosen else 0,
        lower_bound=cert.get("lower_bound") if cert else None,
        target_precision=target,
        confidence_level=confidence,
        certified_labels=certified_labels,
        certified_set=state["certified"],
        sets=state["sets"],
        planned_checks=int(chosen["sample"]) if chosen else 0,
        audit_key=audit_key,
        label_field=label_field,
        calibration_key=config["calibration_key"],
        statistics=config["statistics"],
        plan=config["plan"],
        message=_message(state, config, pending),
    )
    if write:
        ranks = _write_ranks(dataset, label_field, config, keep=set(state["ask"]))
        _record(dataset, audit_key, dict(config, ranks=ranks), result, answers)
    return result


def _focus(state: dict) -> int | None:
    """The set a running audit is about: the largest one still open."""
    live = [j for j, s in enumerate(state["sets"]) if s["state"] == "open"]
    if live:
        return min(live)
    return state["certified"]


def _message(state: dict, config: dict, pending: list) -> str:
    target = config["target_precision"]
    if not config["sizes"]:
        return f"Nothing to audit: {config['plan'].get('reason', 'no candidate set')}."
    sets = state["sets"]
    if state["status"] == "certified":
        s = sets[state["certified"]]
        return (f"Certified: {s['size']} labels have precision >= {target:.0%} at "
                f"{config['confidence_level']:.0%} confidence ({s['wrong']} wrong of {s['sample']} checked; "
                f"lower bound {s['lower_bound']:.1%}).")
    if state["status"] == "not_certifiable":
        s = sets[-1]
        return (f"Not certifiable: even the smallest candidate set ({s['size']} labels) had {s['wrong']} "
                f"wrong of {s['answered']} checked; at most {s['allowed_wrong']} of {s['sample']} may be wrong "
                f"to certify {target:.0%}.")
    j = _focus(state)
    s = sets[j]
    done = f" ({sets[state['certified']]['size']} labels certified so far)" if state["certified"] is not None else ""
    return (f"Answer {len(pending)} more: {s['answered']} of {s['sample']} checked for a set of {s['size']} "
            f"labels, {s['wrong']} wrong (at most {s['allowed_wrong']} allowed){done}.")


def _record(dataset, audit_key: str, config: dict, result: dict, answers: Sequence) -> None:
    keys = ("status", "checked", "correct", "candidates", "lower_bound", "certified_labels",
            "certified_set", "planned_checks", "sets")
    config = dict(config, **{k: result[k] for k in keys})
    config.update(answers=[None if a is None else bool(a) for a in answers], updated_at=_now(),
                  ended_at=_now() if result["status"] != "needs_answers" else None)
    config.pop("stoplight_method", None)
    dataset.update_run_config(audit_key, dataset.init_run(stoplight_method=METHOD, **config))


def _apply(dataset, audit_key: str, config: dict, certified: int) -> int:
    """Writes ``queue = green`` on the undecided labels of the certified
    set (idempotent); returns how many labels the certified set holds."""
    results = provenance.load_run_results(dataset, audit_key, cache=False)
    cands = getattr(results, "candidates", None) or {}
    levels = np.asarray(cands.get("levels", []), dtype=np.int64)
    inside = np.nonzero(levels >= certified)[0]
    if not len(inside):
        return 0
    lids = np.asarray(cands["label_ids"], dtype=object)[inside]
    sids = np.asarray(cands["sample_ids"], dtype=object)[inside]
    label_field = config["label_field"]
    # only undecided labels, not green yet: the update filter is the label id
    # and the review state is checked on the labels read just now
    from fiftyone import ViewField as F

    view = dataset.select(sorted(set(sids.tolist()))).filter_labels(
        label_field, F("_id").is_in([_oid(v) for v in lids]), only_matches=False
    )
    vals = view.values([f"{label_field}.detections.id", f"{label_field}.detections.review",
                        f"{label_field}.detections.queue"], unwind=True)
    todo = {lid for lid, rev, q in zip(*vals) if rev in UNDECIDED and q != queues.GREEN}
    owner = dict(zip(lids.tolist(), sids.tolist()))
    ids = [lid for lid in lids.tolist() if lid in todo]
    if ids:
        declare_label_attrs(dataset, f"{label_field}.detections", ("queue", RANK_ATTR))
        bulk.write_label_attrs(dataset, f"{label_field}.detections", [owner[i] for i in ids],
                               ids, {"queue": [queues.GREEN] * len(ids)}, owned=("queue",),
                               # a decision made meanwhile is never written over
                               unless={"review": HUMAN_DECISIONS})
    return int(len(inside))


def _write_ranks(dataset, label_field: str, config: dict, keep: set | None = None) -> list:
    """``audit_rank`` (1 = ask first) on the sampled labels still to ask;
    None on the others (answered, or no longer needed). Written only when
    they changed since the last call; returns them."""
    lids, sids = config["sample_label_ids"], config["sample_ids"]
    if not lids:
        return []
    levels = np.asarray(config["sample_levels"])
    ask_order = np.argsort(-levels, kind="stable")  # smallest set first, draw order inside
    rank = [None] * len(lids)
    for r, i in enumerate(ask_order):
        if keep is None or int(i) in keep:
            rank[int(i)] = r + 1
    if rank != config.get("ranks"):
        declare_label_attrs(dataset, f"{label_field}.detections", ("queue", RANK_ATTR))
        bulk.write_label_attrs(dataset, f"{label_field}.detections", sids, lids, {RANK_ATTR: rank},
                               owned=(RANK_ATTR,))
    return rank


def _clear_ranks(dataset, label_field: str, lids: list, sids: list) -> None:
    if lids and dataset.has_field(f"{label_field}.detections.{RANK_ATTR}"):
        bulk.write_label_attrs(dataset, f"{label_field}.detections", sids, lids, {RANK_ATTR: [None] * len(lids)},
                               owned=(RANK_ATTR,))


def peek_audit(dataset, audit_key: str = "audit") -> dict | None:
    """Where an audit stands now (answers read from the labels), without
    writing anything: what the panel shows between decisions. A certified
    set is applied by the next :func:`audit_green` call. None when there is
    no audit under ``audit_key``. Reads the runs as ``dataset`` holds them:
    ``dataset.reload()`` first to see an audit another process started (the
    App server reloads on every request)."""
    config = _load_config(dataset, audit_key)
    if config is None:
        return None
    return _advance(dataset, audit_key, config, write=False)


def apply_certificate(dataset, label_field: str) -> bool:
    """Applies a certificate that answers given elsewhere (another panel, the
    SDK, an annotation tool) have earned but no :func:`audit_green` call has
    written yet. Returns whether it wrote."""
    key = find_audit(dataset, label_field)
    if key is None:
        return False
    config = _load_config(dataset, key)
    state = _advance(dataset, key, config, write=False)
    if state["certified_set"] is None or state["certified_set"] == config.get("certified_set"):
        return False
    _advance(dataset, key, config, write=True)
    return True


def find_audit(dataset, label_field: str) -> str | None:
    """Key of the newest audit of ``label_field`` (``"audit"`` first)."""
    return provenance.newest_run_key(provenance.stoplight_runs(dataset, METHOD, label_field=label_field),
                                     preferred=("audit",))


def certified_label_ids(dataset, label_field: str, calibration_key: str) -> set[str]:
    """Ids of the labels that audits of ``label_field`` certified under the
    calibration run ``calibration_key`` as it is now (an audit of an
    earlier run under the same key does not count: its candidates were
    chosen by another calibration)."""
    if not dataset.has_run(calibration_key):
        return set()
    started = getattr(dataset.get_run_info(calibration_key).config, "started_at", None)
    out: set[str] = set()
    audits = provenance.stoplight_runs(dataset, METHOD, label_field=label_field, calibration_key=calibration_key,
                                       calibration_started_at=started)
    for key, cfg in audits:
        level = getattr(cfg, "certified_set", None)
        if level is None:
            continue
        cands = getattr(provenance.load_run_results(dataset, key, cache=False), "candidates", None) or {}
        levels = np.asarray(cands.get("levels", []), dtype=np.int64)
        ids = np.asarray(cands.get("label_ids", []), dtype=object)
        out.update(ids[levels >= level].tolist())
    return out
