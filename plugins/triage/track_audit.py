"""Acceptance sampling of video tracks: a track is one unit.

A video's labels come in tracks (``track_labels`` writes one ``index`` per
object along time) and people decide tracks, not frames: with
``review_tracks`` a decision on one frame label decides every frame of its
track. An audit that samples *frame labels* then counts answers nobody
gave: a person looks at one sampled frame of a track, the decision spreads
to the track, and the other sampled frames of that track read as answered.
Frames of one track are correlated (a track that drifts off its object is
wrong on every later frame), so those spread answers are not independent
checks; a drifting track seen on an early, still correct frame turns all
its later sampled frames into "correct" answers, and the audit certifies
lots that miss the target far more often than ``delta`` (the control in
``tests/integration/test_track_audit.py`` measures this).

So the unit is the track:

- the lot is the candidate tracks; a uniform random sample of tracks is
  drawn (without replacement) before any answer;
- a sampled track is *correct* only when a person accepted it as a whole
  (every frame label right); one wrong frame makes it wrong;
- the exact hypergeometric single sampling plan of :mod:`.acceptance`
  certifies that at least ``target`` of the lot's tracks are correct on
  every frame, with error probability at most ``delta``.

What is certified is track precision: the share of tracks with no wrong
frame. It is stricter than frame precision for tracks of equal length but
says nothing about frame precision when wrong tracks are much longer than
right ones; state the certificate as a track share.

Labels without a track (``index`` missing) are units of their own.

These are the pure functions; their FiftyOne edge is
:func:`.track_audit_run.audit_tracks` (``frames.<field>`` tracks).
``audit_green`` audits image label fields only and refuses frame fields,
because the triage chain it builds on (calibration, queues) reads image
labels.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np

from . import acceptance


def track_units(track_keys: Sequence[Hashable | None]) -> tuple[np.ndarray, list]:
    """The unit (track) of each label.

    Args:
        track_keys: per label, a key of its track (e.g. ``(sample_id,
            index)``), or None for a label outside any track

    Returns:
        ``(unit, keys)``: ``(n,)`` unit index of each label, and the key of
        each unit (None for a lone label's own unit)
    """
    index: dict = {}
    keys: list = []
    unit = np.empty(len(track_keys), dtype=np.int64)
    for i, key in enumerate(track_keys):
        if key is None:
            unit[i] = len(keys)
            keys.append(None)
            continue
        if key not in index:
            index[key] = len(keys)
            keys.append(key)
        unit[i] = index[key]
    return unit, keys


def track_verdicts(unit: np.ndarray, answers: Sequence[bool | None], num_units: int) -> list[bool | None]:
    """Each track's answer from its labels' answers.

    A track is wrong as soon as one of its labels was answered wrong, and
    correct only when every one of its labels was answered correct; else
    it is not answered yet.

    Args:
        unit: ``(n,)`` unit index of each label (:func:`track_units`)
        answers: ``(n,)`` per label True (a person accepted it), False
            (rejected or corrected) or None (undecided)
        num_units: number of units

    Returns:
        ``(num_units,)`` True, False or None
    """
    unit = np.asarray(unit, dtype=np.int64)
    wrong = np.zeros(num_units, dtype=bool)
    open_ = np.zeros(num_units, dtype=bool)
    for u, a in zip(unit, answers):
        if a is None:
            open_[u] = True
        elif not a:
            wrong[u] = True
    return [False if w else (None if o else True) for w, o in zip(wrong, open_)]


def draw_tracks(num_units: int, sample: int, seed: int) -> np.ndarray:
    """The sampled units in draw order: a seeded uniform sample of tracks
    without replacement (:func:`.acceptance.draw_sample`)."""
    return acceptance.draw_sample(num_units, sample, seed)


def track_audit_state(unit: np.ndarray, answers: Sequence[bool | None], sampled: np.ndarray, num_units: int,
                      target: float, delta: float) -> dict:
    """Where a track audit stands (one candidate set: the lot of tracks).

    Args:
        unit: ``(n,)`` unit index of each candidate label
        answers: ``(n,)`` per label True / False / None
        sampled: the sampled units (:func:`draw_tracks`)
        num_units: number of tracks in the lot
        target: track precision to certify
        delta: error probability

    Returns:
        :func:`.acceptance.audit_state`'s result over tracks, plus
        ``pending_units`` (sampled tracks still to decide, in draw order)
    """
    acceptance.check_params(target, delta, max(1, len(sampled)))
    verdicts = track_verdicts(unit, answers, num_units)
    picked = [verdicts[int(u)] for u in sampled]
    state = acceptance.audit_state(np.zeros(len(sampled), dtype=np.int64), picked, [num_units], target, delta)
    state["pending_units"] = [int(sampled[i]) for i in state["ask"]]
    return state
