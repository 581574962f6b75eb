"""Per-label quality signals (``stoplight.plugins.scoring.signals``).

Pure functions over arrays: every test builds its arrays by hand or from a
seeded generator, with known right answers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from stoplight.plugins.scoring import neighbors as NB
from stoplight.plugins.scoring import signals as S

D = 64


def _cluster(rng, n, center, intrinsic=20, spread=0.3, noise=0.05):
    """``n`` points around ``center`` with ``intrinsic``-d structure plus noise.

    Real embeddings of one class vary along a few directions; isotropic
    noise alone would make a lone outlier the class's largest direction.
    """
    basis = np.linalg.qr(rng.normal(size=(D, intrinsic)))[0]
    return (
        center
        + (rng.normal(size=(n, intrinsic)) * spread) @ basis.T
        + noise * rng.normal(size=(n, D))
    )


@pytest.fixture(scope="module")
def two_clusters():
    """Classes 0 (A) and 1 (B) in separate clusters; one A label sits in B."""
    rng = np.random.default_rng(0)
    n = 200
    ca = rng.normal(size=D)
    cb = rng.normal(size=D)
    ca *= 3 / np.linalg.norm(ca)
    cb *= 3 / np.linalg.norm(cb)
    x = np.vstack([_cluster(rng, n, ca), _cluster(rng, n, cb)])
    y = np.array([0] * n + [1] * n)
    bad = n + 5
    y[bad] = 0
    return x, y, bad


# --- hardness / margin -------------------------------------------------------


def test_hardness_uniform_onehot_and_scale_invariance():
    s = np.array([[0.3, 0.3, 0.3, 0.3], [0.0, 0.9, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    h = S.hardness(s)
    np.testing.assert_allclose(h, [1.0, 0.0, 1.0], atol=1e-12)
    # Sigmoid scores need not sum to 1: only their proportions matter.
    np.testing.assert_allclose(S.hardness(s * 0.1), h, atol=1e-12)


def test_hardness_exact_value_and_edge_cases():
    # p = [0.5, 0.5, 0] -> H = log 2 / log 3
    np.testing.assert_allclose(S.hardness(np.array([[0.2, 0.2, 0.0]])), [math.log(2) / math.log(3)])
    # all-zero row: maximally uncertain; negatives count as 0
    np.testing.assert_allclose(S.hardness(np.array([[0.0, 0.0], [-1.0, -2.0]])), [1.0, 1.0])
    # one class: nothing to confuse it with
    np.testing.assert_allclose(S.hardness(np.array([[0.7], [0.0]])), [0.0, 0.0])
    assert S.hardness(np.zeros((0, 3))).shape == (0,)


def test_margin_exact():
    s = np.array([[0.6, 0.2, 0.2], [0.8, 0.4, 0.0], [0.5, 0.5, 0.0], [0, 0, 1.0], [0, 0, 0]])
    # [0.6,0.2,0.2] -> 0.4; [0.8,0.4,0]/1.2 -> 1/3; tie -> 0; one-hot -> 1; zeros -> 0
    np.testing.assert_allclose(S.margin(s), [0.4, 1 / 3, 0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(S.margin(np.array([[0.3], [0.0]])), [1.0, 0.0])


def test_hardness_margin_range_random():
    s = np.random.default_rng(1).random((1000, 7))
    h, m = S.hardness(s), S.margin(s)
    assert h.min() >= 0 and h.max() <= 1 and m.min() >= 0 and m.max() <= 1


# --- knn agreement -----------------------------------------------------------


def test_knn_agreement_flags_misplaced_label(two_clusters):
    x, y, bad = two_clusters
    a = S.knn_agreement(x, y, k=20, batch_size=64, device="cpu")
    assert a.shape == (len(y),)
    assert a[bad] < 0.3
    assert np.delete(a, bad).min() > 0.9
    # Batching does not change the result.
    np.testing.assert_allclose(S.knn_agreement(x, y, k=20, batch_size=1000), a, atol=1e-6)


def test_knn_agreement_exact_small_case():
    # 1-d points on a circle arc: neighbours are known. Labels [0,0,1].
    ang = np.array([0.0, 0.1, 0.3])
    x = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    a = S.knn_agreement(x, np.array([0, 0, 1]), k=1)
    # nearest of 0 is 1 (same), of 1 is 0 (same), of 2 is 1 (different)
    np.testing.assert_allclose(a, [1.0, 1.0, 0.0])
    a2 = S.knn_agreement(x, np.array([0, 0, 1]), k=2)
    # label 0: neighbours 1 (same, cos .1) and 2 (diff, cos .3)
    w1, w2 = math.cos(0.1), math.cos(0.3)
    assert a2[0] == pytest.approx(w1 / (w1 + w2))
    assert np.isnan(S.knn_agreement(x[:1], np.array([0]))).all()


def _overlapping(seed, n=6000):
    """Three overlapping classes, so agreement varies smoothly over [0, 1]."""
    rng = np.random.default_rng(seed)
    means = np.array([[0, 0], [1.5, 0], [0.75, 1.3]])
    lab = rng.integers(0, 3, n)
    lat = means[lab] + rng.normal(size=(n, 2))
    off = rng.normal(size=D)
    off *= 4 / np.linalg.norm(off)
    x = off + 0.5 * lat @ rng.normal(size=(2, D)) + 0.05 * rng.normal(size=(n, D))
    return x, lab


def test_knn_agreement_approximate_matches_exact():
    x, lab = _overlapping(0)
    exact = S.knn_agreement(x, lab, k=20)
    assert exact.std() > 0.2  # the case is not trivial
    # 6000 rows in 24 lists of ~256; 2 of 24 lists probed: the index does
    # miss neighbours here (recall ~0.99), yet the score barely moves.
    approx = S.knn_agreement(x, lab, k=20, exact_limit=1000, list_size=256, nprobe=2)
    assert np.abs(approx - exact).mean() < 0.01
    assert np.corrcoef(exact, approx)[0, 1] > 0.99
    # Reproducible: the k-means is seeded.
    np.testing.assert_array_equal(
        approx, S.knn_agreement(x, lab, k=20, exact_limit=1000, list_size=256, nprobe=2)
    )


def test_ivf_search_equals_exact_when_every_list_is_probed():
    x, _ = _overlapping(1, n=3000)
    es, ei = NB.exact_knn(x, 15)
    s, i = NB.ivf_knn(x, 15, list_size=100, nprobe=1000)  # 30 lists, all probed
    np.testing.assert_allclose(s.numpy(), es.numpy(), atol=1e-6)
    assert NB.recall_at_k(i.numpy(), ei.numpy()) > 0.999  # only exact ties may swap
    assert (i.numpy() != np.arange(3000)[:, None]).all()  # never itself


def test_ivf_recall_grows_with_nprobe_and_stays_high_on_clusters():
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(40, D)) * 3
    lab = rng.integers(0, 40, 8000)
    x = np.vstack([_cluster(rng, 1, centers[c]) for c in lab])
    _, ei = NB.exact_knn(x, 10)
    recalls = []
    for nprobe in (1, 4, 16):
        _, i = NB.ivf_knn(x, 10, list_size=200, nprobe=nprobe)
        recalls.append(NB.recall_at_k(i.numpy(), ei.numpy()))
    assert recalls[0] < recalls[1] <= recalls[2]
    assert recalls[2] > 0.95


def test_ivf_rows_with_fewer_candidates_than_k():
    # 6 rows in lists of ~2, one list probed: a row has at most 1 candidate
    # for 3 places; the empty places are marked, never filled with itself.
    x = np.random.default_rng(0).normal(size=(6, D))
    s, i = NB.ivf_knn(x, 3, list_size=2, nprobe=1)
    s, i = s.numpy(), i.numpy()
    assert s.shape == i.shape == (6, 3)
    assert ((i == -1) == np.isinf(s)).all()
    assert (i[:, 1:] == -1).all()
    assert (i != np.arange(6)[:, None]).all()


def test_neighbor_agreement_ignores_empty_places():
    sims = np.array([[0.9, 0.5, -np.inf], [0.8, -np.inf, -np.inf], [-np.inf] * 3, [-0.2, -0.3, -np.inf]])
    idx = np.array([[1, 2, -1], [0, -1, -1], [-1, -1, -1], [0, 1, -1]])
    lab = np.array([0, 0, 1, 0])
    a = S.neighbor_agreement(sims, idx, lab)
    # row 0: weights .9 (same) .5 (other); row 1: one same neighbour;
    # row 2: no neighbour; row 3: all weights 0 -> unweighted share of 2
    np.testing.assert_allclose(a[[0, 1, 3]], [0.9 / 1.4, 1.0, 1.0])
    assert np.isnan(a[2])


def test_knn_agreement_approximate_keeps_rare_classes():
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(3, D)) * 3
    sizes = [3000, 3000, 25]
    x = np.vstack([_cluster(rng, s, c) for s, c in zip(sizes, centers)])
    y = np.repeat([0, 1, 2], sizes)
    a = S.knn_agreement(x, y, k=10, exact_limit=1000, list_size=300)
    assert a[y == 2].min() > 0.9


def test_recall_at_k():
    exact = np.array([[1, 2, 3], [0, 2, 3]])
    assert NB.recall_at_k(np.array([[3, 2, 1], [0, -1, 9]]), exact) == pytest.approx(4 / 6)


# --- class-wise autoencoders -------------------------------------------------


def test_rer_flags_misplaced_label(two_clusters):
    x, y, bad = two_clusters
    rer, err, info = S.class_autoencoder_rer(x, y, 2, seed=0, device="cpu")
    assert rer.shape == (len(y),) and err.shape == (len(y), 2)
    assert rer[bad] > 1
    assert np.delete(rer, bad).max() < 1
    assert 0 < info["difficulty"] < 1
    assert info["difficulty"] == pytest.approx(rer.mean())
    assert info["per_class_rer"].shape == (2,)
    assert info["trained"].all() and info["steps"] > 0
    # RER is the own-class error over the other class's error.
    i = np.arange(len(y))
    np.testing.assert_allclose(rer, err[i, y] / err[i, 1 - y])
    # Deterministic given the seed.
    rer2, _, _ = S.class_autoencoder_rer(x, y, 2, seed=0, device="cpu")
    np.testing.assert_array_equal(rer, rer2)


def test_rer_robust_pools_on_contaminated_classes():
    """Five isotropic clusters, 10 % of labels given another class: each
    class's autoencoder trained on all its members learns its foreign
    members (the paper's pools, ``clean_k=0``: the control); trained on the
    members their neighbours agree with, RER ranks the wrong labels first."""
    from stoplight.plugins.scoring import rer as R

    rng = np.random.default_rng(0)
    n, c = 1200, 5
    centers = rng.normal(size=(c, D))
    truth = rng.integers(0, c, n)
    x = centers[truth] + 0.5 * rng.normal(size=(n, D))
    wrong = rng.random(n) < 0.1
    y = truth.copy()
    y[wrong] = (truth[wrong] + rng.integers(1, c, wrong.sum())) % c
    robust, _, info = R.class_autoencoder_rer(x, y, c, seed=0, device="cpu")
    plain, _, _ = R.class_autoencoder_rer(x, y, c, seed=0, device="cpu", clean_k=0)
    assert _auroc(wrong, robust) > 0.97
    assert _auroc(wrong, plain) < 0.85  # the control: contaminated pools
    assert (robust[wrong] > 1).mean() > 0.9
    assert (info["pool_sizes"] < np.bincount(y, minlength=c)).all()
    # a given train_mask replaces the neighbours' vote
    masked, _, info2 = R.class_autoencoder_rer(x, y, c, seed=0, device="cpu", train_mask=~wrong)
    np.testing.assert_array_equal(info2["pool_sizes"], np.bincount(y[~wrong], minlength=c))
    assert _auroc(wrong, masked) > 0.97
    with pytest.raises(ValueError):
        R.class_autoencoder_rer(x, y, c, clean_k=-1)


def test_rer_small_classes_are_nan(two_clusters):
    x, y, _ = two_clusters
    y3 = y.copy()
    y3[:3] = 2  # class 2 has 3 members < min_class_size
    rer, err, info = S.class_autoencoder_rer(
        x, y3, 4, seed=0, device="cpu", min_steps=50, epochs=1
    )
    assert np.isnan(rer[:3]).all()
    assert np.isfinite(rer[3:]).all()
    assert np.isnan(err[:, 2]).all() and np.isnan(err[:, 3]).all()
    assert info["trained"].tolist() == [True, True, False, False]
    assert np.isnan(info["per_class_rer"][2:]).all()
    assert info["difficulty"] == pytest.approx(rer[3:].mean())
    # A single trainable class: nothing to compare with.
    rer1, _, info1 = S.class_autoencoder_rer(x, np.zeros(len(x), int), 1, min_steps=5, epochs=1)
    assert np.isnan(rer1).all() and np.isnan(info1["difficulty"])


# --- CLIP agreement ----------------------------------------------------------


def test_clip_agreement_sign_and_value():
    text = np.eye(3, 8)
    img = np.array(
        [
            [1.0, 0.2, 0, 0, 0, 0, 0, 0],  # looks like class 0
            [1.0, 0.2, 0, 0, 0, 0, 0, 0],  # labelled 1 but looks like 0
            [0, 0, 2.0, 0, 0, 0, 0, 0],  # exactly class 2
        ]
    )
    a = S.clip_agreement(img, text, np.array([0, 1, 2]))
    c0, c1 = 1 / math.hypot(1, 0.2), 0.2 / math.hypot(1, 0.2)
    np.testing.assert_allclose(a, [c0 - c1, c1 - c0, 1.0])
    assert a[0] > 0 > a[1]
    assert np.isnan(S.clip_agreement(img, text[:1], np.zeros(3, int))).all()
    with pytest.raises(ValueError):
        S.clip_agreement(img, text, np.array([0, 1, 3]))


# --- consensus ---------------------------------------------------------------


def test_consensus_hand_built():
    # Image 0: two labels; image 1: one label. Boxes are [x, y, w, h].
    boxes = np.array([[0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.2, 0.2]])
    labels = np.array([0, 1, 0])
    sample = np.array([0, 0, 1])
    # Model A: exact match of label 0 (conf .9); a same-class box at IoU .25
    # of label 1 (conf .8; below 0.5); a wrong-class exact box on image 1.
    a = (
        np.array([[0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 0.1, 0.1], [0.1, 0.1, 0.2, 0.2]]),
        np.array([0, 1, 1]),
        np.array([0.9, 0.8, 0.7]),
        np.array([0, 0, 1]),
    )
    # Model B: for label 0 two candidates, IoU 1 (conf .3) and IoU .5625
    # (conf .95): the best-IoU one counts; label 1's exact box on the wrong
    # image does not count; image 1 has an exact match with conf .6.
    b = (
        np.array(
            [[0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.3, 0.3], [0.5, 0.5, 0.2, 0.2], [0.1, 0.1, 0.2, 0.2]]
        ),
        np.array([0, 0, 1, 0]),
        np.array([0.3, 0.95, 0.5, 0.6]),
        np.array([0, 0, 1, 1]),
    )
    out = S.consensus(boxes, labels, sample, [a, b])
    np.testing.assert_allclose(out, [(0.9 + 0.3) / 2, 0.0, (0.0 + 0.6) / 2])
    # Weighted; and a model without confidences votes 1 per match.
    out_w = S.consensus(boxes, labels, sample, [a, b], weights=[3, 1])
    np.testing.assert_allclose(out_w, [(3 * 0.9 + 0.3) / 4, 0.0, 0.6 / 4])
    out_none = S.consensus(boxes, labels, sample, [(b[0], b[1], None, b[3])])
    np.testing.assert_allclose(out_none, [1.0, 0.0, 1.0])
    # IoU threshold: the 0.5625 box alone matches at 0.5, not at 0.6.
    only = (b[0][1:2], b[1][1:2], b[2][1:2], b[3][1:2])
    np.testing.assert_allclose(S.consensus(boxes, labels, sample, [only]), [0.95, 0, 0])
    np.testing.assert_allclose(S.consensus(boxes, labels, sample, [only], iou=0.6), [0, 0, 0])
    # Tiny pair budget: chunking gives the same answer.
    np.testing.assert_allclose(S.consensus(boxes, labels, sample, [a, b], max_pairs=1), out)
    assert np.isnan(S.consensus(boxes, labels, sample, [])).all()


def test_consensus_vectorized_matches_loop():
    rng = np.random.default_rng(5)
    n, m = 400, 500
    mk = lambda k: (  # noqa: E731
        np.hstack([rng.random((k, 2)) * 0.7, 0.05 + rng.random((k, 2)) * 0.25]),
        rng.integers(0, 3, k),
        rng.random(k),
        rng.integers(0, 40, k),
    )
    boxes, labels, _, sample = mk(n)
    other = mk(m)
    got = S.consensus(boxes, labels, sample, [other], iou=0.3, max_pairs=97)
    want = np.zeros(n)
    for i in range(n):
        best = (-1.0, -1.0)
        for j in range(m):
            if other[3][j] == sample[i] and other[1][j] == labels[i]:
                ov = S._iou_xywh(boxes[i : i + 1], other[0][j : j + 1])[0]
                best = max(best, (ov, other[2][j]))
        want[i] = best[1] if best[0] >= 0.3 else 0.0
    np.testing.assert_allclose(got, want)
    assert (want > 0).sum() > 10  # the case exercises matches


# --- uncertainty -------------------------------------------------------------


def test_uncertainty_range_monotone_and_missing():
    rng = np.random.default_rng(7)
    n = 500
    sig = dict(
        hardness=rng.random(n),
        knn_agreement=rng.random(n),
        clip_agreement=rng.uniform(-0.1, 0.1, n),
        rer=rng.uniform(0, 3, n),
        consensus=rng.random(n),
        confidence=rng.random(n),
    )
    for method in ("pool", "mean"):
        u = S.uncertainty(**sig, method=method, adapt=False)
        assert u.shape == (n,) and u.min() >= 0 and u.max() <= 1
        increasing = {"hardness": 0.1, "rer": 0.5}
        decreasing = {"knn_agreement": 0.1, "clip_agreement": 0.02, "consensus": 0.1, "confidence": 0.1}
        for name, step in {**increasing, **decreasing}.items():
            bumped = dict(sig)
            bumped[name] = sig[name] + step
            if name not in ("rer", "clip_agreement"):
                bumped[name] = np.clip(bumped[name], 0, 1)
            diff = S.uncertainty(**bumped, method=method, adapt=False) - u
            if name in increasing:
                assert (diff >= 0).all() and (diff > 0).any(), (method, name)
            else:
                assert (diff <= 0).all() and (diff < 0).any(), (method, name)
    # Exact values: the former mean, and the pool of log-odds.
    one = dict(hardness=np.array([0.2]), knn_agreement=np.array([0.6]), rer=np.array([1.0]))
    np.testing.assert_allclose(S.uncertainty(**one, method="mean"), [(0.2 + 0.4 + 0.5) / 3])
    lo = lambda t: math.log(t / (1 - t))  # noqa: E731
    pooled = (0.25 * lo(0.2) + lo(0.4) + 0.25 * lo(0.5)) / 1.5
    np.testing.assert_allclose(S.uncertainty(**one), [1 / (1 + math.exp(-pooled))])
    # Missing signals (None or NaN) are left out of each label's pool.
    u2 = S.uncertainty(
        hardness=np.array([0.2, np.nan, np.nan]),
        rer=np.array([np.nan, 3.0, np.nan]),
        confidence=None,
    )
    np.testing.assert_allclose(u2, [0.2, 0.75, np.nan])
    np.testing.assert_allclose(
        S.uncertainty(clip_agreement=np.array([0.0, 2.0, -2.0])), [0.5, 0.01, 0.99], atol=1e-12
    )
    np.testing.assert_allclose(S.uncertainty(rer=np.array([np.inf, 0.0]), method="mean"), [1.0, 0.0])
    np.testing.assert_allclose(S.uncertainty(rer=np.array([np.inf, 0.0])), [0.99, 0.01])
    w = S.uncertainty(
        hardness=np.array([1.0]), confidence=np.array([1.0]), weights={"hardness": 3}, method="mean"
    )
    np.testing.assert_allclose(w, [0.75])
    with pytest.raises(ValueError):
        S.uncertainty()
    with pytest.raises(ValueError):
        S.uncertainty(hardness=np.zeros(2), rer=np.zeros(3))
    with pytest.raises(ValueError):
        S.uncertainty(hardness=np.zeros(2), method="median")
    with pytest.raises(ValueError):
        S.uncertainty(hardness=np.zeros(2), weights={"margin": 1})


def _auroc(wrong: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(wrong, score))


def _simulated_terms(rng, n=4000):
    """Signals of ``n`` labels, 30 % wrong: a good detector confidence, a
    good kNN agreement, a weak hardness that shares the confidence's errors,
    and a weak RER. Every signal is a noisy view of the truth."""
    wrong = rng.random(n) < 0.3
    z = np.where(wrong, 1.0, -1.0)
    shared = rng.normal(size=n)
    sig = lambda s, noise: 1 / (1 + np.exp(-(s * z + noise)))  # noqa: E731
    return wrong, dict(
        confidence=1 - sig(1.2, rng.normal(size=n) + 0.5 * shared),
        knn_agreement=1 - sig(1.2, rng.normal(size=n)),
        hardness=sig(0.3, rng.normal(size=n) + shared),
        rer=np.exp(0.3 * z + rng.normal(size=n)),
    )


def test_uncertainty_pool_is_at_least_its_best_term_and_the_mean_is_not():
    """Statistical: over seeds, the pool of a good and two weak terms plus a
    pure-noise term scores at least the best single term's AUROC for "label
    is wrong"; the former plain mean (the control) falls below it."""
    pool_gap, mean_gap = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        wrong, sig = _simulated_terms(rng)
        sig["consensus"] = rng.random(wrong.size)  # a broken term: pure noise
        terms = S.wrongness_terms(**sig)
        best = max(_auroc(wrong, t) for t in terms.values())
        pool_gap.append(_auroc(wrong, S.uncertainty(**sig)) - best)
        mean_gap.append(_auroc(wrong, S.uncertainty(**sig, method="mean", adapt=False)) - best)
    assert min(pool_gap) >= -0.005, pool_gap
    assert np.mean(pool_gap) > 0, pool_gap
    assert max(mean_gap) < -0.01, mean_gap  # the control is caught


def test_uncertainty_adapt_silences_a_noise_term():
    rng = np.random.default_rng(11)
    wrong, sig = _simulated_terms(rng)
    sig["consensus"] = rng.random(wrong.size)
    without = _auroc(wrong, S.uncertainty(**{k: v for k, v in sig.items() if k != "consensus"}))
    adapted = _auroc(wrong, S.uncertainty(**sig))
    fixed = _auroc(wrong, S.uncertainty(**sig, adapt=False))
    assert abs(adapted - without) < 0.005
    assert fixed < without - 0.01  # control: fixed weights let the noise in
    terms = S.wrongness_terms(**sig)
    from stoplight.plugins.scoring import combination as CB

    logits = {k: np.log(np.clip(t, 0.01, 0.99) / (1 - np.clip(t, 0.01, 0.99))) for k, t in terms.items()}
    w = CB.adapted_weights(logits, {k: CB.DEFAULT_WEIGHTS[k] for k in terms})
    assert w["consensus"] < 0.05 * w["knn_agreement"]