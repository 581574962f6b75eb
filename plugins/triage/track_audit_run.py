"""Audit of video tracks on FiftyOne datasets: ``audit_tracks``.

The FiftyOne edge of :mod:`.track_audit`. The first call collects the
tracks of a frame-level ``fo.Detections`` field (``track_labels`` writes one
``index`` per object along time; a track is the labels of one video with
one ``index``, as ``review_tracks`` decides them; a label without an
``index`` is a unit of its own), keeps as the lot the tracks nobody decided
yet, draws a uniform random sample of them and records everything as a run
(key ``audit_key``). People review the sampled tracks as wholes
(``review_tracks``: a decision on one frame decides the track); each later
call reads the decisions from the frame labels' ``review`` attribute and
tells where the audit stands.

Answers: a sampled track is answered when every one of its frame labels
carries a decision, correct when every one is ``accepted``; one rejected
(or corrected) frame makes it wrong; a track whose labels are all gone
counts as wrong (conservative). A bulk decision (``review_bulk``) answers
nothing: nobody looked.

What is certified is the track precision of the lot (share of tracks
correct on every frame), with the exact hypergeometric plan of
:mod:`.acceptance`. The audit writes nothing on the labels: it reads
decisions and records its state in the run's config (parameters, seed,
sample, answers, status, lower bound); the run results hold the lot.
"""

from __future__ import annotations

import datetime
import secrets

import numpy as np

from ..common import fo_private, heartbeats, provenance
from ..common.fields import check_detections_field
from ..common.label_vocab import BULK_ATTR
from . import acceptance, track_audit
from .audit_runs import CORRECT, MAX_CHECKS, UNDECIDED, check_audit_params, check_same_audit, load_audit_config

METHOD = "audit_tracks"
DEFAULT_MAX_CHECKS = 100
METHOD_TEXT = (
    "acceptance sampling over tracks: the lot is the undecided tracks (one video, one index), one uniform "
    "random sample of tracks without replacement drawn before any answer; a track is correct only when "
    "every frame label is accepted; exact hypergeometric single sampling plan on track precision"
)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _frame_field(track_field) -> str:
    if not track_field or not isinstance(track_field, str):
        raise ValueError(f"Parameter 'track_field' must name a frame field; got {track_field!r}")
    return track_field if track_field.startswith("frames.") else f"frames.{track_field}"


def _check(sample_collection, track_field, audit_key, target, confidence, max_checks) -> None:
    check_audit_params(audit_key, target, confidence, max_checks)
    if sample_collection.media_type != "video":
        raise ValueError(f"Parameter 'track_field': audit_tracks audits video frame labels; the collection "
                         f"holds {sample_collection.media_type!r} media (use audit_green for image labels)")
    check_detections_field(sample_collection, track_field, "track_field")


def read_track_labels(sample_collection, track_field: str) -> dict:
    """Every label of a frame-level tracks field in the collection.

    Args:
        sample_collection: a video dataset or view
        track_field: ``"frames.<field>"`` holding ``fo.Detections``

    Returns:
        dict of ``(n,)`` lists: ``sample_id``, ``frame_number``,
        ``label_id``, ``index`` (None outside a track), ``answer`` (True
        accepted, False another human decision, None undecided or decided
        in bulk) and ``decided`` (any decision, bulk ones too), in video
        then frame order
    """
    paths = [f"{track_field}.detections.{a}" for a in ("id", "index", "review")]
    has_bulk = sample_collection.has_field(f"{track_field}.detections.{BULK_ATTR}")
    if has_bulk:
        paths.append(f"{track_field}.detections.{BULK_ATTR}")
    sids, numbers, *cols = sample_collection.values(["id", "frames.frame_number", *paths])
    ids, indices, reviews = cols[:3]
    bulks = cols[3] if has_bulk else None
    out = dict(sample_id=[], frame_number=[], label_id=[], index=[], answer=[], decided=[])
    for v, sid in enumerate(sids):
        for f, number in enumerate(numbers[v] or []):
            for d, lid in enumerate(ids[v][f] or []):
                review = reviews[v][f][d]
                in_bulk = bulks[v][f][d] if bulks is not None else None
                index = indices[v][f][d]
                out["sample_id"].append(str(sid))
                out["frame_number"].append(int(number))
                out["label_id"].append(str(lid))
                out["index"].append(None if index is None else int(index))
                out["answer"].append(None if review in UNDECIDED or in_bulk else review in CORRECT)
                out["decided"].append(review not in UNDECIDED)
    return out


def _unit_keys(labels: dict) -> list:
    """Per label the key of its unit: ``(sample_id, index)`` for a track,
    ``(sample_id, None, label_id)`` for a label outside any track (stored
    as lists, so the keys survive the run config)."""
    return [(s, i) if i is not None else (s, None, lid)
            for s, i, lid in zip(labels["sample_id"], labels["index"], labels["label_id"])]


