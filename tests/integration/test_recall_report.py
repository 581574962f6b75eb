"""Recall in the triage report, on the digits dataset in a real MongoDB.

The report's ``recall`` section is checked against a direct count: on the
calibration's verified images, a verified digit is found when an
auto-label of its class overlaps it with IoU >= 0.5 (the digits never
overlap each other, so the one-to-one matching of ``evaluate_detections``
and this any-match count agree). Deleting labels and rejecting labels must
move the figures exactly as far as the labels they touch.
"""

from __future__ import annotations

import numpy as np
import pytest
from digitskit import triaged_digits

from stoplight.plugins.autolabel.candidates import add_candidates_from_verified
from stoplight.plugins.review import missing
from stoplight.plugins.review.decisions import review_labels
from stoplight.plugins.triage import workflow

FIELD = "autolabels"


@pytest.fixture(scope="module")
def digits(tmp_root):
    ds, summary = triaged_digits(tmp_root / "digits-recall", seed=3, part=3, scope=None,
                                 diversity_attr=None, graph_k=0)
    yield ds, summary
    ds.delete()


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


def direct_count(view, keep=lambda d: True):
    """(found, total) per class of the verified digits, by brute force."""
    out = {}
    for s in view.select_fields(["ground_truth", FIELD]):
        labels = [d for d in (s[FIELD].detections if s[FIELD] else []) if keep(d)]
        for g in s.ground_truth.detections:
            hit = any(d.label == g.label and _iou(d.bounding_box, g.bounding_box) >= 0.5 for d in labels)
            k, n = out.get(g.label, (0, 0))
            out[g.label] = (k + hit, n + 1)
    return out


def _check(block: dict, truth: dict):
    k = sum(v[0] for v in truth.values())
    n = sum(v[1] for v in truth.values())
    assert (block["overall"]["k"], block["overall"]["n"]) == (k, n)
    assert {c: (b["k"], b["n"]) for c, b in block["classes"].items()} == truth
    for b in [block["overall"], *block["classes"].values()]:
        lo, hi = b["interval"]
        assert lo <= b["estimate"] <= hi


def test_report_recall_equals_a_direct_count_on_the_verified_images(digits):
    ds, summary = digits
    verified = ds.match_tags("verified")
    report = workflow.triage_report(ds, FIELD)
    rec = report["recall"]
    # measured on the calibration's verified images only, although every
    # image of this dataset has ground truth
    assert rec["images"] == len(verified) < len(ds)
    assert rec["gt_field"] == "ground_truth" and rec["iou"] == 0.5
    truth = direct_count(verified)
    _check(rec["auto"], truth)
    assert 0.3 < rec["auto"]["overall"]["estimate"] < 1.0  # the classifier's real mistakes
    # nothing decided yet: the final labels are green and yellow ones
    in_final = lambda d: d.queue in ("green", "yellow")  # noqa: E731
    _check(rec["final"], direct_count(verified, in_final))
    # assign_queues returns the same section, next to the existing keys
    assert summary["report"]["recall"]["auto"] == rec["auto"]
    assert {"totals", "queues", "classes", "workload", "cost", "final", "notes"} <= set(report)


