"""Missed objects: candidates below the labeling threshold, candidates from
other sources, the ``missing`` queue's add / dismiss decisions, and the
report's estimate of objects still missed. Real FiftyOne, real MongoDB, a
real tiny model."""

import fiftyone as fo
import numpy as np
import pytest

from stoplight.plugins.autolabel.pipeline import zero_shot_detect

BACKEND = "owlv2"
CLASSES = ["person", "bus"]


def _boxes(ds, field):
    """``{sample_id: sorted [(label, rounded box, confidence)]}``."""
    out = {}
    for sid, dets in zip(*ds.values(["id", field])):
        out[sid] = sorted(
            (d.label, tuple(round(v, 6) for v in d.bounding_box), round(d.confidence, 6))
            for d in (dets.detections if dets else [])
        )
    return out


def test_candidates_are_exactly_the_boxes_between_the_two_thresholds(dataset, tiny_checkpoint):
    kw = dict(backend=BACKEND, checkpoint=tiny_checkpoint(BACKEND), classes=CLASSES, device="cpu",
              batch_size=3, progress=False)
    zero_shot_detect(dataset, label_field="low", confidence_threshold=0.0, **kw)
    conf = np.array([c for boxes in _boxes(dataset, "low").values() for _, _, c in boxes])
    lo, hi = np.quantile(conf, [0.3, 0.7])
    summary = zero_shot_detect(dataset, label_field="auto", confidence_threshold=float(hi),
                               candidates_threshold=float(lo), **kw)
    low, labels, cands = _boxes(dataset, "low"), _boxes(dataset, "auto"), _boxes(dataset, "auto_candidates")
    n_between = n_above = 0
    for sid, boxes in low.items():
        above = [b for b in boxes if b[2] >= hi]
        between = [b for b in boxes if lo <= b[2] < hi]
        assert labels[sid] == above
        assert cands[sid] == between
        n_between += len(between)
        n_above += len(above)
    assert n_between > 0 and n_above > 0  # the test can fail both ways
    assert summary["num_candidates"] == n_between and summary["num_labels"] == n_above
    queues = dataset.values("auto_candidates.detections.queue", unwind=True)
    assert set(queues) == {"missing"}
    assert dataset.get_field("auto_candidates").info["stoplight"] == {"purpose": "candidates",
                                                                       "label_field": "auto"}
    run = dataset.get_run_info(summary["run_key"]).config
    assert run.candidates_field == "auto_candidates" and run.candidates_threshold == pytest.approx(lo)

    # scored like any labels (here from their class scores)
    from stoplight.plugins.scoring.scores import score_labels

    score_labels(dataset, "auto_candidates", rer=False, progress=False)
    hardness = dataset.values("auto_candidates.detections.hardness", unwind=True)
    assert len(hardness) == n_between and all(h is not None for h in hardness)


def test_candidates_are_off_by_default_and_checked(dataset, tiny_checkpoint):
    kw = dict(backend=BACKEND, checkpoint=tiny_checkpoint(BACKEND), classes=CLASSES, device="cpu",
              progress=False)
    summary = zero_shot_detect(dataset, confidence_threshold=0.1, **kw)
    assert not dataset.has_field("autolabels_candidates") and summary["num_candidates"] == 0
    with pytest.raises(ValueError, match="candidates_threshold"):
        zero_shot_detect(dataset, label_field="x", confidence_threshold=0.1, candidates_threshold=0.2, **kw)
    with pytest.raises(ValueError, match="candidates_field"):
        zero_shot_detect(dataset, label_field="x", confidence_threshold=0.1, candidates_threshold=0.0,
                         candidates_field="x", **kw)


def test_the_operator_keeps_candidates_when_given_a_threshold(dataset, tiny_checkpoint):
    import fiftyone.operators as foo

    params = dict(backend=BACKEND, checkpoint=tiny_checkpoint(BACKEND), classes=CLASSES, device="cpu",
                  confidence_threshold=0.5, candidates_threshold=0.0, label_field="op")
    # the form's switch turned off wins over a threshold left in the params
    result = foo.execute_operator("@stoplight/autolabel/zero_shot_detect", ctx={"dataset": dataset},
                                  params=dict(params, keep_candidates=False))
    assert result.error is None, result.error
    assert not dataset.has_field("op_candidates")
    # from the SDK a threshold is enough
    result = foo.execute_operator("@stoplight/autolabel/zero_shot_detect", ctx={"dataset": dataset},
                                  params=dict(params, overwrite=True))
    assert result.error is None, result.error
    confs = dataset.values("op_candidates.detections.confidence", unwind=True)
    assert confs and all(0.0 <= c < 0.5 for c in confs)


