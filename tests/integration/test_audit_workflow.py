"""audit_green through real FiftyOne on the digits example: a weak
calibration (few verified images, confidence only) certifies little; an
audit answered by a simulated reviewer (decisions from the ground truth,
through review_labels) certifies a green whose precision on the labels not
used for calibration meets the target."""

from __future__ import annotations

import fiftyone.operators as foo
import numpy as np
import pytest
from digitskit import verified_digits

from stoplight.plugins.review.decisions import review_labels
from stoplight.plugins.triage import green_audit, workflow

AUDIT = "@stoplight/autolabel/audit_green"


@pytest.fixture(scope="module")
def digits(tmp_root):
    ds, info = verified_digits(tmp_root / "digits-audit", seed=3, copies=2, part=10, pick_seed=1)
    ds.persistent = False
    truth = dict(zip(ds.values("autolabels.detections.id", unwind=True), ~np.asarray(info["wrong"])))
    yield ds, truth
    ds.delete()


@pytest.fixture()
def triaged(digits):
    """A clone, calibrated per class on confidence alone (little green)."""
    ds, truth = digits
    clone = ds.clone()
    old = ds.values("autolabels.detections.id", unwind=True)
    new = clone.values("autolabels.detections.id", unwind=True)
    workflow.calibrate_triage(clone.match_tags("verified"), "autolabels", "ground_truth", signals=["confidence"],
                              scope="class", calibration_key="triage")
    workflow.assign_queues(clone, "autolabels", "triage", diversity_attr=None)
    yield clone, {n: truth[o] for o, n in zip(old, new)}
    clone.delete()


def _labels(ds):
    ids, queue, review, rank = ds.values(
        [f"autolabels.detections.{a}" for a in ("id", "queue", "review", "audit_rank")], unwind=True)
    return dict(zip(ids, queue)), dict(zip(ids, review)), dict(zip(ids, rank))


def _answer(ds, pending, truth, k):
    """The simulated reviewer decides the first k pending labels by the truth."""
    good = [p["label_id"] for p in pending[:k] if truth[p["label_id"]]]
    bad = [p["label_id"] for p in pending[:k] if not truth[p["label_id"]]]
    if good:
        review_labels(ds, "autolabels", "accept", label_ids=good, user="simulated-reviewer")
    if bad:
        review_labels(ds, "autolabels", "reject", label_ids=bad, user="simulated-reviewer")
    return len(good) + len(bad)


def test_audit_certifies_green_on_the_labels_not_used_for_calibration(triaged):
    ds, truth = triaged
    queue0, _, _ = _labels(ds)
    green0 = sum(q == "green" for q in queue0.values())
    first = green_audit.audit_green(ds, "autolabels", max_checks=200, seed=11)
    assert first["status"] == "needs_answers", first["message"]
    assert first["pending"] and first["checked"] == 0 and first["lower_bound"] is None
    cfg0 = ds.get_run_info("audit").config
    plan0 = (list(cfg0.thresholds), list(cfg0.sizes), list(cfg0.sample_label_ids))
    # the questions are marked on the labels, first one rank 1
    _, _, rank = _labels(ds)
    assert rank[first["pending"][0]["label_id"]] == 1
    answered, result = 0, first
    while result["status"] == "needs_answers":
        answered += _answer(ds, result["pending"], truth, 25)
        result = green_audit.audit_green(ds, "autolabels")
        cfg = ds.get_run_info("audit").config
        # the candidate sets and the sample never change with the answers
        assert (list(cfg.thresholds), list(cfg.sizes), list(cfg.sample_label_ids)) == plan0
    assert answered <= 200
    assert result["status"] == "certified", result["message"]
    assert result["lower_bound"] >= 0.95 and result["candidates"] == result["certified_labels"]
    queue, review, rank = _labels(ds)
    green = [i for i, q in queue.items() if q == "green" and review[i] != "rejected"]
    assert len(green) > green0, "the audit certified nothing beyond the calibration's green"
    # precision of green (minus rejections) on labels not used for calibration
    unverified = set(ds.match_tags("verified", bool=False).values("autolabels.detections.id", unwind=True))
    g = [i for i in green if i in unverified]
    assert np.mean([truth[i] for i in g]) >= 0.95
    # every answer is a human decision, kept; no question is left marked
    assert sum(v in ("accepted", "rejected") for v in review.values()) == answered
    assert not any(v is not None for v in rank.values())
    # the record: plan, sample, answers, bound, method
    cfg = ds.get_run_info("audit").config
    assert cfg.status == "certified" and cfg.lower_bound == result["lower_bound"]
    assert len(cfg.answers) == len(cfg.sample_label_ids) and "hypergeometric" in cfg.statistics
    assert cfg.seed == 11 and len(cfg.sample_label_ids) <= 200
    # re-triage with the same calibration keeps the certified labels green
    workflow.assign_queues(ds, "autolabels", "triage", diversity_attr=None)
    queue2, review2, _ = _labels(ds)
    assert all(queue2[i] == "green" for i in green if review2[i] not in ("accepted", "rejected"))
    assert review2 == review


