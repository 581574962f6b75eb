"""Triage through real FiftyOne: calibrate on verified samples, assign queues,
report, learn from reviews — on real digit images with a real classifier's
auto-labels (examples/digits_dataset.py)."""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from digitskit import verified_digits

from stoplight.plugins.common.label_vocab import LOGGED_ATTRS, QUEUE_COLORS
from stoplight.plugins.triage import workflow

CAL = "@stoplight/autolabel/calibrate_triage"
ASSIGN = "@stoplight/autolabel/assign_queues"
REPORT = "@stoplight/autolabel/triage_report"


@pytest.fixture(scope="module")
def digits(tmp_root):
    # ground truth is only known on the verified samples (the others are
    # what we triage); keep the full truth aside to measure against
    ds, info = verified_digits(tmp_root / "digits", seed=0, copies=2)
    ds.persistent = False
    truth = dict(zip(ds.values("autolabels.detections.id", unwind=True), info["wrong"]))
    yield ds, truth
    ds.delete()


@pytest.fixture()
def fresh(digits):
    """A clone of the digits dataset for tests that write."""
    ds, truth = digits
    clone = ds.clone()
    # clones get new label ids: carry the truth over by position
    old = ds.values("autolabels.detections.id", unwind=True)
    new = clone.values("autolabels.detections.id", unwind=True)
    yield clone, {n: truth[o] for o, n in zip(old, new)}
    clone.delete()


def _labels(ds, *attrs):
    out = ds.values([f"autolabels.detections.{a}" for a in ("id", *attrs)], unwind=True)
    return out


def test_calibrate_matches_with_fiftyone_and_stores_the_run(fresh):
    ds, truth = fresh
    view = ds.match_tags("verified")
    summary = workflow.calibrate_triage(view, "autolabels", "ground_truth", calibration_key="cal")
    assert ds.list_evaluations() == []  # the temporary evaluation is gone
    assert not ds.has_field("autolabels.detections.stoplight_tmp")  # no leftovers on labels
    ids = view.values("autolabels.detections.id", unwind=True)
    assert summary["num_verified_labels"] == len(ids)
    # evaluate_detections' verdicts equal the construction's truth
    assert summary["num_verified_correct"] == sum(not truth[i] for i in ids)
    assert summary["signals"] == ["confidence"]  # nothing else present yet
    info = ds.get_run_info("cal")
    assert info.config.stoplight_method == "calibrate_triage" and info.config.status == "completed"
    cal = workflow.load_calibration(ds, "cal")
    assert set(cal["per_class"]) == set(ds.distinct("autolabels.detections.label"))
    # re-running with the same key replaces the calibration
    workflow.calibrate_triage(view, "autolabels", "ground_truth", calibration_key="cal", target_precision=0.9)
    assert workflow.load_calibration(ds, "cal")["target_precision"] == 0.9
    assert ds.list_runs().count("cal") == 1