def test_relabeling_keeps_answered_candidates_and_does_not_ask_them_again(dataset, tiny_checkpoint):
    from stoplight.plugins.review import missing as missing_queue

    kw = dict(backend=BACKEND, checkpoint=tiny_checkpoint(BACKEND), classes=CLASSES, device="cpu",
              batch_size=3, progress=False, label_field="auto", confidence_threshold=0.5,
              candidates_threshold=0.0)
    zero_shot_detect(dataset, **kw)
    cands = [d for dets in dataset.values("auto_candidates") if dets for d in dets.detections]
    assert len(cands) >= 2
    added, dismissed = cands[0], cands[1]
    out = missing_queue.add_missing(dataset, "auto_candidates", added.id, user="alice")
    missing_queue.dismiss_missing(dataset, "auto_candidates", dismissed.id, user="alice")
    new_id = out["added_label_ids"][added.id]

    zero_shot_detect(dataset, overwrite=True, **kw)
    after = {d.id: d for dets in dataset.values("auto_candidates") if dets for d in dets.detections}
    assert (after[added.id].review, after[dismissed.id].review) == ("accepted", "rejected")
    labels = {d.id: d for dets in dataset.values("auto") if dets for d in dets.detections}
    assert labels[new_id].review == "accepted" and labels[new_id].reviewed_by == "alice"
    # the same boxes found again on the same image are not asked again
    per_sample = {sid: [d for d in dets.detections] for sid, dets in zip(*dataset.values(["id", "auto_candidates"]))
                  if dets}
    for old in (added, dismissed):
        (mates,) = [ds_ for ds_ in per_sample.values() if old.id in {d.id for d in ds_}]
        repeats = [d for d in mates if d.id != old.id and d.label == old.label
                   and np.allclose(d.bounding_box, old.bounding_box)]
        assert repeats == []


# ---------------------------------------------------------------------------
# candidates from other sources, and the missing queue's decisions
# ---------------------------------------------------------------------------

import threading  # noqa: E402

from stoplight.plugins.autolabel.candidates import (  # noqa: E402
    add_candidates_from_field, add_candidates_from_verified, unmatched,
)
from stoplight.plugins.common import audit  # noqa: E402
from stoplight.plugins.review import missing  # noqa: E402
from stoplight.plugins.review.decisions import review_labels, undo_last  # noqa: E402

BOX_A = [0.1, 0.1, 0.3, 0.3]
BOX_B = [0.6, 0.6, 0.2, 0.2]
BOX_C = [0.5, 0.05, 0.2, 0.2]


def _dets(*items, **attrs):
    return fo.Detections(detections=[fo.Detection(label=l, bounding_box=b, confidence=0.5, **attrs)
                                     for l, b in items])


@pytest.fixture()
def labeled(dataset):
    """Sample 0: an auto-label on A; a second model sees A, B and C
    (C as a class the label on A is not); ground truth A and B. Sample 1:
    no auto-labels at all, ground truth B."""
    s0, s1 = dataset.head(2)
    s0["autolabels"] = _dets(("person", BOX_A))
    s0["other"] = _dets(("person", BOX_A), ("bus", BOX_B), ("bus", BOX_C))
    s0["ground_truth"] = _dets(("person", BOX_A), ("bus", BOX_B))
    s0.save()
    s1["ground_truth"] = _dets(("bus", BOX_B))
    s1.save()
    return dataset


def _candidates(ds, field="autolabels_candidates"):
    return [d for dets in ds.values(field) if dets for d in dets.detections]


def _added_from(d):
    return d["added_from"] if d.has_field("added_from") else None


def _labels(ds, field="autolabels"):
    return [d for dets in ds.values(field) if dets for d in dets.detections]