def test_restart_draws_a_new_sample_and_answers_stay(triaged):
    ds, truth = triaged
    first = green_audit.audit_green(ds, "autolabels", max_checks=120, seed=1)
    _answer(ds, first["pending"], truth, 5)
    decided = {k: v for k, v in _labels(ds)[1].items() if v in ("accepted", "rejected")}
    # a continuing call may not change the plan's parameters
    with pytest.raises(ValueError, match="'max_checks'.*restart=True"):
        green_audit.audit_green(ds, "autolabels", max_checks=50)
    again = green_audit.audit_green(ds, "autolabels", max_checks=120, restart=True, seed=2)
    assert ds.get_run_info("audit").config.seed == 2
    assert [p["label_id"] for p in again["pending"]] != [p["label_id"] for p in first["pending"]]
    _, review, rank = _labels(ds)
    assert {k: review[k] for k in decided} == decided  # answers are human decisions, kept
    ranked = {k for k, v in rank.items() if v is not None}
    assert ranked == {p["label_id"] for p in again["pending"]}


def test_operator_returns_the_same_dict_and_names_bad_parameters(triaged):
    ds, _ = triaged
    res = foo.execute_operator(AUDIT, ctx={"dataset": ds, "view": ds.view()},
                               params={"label_field": "autolabels", "max_checks": 100})
    out = res.result
    for key in ("status", "pending", "checked", "correct", "candidates", "lower_bound", "target_precision",
                "confidence_level"):
        assert key in out
    assert out["target_precision"] == 0.95 and out["confidence_level"] == 0.95
    assert all(set(p) == {"sample_id", "label_id"} for p in out["pending"])
    for params, name in [({"max_checks": 0}, "max_checks"), ({"target_precision": 1.5}, "target_precision"),
                         ({"audit_key": "not a key"}, "audit_key"), ({"calibration_key": "nope"}, "calibration_key")]:
        with pytest.raises(Exception, match=name):
            foo.execute_operator(AUDIT, ctx={"dataset": ds, "view": ds.view()},
                                 params={"label_field": "autolabels", **params})
    # a run of another kind under the audit key is refused, not overwritten
    with pytest.raises(ValueError, match="not an audit_green run"):
        green_audit.audit_green(ds, "autolabels", audit_key="triage")


def test_a_bulk_accept_answers_no_audit_question(triaged):
    """'Accept all' on the sampled labels is nobody's check: the questions
    stay open until a person decides each label (control: the same labels
    accepted one by one do answer)."""
    ds, _ = triaged
    first = green_audit.audit_green(ds, "autolabels", max_checks=120, seed=4)
    asked = [p["label_id"] for p in first["pending"][:5]]
    review_labels(ds, "autolabels", "accept", label_ids=asked, user="bulk-clicker", bulk=True)
    after = green_audit.audit_green(ds, "autolabels")
    assert after["checked"] == 0 and [p["label_id"] for p in after["pending"][:5]] == asked
    review_labels(ds, "autolabels", "accept", label_ids=asked, user="simulated-reviewer")
    after = green_audit.audit_green(ds, "autolabels")
    assert after["checked"] == 5 and asked[0] not in {p["label_id"] for p in after["pending"]}


def test_an_audit_not_worth_its_questions_is_not_proposed(triaged, monkeypatch):
    """No audit when it is expected to add fewer green labels per answer
    than MIN_GAIN_PER_ANSWER (the quickstart's digits: 300 questions for ~2
    labels); control: the same data with the bar at 0 gets a plan."""
    ds, _ = triaged
    monkeypatch.setattr(green_audit, "MIN_GAIN_PER_ANSWER", 1e6)
    out = green_audit.audit_green(ds, "autolabels", max_checks=100, seed=1)
    assert out["status"] == "not_certifiable" and out["pending"] == []
    assert "would add about" in out["message"] and "per answer" in out["message"], out["message"]
    monkeypatch.setattr(green_audit, "MIN_GAIN_PER_ANSWER", 0.0)
    again = green_audit.audit_green(ds, "autolabels", max_checks=100, seed=1, restart=True)
    assert again["status"] == "needs_answers" and again["pending"]
