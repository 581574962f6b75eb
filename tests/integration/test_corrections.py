"""Corrections are decisions: a changed class or box is stored, logged,
undoable, written by finalize and exported for training; edits made the
way the App's Annotate tab makes them are found and logged."""

from __future__ import annotations

import datetime

import fiftyone as fo
import fiftyone.operators as foo
import pytest

from stoplight.plugins.common import label_docs
from stoplight.plugins.common import audit
from stoplight.plugins.review import corrections as C
from stoplight.plugins.review import decisions as D
from stoplight.plugins.review.finalize import finalize_labels

URI = "@stoplight/autolabel/review_labels"
CLASSES = ("car", "person", "dog")


def _labeled(dataset, per_sample=4):
    values, ids = [], []
    for s, _ in enumerate(dataset.values("id")):
        dets = []
        for j in range(per_sample):
            k = s * per_sample + j
            d = fo.Detection(label=CLASSES[k % 3], bounding_box=[0.1 * j, 0.1, 0.1, 0.2], confidence=0.5 + 0.01 * j,
                             class_scores=[0.1] * 10, embedding=[float(k)] * 8, queue="yellow", p_correct=0.5,
                             review_rank=k + 1)
            dets.append(d)
            ids.append(d.id)
        values.append(fo.Detections(detections=dets))
    dataset.set_values("autolabels", values)
    return ids


def _label(dataset, lid, field="autolabels"):
    dataset.reload()
    for sample in dataset.select_fields(field):
        for d in sample[field].detections if sample[field] else []:
            if d.id == lid:
                return d
    raise KeyError(lid)


@pytest.fixture()
def labeled(dataset):
    return dataset, _labeled(dataset)


def test_correct_class_and_box_is_stored_logged_and_undone(labeled):
    dataset, ids = labeled
    lid = ids[1]
    old = _label(dataset, lid)
    out = C.correct_label(dataset, "autolabels", lid, label="dog", bounding_box=[0.2, 0.3, 0.25, 0.4], user="alice")
    assert out["action"] == "correct" and out["num_labels"] == 1
    assert out["before"] == dict(label=old.label, bounding_box=list(old.bounding_box))
    d = _label(dataset, lid)
    assert (d.label, list(d.bounding_box)) == ("dog", [0.2, 0.3, 0.25, 0.4])
    assert (d.review, d.reviewed_by, d.review_action, d.review_bulk) == ("corrected", "alice", out["action_id"], False)
    assert d.auto_label == old.label  # the detector's class is kept for calibration
    assert (d.logged_label, list(d.logged_bounding_box)) == ("dog", [0.2, 0.3, 0.25, 0.4])
    # scores, queue and id untouched
    assert (d.confidence, d.queue, d.class_scores, d.id) == (old.confidence, old.queue, old.class_scores, lid)
    (entry,) = audit.read_log(dataset)
    assert entry["action"] == "correct" and entry["user"] == "alice" and entry["label_id"] == lid
    assert entry["before"]["label"] == old.label and entry["before"]["bounding_box"] == list(old.bounding_box)
    assert entry["after"]["label"] == "dog" and entry["after"]["review"] == "corrected"

    # a second correction keeps the detector's class
    C.correct_label(dataset, "autolabels", lid, label="car", user="alice")
    assert (_label(dataset, lid).label, _label(dataset, lid).auto_label) == ("car", old.label)
    # undo walks back: first to "dog", then to the auto-label as it was
    D.undo_last(dataset, user="alice")
    d = _label(dataset, lid)
    assert (d.label, list(d.bounding_box), d.review) == ("dog", [0.2, 0.3, 0.25, 0.4], "corrected")
    undo = D.undo_last(dataset, user="alice")
    assert undo["undone_action"] == "correct" and undo["num_labels"] == 1
    d = _label(dataset, lid)
    assert (d.label, list(d.bounding_box), d.review, d.auto_label) == (old.label, list(old.bounding_box), None, None)
    assert (d.logged_label, list(d.logged_bounding_box)) == (old.label, list(old.bounding_box))
    undo_entry = audit.read_log(dataset)[-1]
    assert undo_entry["before"]["label"] == "dog" and undo_entry["after"]["label"] == old.label