def test_assign_writes_queues_and_keeps_human_decisions(fresh):
    ds, truth = fresh
    workflow.calibrate_triage(ds.match_tags("verified"), "autolabels", "ground_truth", calibration_key="cal",
                              target_precision=0.9)
    # a person decided three labels before triage; other attributes are set too
    decided = ds.values("autolabels.detections.id", unwind=True)[:3]
    _set_labels(ds, dict(
        review={lid: "accepted" if i % 2 == 0 else "rejected" for i, lid in enumerate(decided)},
        reviewed_by={lid: "alice" for lid in decided},
        queue={lid: "yellow" for lid in decided},
        p_correct={lid: 0.5 for lid in decided},
    ))
    before = {lid: _label_doc(ds, lid) for lid in decided}

    summary = workflow.assign_queues(ds, "autolabels", calibration_key="cal")
    assert summary["num_human_decided"] == 3
    for lid in decided:
        # every value the label held stays as it was; the triage only adds
        # its logged copy of class and box and null placeholders that keep
        # the tooltip's order (plugins/common/label_docs.py)
        now = {k: v for k, v in _label_doc(ds, lid).items()
               if k not in LOGGED_ATTRS and not (v is None and k not in before[lid])}
        assert now == dict(before[lid])
        assert _label_doc(ds, lid)["logged_label"] == before[lid]["label"]

    ids, queue, p, rank = _labels(ds, "queue", "p_correct", "review_rank")
    undecided = [i for i, lid in enumerate(ids) if lid not in decided]
    assert all(queue[i] in ("green", "yellow", "red") for i in undecided)
    assert all(0.0 <= p[i] <= 1.0 for i in undecided)
    yellow = [i for i in undecided if queue[i] == "yellow"]
    assert sorted(rank[i] for i in yellow) == list(range(1, len(yellow) + 1))
    assert all(rank[i] is None for i in undecided if queue[i] != "yellow")
    assert summary["num_green"] + summary["num_yellow"] + summary["num_red"] == len(undecided)
    # every yellow label (all have embeddings) is in the review graph answers re-rank from
    assert summary["review_graph"]["num_labels"] == len(yellow) and summary["review_graph"]["num_edges"] > 0
    # the grid colours the labels by queue by default
    scheme = ds.app_config.color_scheme
    entry = next(f for f in scheme.fields if f["path"] == "autolabels")
    assert scheme.color_by == "value" and entry["colorByAttribute"] == "queue"
    assert {v["value"]: v["color"] for v in entry["valueColors"]} == {
        q: c for q, c in QUEUE_COLORS.items() if q != "unassigned"}

    # green precision on labels nobody verified, against the construction's truth
    unverified = set(ds.match_tags("verified", bool=False).values("autolabels.detections.id", unwind=True))
    green = [ids[i] for i in undecided if queue[i] == "green" and ids[i] in unverified]
    assert len(green) > 50, "the digits set should certify some green"
    assert np.mean([not truth[g] for g in green]) >= 0.9
    red = [ids[i] for i in undecided if queue[i] == "red" and ids[i] in unverified]
    if red:
        assert np.mean([not truth[r] for r in red]) <= 0.4

    report = summary["report"]
    assert report["queues"]["green"]["count"] == sum(q == "green" for q in queue)
    assert report["totals"]["accepted"] == 2 and report["totals"]["rejected"] == 1
    assert report["cost"]["manual_usd"] == pytest.approx(len(ids) * 0.07)

    # the report recomputed by a database aggregation agrees with the one
    # built from the label arrays, to the last figure
    again = workflow.triage_report(ds, "autolabels", "cal")
    for key in ("queues", "classes", "totals", "workload", "cost", "final"):
        assert again[key] == pytest.approx(report[key]) if key in ("final",) else again[key] == report[key], key