def test_unmatched_boxes():
    boxes = np.array([BOX_A, BOX_B])
    assert unmatched(boxes, ["a", "b"], np.array([BOX_A]), ["a"]).tolist() == [False, True]
    assert unmatched(boxes, ["a", "b"], np.array([BOX_A]), ["x"]).tolist() == [True, True]
    assert unmatched(boxes, ["a", "b"], np.array([BOX_A]), ["x"], classwise=False).tolist() == [False, True]
    assert unmatched(boxes, ["a", "b"], np.zeros((0, 4)), []).tolist() == [True, True]
    shifted = [BOX_A[0] + 0.2, BOX_A[1], BOX_A[2], BOX_A[3]]  # IoU 1/5 with A
    assert unmatched(np.array([shifted]), ["a"], np.array([BOX_A]), ["a"], iou=0.5).tolist() == [True]
    assert unmatched(np.array([shifted]), ["a"], np.array([BOX_A]), ["a"], iou=0.1).tolist() == [False]


def test_candidates_from_another_field_and_from_verified_objects(labeled):
    out = add_candidates_from_field(labeled, "other", "autolabels")
    assert out["num_candidates"] == 2
    got = sorted((d.label, d.bounding_box, d["candidate_source"], d.queue) for d in _candidates(labeled))
    assert got == [("bus", BOX_C, "other", "missing"), ("bus", BOX_B, "other", "missing")]
    assert add_candidates_from_field(labeled, "other", "autolabels")["num_candidates"] == 0  # no repeats

    # verified objects nobody labeled: B on sample 0 is a candidate already,
    # B on sample 1 is new; samples without ground truth give nothing
    out = add_candidates_from_verified(labeled, "ground_truth", "autolabels")
    assert out["num_candidates"] == 1
    (new,) = [d for d in _candidates(labeled) if d["candidate_source"] == "verified:ground_truth"]
    assert new.bounding_box == BOX_B and new.confidence is None

    # a label a person rejected covers nothing
    lid = _labels(labeled)[0].id
    review_labels(labeled, "autolabels", "reject", label_ids=[lid], user="alice")
    assert add_candidates_from_verified(labeled, "ground_truth", "autolabels")["num_candidates"] == 1

    with pytest.raises(ValueError, match="source_field"):
        add_candidates_from_field(labeled, "nope", "autolabels")
    with pytest.raises(ValueError, match="candidates_field"):
        add_candidates_from_field(labeled, "other", "autolabels", candidates_field="ground_truth")


def test_adding_a_candidate_creates_exactly_one_logged_label(labeled):
    add_candidates_from_field(labeled, "other", "autolabels")
    cand = next(d for d in _candidates(labeled) if d.bounding_box == BOX_B)
    before = len(_labels(labeled))

    out = missing.add_missing(labeled, "autolabels_candidates", cand.id, user="alice")
    assert out["num_added"] == 1 and out["num_conflicts"] == 0
    labels = _labels(labeled)
    assert len(labels) == before + 1
    (new,) = [d for d in labels if _added_from(d) == cand.id]
    assert new.id == out["added_label_ids"][cand.id]
    assert (new.label, new.bounding_box, new.review, new.reviewed_by) == ("bus", BOX_B, "accepted", "alice")
    assert new["review_action"] == out["action_id"] and new["review_bulk"] is False
    (c,) = [d for d in _candidates(labeled) if d.id == cand.id]
    assert (c.review, c.reviewed_by, c["review_action"]) == ("accepted", "alice", out["action_id"])
    (entry,) = audit.action_entries(labeled, out["action_id"])
    assert (entry["action"], entry["user"], entry["label_id"]) == ("add", "alice", cand.id)
    assert entry["after"]["added_label_id"] == new.id and not entry.get("conflict")

    # the decision is sacred: a second add, or a dismiss, changes nothing
    again = missing.add_missing(labeled, "autolabels_candidates", cand.id, user="bob")
    assert again["num_added"] == 0 and again["conflicts"] == [cand.id] and again["action_id"] is None
    dis = missing.dismiss_missing(labeled, "autolabels_candidates", cand.id, user="bob")
    assert dis["num_labels"] == 0 and dis["conflicts"] == [cand.id]
    assert len(_labels(labeled)) == before + 1
    (c,) = [d for d in _candidates(labeled) if d.id == cand.id]
    assert (c.review, c.reviewed_by) == ("accepted", "alice")

    # the added label is a label like any other: a person may reject it
    review_labels(labeled, "autolabels", "reject", label_ids=[new.id], user="carol")
    assert [d.review for d in _labels(labeled) if d.id == new.id] == ["rejected"]