def test_threshold_curve_on_the_verified_images(digits):
    ds, _ = digits
    rec = workflow.triage_report(ds, FIELD)["recall"]
    curve = rec["curve"]
    conf = np.asarray(ds.values(f"{FIELD}.detections.confidence", unwind=True))
    # no zero_shot_detect run here: the curve starts at the lowest confidence
    assert rec["labeling_threshold"] is None
    assert conf.min() - 1e-4 <= curve[0]["threshold"] <= conf.min()
    assert [p["labels"] for p in curve] == [int((conf >= p["threshold"]).sum()) for p in curve]
    queue = np.asarray(ds.values(f"{FIELD}.detections.queue", unwind=True), dtype=object)
    assert [p["review"] for p in curve] == [int(((conf >= p["threshold"]) & (queue == "yellow")).sum())
                                            for p in curve]
    assert curve[0]["recall"] == rec["auto"]["overall"]["estimate"]
    recalls = [p["recall"] for p in curve]
    assert recalls == sorted(recalls, reverse=True) and recalls[-1] < recalls[0]
    # precision at a threshold: the verified labels above it that match a digit
    t = curve[len(curve) // 2]["threshold"]
    verified = ds.match_tags("verified")
    above = direct_count(verified, lambda d: d.confidence >= t)
    assert curve[len(curve) // 2]["recall"] == pytest.approx(
        sum(v[0] for v in above.values()) / sum(v[1] for v in above.values()), abs=1e-4)


def test_deleted_and_rejected_labels_move_recall(digits):
    ds, _ = digits
    clone = ds.clone()
    try:
        workflow.calibrate_triage(clone.match_tags("verified"), FIELD, "ground_truth", target_precision=0.9)
        workflow.assign_queues(clone, FIELD, diversity_attr=None, graph_k=0)
        before = workflow.triage_report(clone, FIELD)["recall"]
        verified = clone.match_tags("verified")
        # reject the labels of two verified images: gone from the final
        # labels, still auto-labels
        two = verified.limit(2)
        review_labels(clone, FIELD, "reject", sample_ids=two.values("id"), user="tester")
        after = workflow.triage_report(clone, FIELD)["recall"]
        assert after["auto"] == before["auto"]
        rejected = lambda d: d.review != "rejected" and d.queue in ("green", "yellow")  # noqa: E731
        _check(after["final"], direct_count(verified, rejected))
        assert after["final"]["overall"]["k"] < before["final"]["overall"]["k"]
        # delete every label of a third image: the auto-labels miss its digits
        third = verified.skip(2).limit(1)
        lost = direct_count(third)
        third.set_values(FIELD, [None])
        gone = workflow.triage_report(clone, FIELD)["recall"]
        assert gone["auto"]["overall"]["k"] == before["auto"]["overall"]["k"] - sum(v[0] for v in lost.values())
        _check(gone["auto"], direct_count(verified))
    finally:
        clone.delete()


def test_an_object_added_from_the_missing_queue_counts_for_the_final_labels_only(digits):
    """A missed digit a person adds from a candidate (``add_missing``) is a
    final label but no auto-label: final recall finds one more object, auto
    recall does not move. Fails if added labels counted as auto-labels."""
    ds, _ = digits
    clone = ds.clone()
    try:
        workflow.calibrate_triage(clone.match_tags("verified"), FIELD, "ground_truth", target_precision=0.9)
        workflow.assign_queues(clone, FIELD, diversity_attr=None, graph_k=0)
        verified = clone.match_tags("verified")
        verified.limit(1).set_values(FIELD, [None])  # its digits are now missed
        before = workflow.triage_report(clone, FIELD)["recall"]
        out = add_candidates_from_verified(verified.limit(1), "ground_truth", FIELD)
        assert out["num_candidates"] >= 1
        cand = verified.limit(1).first()[f"{FIELD}_candidates"].detections[0]
        added = missing.add_missing(clone, f"{FIELD}_candidates", cand.id, user="tester")
        assert added["num_added"] == 1
        after = workflow.triage_report(clone, FIELD)["recall"]
        assert after["auto"]["overall"]["k"] == before["auto"]["overall"]["k"]
        assert after["final"]["overall"]["k"] == before["final"]["overall"]["k"] + 1
    finally:
        clone.delete()


def test_recall_needs_verified_images_in_the_view(digits):
    ds, _ = digits
    rest = ds.match_tags("verified", bool=False)
    rec = workflow.triage_report(rest, FIELD)["recall"]
    assert "no verified image" in rec["reason"] and "auto" not in rec


def test_curve_starts_at_the_threshold_the_labels_were_kept_at(digits):
    from stoplight.plugins.common import provenance

    ds, _ = digits
    record = provenance.start_run(ds, "labeling", method="zero_shot_detect", label_field=FIELD,
                                  confidence_threshold=0.5)
    provenance.finish_run(ds, "labeling", record, dict(status="completed"))
    try:
        rec = workflow.triage_report(ds, FIELD)["recall"]
        assert rec["labeling_threshold"] == 0.5
        assert [p["threshold"] for p in rec["curve"]][:3] == [0.5, 0.55, 0.6]
        conf = np.asarray(ds.values(f"{FIELD}.detections.confidence", unwind=True))
        assert rec["curve"][0]["labels"] == int((conf >= 0.5).sum())
    finally:
        ds.delete_run("labeling")


def test_recall_says_why_when_the_verified_field_is_gone_or_not_detections(digits):
    import fiftyone as fo

    ds, _ = digits
    clone = ds.clone()
    try:
        clone.rename_sample_field("ground_truth", "truth")
        report = workflow.triage_report(clone, FIELD)
        assert "'ground_truth' is not in this view" in report["recall"]["reason"]
        assert report["queues"]["yellow"]["count"] > 0  # the rest of the report stands
        clone.add_sample_field("ground_truth", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
        clone.set_values("ground_truth", [fo.Classification(label="1")] * len(clone))
        report = workflow.triage_report(clone, FIELD)
        assert report["recall"]["reason"].startswith("could not match the verified labels")
    finally:
        clone.delete()


def test_labels_without_confidence_get_recall_but_no_curve(digits):
    ds, _ = digits
    clone = ds.clone()
    try:
        clone.set_values(f"{FIELD}.detections.confidence", [[None] * len(d or []) for d in
                                                           clone.values(f"{FIELD}.detections.id")])
        rec = workflow.triage_report(clone, FIELD)["recall"]
        assert rec["curve"] == [] and rec["auto"]["overall"]["estimate"] > 0
    finally:
        clone.delete()


def test_matches_are_reused_until_a_verified_image_changes(digits, monkeypatch):
    from stoplight.plugins.triage import verified_recall

    ds, _ = digits
    clone = ds.clone()
    calls = []
    real = verified_recall.found_objects
    monkeypatch.setattr(verified_recall, "found_objects", lambda *a, **k: calls.append(1) or real(*a, **k))
    try:
        first = workflow.triage_report(clone, FIELD)["recall"]
        n = len(calls)
        assert n == 2  # auto-labels and final labels
        assert workflow.triage_report(clone, FIELD)["recall"] == first and len(calls) == n
        # a decision on a verified image: matched again, and the figure moves
        sid = clone.match_tags("verified").first().id
        review_labels(clone, FIELD, "reject", sample_ids=[sid], user="tester")
        again = workflow.triage_report(clone, FIELD)["recall"]
        assert len(calls) == n + 2 and again["final"] != first["final"]
    finally:
        clone.delete()
