"""Acceptance sampling of a candidate green set: pure functions on arrays.

Calibration on a random verified subset can rarely certify a high
precision: the labels worth certifying are the best-scored few percent, so
few verified labels land among them. Acceptance sampling turns this round:
fix the *lot* first (a candidate set chosen from the calibration alone),
then check a uniform random sample of that lot.

The procedure (what :func:`plan_audit`, :func:`draw_sample` and
:func:`audit_state` implement):

1. **Nested candidate sets, fixed in advance.** ``C_1 ⊃ C_2 ⊃ ... ⊃ C_K``:
   undecided labels whose P(correct) is at or above thresholds
   ``t_1 < t_2 < ... < t_K``, each united with the labels the calibration
   already put in green. They are chosen from the calibration (the
   verified labels' cross-fitted scores) and the candidates' scores alone,
   before any audit answer exists.
2. **One uniform sample.** A seeded uniform random order of ``C_1``; its
   first ``n`` labels are the sample. The labels of ``C_j`` among them
   (``m_j`` of them, known before anyone answers: membership does not
   depend on correctness) are a uniform random sample of ``C_j`` drawn
   without replacement.
3. **An exact test per set.** ``C_j`` is certified when at most ``c_j`` of
   its ``m_j`` sampled labels are wrong, where ``c_j`` is the largest count
   whose hypergeometric probability under the best lot that still misses
   the target is at most ``delta`` (:func:`allowed_wrong`): a single
   sampling plan ``(m_j, c_j)``, as in acceptance sampling.
4. **Fixed-sequence order.** Sets are tested from the smallest
   (``C_K``) up, and a set counts only if every smaller one passed, so the
   chance that *any* certified set misses the target is at most ``delta``
   with no multiplicity correction (the same fixed-sequence argument as
   :func:`.guarantees.pac_green_threshold`).

Optional stopping: each set's sample is fixed before the first answer, so a
person may stop and resume at any time; stopping only leaves the tests of
the unfinished sets undone. A set whose wrong count already exceeds ``c_j``
fails at once (curtailment) and its larger sets with it, so no answer is
asked that cannot change the outcome.

All of it assumes people answer correctly, and that the sample is the one
drawn: answers given out of the drawn order are fine, answers skipped are
waited for, never replaced.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
from scipy import stats

#: candidate set sizes examined by the planner (geometric steps over the
#: undecided labels ranked by P(correct))
PLAN_GRID = 24
#: most nested sets in a plan
MAX_SETS = 3
#: fewest verified labels inside a candidate set for the planner to trust
#: its estimated precision
MIN_VERIFIED = 10
#: least chance that the smallest set of a plan gets certified: below it an
#: audit would most likely waste every answer
MIN_CERTIFY_PROBABILITY = 0.2


def check_params(target: float, delta: float, max_checks: int) -> None:
    """Raises ValueError naming the first invalid parameter."""
    if not 0.0 < target < 1.0:
        raise ValueError(f"Parameter 'target_precision' must be in (0, 1); got {target}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"Parameter 'confidence_level' must be in (0, 1); got {1 - delta}")
    if isinstance(max_checks, bool) or int(max_checks) != max_checks or not 1 <= max_checks <= 100_000:
        raise ValueError(f"Parameter 'max_checks' must be an integer in [1, 100000]; got {max_checks!r}")


def _fewest_bad_wrong(population: int, target: float) -> int:
    """Fewest wrong labels of a lot whose precision is below ``target``."""
    return int(math.floor((1.0 - target) * population + 1e-9)) + 1


@functools.lru_cache(maxsize=4096)
def allowed_wrong(population: int, sample: int, target: float, delta: float) -> int:
    """Most wrong labels in a uniform sample that still certify the lot.

    The lot (``population`` labels) is certified to have precision at least
    ``target`` when the sample (``sample`` labels drawn without
    replacement) holds at most the returned number of wrong ones: under any
    lot that misses the target, that happens with probability at most
    ``delta`` (exact hypergeometric tail at the best such lot).

    Returns:
        the allowed count, or -1 when no outcome of this sample can
        certify the lot (too small a sample)
    """
    if sample <= 0 or population <= 0:
        return -1
    sample = min(sample, population)
    bad = _fewest_bad_wrong(population, target)
    if bad > population:  # every lot meets the target
        return sample
    cdf = stats.hypergeom.cdf(np.arange(sample + 1), population, bad, sample)
    ok = np.nonzero(cdf <= delta)[0]
    return int(ok.max()) if len(ok) else -1


@functools.lru_cache(maxsize=4096)
def precision_lower_bound(population: int, sample: int, wrong: int, delta: float) -> float:
    """Exact one-sided lower confidence bound on a lot's precision.

    The smallest precision ``(N - D) / N`` among lots (``D`` wrong labels)
    under which seeing at most ``wrong`` wrong labels in a uniform sample of
    ``sample`` has probability above ``delta`` (hypergeometric; Clopper–
    Pearson's finite-population twin). 0 when nothing was sampled.
    """
    if sample <= 0 or population <= 0:
        return 0.0
    sample = min(sample, population)
    lo, hi = int(wrong), population - (sample - int(wrong))  # feasible D
    if stats.hypergeom.cdf(wrong, population, hi, sample) > delta:
        return (population - hi) / population
    # largest D with cdf > delta: cdf falls as D grows
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if stats.hypergeom.cdf(wrong, population, mid, sample) > delta:
            lo = mid
        else:
            hi = mid
    return (population - lo) / population


def acceptance_probability(population: int, sample: int, allowed: int, precision) -> np.ndarray:
    """Chance that a lot of the given ``precision`` (scalar or array) is
    certified by the plan ``(sample, allowed)``."""
    prec = np.atleast_1d(np.asarray(precision, dtype=np.float64))
    if allowed < 0:
        return np.zeros_like(prec)
    wrong = np.clip(np.round((1.0 - prec) * population), 0, population).astype(np.int64)
    return stats.hypergeom.cdf(allowed, population, wrong, min(sample, population))


def _posterior_grid(k: int, n: int, points: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature of the Jeffreys posterior Beta(k + 1/2, n - k + 1/2) of a
    precision: ``(values, weights)``."""
    q = (np.arange(points) + 0.5) / points
    return stats.beta.ppf(q, k + 0.5, n - k + 0.5), np.full(points, 1.0 / points)


def plan_audit(
    p_candidates: np.ndarray,
    fixed: np.ndarray,
    verified_scores: np.ndarray,
    verified_correct: np.ndarray,
    verified_fixed: np.ndarray,
    target: float,
    delta: float,
    max_checks: int,
    max_sets: int = MAX_SETS,
) -> dict:
    """Chooses the nested candidate sets and the sample size of an audit.

    Uses the calibration alone: a candidate set's precision is estimated
    from the verified labels that would fall in it (their cross-fitted
    scores), with the Jeffreys posterior as its uncertainty; the chance that
    the set gets certified is that posterior's average of
    :func:`acceptance_probability`. Among thresholds at quantiles of the
    candidates' scores, the planner picks up to ``max_sets`` nested sets
    that maximise the expected number of correct labels certified beyond
    the calibration's green (sets
    tested smallest first; a set counts only if the smaller ones pass; the
    events are treated as independent, an approximation used for choosing
    only — the guarantee does not depend on it).

    Args:
        p_candidates: ``(N,)`` P(correct) of the undecided labels
        fixed: ``(N,)`` bool, labels already green under the calibration
            (every candidate set contains them)
        verified_scores: ``(V,)`` cross-fitted P(correct) of the verified labels
        verified_correct: ``(V,)`` bool, whether each is correct
        verified_fixed: ``(V,)`` bool, verified labels the calibration's
            green holds
        target: precision to certify
        delta: error probability (``1 - confidence_level``)
        max_checks: most answers a person gives

    Returns:
        ``thresholds`` (ascending: ``C_1`` first), ``sizes``, ``sample``
        (answers planned), ``expected_precision`` and
        ``certify_probability`` per set, ``expected_certified`` (correct
        labels the audit adds to the calibration's green, on average);
        empty ``thresholds`` when no set is worth auditing (with
        ``reason``)
    """
    p = np.asarray(p_candidates, dtype=np.float64)
    fixed = np.asarray(fixed, dtype=bool)
    vs = np.asarray(verified_scores, dtype=np.float64)
    vy = np.asarray(verified_correct, dtype=bool)
    vfixed = np.asarray(verified_fixed, dtype=bool)
    empty = dict(thresholds=[], sizes=[], sample=0, expected_precision=[], certify_probability=[],
                 expected_certified=0.0)
    if len(p) == 0:
        return dict(empty, reason="no undecided label to audit")
    cands = _candidate_sets(p, fixed, vs, vy, vfixed)
    if not cands:
        return dict(empty, reason=f"fewer than {MIN_VERIFIED} verified labels inside any candidate set")

    def probs_for(i: int, n: int) -> dict[int, float]:
        """P(pass) of every set no larger than set i when set i gets n draws."""
        out = {}
        for j in range(i, len(cands)):
            c = cands[j]
            m = min(c["size"], int(round(n * c["size"] / cands[i]["size"])))
            a = allowed_wrong(c["size"], m, target, delta)
            out[j] = float(np.sum(c["weights"] * acceptance_probability(c["size"], m, a, c["values"])))
        return out

    best_value, best_chain, best_n = 0.0, None, 0
    for i in range(len(cands)):
        n = int(min(max_checks, cands[i]["size"]))
        value, chain = _best_chain(i, probs_for(i, n), cands, max_sets)
        if value > best_value:
            best_value, best_chain, best_n = value, chain, n
    if best_chain is None or best_value <= 0:
        best = max(cands, key=lambda c: c["estimate"])
        return dict(empty, reason=(
            f"no candidate set has a {MIN_CERTIFY_PROBABILITY:.0%} chance of being certified within "
            f"max_checks answers (the most precise one, {best['size']} labels, is estimated "
            f"{best['estimate']:.1%} right)"
        ))
    # fewer answers when they certify nearly as much (a very precise set
    # needs far fewer than max_checks)
    for n in np.unique(np.linspace(best_n, 20, 12).round().astype(int)):
        if n >= best_n:
            continue
        if _chain_value(best_chain, probs_for(best_chain[0], int(n)), cands) >= 0.97 * best_value:
            best_n = int(n)
            break
    probs = probs_for(best_chain[0], best_n)
    value = _chain_value(best_chain, probs, cands)
    reach = [float(np.prod([probs[j] for j in best_chain[r:]])) for r in range(len(best_chain))]
    return dict(
        thresholds=[cands[j]["threshold"] for j in best_chain],
        sizes=[cands[j]["size"] for j in best_chain],
        sample=best_n,
        expected_precision=[round(cands[j]["estimate"], 4) for j in best_chain],
        certify_probability=[round(r, 4) for r in reach],
        expected_certified=round(value, 1),
    )


def _candidate_sets(p, fixed, vs, vy, vfixed) -> list[dict]:
    """Candidate sets (largest first) at thresholds that take the top
    ``2^(-k/4)`` share of the free labels, each with the Jeffreys
    posterior of its precision from the verified labels inside it."""
    free = np.sort(p[~fixed])[::-1]
    ranks = np.unique(np.geomspace(1, max(len(free), 1), PLAN_GRID).round().astype(int)) if len(free) else []
    grid = [float(free[r - 1]) for r in ranks]
    n_fixed = int(fixed.sum())
    cands, seen = [], set()
    for t in grid:
        size = int((fixed | (p >= t)).sum())
        if size == 0 or size in seen:
            continue
        seen.add(size)
        inside = vfixed | (vs >= t)
        n_v, k_v = int(inside.sum()), int(vy[inside].sum())
        if n_v < MIN_VERIFIED:
            continue
        values, weights = _posterior_grid(k_v, n_v)
        cands.append(dict(threshold=float(t), size=size, gain=size - n_fixed, values=values, weights=weights,
                          estimate=float((k_v + 0.5) / (n_v + 1.0))))
    cands.sort(key=lambda c: -c["size"])
    return cands


def _best_chain(i: int, probs: dict, cands: list[dict], max_sets: int) -> tuple[float, list[int] | None]:
    """Best chain of up to ``max_sets`` shrinking sets starting at set i."""
    best_value, best_chain = 0.0, None
    stack = [[i]]
    while stack:
        chain = stack.pop()
        value = _chain_value(chain, probs, cands) if probs[chain[-1]] >= MIN_CERTIFY_PROBABILITY else 0.0
        if value > best_value:
            best_value, best_chain = value, chain
        if len(chain) < max_sets:
            stack.extend(chain + [j] for j in range(chain[-1] + 1, len(cands)))
    return best_value, best_chain


def _chain_value(chain: list[int], probs: dict, cands: list[dict]) -> float:
    """Expected correct labels a chain (sets large -> small) adds to the
    calibration's green: the largest set whose own test and every smaller
    set's test pass, counted beyond the labels already green."""
    value, reach_smaller = 0.0, 1.0
    below = 0.0  # value already counted for smaller sets
    for j in reversed(chain):  # smallest first
        reach = reach_smaller * probs[j]
        worth = cands[j]["gain"] * cands[j]["estimate"]
        value += reach * (worth - below)
        below, reach_smaller = worth, reach
    return value


def draw_sample(num_candidates: int, sample: int, seed: int) -> np.ndarray:
    """Positions (into the candidate list) of the audit sample, in draw
    order: the first ``sample`` of a seeded uniform random permutation."""
    rng = np.random.default_rng(seed)
    return rng.permutation(num_candidates)[: min(sample, num_candidates)].astype(np.int64)


def audit_state(
    levels: np.ndarray,
    answers: Sequence[bool | None],
    sizes: Sequence[int],
    target: float,
    delta: float,
) -> dict:
    """Where an audit stands, from the answers given so far.

    Set ``j`` *passes* when its sample is answered in full with at most
    ``allowed_wrong`` wrong labels and *fails* as soon as more are wrong
    (curtailment: more answers cannot undo it). A set is certified when it
    and every smaller set passed; a failed set ends the hope of every
    larger one.

    Args:
        levels: ``(n,)`` for each sampled label in draw order, the index of
            the smallest candidate set holding it (0 = only ``C_1``)
        answers: ``(n,)`` True (correct), False (wrong) or None (not yet)
        sizes: ``(K,)`` sizes of ``C_1 .. C_K`` (index 0 the largest)
        target: precision to certify
        delta: error probability

    Returns:
        ``status`` (``needs_answers`` while a set that can still be
        certified waits for answers; else ``certified`` or
        ``not_certifiable``), ``certified`` (index of the largest certified
        set, or None), ``sets`` (per set: ``size``, ``sample``,
        ``answered``, ``wrong``, ``allowed_wrong``, ``state`` = ``passed`` |
        ``failed`` | ``open`` | ``dropped`` (a smaller set failed), and
        ``lower_bound`` once answered in full), and ``ask`` (sample
        positions still to answer, smallest open set's first, draw order
        within)
    """
    levels = np.asarray(levels, dtype=np.int64)
    known = np.array([a is not None for a in answers], dtype=bool)
    wrong = np.array([a is not None and not a for a in answers], dtype=bool)
    sets = []
    for j, size in enumerate(sizes):
        inside = levels >= j
        s = dict(size=int(size), sample=int(inside.sum()), answered=int((inside & known).sum()),
                 wrong=int((inside & wrong).sum()))
        s["allowed_wrong"] = allowed_wrong(s["size"], s["sample"], target, delta)
        if s["wrong"] > s["allowed_wrong"]:
            s["state"] = "failed"
        elif s["answered"] == s["sample"]:
            s["state"] = "passed"
        else:
            s["state"] = "open"
        if s["answered"] == s["sample"] and s["sample"]:
            s["lower_bound"] = round(precision_lower_bound(s["size"], s["sample"], s["wrong"], delta), 6)
        sets.append(s)
    certified, alive, smaller_failed = None, [], False
    for j in reversed(range(len(sets))):  # smallest set first
        if smaller_failed:
            sets[j]["state"] = "dropped"
            continue
        if sets[j]["state"] == "failed":
            smaller_failed = True
            continue
        alive.append(j)
        if sets[j]["state"] == "passed" and all(sets[i]["state"] == "passed" for i in range(j, len(sets))):
            certified = j
    waiting = [j for j in alive if sets[j]["state"] == "open"]
    ask: list[int] = []
    if waiting:
        largest = min(waiting)
        order = np.argsort(-levels, kind="stable")  # smallest set's labels first
        ask = [int(i) for i in order if levels[i] >= largest and not known[i]]
    status = "needs_answers" if waiting else ("certified" if certified is not None else "not_certifiable")
    return dict(status=status, certified=certified, sets=sets, ask=ask)
