"""Audits of video tracks count a track as one unit (triage.track_audit).

Simulations that can fail, each next to a control that is caught:

- tracks as units: on the worst lot that misses the target track
  precision (drifting tracks, wrong from some frame on), the track audit
  certifies at most ``delta`` of the time; a lot without wrong tracks is
  certified (power);
- the control: an audit that samples *frames* and lets a decision on one
  frame decide its track (what ``review_tracks`` does) certifies a lot that
  misses the frame precision target far more often than ``delta``, while
  the same frame sample answered frame by frame stays within ``delta``.
"""

from __future__ import annotations

import numpy as np
import pytest

from stoplight.plugins.triage import acceptance as A
from stoplight.plugins.triage import track_audit as TA

TARGET, DELTA = 0.9, 0.05


def _fewest_bad(population: int) -> int:
    """Wrong units of the best lot that still misses the target."""
    return int(np.floor((1 - TARGET) * population + 1e-9)) + 1


def _binomial_ceiling(p: float, reps: int) -> float:
    return p + 3.5 * np.sqrt(p * (1 - p) / reps)


def _lot(rng, num_tracks: int, num_bad: int):
    """Per label: its track key and whether it is right. Tracks of 5-40
    frames; a bad track drifts off its object at a random frame and is
    wrong from there on (its first frame, the seed, is right)."""
    keys, right = [], []
    bad = set(rng.choice(num_tracks, num_bad, replace=False).tolist())
    for t in range(num_tracks):
        length = int(rng.integers(5, 41))
        drift = int(rng.integers(1, length)) if t in bad else length
        keys += [("video", t)] * length
        right += [f < drift for f in range(length)]
    return keys, np.array(right)


def test_units_and_verdicts():
    unit, keys = TA.track_units([("a", 1), None, ("a", 2), ("a", 1), None])
    assert unit.tolist() == [0, 1, 2, 0, 3] and keys == [("a", 1), None, ("a", 2), None]
    # wrong as soon as one label is wrong; correct only when all answered correct
    verdicts = TA.track_verdicts(unit, [True, None, True, False, True], len(keys))
    assert verdicts == [False, None, True, True]
    assert TA.track_verdicts(unit, [True, True, None, True, True], len(keys)) == [True, True, None, True]


def test_track_audit_keeps_delta_on_the_worst_lot_and_certifies_a_clean_one():
    num_tracks, sample, reps = 300, 120, 600
    num_bad = _fewest_bad(num_tracks)  # precision just below the target
    rng = np.random.default_rng(11)
    certified = clean_certified = 0
    for r in range(reps):
        keys, right = _lot(rng, num_tracks, num_bad)
        unit, units = TA.track_units(keys)
        sampled = TA.draw_tracks(len(units), sample, seed=r)
        # a person checks each sampled track whole: every frame label answered
        in_sample = np.isin(unit, sampled)
        answers = [bool(ok) if s else None for ok, s in zip(right, in_sample)]
        state = TA.track_audit_state(unit, answers, sampled, len(units), TARGET, DELTA)
        assert state["status"] != "needs_answers" and not state["pending_units"]
        certified += state["status"] == "certified"
        clean = [True if s else None for s in in_sample]
        clean_certified += TA.track_audit_state(unit, clean, sampled, len(units), TARGET, DELTA)["status"] == "certified"
    assert certified / reps <= _binomial_ceiling(DELTA, reps), certified / reps
    assert clean_certified == reps


def test_pending_tracks_are_asked_in_draw_order():
    unit, units = TA.track_units([("v", t) for t in range(100) for _ in range(3)])
    sampled = TA.draw_tracks(len(units), 40, seed=3)
    answers = [None] * len(unit)
    state = TA.track_audit_state(unit, answers, sampled, len(units), TARGET, DELTA)
    assert state["status"] == "needs_answers" and state["pending_units"] == sampled.tolist()
    # one frame accepted does not answer its track
    first = int(np.nonzero(unit == sampled[0])[0][0])
    answers[first] = True
    assert TA.track_audit_state(unit, answers, sampled, len(units), TARGET, DELTA)["pending_units"][0] == sampled[0]
    with pytest.raises(ValueError, match="target_precision"):
        TA.track_audit_state(unit, answers, sampled, len(units), 1.5, DELTA)


def test_control_frame_sample_with_decisions_spread_along_tracks_breaks_delta():
    """20 long tracks (300 frames), 3 of them drifting: the lot's frame
    precision is just below the target. A uniform sample of 150 frames
    answered frame by frame keeps ``delta``; the same sample where the
    first sampled frame of a track decides the track (and so every later
    sampled frame of it) certifies the lot several times too often."""
    num_tracks, length, sample, reps = 20, 300, 150, 600
    n = num_tracks * length
    bad = _fewest_bad(n)
    allowed = A.allowed_wrong(n, sample, TARGET, DELTA)
    rng = np.random.default_rng(5)
    direct = spread = 0
    for _ in range(reps):
        right = np.ones((num_tracks, length), bool)
        for j, t in enumerate(rng.choice(num_tracks, 3, replace=False)):
            right[t, length - (bad // 3 + (j < bad % 3)):] = False
        flat = right.reshape(-1)
        assert (~flat).sum() == bad
        drawn = rng.permutation(n)[:sample]
        direct += int((~flat[drawn]).sum() <= allowed)
        decided: dict = {}
        wrong = sum(not decided.setdefault(f // length, bool(flat[f])) for f in drawn)
        spread += int(wrong <= allowed)
    assert direct / reps <= _binomial_ceiling(DELTA, reps), direct / reps
    assert spread / reps > 2 * DELTA, spread / reps  # caught: far above delta


def test_audit_green_refuses_frame_fields():
    import fiftyone as fo

    from stoplight.plugins.triage.green_audit import audit_green

    ds = fo.Dataset()
    try:
        with pytest.raises(ValueError, match=r"'label_field'.*frames\.tracks.*per track"):
            audit_green(ds, "frames.tracks")
    finally:
        ds.delete()
