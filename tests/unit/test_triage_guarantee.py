"""The triage's statistics on generated label sets with a known truth.

Labels are drawn from a population where P(correct | signals) is known
exactly (a per-class logistic law), so the true precision of any green set
is computable. The guarantee is checked over many calibration draws (fixed
seeds): a statistical check, not one lucky draw. A naive rule (the point
estimate of precision, no bound) is run on the same draws as a control: it
must fail, which shows the check can.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stoplight.plugins.triage import calibration, guarantees, model, queues
from stoplight.plugins.triage.report import build_report

CLASSES = np.array(["car", "person", "dog"])
SHARES = [0.6, 0.3, 0.1]
BIAS = np.array([2.0, 1.0, 0.5])


def population(rng, n, per_sample=4):
    """Signals, true P(correct), drawn outcome, class and sample id of n labels."""
    c = rng.choice(len(CLASSES), n, p=SHARES)
    x = rng.normal(size=(n, 3))
    p = 1.0 / (1.0 + np.exp(-(BIAS[c] + 1.5 * x[:, 0] + 0.8 * x[:, 1])))
    y = rng.random(n) < p
    samples = np.array([f"{v:016x}" for v in rng.integers(0, 1 << 62, size=n // per_sample + 1)])
    sid = np.repeat(samples, per_sample)[:n]
    return x, p, y, CLASSES[c], sid


@pytest.fixture(scope="module")
def test_population():
    """The labels being triaged: signals, true P(correct), class, fold."""
    x, p, _, lab, sid = population(np.random.default_rng(12345), 40_000)
    return x, p, lab, model.fold_of(sid, 5)


def _triage(cal, pop):
    x, _, lab, folds = pop
    p_hat = calibration.score_labels(cal, x, lab, folds)
    return p_hat, queues.assign(cal, p_hat, lab, folds)


def _green_precisions(cal, pop, p_hat, q):
    p_true, lab = pop[1], pop[2]
    out = {}
    for c in CLASSES:
        g = (q == "green") & (lab == c)
        if g.any():
            out[c] = (float(p_true[g].mean()), float(g.mean()))
        r = (q == "red") & (lab == c)
        if r.any():
            out[c + "/red"] = (float(p_true[r].mean()), float(r.mean()))
    return out


def test_clopper_pearson_is_exact():
    lo, hi = guarantees.clopper_pearson(np.array([59, 40, 0]), np.array([59, 50, 10]), 0.05)
    # the bounds are where the binomial tail equals alpha
    assert stats.binom.sf(59 - 1, 59, lo[0]) == pytest.approx(0.05, rel=1e-6)
    assert stats.binom.sf(40 - 1, 50, lo[1]) == pytest.approx(0.05, rel=1e-6)
    assert stats.binom.cdf(40, 50, hi[1]) == pytest.approx(0.05, rel=1e-6)
    assert lo[2] == 0.0 and hi[0] == 1.0
    assert guarantees.min_labels_to_certify(0.95, 0.05) == 59
    assert guarantees.clopper_pearson(59, 59, 0.05)[0] >= 0.95 > guarantees.clopper_pearson(58, 58, 0.05)[0]


def test_pac_guarantee_holds_over_repeated_draws(test_population):
    """With probability >= confidence_level over calibration draws, every
    certified class's green precision (true, on the population) >= target;
    the point-estimate rule on the same draws does not hold it."""
    target, level, draws = 0.95, 0.95, 80
    held = tested = 0
    naive_held = naive_tested = 0
    red_held = red_tested = 0
    for d in range(draws):
        rng = np.random.default_rng(d)
        x, _, y, lab, sid = population(rng, 1500)
        cal = calibration.calibrate(x, y, lab, sid, ["a", "b", "c"], target_precision=target,
                                    confidence_level=level, scope="class")
        p_hat, q = _triage(cal, test_population)
        for key, (prec, _) in _green_precisions(cal, test_population, p_hat, q).items():
            if key.endswith("/red"):
                red_tested += 1
                red_held += prec <= 0.2
            else:
                tested += 1
                held += prec >= target
        # control: the lowest threshold whose calibration precision >= target
        pt, labt = test_population[1], test_population[2]
        for c in CLASSES:
            s = np.asarray(cal["verified"][c]["scores"])
            yc = np.asarray(cal["verified"][c]["correct"])
            curve = guarantees.precision_curve(s, yc, 0.05)
            ok = (curve["n"] >= 20) & (curve["precision"] >= target)
            if not ok.any():
                continue
            t = curve["threshold"][np.nonzero(ok)[0].max()]
            g = (labt == c) & (p_hat >= t)
            if g.any():
                naive_tested += 1
                naive_held += pt[g].mean() >= target
    assert tested >= 40, "too few certified classes for a meaningful check"
    assert held / tested >= level, f"PAC guarantee held in {held}/{tested} draws"
    assert red_tested >= 40 and red_held / red_tested >= level, f"red bound held in {red_held}/{red_tested}"
    assert naive_tested >= 40 and naive_held / naive_tested < 0.8, (
        f"the control held in {naive_held}/{naive_tested}: the check could not tell"
    )


def test_one_wrong_label_at_the_very_top_does_not_empty_green():
    """Two fixed-sequence scans share delta: one from the bare minimum of
    labels, one from where a top part halfway between the target and 1
    would pass (154 labels at 0.9 here). A wrong label among the 37
    best-scored of 1,900 (a digits calibration did this) ends the first scan
    at once; the second still certifies. Control: a single scan from the
    minimum certifies nothing."""
    n = 1900
    scores = np.linspace(1.0, 0.0, n)
    correct = np.r_[np.ones(400, bool), np.random.default_rng(0).random(n - 400) < 0.5]
    correct[20] = False  # one wrong label among the top 37
    assert guarantees.scan_starts(n, 0.9, 0.05) == [36, 154]
    t, info = guarantees.pac_green_threshold(scores, correct, 0.9, 0.05)
    assert t is not None and info["lower"] >= 0.9 and info["n"] >= 300
    # control: one scan from the minimum stops at once
    curve = guarantees.precision_curve(scores, correct, 0.05)
    first = np.nonzero(curve["n"] >= guarantees.min_labels_to_certify(0.9, 0.05))[0][0]
    assert curve["lower"][first] < 0.9, (curve["n"][first], curve["k"][first])
    # a small set runs one scan from the bare minimum at the full delta
    assert guarantees.scan_starts(100, 0.9, 0.05) == [29]
    assert guarantees.scan_starts(200, 0.9, 0.05) == [36, 50]


def test_a_clean_top_certifies_although_the_large_start_fails():
    """The digitsdet shape: the 100 best-scored labels all right, the next
    ones 94 % right. The scan from the large start (312 labels, 96 % right)
    fails 0.95; the scan from the minimum certifies the clean top. Control:
    with the large start alone (the session's first fix) green is empty."""
    n = 1279
    scores = np.linspace(1.0, 0.0, n)
    correct = np.ones(n, bool)
    correct[100::17] = False  # 94 % right below the clean top
    correct[400:] = np.arange(n - 400) % 2 == 0
    starts = guarantees.scan_starts(n, 0.95, 0.05)
    assert starts == [72, 312]
    t, info = guarantees.pac_green_threshold(scores, correct, 0.95, 0.05)
    assert t is not None and 72 <= info["n"] <= 200 and info["lower"] >= 0.95
    curve = guarantees.precision_curve(scores, correct, 0.05 / 2)
    at_large = np.nonzero(curve["n"] >= starts[1])[0][0]
    assert curve["lower"][at_large] < 0.95  # control: that scan alone stops at once


def test_expected_guarantee_bounds_mean_false_discovery(test_population):
    """Conformal selection: the false-discovery rate averaged over draws is
    <= 1 - target (plus Monte-Carlo slack of 3 standard errors)."""
    target, draws = 0.9, 40
    fdr = []
    for d in range(draws):
        rng = np.random.default_rng(500 + d)
        x, _, y, lab, sid = population(rng, 1500)
        cal = calibration.calibrate(x, y, lab, sid, ["a", "b", "c"], target_precision=target,
                                    guarantee="expected", scope="class")
        pt, labt = test_population[1], test_population[2]
        _, q = _triage(cal, test_population)
        g = (q == "green") & (labt == "car")
        # each test label is correct with prob pt: expected FDR of this draw
        fdr.append(float(1 - pt[g].mean()) if g.any() else 0.0)
    fdr = np.array(fdr)
    assert (fdr > 0).mean() > 0.9, "expected mode selected nothing"
    assert fdr.mean() <= (1 - target) + 3 * fdr.std(ddof=1) / np.sqrt(draws), fdr.mean()


def test_overall_guarantee_holds_for_the_whole_green_queue(test_population):
    """Overall scope (the default): with probability >= confidence_level
    over calibration draws, the precision of the whole green queue (every
    class pooled) is >= target; it certifies more labels than the per-class
    scope on the same draws; the pooled point-estimate rule fails the check."""
    target, level, draws = 0.95, 0.95, 80
    held = tested = naive_held = naive_tested = 0
    green_overall = green_class = tested_class = 0
    pt = test_population[1]
    for d in range(draws):
        rng = np.random.default_rng(1000 + d)
        x, _, y, lab, sid = population(rng, 1500)
        cal = calibration.calibrate(x, y, lab, sid, ["a", "b", "c"], target_precision=target,
                                    confidence_level=level)
        assert cal["scope"] == "overall"
        p_hat, q = _triage(cal, test_population)
        g = q == "green"
        if g.any():
            tested += 1
            held += pt[g].mean() >= target
            # one threshold for every class
            assert len({v["green_threshold"] for v in cal["per_class"].values()}) == 1
        per_class = calibration.calibrate(x, y, lab, sid, ["a", "b", "c"], target_precision=target,
                                          confidence_level=level, scope="class")
        g_class = _triage(per_class, test_population)[1] == "green"
        green_overall, green_class = green_overall + g.sum(), green_class + g_class.sum()
        tested_class += g_class.any()
        # control: the lowest pooled threshold whose verified precision >= target
        s = np.concatenate([cal["verified"][c]["scores"] for c in cal["classes"]])
        yc = np.concatenate([cal["verified"][c]["correct"] for c in cal["classes"]])
        curve = guarantees.precision_curve(s, yc, 0.05)
        ok = (curve["n"] >= 20) & (curve["precision"] >= target)
        if ok.any():
            t = curve["threshold"][np.nonzero(ok)[0].max()]
            naive_tested += 1
            naive_held += pt[p_hat >= t].mean() >= target
    assert tested >= 30, f"overall scope certified a green in only {tested} of {draws} draws"
    assert held / tested >= level, f"overall guarantee held in {held}/{tested} draws"
    # on the same draws the pooled certificate covers at least as many labels
    assert green_overall >= green_class, (green_overall, green_class)
    assert naive_tested >= 30 and naive_held / naive_tested < 0.8, (
        f"the control held in {naive_held}/{naive_tested}: the check could not tell"
    )


def test_overall_expected_guarantee_bounds_mean_false_discovery(test_population):
    """Expected guarantee, overall scope: the false-discovery rate of the
    whole green queue, averaged over draws, is <= 1 - target."""
    target, draws = 0.9, 40
    fdr = []
    for d in range(draws):
        rng = np.random.default_rng(700 + d)
        x, _, y, lab, sid = population(rng, 1500)
        cal = calibration.calibrate(x, y, lab, sid, ["a", "b", "c"], target_precision=target,
                                    guarantee="expected")
        _, q = _triage(cal, test_population)
        g = q == "green"
        fdr.append(float(1 - test_population[1][g].mean()) if g.any() else 0.0)
    fdr = np.array(fdr)
    assert (fdr > 0).mean() > 0.9, "expected mode selected nothing"
    assert fdr.mean() <= (1 - target) + 3 * fdr.std(ddof=1) / np.sqrt(draws), fdr.mean()


def test_overall_scope_certifies_where_per_class_cannot():
    """Ten classes with ~130 verified labels each and a precise top (~97 %
    right): per class, too few verified labels sit above any useful
    threshold; pooled, the whole queue is certified in most draws, and its
    precision holds."""
    classes = np.array([f"c{i}" for i in range(10)])
    test_x = np.random.default_rng(99).normal(size=(20_000, 2))
    test_lab = classes[np.random.default_rng(98).integers(0, 10, 20_000)]
    test_p = 1 / (1 + np.exp(-(5.0 * test_x[:, 0] + 0.5)))
    test_folds = model.fold_of([f"t{i // 4}" for i in range(20_000)], 5)
    overall_any = class_any = held = 0
    draws = 12
    for d in range(draws):
        rng = np.random.default_rng(2000 + d)
        x = rng.normal(size=(1300, 2))
        y = rng.random(1300) < 1 / (1 + np.exp(-(5.0 * x[:, 0] + 0.5)))
        lab = classes[rng.integers(0, 10, 1300)]
        sid = np.array([f"s{d}_{i // 4}" for i in range(1300)])
        for scope in ("overall", "class"):
            cal = calibration.calibrate(x, y, lab, sid, ["a", "b"], scope=scope)
            p_hat = calibration.score_labels(cal, test_x, test_lab, test_folds)
            g = queues.assign(cal, p_hat, test_lab, test_folds) == "green"
            if scope == "overall":
                overall_any += g.any()
                held += (not g.any()) or test_p[g].mean() >= 0.95
            else:
                class_any += g.sum() > 0.02 * len(g)
    assert overall_any >= 0.75 * draws and class_any <= 0.25 * draws, (overall_any, class_any)
    assert held == draws


def test_plan_names_a_number_when_the_best_labels_are_above_target():
    """A class whose best-scored labels are ~99 % right but too few to
    certify gets a finite number of random verified labels to ask for."""
    rng = np.random.default_rng(12)
    n = 500
    x = rng.normal(size=(n, 1))
    y = np.where(x[:, 0] > 1.1, rng.random(n) < 0.99, rng.random(n) < 0.3)
    lab = np.array(["car"] * n)
    sid = np.array([f"s{i}" for i in range(n)])
    cal = calibration.calibrate(x, y, lab, sid, ["a"], scope="class")
    info = cal["per_class"]["car"]
    assert info["green_threshold"] is None
    more = info["more_labels_needed"]
    assert more is not None and 0 < more < 20 * n, info["plan"]
    assert info["plan"]["precision"] > 0.95 and 0.05 < info["plan"]["share"] < 0.4
    assert "more random verified labels would certify" in info["no_green_reason"]
    assert "cannot" not in info["no_green_reason"]


def test_rare_class_gets_no_green_and_a_reason():
    rng = np.random.default_rng(7)
    x, _, y, lab, sid = population(rng, 600)
    # a class with 30 verified labels, all correct: still too few to certify
    x2, lab2 = rng.normal(size=(30, 3)) + 3.0, np.array(["zebra"] * 30)
    sid2 = np.array([f"z{i}" for i in range(30)])
    cal = calibration.calibrate(
        np.vstack([x, x2]), np.r_[y, np.ones(30, bool)], np.r_[lab, lab2], np.r_[sid, sid2], ["a", "b", "c"],
        scope="class",
    )
    z = cal["per_class"]["zebra"]
    assert z["green_threshold"] is None
    assert "too few verified labels (30" in z["no_green_reason"]
    assert z["more_labels_needed"] is not None and z["more_labels_needed"] >= 59 * 2 - 30
    q = queues.assign(cal, np.ones(5), ["zebra"] * 5, np.arange(5))
    assert set(q) == {"yellow"}


def test_class_between_the_minimum_and_the_planning_size_gets_a_reason():
    """At 0.9 a class needs 29 labels to certify and 50 to plan: one with 40
    mixed labels gets a reason and a number, not a crash (CI once failed
    here formatting the plan's missing share)."""
    rng = np.random.default_rng(8)
    x, _, y, lab, sid = population(rng, 600)
    x2, lab2 = rng.normal(size=(40, 3)), np.array(["zebra"] * 40)
    y2 = rng.random(40) < 0.7
    sid2 = np.array([f"z{i}" for i in range(40)])
    cal = calibration.calibrate(
        np.vstack([x, x2]), np.r_[y, y2], np.r_[lab, lab2], np.r_[sid, sid2], ["a", "b", "c"],
        scope="class", target_precision=0.9,
    )
    z = cal["per_class"]["zebra"]
    assert z["green_threshold"] is None
    assert "too few verified labels (40) to certify" in z["no_green_reason"], z["no_green_reason"]
    assert z["more_labels_needed"] is not None and z["more_labels_needed"] > 0


def test_signals_that_cannot_separate_get_no_green():
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.normal(size=(n, 2))
    y = rng.random(n) < 0.85  # correctness independent of the signals
    lab = np.array(["car"] * n)
    sid = np.array([f"s{i // 3}" for i in range(n)])
    for scope in ("class", "overall"):
        cal = calibration.calibrate(x, y, lab, sid, ["a", "b"], scope=scope)
        info = cal["per_class"]["car"]
        assert info["green_threshold"] is None and cal["overall"]["green_threshold"] is None
    info = cal["overall"]
    # the plan is honest: either none, or one that needs many times the
    # verified labels there are, for a sliver of the labels
    more = info["more_labels_needed"]
    assert more is None or (more > 10 * n and info["plan"]["share"] < 0.05), info["plan"]
    assert info["plan"]["best_precision"] < 0.97


def test_cross_fitting_never_scores_a_label_with_its_own_model():
    rng = np.random.default_rng(0)
    x, _, y, lab, sid = population(rng, 400)
    folds = model.fold_of(sid, 5)
    # labels of one sample share a fold
    for s in np.unique(sid)[:50]:
        assert len(set(folds[sid == s])) == 1
    cidx = np.searchsorted(np.sort(np.unique(lab)), lab)
    oof, models = model.cross_fit(model.prepare_features({"a": x[:, 0], "b": x[:, 1]}, ["a", "b"]),
                                  y, cidx, 3, folds, 5, 1.0)
    # refitting fold f's model without fold f reproduces the out-of-fold score
    f = 2
    train = folds != f
    params = model.fit_logistic(np.c_[x[train, 0], x[train, 1]], y[train], cidx[train], 3, 1.0)
    again = model.predict_logistic(params, np.c_[x[~train, 0], x[~train, 1]], cidx[~train])
    np.testing.assert_allclose(again, oof[~train], rtol=1e-6)


def test_shrinkage_pulls_rare_classes_toward_the_pooled_model():
    rng = np.random.default_rng(1)
    x, _, y, lab, _ = population(rng, 3000)
    cidx = np.searchsorted(CLASSES[np.argsort(CLASSES)], lab)  # car=0, dog=1, person=2
    strong = model.fit_logistic(x, y, cidx, 3, shrinkage=1e4)
    weak = model.fit_logistic(x, y, cidx, 3, shrinkage=1e-3)
    assert np.abs(strong["class_coefs"]).max() < 0.05 < np.abs(weak["class_coefs"]).max()


def test_review_rank_round_robins_groups_most_informative_first():
    p = np.array([0.5, 0.9, 0.6, 0.51, 0.99, 0.7])
    groups = np.array(["a", "a", "a", "b", "b", "c"])
    rank = queues.review_rank(p, groups)
    assert sorted(rank) == [1, 2, 3, 4, 5, 6]
    # round 1: the best of each group (a:0.5, b:0.51, c:0.7), most informative first
    assert [int(rank[i]) for i in (0, 3, 5)] == [1, 2, 3]
    # round 2: a's 0.6 then b's 0.99; round 3: a's 0.9
    assert rank[2] == 4 and rank[4] == 5 and rank[1] == 6


@pytest.mark.parametrize("scope", ["overall", "class"])
def test_report_counts_costs_and_final_precision(scope):
    rng = np.random.default_rng(2)
    x, _, y, lab, sid = population(rng, 2000)
    cal = calibration.calibrate(x, y, lab, sid, ["a", "b", "c"], scope=scope)
    labels = np.array(["car"] * 6 + ["dog"] * 2)
    queue = ["green", "green", "yellow", "yellow", "red", None, "yellow", "green"]
    p = np.array([0.99, 0.97, 0.6, 0.4, 0.05, np.nan, 0.5, 0.98])
    review = [None, "rejected", "accepted", None, None, None, "pending", None]
    rep = build_report(cal, labels, queue, p, review, seconds_per_box=3600, cents_per_box=10,
                       usd_per_gpu_hour=2.0, gpu_hours=1.5)
    assert rep["queues"]["green"]["count"] == 3 and rep["queues"]["yellow"]["count"] == 3
    assert rep["totals"] == dict(labels=8, unassigned=1, accepted=1, rejected=1, corrected=0, bulk_accepted=0,
                                 bulk_rejected=0, pending=6)
    assert rep["workload"]["hours"] == 3.0 and rep["workload"]["yellow_open"] == 2
    assert rep["cost"]["manual_usd"] == 0.8
    assert rep["cost"]["auto_usd"] == pytest.approx(1.5 * 2.0 + 3 * 0.10)
    # final: green kept (0.99 + 0.98, 2 labels) + 1 accepted + open yellow p (0.4 + 0.5)
    exp_correct = 0.99 + 0.98 + 1 + 0.9
    exp_size = 2 + 1 + 0.9
    assert rep["final"]["expected_precision"] == pytest.approx(exp_correct / exp_size, abs=1e-4)
    assert rep["classes"]["car"]["queues"]["red"]["count"] == 1
    # the bound is stated where the guarantee holds: the whole green queue
    # (overall) or each class's green (class), never both
    if scope == "overall":
        assert cal["overall"]["green_threshold"] is not None
        assert rep["queues"]["green"]["certified_lower"] >= 0.95
        assert "certified_lower" not in rep["classes"]["car"]["queues"]["green"]
    else:
        assert cal["per_class"]["car"]["green_threshold"] is not None
        assert rep["classes"]["car"]["queues"]["green"]["certified_lower"] >= 0.95
        assert "certified_lower" not in rep["queues"]["green"]
    with pytest.raises(ValueError, match="seconds_per_box"):
        build_report(cal, labels, queue, p, review, seconds_per_box=-1)


@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(target_precision=1.0), "target_precision"), (dict(confidence_level=0), "confidence_level"),
     (dict(red_max_precision=0.99), "red_max_precision"), (dict(guarantee="sure"), "guarantee"),
     (dict(folds=1), "folds"), (dict(shrinkage=0), "shrinkage")],
)
def test_bad_parameters_are_named(kwargs, name):
    x, _, y, lab, sid = population(np.random.default_rng(0), 100)
    with pytest.raises(ValueError, match=f"'{name}'"):
        calibration.calibrate(x, y, lab, sid, ["a", "b", "c"], **kwargs)