def test_a_dismissed_candidate_is_never_added(labeled):
    add_candidates_from_field(labeled, "other", "autolabels")
    cand = _candidates(labeled)[0]
    out = missing.dismiss_missing(labeled, "autolabels_candidates", [cand.id], user="alice")
    assert out["num_labels"] == 1
    before = len(_labels(labeled))
    add = missing.add_missing(labeled, "autolabels_candidates", [cand.id], user="bob")
    assert add["num_added"] == 0 and add["conflicts"] == [cand.id]
    assert len(_labels(labeled)) == before
    (c,) = [d for d in _candidates(labeled) if d.id == cand.id]
    assert (c.review, c.reviewed_by) == ("rejected", "alice")


def test_a_reviewer_racing_an_add_loses_cleanly(labeled, monkeypatch):
    """Alice reads the candidate open and logs her intent; Bob adds it
    before her write lands: her write must change nothing."""
    add_candidates_from_field(labeled, "other", "autolabels")
    cand = _candidates(labeled)[0]
    before = len(_labels(labeled))
    real = missing._candidate_docs
    raced = {}

    def bob_first(*args):
        if not raced:
            raced["started"] = True
            raced["bob"] = missing.add_missing(labeled, "autolabels_candidates", cand.id, user="bob")
        return real(*args)

    monkeypatch.setattr(missing, "_candidate_docs", bob_first)
    alice = missing.add_missing(labeled, "autolabels_candidates", cand.id, user="alice")
    bob = raced["bob"]
    assert bob["num_added"] == 1 and bob["action_id"] > alice["action_id"]
    assert alice["num_added"] == 0 and alice["conflicts"] == [cand.id]
    labels = _labels(labeled)
    assert len(labels) == before + 1
    assert [d.reviewed_by for d in labels if _added_from(d) == cand.id] == ["bob"]
    (c,) = [d for d in _candidates(labeled) if d.id == cand.id]
    assert (c.reviewed_by, c["review_action"]) == ("bob", bob["action_id"])
    (entry,) = audit.action_entries(labeled, alice["action_id"])
    assert entry["conflict"] is True  # logged, and marked as not applied


