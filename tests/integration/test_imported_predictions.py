"""Your own predictions (issue 18, part 4): a Detections field imported from
another model, whose per-class scores live under ``scores``, goes through
scoring, calibration, triage, review and finalize like Stoplight's own
``autolabels``. Real FiftyOne, real MongoDB; the predictions are built with
known right and wrong labels so every stage has something to find.
"""

import uuid

import fiftyone as fo
import numpy as np
import pytest

from stoplight.plugins.review.decisions import review_labels
from stoplight.plugins.review.finalize import finalize_labels
from stoplight.plugins.scoring.scores import score_labels
from stoplight.plugins.triage.workflow import assign_queues, calibrate_triage

FIELD = "predictions"


@pytest.fixture()
def imported():
    """60 images, 3 boxes each; a quarter of the predictions have the wrong
    class, with low confidence and flat scores, as a weak model's would."""
    rng = np.random.default_rng(0)
    ds = fo.Dataset(f"stoplight-imported-{uuid.uuid4().hex[:8]}")
    samples = []
    for i in range(60):
        gt, pred = [], []
        for j in range(3):
            box = [0.05 + 0.3 * j, 0.1, 0.2, 0.2]
            cls = int(rng.integers(3))
            gt.append(fo.Detection(label="abc"[cls], bounding_box=box))
            wrong = rng.random() < 0.25
            said = (cls + 1) % 3 if wrong else cls
            top = rng.uniform(0.35, 0.55) if wrong else rng.uniform(0.7, 0.98)
            scores = np.full(3, (1 - top) / 2)
            scores[said] = top
            pred.append(fo.Detection(label="abc"[said], bounding_box=box, confidence=float(top),
                                     scores=scores.tolist()))
        samples.append(fo.Sample(filepath=f"/nonexistent/{i}.jpg", ground_truth=fo.Detections(detections=gt),
                                 **{FIELD: fo.Detections(detections=pred)}))
    ds.add_samples(samples, progress=False)
    yield ds
    ds.delete()


def test_an_imported_field_goes_from_scoring_to_final_labels(imported):
    ds = imported
    summary = score_labels(ds, FIELD, scores_attr="scores", rer=False, progress=False)
    assert summary["num_hardness_from_class_scores"] == 180
    assert ds.count(f"{FIELD}.detections.margin") == 180
    assert "hardness" in summary["signals_available"]

    cal = calibrate_triage(ds, FIELD, gt_field="ground_truth", target_precision=0.9, folds=3)
    assert "margin" in cal["signals"] and "hardness" in cal["signals"]
    assign_queues(ds, FIELD, diversity_attr=None)
    queues = ds.values(f"{FIELD}.detections.queue", unwind=True)
    assert set(queues) <= {"green", "yellow", "red"} and None not in queues

    first = ds.first()[FIELD].detections[0]
    review_labels(ds, FIELD, "accept", label_ids=[first.id], user="tester")
    out = finalize_labels(ds, FIELD)
    assert out["num_accepted"] == 1
    final = ds.first()[out["final_field"]].detections
    assert [(d.label, d.bounding_box) for d in final] == [(first.label, first.bounding_box)]
    # the imported field itself keeps its scores and gains only Stoplight's attributes
    d0 = ds.first()[FIELD].detections[0]
    assert len(d0["scores"]) == 3 and d0["review"] == "accepted"