def audit_tracks(
    sample_collection,
    track_field: str = "frames.tracks",
    audit_key: str = "track_audit",
    target_precision: float | None = None,
    confidence_level: float | None = None,
    max_checks: int | None = None,
    restart: bool = False,
    seed: int | None = None,
) -> dict:
    """Starts or continues the audit of the undecided tracks of a video field.

    The first call (or ``restart=True``) takes as the lot the tracks of
    ``track_field`` in the view that nobody decided (no frame label with
    a decision, a bulk one included), draws ``min(max_checks, lot)`` of
    them uniformly at random and stores the audit as run ``audit_key``;
    later calls read the decisions people gave (``review_tracks``) and
    report the result. See
    :mod:`.track_audit` for the statistics. Example usage::

        from stoplight.plugins.triage.track_audit_run import audit_tracks
        from stoplight.plugins.review.tracks import review_tracks

        result = audit_tracks(video_ds, "frames.tracks", target_precision=0.9, max_checks=60)
        for track in result["pending"]:
            # a person looks at the track and decides it whole
            review_tracks(video_ds, "frames.tracks", "accept", [track["label_id"]], user="ana")
        result = audit_tracks(video_ds, "frames.tracks")
        print(result["status"], result["lower_bound"])

    Args:
        sample_collection: a video dataset or view
        track_field: the frame-level tracks field (``"frames.tracks"``;
            ``"tracks"`` means the same)
        audit_key: run key of the audit; calling again continues it
        target_precision: track precision to certify (default 0.9)
        confidence_level: probability that the certificate holds
            (default 0.95)
        max_checks: most tracks the audit may ask about (default 100)
        restart: discard the audit under ``audit_key`` and draw a new one
            (the decisions stay on the labels)
        seed: seed of the random sample (default: a fresh random one; it is
            recorded either way)

    Returns:
        ``status`` (``needs_answers`` | ``certified`` |
        ``not_certifiable``), ``pending`` (``[{"sample_id", "index",
        "label_id", "num_frames"}]``: sampled tracks still to decide, in
        the order to ask; ``label_id`` is the track's first frame label,
        what ``review_tracks`` takes), ``tracks`` (lot size),
        ``sampled``, ``answered``, ``wrong``, ``allowed_wrong``,
        ``lower_bound`` (exact lower confidence bound on the lot's track
        precision once every sampled track is answered, else None),
        ``target_precision``, ``confidence_level``, ``audit_key``,
        ``track_field``, ``statistics`` and ``message``
    """
    field = _frame_field(track_field)
    _check(sample_collection, field, audit_key, target_precision, confidence_level, max_checks)
    dataset = fo_private.view_dataset(sample_collection)
    dataset.reload()  # the audit may have been started or answered by another process
    config = _load_config(dataset, audit_key)
    if config is not None and restart:
        dataset.delete_run(audit_key)
        config = None
    if config is None:
        config = _start(sample_collection, dataset, field, audit_key,
                        0.9 if target_precision is None else float(target_precision),
                        0.95 if confidence_level is None else float(confidence_level),
                        max_checks or DEFAULT_MAX_CHECKS, seed)
    else:
        check_same_audit(config, track_field=field, target_precision=target_precision,
                         confidence_level=confidence_level, max_checks=max_checks)
    return _advance(dataset, audit_key, config)


def peek_track_audit(dataset, audit_key: str = "track_audit") -> dict | None:
    """Where a track audit stands now, writing nothing; None when there is
    no audit under ``audit_key``."""
    config = _load_config(dataset, audit_key)
    return None if config is None else _advance(dataset, audit_key, config, write=False)


def _load_config(dataset, audit_key: str) -> dict | None:
    return load_audit_config(dataset, audit_key, METHOD)


def _start(sample_collection, dataset, field, audit_key, target, confidence, max_checks, seed) -> dict:
    """Collects the lot, draws the sample and records a new audit."""
    labels = read_track_labels(sample_collection, field)
    unit, keys = track_units_of(labels)
    verdicts_known = np.zeros(len(keys), dtype=bool)
    for u, decided in zip(unit, labels["decided"]):
        if decided:
            verdicts_known[u] = True  # a frame of it is decided (bulk too, as audit_green): not in the lot
    # a stable order of the lot, so the seed alone reproduces the draw
    lot = sorted((keys[u] for u in range(len(keys)) if not verdicts_known[u]), key=lambda k: tuple(map(str, k)))
    seed = int(seed) if seed is not None else secrets.randbits(32)
    sample = min(int(max_checks), len(lot))
    acceptance.check_params(target, 1.0 - confidence, max(1, sample))
    drawn = track_audit.draw_tracks(len(lot), sample, seed)
    first_label = {}
    for key, lid in zip(_unit_keys(labels), labels["label_id"]):
        first_label.setdefault(key, lid)
    config = dict(
        audit_key=audit_key, track_field=field, target_precision=target, confidence_level=confidence,
        max_checks=int(max_checks), seed=seed, statistics=METHOD_TEXT, num_tracks=len(lot),
        num_decided_tracks=int(verdicts_known.sum()),
        allowed_wrong=acceptance.allowed_wrong(len(lot), sample, target, 1.0 - confidence),
        sample_positions=[int(p) for p in drawn],
        sample_keys=[list(lot[p]) for p in drawn],
        sample_first_labels=[first_label[lot[p]] for p in drawn],
    )
    record = provenance.start_run(dataset, audit_key, method=METHOD, **config)
    # an audit waits for people, not for this process: no heartbeat
    heartbeats.stop(dataset, audit_key)
    config.update(record)
    results = dataset.init_run_results(audit_key, lot=[list(k) for k in lot])
    dataset.save_run_results(audit_key, results, overwrite=True)
    return config