def test_reviews_join_the_calibration(fresh):
    ds, truth = fresh
    verified = ds.match_tags("verified")
    first = workflow.calibrate_triage(verified, "autolabels", "ground_truth", calibration_key="cal")
    assert first["num_from_reviews"] == 0
    workflow.assign_queues(ds, "autolabels", calibration_key="cal")
    # people review the first 100 yellow labels of unverified samples in
    # review_rank order, judging correctly
    ids, queue, rank = _labels(ds.match_tags("verified", bool=False), "queue", "review_rank")
    order = sorted((r, lid) for lid, q, r in zip(ids, queue, rank) if q == "yellow")[:100]
    pool = [lid for _, lid in order]
    _set_labels(ds, dict(review={lid: "rejected" if truth[lid] else "accepted" for lid in pool},
                         reviewed_by={lid: "bob" for lid in pool}))
    # by default reviews do not feed the guarantee (they are not a random sample)
    assert workflow.calibrate_triage(verified, "autolabels", "ground_truth", calibration_key="cal")[
        "num_from_reviews"] == 0
    second = workflow.calibrate_triage(verified, "autolabels", "ground_truth", calibration_key="cal",
                                       use_reviews=True)
    assert second["num_from_reviews"] == 100
    assert ds.get_run_info("cal").config.reviews_assumed_random is True
    assert any("not a random sample" in n.lower() or "review order" in n
               for n in workflow.triage_report(ds, "autolabels", "cal")["notes"])
    assert second["num_verified_labels"] == first["num_verified_labels"] + 100
    assert second["num_verified_correct"] - first["num_verified_correct"] == sum(not truth[i] for i in pool)
    per_class = second["calibration"]["per_class"]
    assert sum(v["num_verified"] for v in per_class.values()) == second["num_verified_labels"]
    # decided labels leave the open yellow work, and keep their decisions
    after = workflow.assign_queues(ds, "autolabels", calibration_key="cal")["report"]
    assert after["totals"]["accepted"] + after["totals"]["rejected"] == 100
    # (whether yellow shrinks depends on the refit: a class can also lose its
    # green; what must hold is that decided labels are no open work)
    ids, queue, review = _labels(ds, "queue", "review")
    open_yellow = sum(q == "yellow" and r not in ("accepted", "rejected") for q, r in zip(queue, review))
    assert after["workload"]["yellow_open"] == open_yellow
    _, review = _labels(ds, "review")
    assert sum(r in ("accepted", "rejected") for r in review) == 100
    # without reviews, the same verified set as at first
    third = workflow.calibrate_triage(verified, "autolabels", "ground_truth", calibration_key="cal",
                                      use_reviews=False)
    assert third["num_verified_labels"] == first["num_verified_labels"]


def test_corrections_count_as_wrong_and_bulk_decisions_not_at_all(fresh):
    from stoplight.plugins.review.corrections import correct_label
    from stoplight.plugins.review.decisions import review_labels

    ds, truth = fresh
    verified = ds.match_tags("verified")
    workflow.calibrate_triage(verified, "autolabels", "ground_truth", calibration_key="cal")
    workflow.assign_queues(ds, "autolabels", calibration_key="cal")
    base = workflow.calibrate_triage(verified, "autolabels", "ground_truth", calibration_key="cal",
                                     use_reviews=True)
    other = ds.match_tags("verified", bool=False)
    ids, labels, queue = _labels(other, "label", "queue")
    right = [i for i, q in zip(ids, queue) if q == "yellow" and not truth[i]][:6]
    # a person corrects three labels the detector got right (e.g. a tighter
    # box) and accepts three: corrected counts as a wrong auto-label, under
    # the class the detector gave it
    cls = dict(zip(ids, labels))
    for lid in right[:3]:
        correct_label(ds, "autolabels", lid, label="x" + cls[lid], user="alice")
    review_labels(ds, "autolabels", "accept", label_ids=right[3:], user="alice")
    # a bulk accept of 40 green labels is no human check
    green = [i for i, q in zip(ids, queue) if q == "green"][:40]
    review_labels(ds, "autolabels", "accept", label_ids=green, user="alice", bulk=True)
    out = workflow.calibrate_triage(verified, "autolabels", "ground_truth", calibration_key="cal", use_reviews=True)
    assert out["num_from_reviews"] == 6
    assert out["num_verified_correct"] - base["num_verified_correct"] == 3
    # the corrected labels were learned under the detector's classes
    assert not any(c.startswith("x") for c in out["calibration"]["classes"])
    counted = {c: v["num_verified"] for c, v in out["calibration"]["per_class"].items()}
    before = {c: v["num_verified"] for c, v in base["calibration"]["per_class"].items()}
    for lid in right:
        before[cls[lid]] = before.get(cls[lid], 0) + 1
    assert counted == before
    # the report tells bulk decisions and corrections apart
    report = workflow.triage_report(ds, "autolabels", "cal")
    assert report["totals"]["bulk_accepted"] == 40 and report["totals"]["corrected"] == 3
    assert report["totals"]["accepted"] == 3
    assert report["final"]["checked_by_people"] == 6 and report["final"]["bulk_accepted"] == 40