def test_correct_errors_write_nothing(labeled):
    dataset, ids = labeled
    old = _label(dataset, ids[0])
    with pytest.raises(ValueError, match="changes nothing"):
        C.correct_label(dataset, "autolabels", ids[0], label=old.label)
    with pytest.raises(ValueError, match="Give the right class"):
        C.correct_label(dataset, "autolabels", ids[0])
    with pytest.raises(ValueError, match="bounding_box.*inside"):
        C.correct_label(dataset, "autolabels", ids[0], bounding_box=[0.9, 0.1, 0.3, 0.1])
    with pytest.raises(ValueError, match="bounding_box.*4"):
        C.correct_label(dataset, "autolabels", ids[0], bounding_box=[0.1, 0.1, 0.3])
    with pytest.raises(ValueError, match="'label' must be a non-empty"):
        C.correct_label(dataset, "autolabels", ids[0], label="  ")
    with pytest.raises(ValueError, match="not found"):
        C.correct_label(dataset, "autolabels", str(fo.Detection().id), label="dog")
    assert not audit.read_log(dataset)


def test_an_undo_never_overwrites_a_later_edit(labeled):
    dataset, ids = labeled
    lid = ids[2]
    C.correct_label(dataset, "autolabels", lid, label="person", user="alice")
    C.correct_label(dataset, "autolabels", lid, label="car", user="bob")
    out = D.undo_last(dataset, user="alice")
    assert out["num_conflicts"] == 1 and out["num_labels"] == 0
    assert _label(dataset, lid).label == "car"


def test_correct_through_the_operator(labeled):
    dataset, ids = labeled
    result = foo.execute_operator(
        URI, ctx={"dataset": dataset, "view": dataset.view(),
                  "params": {"action": "correct", "label_id": ids[3], "new_label": "person",
                             "bounding_box": [0.1, 0.1, 0.5, 0.5], "user": "dora"}},
    )
    assert result.error is None, result.error
    d = _label(dataset, ids[3])
    assert (d.label, list(d.bounding_box), d.review, d.reviewed_by) == ("person", [0.1, 0.1, 0.5, 0.5], "corrected", "dora")
    with pytest.raises(Exception, match="label_id"):
        foo.execute_operator(URI, ctx={"dataset": dataset, "params": {"action": "correct", "new_label": "dog"}})


def test_finalize_writes_the_corrected_label_and_export_uses_it(labeled, tmp_path):
    from stoplight.plugins.training.export import kept_labels_view

    dataset, ids = labeled
    C.correct_label(dataset, "autolabels", ids[0], label="dog", bounding_box=[0.5, 0.5, 0.2, 0.2], user="alice")
    D.review_labels(dataset, "autolabels", "accept", label_ids=[ids[1]], user="alice")
    D.review_labels(dataset, "autolabels", "reject", label_ids=[ids[2]], user="alice")
    out = finalize_labels(dataset, "autolabels", "final")
    assert out["num_final_labels"] == 2 and out["num_accepted"] == 2
    finals = {d.source_id: d for dets in dataset.values("final.detections") for d in dets or []}
    assert set(finals) == {ids[0], ids[1]}
    assert (finals[ids[0]].label, list(finals[ids[0]].bounding_box), finals[ids[0]].review) == (
        "dog", [0.5, 0.5, 0.2, 0.2], "corrected")
    kept = kept_labels_view(dataset, "autolabels", "accepted", skip_empty=True)
    exported = {d.id: d for dets in kept.values("autolabels.detections") for d in dets or []}
    assert set(exported) == {ids[0], ids[1]} and exported[ids[0]].label == "dog"


def _app_edit(dataset, sample_id, label_id, patch):
    """Edits a label the way the App's Annotate tab does: FiftyOne's server
    applies a JSON patch to the label and saves the sample, guarded by its
    last_modified_at (fiftyone/server/routes/sample.py, SampleField.patch)."""
    from fiftyone.server.routes import sample as routes

    sample = dataset[sample_id]
    label = next(d for d in sample["autolabels"].detections if d.id == label_id)
    routes.handle_json_patch(label, patch)
    routes.save_sample(sample, sample.last_modified_at)