def track_units_of(labels: dict) -> tuple[np.ndarray, list]:
    """:func:`.track_audit.track_units` over :func:`read_track_labels`'
    output: one unit per track (video, index), one per label outside a
    track."""
    return track_audit.track_units(_unit_keys(labels))


def _sampled_answers(dataset, config: dict) -> tuple[np.ndarray, list, dict]:
    """Per label of the sampled tracks (read from the whole dataset, so a
    view that hides frames hides no decision): the lot position of its track
    and its answer; plus each sampled track's frame count."""
    keys = [tuple(k) for k in config["sample_keys"]]
    pos = dict(zip(keys, config["sample_positions"]))
    sids = sorted({k[0] for k in keys})
    unit, answers, frames = [], [], {}
    if sids:
        labels = read_track_labels(dataset.select(sids), config["track_field"])
        for key, a in zip(_unit_keys(labels), labels["answer"]):
            if key in pos:
                unit.append(pos[key])
                answers.append(a)
                frames[key] = frames.get(key, 0) + 1
    return np.asarray(unit, dtype=np.int64), answers, frames


def _advance(dataset, audit_key: str, config: dict, write: bool = True) -> dict:
    target, confidence = config["target_precision"], config["confidence_level"]
    delta = 1.0 - confidence
    n_lot = int(config["num_tracks"])
    keys = [tuple(k) for k in config["sample_keys"]]
    sampled = np.asarray(config["sample_positions"], dtype=np.int64)
    frames: dict = {}
    if not len(sampled):
        state = dict(status="not_certifiable", sets=[], pending_units=[])
        answered = wrong = 0
    else:
        unit, answers, frames = _sampled_answers(dataset, config)
        # a sampled track whose labels are all gone: one wrong answer (conservative)
        gone = [p for k, p in zip(keys, sampled) if k not in frames]
        unit = np.r_[unit, np.asarray(gone, dtype=np.int64)]
        answers = list(answers) + [False] * len(gone)
        state = track_audit.track_audit_state(unit, answers, sampled, n_lot, target, delta)
        s = state["sets"][0]
        answered, wrong = s["answered"], s["wrong"]
    by_pos = {int(p): i for i, p in enumerate(sampled)}
    pending = []
    for p in state["pending_units"]:
        i = by_pos[int(p)]
        key = keys[i]
        pending.append(dict(sample_id=key[0], index=key[1], label_id=config["sample_first_labels"][i],
                            num_frames=frames.get(key, 0)))
    s = state["sets"][0] if state["sets"] else {}
    result = dict(
        status=state["status"],
        pending=pending,
        tracks=n_lot,
        sampled=int(len(sampled)),
        answered=int(answered),
        wrong=int(wrong),
        allowed_wrong=int(config["allowed_wrong"]),
        lower_bound=s.get("lower_bound"),
        target_precision=target,
        confidence_level=confidence,
        audit_key=audit_key,
        track_field=config["track_field"],
        seed=config["seed"],
        statistics=config["statistics"],
    )
    result["message"] = _message(result)
    if write:
        record = dict(config, **{k: result[k] for k in ("status", "answered", "wrong", "lower_bound")})
        record.update(updated_at=_now(), ended_at=_now() if result["status"] != "needs_answers" else None)
        record.pop("stoplight_method", None)
        dataset.update_run_config(audit_key, dataset.init_run(stoplight_method=METHOD, **record))
    return result


def _message(r: dict) -> str:
    target = r["target_precision"]
    if not r["sampled"]:
        return "Nothing to audit: no undecided track in the field."
    if r["allowed_wrong"] < 0:
        return (f"Not certifiable: a sample of {r['sampled']} of {r['tracks']} tracks cannot certify "
                f"{target:.0%} track precision at {r['confidence_level']:.0%} confidence even with no wrong "
                "track; raise max_checks or lower the target.")
    if r["status"] == "certified":
        return (f"Certified: at least {target:.0%} of {r['tracks']} tracks are right on every frame at "
                f"{r['confidence_level']:.0%} confidence ({r['wrong']} wrong of {r['sampled']} tracks checked; "
                f"lower bound {r['lower_bound']:.1%}).")
    if r["status"] == "not_certifiable":
        return (f"Not certifiable: {r['wrong']} wrong of {r['answered']} tracks checked; at most "
                f"{r['allowed_wrong']} of {r['sampled']} may be wrong to certify {target:.0%}.")
    return (f"Review {len(r['pending'])} more tracks: {r['answered']} of {r['sampled']} checked, "
            f"{r['wrong']} wrong (at most {r['allowed_wrong']} allowed).")
