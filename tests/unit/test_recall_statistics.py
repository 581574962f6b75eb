"""The recall interval and the threshold curve, on arrays with a known truth.

Verified objects come in images, and images differ (some are hard for the
detector): the Korn-Graubard interval over images must cover the true
recall at about its nominal rate over many seeded draws. A control, the
binomial Clopper-Pearson interval that treats every object as an
independent draw, runs on the same draws and must fail that check.
"""

from __future__ import annotations

import numpy as np
import pytest

from stoplight.plugins.triage import guarantees
from stoplight.plugins.triage.recall import (
    CURVE_THRESHOLDS, cluster_interval, curve_thresholds, recall_by_class, threshold_curve,
)

DRAWS = 400


def draw(rng, images, a, b):
    """Objects on ``images`` images; image ``i`` finds each of its objects
    with probability ``p_i ~ Beta(a, b)`` (true recall ``a / (a + b)``)."""
    n_i = rng.poisson(8, images) + 1
    k_i = rng.binomial(n_i, rng.beta(a, b, images))
    image = np.repeat(np.arange(images), n_i)
    found = np.concatenate([np.arange(n) < k for n, k in zip(n_i, k_i)])
    return found, image


def coverage(images, a, b, seed=0):
    rng = np.random.default_rng(seed)
    truth = a / (a + b)
    ours = naive = 0
    widths = []
    for _ in range(DRAWS):
        found, image = draw(rng, images, a, b)
        lo, hi = cluster_interval(found, image, 0.95)["interval"]
        ours += lo <= truth <= hi
        widths.append(hi - lo)
        nlo, nhi = guarantees.clopper_pearson(found.sum(), len(found), 0.025)
        naive += nlo <= truth <= nhi
    return ours / DRAWS, naive / DRAWS, float(np.mean(widths))


@pytest.mark.parametrize("images,a,b", [(40, 4, 1), (15, 2, 1)])
def test_interval_covers_recall_when_images_differ_and_the_naive_one_does_not(images, a, b):
    ours, naive, _ = coverage(images, a, b)
    # 400 draws: a 95 % interval covers >= 0.93 unless off by > 2 SE
    assert ours >= 0.93, ours
    # the control: objects counted as independent draws is caught
    assert naive <= 0.88, naive


def test_interval_is_not_wider_than_needed_when_images_are_alike():
    # every image finds objects at the same rate: no clustering
    ours, naive, width = coverage(40, 1e6, 2.5e5)
    assert ours >= 0.93 and naive >= 0.93
    rng = np.random.default_rng(1)
    found, image = draw(rng, 40, 1e6, 2.5e5)
    lo, hi = guarantees.clopper_pearson(found.sum(), len(found), 0.025)
    assert width <= 1.2 * (hi - lo)


def test_interval_edge_cases():
    empty = cluster_interval(np.zeros(0, bool), np.zeros(0), 0.95)
    assert empty["estimate"] is None and empty["interval"] is None
    one = cluster_interval(np.array([True, False, True]), np.array([7, 7, 7]), 0.95)
    assert one["estimate"] == pytest.approx(2 / 3, abs=1e-4) and one["interval"] == [0.0, 1.0]
    # all found: the exact binomial lower bound of n objects (deff 1), upper 1
    all_found = cluster_interval(np.ones(60, bool), np.repeat(np.arange(20), 3), 0.95)
    assert all_found["interval"][1] == 1.0
    assert 0.85 < all_found["interval"][0] < guarantees.clopper_pearson(60, 60, 0.025)[0]
    none_found = cluster_interval(np.zeros(60, bool), np.repeat(np.arange(20), 3), 0.95)
    assert none_found["interval"][0] == 0.0 and none_found["interval"][1] < 0.15


def test_recall_by_class_splits_objects():
    found = np.array([1, 1, 0, 1, 0, 0], bool)
    image = np.array([0, 1, 1, 2, 2, 3])
    cls = np.array(["a", "a", "a", "b", "b", "b"], dtype=object)
    r = recall_by_class(found, image, cls, 0.9)
    assert r["overall"]["k"] == 3 and r["overall"]["n"] == 6
    assert r["classes"]["a"]["estimate"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["classes"]["b"]["k"] == 1 and r["classes"]["b"]["images"] == 2


def test_threshold_curve_counts_what_a_lower_threshold_adds():
    # 4 verified objects: found by labels of confidence 0.9, 0.5, 0.2; one missed
    obj_conf = np.array([0.9, 0.5, 0.2, np.nan])
    obj_img = np.array([0, 0, 1, 1])
    # verified labels: the three matches, and two wrong ones at 0.6 and 0.1
    lab_conf = np.array([0.9, 0.5, 0.2, 0.6, 0.1])
    lab_ok = np.array([True, True, True, False, False])
    lab_img = np.array([0, 0, 1, 1, 1])
    ts = [0.1, 0.3, 0.7]
    curve = threshold_curve(ts, obj_conf, obj_img, lab_conf, lab_ok, lab_img,
                            view_labels=[100, 60, 10], view_review=[40, 30, 0], seconds_per_box=36.0)
    assert [p["recall"] for p in curve] == [0.75, 0.5, 0.25]
    assert [p["precision"] for p in curve] == [0.6, 0.6667, 1.0]
    assert [p["added_labels"] for p in curve] == [40, 50, 0]
    assert [p["review_hours"] for p in curve] == [0.4, 0.3, 0.0]
    assert curve[0]["added_hours"] == pytest.approx(0.1)
    assert all(p["recall_interval"][0] <= p["recall"] <= p["recall_interval"][1] for p in curve)


def test_curve_thresholds_start_at_the_labeling_threshold():
    assert curve_thresholds(0.2, np.array([0.5])) == [0.2] + [t for t in CURVE_THRESHOLDS if t > 0.2]
    # unknown: the lowest confidence present
    assert curve_thresholds(None, np.array([0.33336, np.nan, 0.8]))[:2] == [0.3333, 0.35]