def test_app_edits_are_found_and_logged_as_corrections(labeled):
    dataset, ids = labeled
    # Stoplight has looked at the labels (the triage does this when it
    # assigns queues): they carry their logged class and box
    assert label_docs.prepare_label_docs(dataset, "autolabels.detections") == len(dataset)
    assert C.sync_label_edits(dataset, "autolabels")["num_corrected"] == 0
    sid = dataset.values("id")[1]
    lid = dataset[sid]["autolabels"].detections[0].id
    old = _label(dataset, lid)
    _app_edit(dataset, sid, lid, [{"op": "replace", "path": "/label", "value": "person"},
                                  {"op": "replace", "path": "/bounding_box", "value": [0.3, 0.3, 0.2, 0.2]}])
    d = _label(dataset, lid)
    assert d.label == "person" and d.review is None  # the App wrote it; Stoplight does not know yet
    out = C.sync_label_edits(dataset, "autolabels")
    assert out["num_corrected"] == 1 and out["label_ids"] == [lid]
    d = _label(dataset, lid)
    assert (d.review, d.reviewed_by, d.auto_label) == ("corrected", C.APP_EDIT_USER, old.label)
    (entry,) = [e for e in audit.read_log(dataset) if e["label_id"] == lid]
    assert entry["action"] == "correct" and entry["source"]["via"] == "fiftyone_app"
    assert entry["before"]["label"] == old.label and entry["before"]["bounding_box"] == list(old.bounding_box)
    assert entry["after"]["label"] == "person" and entry["after"]["bounding_box"] == [0.3, 0.3, 0.2, 0.2]
    # found once: the next look finds nothing
    assert C.sync_label_edits(dataset, "autolabels")["num_corrected"] == 0
    # and undoable as the App's edits
    D.undo_last(dataset, user=C.APP_EDIT_USER)
    d = _label(dataset, lid)
    assert (d.label, list(d.bounding_box), d.review) == (old.label, list(old.bounding_box), None)


def test_an_app_edit_is_logged_before_the_next_decision_on_it(labeled):
    dataset, ids = labeled
    label_docs.prepare_label_docs(dataset, "autolabels.detections")
    sid = dataset.values("id")[0]
    lid = dataset[sid]["autolabels"].detections[1].id
    _app_edit(dataset, sid, lid, [{"op": "replace", "path": "/label", "value": "dog"}])
    out = D.review_labels(dataset, "autolabels", "reject", label_ids=[lid], user="bob")
    assert out["num_app_edits"] == 1
    log = [e for e in audit.read_log(dataset) if e["label_id"] == lid]
    assert [(e["action"], e["user"]) for e in log] == [("correct", C.APP_EDIT_USER), ("reject", "bob")]
    assert log[1]["before"]["review"] == "corrected"


def test_tooltip_order_puts_the_queue_and_review_first(labeled):
    dataset, ids = labeled
    label_docs.prepare_label_docs(dataset, "autolabels.detections")
    D.review_labels(dataset, "autolabels", "accept", label_ids=ids[:1], user="alice")
    doc = dataset._sample_collection.find_one({"autolabels.detections._id": {"$exists": True}})
    keys = list(doc["autolabels"]["detections"][0])
    first = [k for k in keys if k in ("label", "confidence", "queue", "p_correct", "review", "reviewed_by",
                                      "review_rank", "class_scores", "embedding")]
    assert first[:7] == ["label", "confidence", "queue", "p_correct", "review", "reviewed_by", "review_rank"]
    assert first.index("embedding") > 6 and first.index("class_scores") > 6
    # a second call rewrites nothing
    assert label_docs.prepare_label_docs(dataset, "autolabels.detections") == 0


def test_bulk_accepts_keep_their_expected_precision_in_the_report():
    """Accepting all green in bulk used to read as 100 % expected precision:
    bulk-accepted labels were counted as checked. They keep their P(correct)."""
    import numpy as np

    from stoplight.plugins.triage.report import build_report

    cal = dict(per_class={}, classes=[], guarantee="pac", target_precision=0.95, confidence_level=0.95,
               verified={})
    labels = ["car"] * 4
    queue = ["green"] * 4
    p = np.array([0.9, 0.9, 0.8, 0.8])
    one_by_one = build_report(cal, labels, queue, p, ["accepted"] * 4, bulk=[False] * 4)
    in_bulk = build_report(cal, labels, queue, p, ["accepted"] * 4, bulk=[True] * 4)
    assert one_by_one["final"]["expected_precision"] == 1.0 and one_by_one["final"]["checked_by_people"] == 4
    assert in_bulk["final"]["expected_precision"] == pytest.approx(0.85)
    assert in_bulk["final"]["checked_by_people"] == 0 and in_bulk["final"]["bulk_accepted"] == 4
    assert in_bulk["totals"]["bulk_accepted"] == 4 and in_bulk["totals"]["accepted"] == 0
    assert in_bulk["queues"]["green"]["bulk_accepted"] == 4
    # a correction is checked by a person and kept
    mixed = build_report(cal, labels, queue, p, ["corrected", "rejected", "accepted", None])
    assert mixed["totals"]["corrected"] == 1 and mixed["final"]["checked_by_people"] == 2