def test_calibration_set_without_matches_certifies_no_green(fresh):
    ds, _ = fresh
    view = ds.match_tags("verified")
    view.set_field("ground_truth", fo.Detections()).save()  # verified: nothing there
    summary = workflow.calibrate_triage(view, "autolabels", "ground_truth", calibration_key="cal",
                                        use_reviews=False)
    assert summary["num_verified_correct"] == 0
    assert summary["num_green_classes"] == 0
    out = workflow.assign_queues(ds, "autolabels", calibration_key="cal")
    assert out["num_green"] == 0
    assert any("has no green" in n for n in out["report"]["notes"])


def test_clear_errors(fresh):
    ds, _ = fresh
    view = ds.match_tags("verified")
    with pytest.raises(ValueError, match="'gt_field'.*'nope' does not exist"):
        workflow.calibrate_triage(view, "autolabels", "nope")
    ds.add_sample_field("caption", fo.StringField)
    with pytest.raises(ValueError, match="'label_field'.*must hold fo.Detections"):
        workflow.calibrate_triage(view, "caption", "ground_truth")
    with pytest.raises(ValueError, match="'calibration_key'.*no run 'missing'"):
        workflow.assign_queues(ds, "autolabels", calibration_key="missing")
    with pytest.raises(ValueError, match="'signals'.*\\['rer'\\]"):
        workflow.calibrate_triage(view, "autolabels", "ground_truth", signals=["confidence", "rer"])
    empty = ds.match_tags("no-such-tag")
    with pytest.raises(ValueError, match="no verified auto-labels"):
        workflow.calibrate_triage(empty, "autolabels", "ground_truth", use_reviews=False)
    assert ds.list_runs() == []  # nothing half-stored


def test_expected_guarantee_through_fiftyone(fresh):
    ds, truth = fresh
    workflow.calibrate_triage(ds.match_tags("verified"), "autolabels", "ground_truth", calibration_key="cal",
                              guarantee="expected", target_precision=0.9)
    out = workflow.assign_queues(ds, "autolabels", calibration_key="cal")
    assert out["num_green"] > 0
    assert any("Green (expected" in n for n in out["report"]["notes"])


def test_operators_through_the_sdk(fresh):
    ds, _ = fresh
    result = foo.execute_operator(
        CAL, ctx={"dataset": ds, "view": ds.match_tags("verified"),
                  "params": dict(view_target="CURRENT_VIEW", target_precision=0.9)},
    )
    assert result.error is None, result.error
    assert ds.get_run_info("triage").config.target_precision == 0.9
    result = foo.execute_operator(ASSIGN, ctx={"dataset": ds, "params": {}})
    assert result.error is None, result.error
    assert set(ds.distinct("autolabels.detections.queue")) <= {"green", "yellow", "red"}
    result = foo.execute_operator(REPORT, ctx={"dataset": ds, "params": {"cents_per_box": 10}})
    assert result.error is None, result.error
    report = result.result["report"]
    assert report["cost"]["cents_per_box"] == 10
    assert result.result["green"] == report["queues"]["green"]["count"]
    # recall on the calibration's verified images, shown in the form
    assert report["recall"]["images"] == len(ds.match_tags("verified"))
    assert result.result["auto_recall"] == report["recall"]["auto"]["overall"]["estimate"] > 0
    assert result.result["final_recall"] == report["recall"]["final"]["overall"]["estimate"]
    with pytest.raises(Exception, match="target_precision"):
        foo.execute_operator(CAL, ctx={"dataset": ds, "params": dict(target_precision=1.5)})


def _label_doc(ds, label_id):
    view = ds.select_labels(ids=[label_id], fields="autolabels")
    (dets,) = view.values("autolabels.detections")
    (det,) = dets
    return det.to_dict()


def _set_labels(ds, values_by_attr):
    """``{attr: {label_id: value}}`` written with FiftyOne's set_label_values."""
    for attr, values in values_by_attr.items():
        ds.set_label_values(f"autolabels.detections.{attr}", values)