def test_concurrent_adds_of_one_candidate_add_one_label(labeled):
    add_candidates_from_field(labeled, "other", "autolabels")
    cand = _candidates(labeled)[0]
    before = len(_labels(labeled))
    n = 4
    barrier, results = threading.Barrier(n), [None] * n

    def add(i):
        barrier.wait()
        results[i] = missing.add_missing(labeled, "autolabels_candidates", cand.id, user=f"r{i}")

    threads = [threading.Thread(target=add, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["num_added"] for r in results) == 1
    assert len(_labels(labeled)) == before + 1


def test_undo_of_an_add_removes_the_label_unless_decided_since(labeled):
    add_candidates_from_field(labeled, "other", "autolabels")
    c1, c2 = _candidates(labeled)
    before = len(_labels(labeled))
    missing.add_missing(labeled, "autolabels_candidates", c1.id, user="alice")
    out = undo_last(labeled, user="alice")
    assert out["undone_action"] == "add" and out["num_labels"] == 1
    assert len(_labels(labeled)) == before
    (c,) = [d for d in _candidates(labeled) if d.id == c1.id]
    assert c.review is None and c.reviewed_by is None
    # open again: it can be added again
    assert missing.add_missing(labeled, "autolabels_candidates", c1.id, user="alice")["num_added"] == 1

    # once someone decided the added label, undo leaves it alone
    add = missing.add_missing(labeled, "autolabels_candidates", c2.id, user="alice")
    review_labels(labeled, "autolabels", "reject", label_ids=[add["added_label_ids"][c2.id]], user="bob")
    out = undo_last(labeled, user="alice")
    assert out["num_labels"] == 0 and out["num_conflicts"] == 1
    assert add["added_label_ids"][c2.id] in [d.id for d in _labels(labeled)]


def test_only_candidates_fields_take_adds(labeled):
    lid = _labels(labeled)[0].id
    with pytest.raises(ValueError, match="no missed-object candidates"):
        missing.add_missing(labeled, "autolabels", lid, user="alice")
    add_candidates_from_field(labeled, "other", "autolabels")
    with pytest.raises(ValueError, match="not found"):
        missing.add_missing(labeled, "autolabels_candidates", lid, user="alice")


def test_operators_find_add_and_dismiss_with_the_request_identity(labeled, monkeypatch):
    import fiftyone.operators as foo

    out = foo.execute_operator("@stoplight/autolabel/find_missing", ctx={"dataset": labeled},
                               params={"source": "field", "source_field": "other"}).result
    assert out["num_candidates"] == 2
    c1, c2 = _candidates(labeled)
    before = len(_labels(labeled))
    # the server pins the reviewer: a name in the request cannot act for another
    monkeypatch.setenv("STOPLIGHT_REVIEWER", "dana")
    add = foo.execute_operator(
        "@stoplight/autolabel/review_missing", ctx={"dataset": labeled},
        params={"action": "add", "label_ids": [c1.id], "user": "mallory"},
    ).result
    assert add["num_added"] == 1 and add["user"] == "dana" and add["user_source"] == "pinned"
    assert len(_labels(labeled)) == before + 1
    dis = foo.execute_operator(
        "@stoplight/autolabel/review_missing",
        ctx={"dataset": labeled, "selected_labels": [
            {"label_id": c2.id, "sample_id": labeled.first().id, "field": "autolabels_candidates"}]},
        params={"action": "dismiss"},
    ).result
    assert dis["num_labels"] == 1 and dis["user"] == "dana"
    assert sorted(d.review for d in _candidates(labeled)) == ["accepted", "rejected"]
    with pytest.raises(Exception, match="no missed-object candidates"):
        foo.execute_operator("@stoplight/autolabel/review_missing", ctx={"dataset": labeled},
                             params={"action": "add", "candidates_field": "ground_truth",
                                     "label_ids": [c1.id]})


# ---------------------------------------------------------------------------
# the report's estimate of objects still missed
# ---------------------------------------------------------------------------

from stoplight.plugins.triage.missed import estimate_missed  # noqa: E402


def _simulate(rng, pick_verified):
    """Images whose objects are missed at a rate that varies per image;
    returns (true missed on the unverified images, the estimate)."""
    n_img = 2000
    rate = rng.gamma(2.0, 0.25, n_img)  # objects missed per image, uneven
    missed = rng.poisson(rate)
    objects = missed + rng.poisson(3.0, n_img)
    verified = pick_verified(rate, n_img)
    other = np.setdiff1d(np.arange(n_img), verified)
    est = estimate_missed({"c": int(objects[verified].sum())}, {"c": int(missed[verified].sum())},
                          len(verified), len(other))
    return float(missed[other].sum()), est["total"]["estimated_missed_unverified"]


def test_missed_estimate_holds_on_a_random_verified_sample_and_fails_on_a_biased_one():
    rng = np.random.default_rng(0)
    random_errs, biased_errs = [], []
    for _ in range(50):
        true, est = _simulate(rng, lambda rate, n: rng.choice(n, 200, replace=False))
        random_errs.append((est - true) / true)
        # control: verified the 200 hardest images (most misses): violates
        # the assumption, and the estimate is far off
        true, est = _simulate(rng, lambda rate, n: np.argsort(-rate)[:200])
        biased_errs.append((est - true) / true)
    assert abs(np.mean(random_errs)) < 0.03 and np.std(random_errs) < 0.15
    assert np.mean(biased_errs) > 0.5


def test_missed_estimate_rows():
    out = estimate_missed({"a": 10, "b": 4}, {"a": 2}, num_verified_images=5, num_unverified_images=20,
                          num_open_candidates={"b": 3})
    a, b = out["per_class"]["a"], out["per_class"]["b"]
    assert (a["missed_share"], a["missed_per_image"], a["estimated_missed_unverified"], a["estimated_missed"]) == (
        0.2, 0.4, 8.0, 10.0)
    assert (b["missed_verified"], b["estimated_missed"], b["open_candidates"]) == (0, 0.0, 3)
    assert out["total"]["estimated_missed"] == 10.0 and "random sample" in out["assumption"]
    none = estimate_missed({}, {}, 0, 10)
    assert none["total"]["missed_per_image"] is None and none["total"]["missed_share"] is None


def test_triage_report_counts_missed_verified_objects_like_fiftyone_evaluation(tmp_root):
    from digits_dataset import build_digits_dataset

    from stoplight.plugins.triage import workflow

    ds, _ = build_digits_dataset(seed=1, out_dir=str(tmp_root / "digits-missed"))
    try:
        ids = ds.values("id")
        verified = np.random.default_rng(0).choice(ids, size=len(ids) // 2, replace=False)
        ds.select(verified).tag_samples("verified")
        ds.match_tags("verified", bool=False).set_field("ground_truth", None).save()
        workflow.calibrate_triage(ds.match_tags("verified"), "autolabels", "ground_truth", calibration_key="cal")
        report = workflow.triage_report(ds, "autolabels", "cal")
        missed = report["missed"]
        # FiftyOne's own matching: verified objects left unmatched ("fn")
        ds.match_tags("verified").evaluate_detections("autolabels", gt_field="ground_truth", eval_key="ev",
                                                      iou=0.5, classwise=True)
        fn = ds.filter_labels("ground_truth", fo.ViewField("ev") == "fn").count_values(
            "ground_truth.detections.label")
        assert {c: r["missed_verified"] for c, r in missed["per_class"].items() if r["missed_verified"]} == fn
        assert sum(fn.values()) > 0
        n_ver = len(ds.match_tags("verified"))
        assert missed["num_verified_images"] == n_ver and missed["num_unverified_images"] == len(ds) - n_ver
        assert missed["total"]["estimated_missed_unverified"] == pytest.approx(
            sum(fn.values()) / n_ver * (len(ds) - n_ver), abs=0.01)

        # labels added from candidates are no auto-labels: calibration leaves them out
        num_verified = workflow.calibrate_triage(ds.match_tags("verified"), "autolabels", "ground_truth",
                                                 calibration_key="cal", use_reviews=True)["num_verified_labels"]
        add_candidates_from_verified(ds, "ground_truth", "autolabels")
        cands = ds.values("autolabels_candidates.detections.id", unwind=True)
        assert missing.add_missing(ds, "autolabels_candidates", cands[:3], user="alice")["num_added"] == 3
        again = workflow.calibrate_triage(ds.match_tags("verified"), "autolabels", "ground_truth",
                                          calibration_key="cal", use_reviews=True)
        assert again["num_verified_labels"] == num_verified
        after = workflow.triage_report(ds, "autolabels", "cal")["missed"]
        assert after["total"]["missed_verified"] == missed["total"]["missed_verified"] - 3
        assert after["total"]["open_candidates"] == len(cands) - 3
    finally:
        ds.delete()


# ---------------------------------------------------------------------------
# the review surface: the missing queue, one key each
# ---------------------------------------------------------------------------


def _panel_call(panel, dataset, method, user=None, **params):
    from fiftyone.operators.executor import ExecutionContext, Executor

    if user is not None:
        params["user"] = user
    request = dict(dataset_name=dataset.name, view=dataset.view()._serialize(),
                   params=dict(panel_id="panel-1", panel_state={}, **params))
    ctx = ExecutionContext(request_params=request, executor=Executor())
    out = getattr(panel, method)(ctx)
    panel.render(ctx).to_json()
    return out


def test_review_queue_adds_a_missed_object_with_one_key(labeled):
    from stoplight.plugins.panels.review_queue import ReviewQueue

    add_candidates_from_field(labeled, "other", "autolabels")
    field = "autolabels_candidates"
    panel = ReviewQueue()
    out = _panel_call(panel, labeled, "load", label_field=field, limit=5)
    assert out["label_field"] == field and out["adds_to"] == "autolabels" and out["error"] is None
    assert out["can_correct"] is False
    assert out["stats"]["expected_wrong"] == 1.0  # two candidates of confidence 0.5
    qs = out["questions"]
    assert len(qs) == 2 and {q["source"] for q in qs} == {"missing"} and out["stats"]["open_yellow"] == 2
    before = len(_labels(labeled))

    ans = _panel_call(panel, labeled, "answer", user="Ada", label_field=field, label_id=qs[0]["label_id"],
                      action="accept", expected="pending")
    assert ans["conflict"] is None and ans["num_added"] == 1 and ans["user"] == "Ada"
    assert len(_labels(labeled)) == before + 1
    # someone else dismissed the second one meanwhile: the answer adds nothing
    missing.dismiss_missing(labeled, field, qs[1]["label_id"], user="Bob")
    ans = _panel_call(panel, labeled, "answer", user="Ada", label_field=field, label_id=qs[1]["label_id"],
                      action="accept", expected="pending")
    assert ans["conflict"] == {"review": "rejected", "reviewed_by": "Bob"}
    assert len(_labels(labeled)) == before + 1
    more = _panel_call(panel, labeled, "questions", label_field=field, limit=5, exclude=[])
    assert more["questions"] == [] and more["stats"] == {"open_yellow": 0, "expected_wrong": 0.0, "decided": 2}

    undone = _panel_call(panel, labeled, "undo", user="Ada", label_field=field)
    assert undone["undone_action"] == "add" and len(_labels(labeled)) == before
