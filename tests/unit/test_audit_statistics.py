"""The audit of a candidate green set, on label sets with a known truth.

Lots of candidate labels are built with exactly known precision per nested
set, one of them just below the target (the hardest lot to refuse). Over
many seeded samples, with reviewers who answer everything, stop at random,
or stop the moment something is certified, the audit must certify a set
that misses the target in at most 5 % of draws. A control that peeks with a
plain Clopper-Pearson bound after every answer runs on the same draws and
must fail that check: it shows the check can fail.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stoplight.plugins.triage import acceptance, guarantees

TARGET, DELTA = 0.95, 0.05


def lot(precisions, sizes, seed=0):
    """Nested candidate sets (``sizes`` descending) whose precisions are
    exactly ``precisions``: returns each label's correctness and level
    (index of the smallest set holding it)."""
    rng = np.random.default_rng(seed)
    level = np.zeros(sizes[0], dtype=np.int64)
    for j, s in enumerate(sizes):
        level[:s] = j
    correct = np.ones(sizes[0], dtype=bool)
    wrong = [int(round((1 - p) * s)) for p, s in zip(precisions, sizes)] + [0]
    for j in range(len(sizes)):
        ring = np.nonzero(level == j)[0]
        correct[rng.choice(ring, wrong[j] - wrong[j + 1], replace=False)] = False
    true = [float(correct[level >= j].mean()) for j in range(len(sizes))]
    assert np.allclose(true, precisions, atol=1e-3)
    return correct, level, true


def test_single_sampling_plan_is_exact():
    # allowed wrong: the hypergeometric tail at the best bad lot is <= delta,
    # one more wrong label would exceed it
    for n_lot, n in [(1000, 300), (750, 200), (5000, 400), (120, 120)]:
        c = acceptance.allowed_wrong(n_lot, n, TARGET, DELTA)
        bad = int(np.floor((1 - TARGET) * n_lot)) + 1
        assert stats.hypergeom.cdf(c, n_lot, bad, n) <= DELTA < stats.hypergeom.cdf(c + 1, n_lot, bad, n)
        # the exact lower bound agrees with the plan: certified iff wrong <= c
        assert acceptance.precision_lower_bound(n_lot, n, c, DELTA) >= TARGET
        assert acceptance.precision_lower_bound(n_lot, n, c + 1, DELTA) < TARGET
    # the whole lot checked: the bound is the lot's precision
    assert acceptance.precision_lower_bound(120, 120, 3, DELTA) == pytest.approx(117 / 120)
    assert acceptance.allowed_wrong(1000, 20, TARGET, DELTA) == -1  # too few to ever certify


def _walk(level, correct, sizes, stop):
    """One reviewer: answers in the order the audit asks, calls the audit
    after every answer, stops when ``stop(state, answered)`` says so or
    nothing is left to ask. Returns the certified set index at the end."""
    answers = [None] * len(level)
    state = acceptance.audit_state(level, answers, sizes, TARGET, DELTA)
    answered = 0
    while state["ask"] and not stop(state, answered):
        i = state["ask"][0]
        answers[i] = bool(correct[i])
        answered += 1
        state = acceptance.audit_state(level, answers, sizes, TARGET, DELTA)
    return state["certified"]


LOTS = [
    # (precision of C_1..C_K, sizes, sample): C_1 just below the target
    ((0.946,), (5000,), 400),
    ((0.945, 0.955, 0.975), (2000, 1200, 600), 300),
]


@pytest.mark.parametrize("precisions, sizes, n", LOTS)
def test_audit_certifies_a_bad_set_in_at_most_delta_of_draws(precisions, sizes, n):
    """Over 400 seeded samples, reviewers who answer all, the certified
    set's true precision is >= target in >= 95 % of draws; the peeking
    control fails the same check on the same draws."""
    correct, level, true = lot(precisions, sizes)
    draws = 400
    bad = peek_bad = certified_any = 0
    for d in range(draws):
        pos = acceptance.draw_sample(len(correct), n, seed=10_000 + d)
        lv, ans = level[pos], correct[pos]
        state = acceptance.audit_state(lv, [bool(a) for a in ans], sizes, TARGET, DELTA)
        c = state["certified"]
        certified_any += c is not None
        bad += c is not None and true[c] < TARGET
        # control: a Clopper-Pearson bound on C_1 after every answer, certify
        # as soon as it reaches the target
        k = np.cumsum(ans)
        lower, _ = guarantees.clopper_pearson(k, np.arange(1, len(ans) + 1), DELTA)
        peek_bad += bool((lower >= TARGET).any()) and true[0] < TARGET
    assert bad / draws <= DELTA, f"certified a set below the target in {bad}/{draws} draws"
    assert peek_bad / draws > 1.5 * DELTA, f"the peeking control failed in only {peek_bad}/{draws}: no contrast"
    if len(sizes) > 1:
        # the good smaller sets are found: the audit is not merely timid
        assert certified_any / draws > 0.2


@pytest.mark.parametrize("who", ["random_stop", "stop_when_ahead"])
def test_stopping_early_keeps_the_guarantee(who):
    """Reviewers who stop at random, or the moment anything is certified,
    over 200 seeded draws on the lot whose largest set misses the target."""
    precisions, sizes, n = LOTS[1]
    correct, level, true = lot(precisions, sizes)
    draws, bad, certified_any = 200, 0, 0
    for d in range(draws):
        rng = np.random.default_rng(d)
        pos = acceptance.draw_sample(len(correct), n, seed=20_000 + d)
        if who == "random_stop":
            quit_at = int(rng.geometric(1 / 150))
            stop = lambda state, answered: answered >= quit_at  # noqa: E731
        else:
            stop = lambda state, answered: state["certified"] is not None  # noqa: E731
        c = _walk(level[pos], correct[pos], sizes, stop)
        certified_any += c is not None
        bad += c is not None and true[c] < TARGET
    assert bad / draws <= DELTA, f"{who}: certified a set below the target in {bad}/{draws} draws"
    assert certified_any > 0.1 * draws


def test_peeking_with_stopping_when_ahead_is_caught():
    """The control with the same reviewers (stop as soon as the bound looks
    good) exceeds delta: early stopping is exactly what breaks it."""
    correct = np.r_[np.zeros(270, bool), np.ones(4730, bool)]  # precision 0.946
    draws, bad = 400, 0
    for d in range(draws):
        ans = correct[acceptance.draw_sample(len(correct), 400, seed=30_000 + d)]
        lower, _ = guarantees.clopper_pearson(np.cumsum(ans), np.arange(1, 401), DELTA)
        bad += bool((lower >= TARGET).any())
    assert bad / draws > 1.5 * DELTA


def test_state_machine_curtails_and_asks_smallest_set_first():
    sizes = [1000, 400]
    # 10 draws: levels 1 (in the small set) and 0 (large set only)
    level = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 0])
    state = acceptance.audit_state(level, [None] * 10, sizes, TARGET, DELTA)
    # too small a sample to certify anything: both sets fail before any answer
    assert state["status"] == "not_certifiable"
    sizes = [1000, 400]
    level = np.r_[np.ones(80, int), np.zeros(120, int)]
    np.random.default_rng(0).shuffle(level)
    state = acceptance.audit_state(level, [None] * 200, sizes, TARGET, DELTA)
    assert state["status"] == "needs_answers"
    first = state["ask"][:80]
    assert all(level[i] == 1 for i in first), "the small set's labels are asked first"
    # wrong answers beyond the small set's allowance: it fails, the large set
    # (which contains it) is dropped with it, nothing more is asked
    allowed = state["sets"][1]["allowed_wrong"]
    answers = [None] * 200
    for i in first[: allowed + 1]:
        answers[i] = False
    state = acceptance.audit_state(level, answers, sizes, TARGET, DELTA)
    assert state["sets"][1]["state"] == "failed" and state["sets"][0]["state"] == "dropped"
    assert state["status"] == "not_certifiable" and state["ask"] == []
    # all of the small set right: it is certified while the large set still waits
    answers = [None] * 200
    for i in first:
        answers[i] = True
    state = acceptance.audit_state(level, answers, sizes, TARGET, DELTA)
    assert state["certified"] == 1 and state["status"] == "needs_answers"
    assert state["sets"][1]["lower_bound"] >= TARGET
    assert set(state["ask"]) == {i for i in range(200) if level[i] == 0}


def test_planner_uses_the_calibration_alone_and_prefers_certifiable_sets():
    """The plan is a function of the candidates' scores and the verified
    labels (no answer enters it); on a population whose top labels are 99 %
    right and the rest 60 %, it picks a set around the precise top."""
    rng = np.random.default_rng(5)
    n = 20_000
    p = rng.random(n)
    top = p > 0.9
    vs = rng.random(1500)
    vy = np.where(vs > 0.9, rng.random(1500) < 0.99, rng.random(1500) < 0.6)
    plan = acceptance.plan_audit(p, np.zeros(n, bool), vs, vy, np.zeros(1500, bool), TARGET, DELTA, 300)
    again = acceptance.plan_audit(p, np.zeros(n, bool), vs, vy, np.zeros(1500, bool), TARGET, DELTA, 300)
    assert plan == again
    assert plan["thresholds"] and plan["sample"] <= 300
    assert 0.5 * top.sum() <= plan["sizes"][0] <= 1.3 * top.sum(), plan
    assert plan["certify_probability"][0] > 0.5
    # sets are nested: thresholds rise as sizes fall
    assert plan["thresholds"] == sorted(plan["thresholds"]) and plan["sizes"] == sorted(plan["sizes"], reverse=True)
    # nothing to gain: a population at 60 % everywhere gets no plan
    vy_bad = rng.random(1500) < 0.6
    none = acceptance.plan_audit(p, np.zeros(n, bool), vs, vy_bad, np.zeros(1500, bool), TARGET, DELTA, 300)
    assert none["thresholds"] == [] and none["reason"]


def test_draw_is_reproducible_from_its_seed():
    a = acceptance.draw_sample(1000, 50, seed=7)
    assert np.array_equal(a, acceptance.draw_sample(1000, 50, seed=7))
    assert len(set(a.tolist())) == 50 and not np.array_equal(a, acceptance.draw_sample(1000, 50, seed=8))
