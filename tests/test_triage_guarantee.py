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
                                    confidence_level=level)
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


def test_expected_guarantee_bounds_mean_false_discovery(test_population):
    """Conformal selection: the false-discovery rate averaged over draws is
    <= 1 - target (plus Monte-Carlo slack of 3 standard errors)."""
    target, draws = 0.9, 40
    fdr = []
    for d in range(draws):
        rng = np.random.default_rng(500 + d)
        x, _, y, lab, sid = population(rng, 1500)
        cal = calibration.calibrate(x, y, lab, sid, ["a", "b", "c"], target_precision=target,
                                    guarantee="expected")
        pt, labt = test_population[1], test_population[2]
        _, q = _triage(cal, test_population)
        g = (q == "green") & (labt == "car")
        # each test label is correct with prob pt: expected FDR of this draw
        fdr.append(float(1 - pt[g].mean()) if g.any() else 0.0)
    fdr = np.array(fdr)
    assert (fdr > 0).mean() > 0.9, "expected mode selected nothing"
    assert fdr.mean() <= (1 - target) + 3 * fdr.std(ddof=1) / np.sqrt(draws), fdr.mean()


def test_rare_class_gets_no_green_and_a_reason():
    rng = np.random.default_rng(7)
    x, _, y, lab, sid = population(rng, 600)
    # a class with 30 verified labels, all correct: still too few to certify
    x2, lab2 = rng.normal(size=(30, 3)) + 3.0, np.array(["zebra"] * 30)
    sid2 = np.array([f"z{i}" for i in range(30)])
    cal = calibration.calibrate(
        np.vstack([x, x2]), np.r_[y, np.ones(30, bool)], np.r_[lab, lab2], np.r_[sid, sid2], ["a", "b", "c"]
    )
    z = cal["per_class"]["zebra"]
    assert z["green_threshold"] is None
    assert "too few verified labels (30" in z["no_green_reason"]
    assert z["more_labels_needed"] is not None and z["more_labels_needed"] >= 59 * 2 - 30
    q = queues.assign(cal, np.ones(5), ["zebra"] * 5, np.arange(5))
    assert set(q) == {"yellow"}


def test_signals_that_cannot_separate_get_no_green():
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.normal(size=(n, 2))
    y = rng.random(n) < 0.85  # correctness independent of the signals
    lab = np.array(["car"] * n)
    sid = np.array([f"s{i // 3}" for i in range(n)])
    cal = calibration.calibrate(x, y, lab, sid, ["a", "b"])
    info = cal["per_class"]["car"]
    assert info["green_threshold"] is None
    assert info["more_labels_needed"] is None
    assert "do not rank" in info["no_green_reason"]


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


def test_report_counts_costs_and_final_precision():
    rng = np.random.default_rng(2)
    x, _, y, lab, sid = population(rng, 2000)
    cal = calibration.calibrate(x, y, lab, sid, ["a", "b", "c"])
    labels = np.array(["car"] * 6 + ["dog"] * 2)
    queue = ["green", "green", "yellow", "yellow", "red", None, "yellow", "green"]
    p = np.array([0.99, 0.97, 0.6, 0.4, 0.05, np.nan, 0.5, 0.98])
    review = [None, "rejected", "accepted", None, None, None, "pending", None]
    rep = build_report(cal, labels, queue, p, review, seconds_per_box=3600, cents_per_box=10,
                       usd_per_gpu_hour=2.0, gpu_hours=1.5)
    assert rep["queues"]["green"]["count"] == 3 and rep["queues"]["yellow"]["count"] == 3
    assert rep["totals"] == dict(labels=8, unassigned=1, accepted=1, rejected=1, pending=6)
    assert rep["workload"]["hours"] == 3.0 and rep["workload"]["yellow_open"] == 2
    assert rep["cost"]["manual_usd"] == 0.8
    assert rep["cost"]["auto_usd"] == pytest.approx(1.5 * 2.0 + 3 * 0.10)
    # final: green kept (0.99 + 0.98, 2 labels) + 1 accepted + open yellow p (0.4 + 0.5)
    exp_correct = 0.99 + 0.98 + 1 + 0.9
    exp_size = 2 + 1 + 0.9
    assert rep["final"]["expected_precision"] == pytest.approx(exp_correct / exp_size, abs=1e-4)
    assert rep["classes"]["car"]["queues"]["red"]["count"] == 1
    if cal["per_class"]["car"]["green_threshold"] is not None:
        assert rep["classes"]["car"]["queues"]["green"]["certified_lower"] >= 0.95
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
