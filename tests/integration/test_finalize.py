"""finalize_labels: exactly the accepted (+ green unrejected) labels, clean,
idempotent, source untouched, recorded; the operator through the SDK."""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.delegated import DelegatedOperationService

from stoplight.plugins.review import decisions as D
from stoplight.plugins.review.finalize import FINAL_ATTRS, final_label_id, finalize_labels

URI = "@stoplight/autolabel/finalize_labels"
QUEUES = ("green", "yellow", "red", None)


@pytest.fixture()
def reviewed(dataset):
    """Labels with queues and scores on all but the last sample; some
    accepted by alice, some rejected by bob (green ones among both)."""
    values = []
    for s in range(len(dataset) - 1):
        dets = []
        for j in range(8):
            k = s * 8 + j
            d = fo.Detection(
                label=("car", "person")[k % 2],
                bounding_box=[0.05 * j, 0.1, 0.1, 0.2],
                confidence=0.3 + 0.05 * j,
                hardness=0.4,
                uncertainty=0.2,
                class_scores=[0.6, 0.4],
            )
            if QUEUES[(k // 2) % 4]:
                d["queue"] = QUEUES[(k // 2) % 4]
            dets.append(d)
        values.append(fo.Detections(detections=dets))
    values.append(None)  # a sample never labeled
    dataset.set_values("autolabels", values)
    ids = dataset.values("autolabels.detections.id", unwind=True)
    queue = dict(zip(ids, dataset.values("autolabels.detections.queue", unwind=True)))
    accepted = ids[0:40:3]
    rejected = [i for i in ids[1:60:4] if i not in accepted]
    D.review_labels(dataset, "autolabels", "accept", label_ids=accepted, user="alice")
    D.review_labels(dataset, "autolabels", "reject", label_ids=rejected, user="bob")
    return dataset, set(accepted), set(rejected), queue


def _final(dataset, field="autolabels_final"):
    dataset.reload()
    out = {}
    for sid, dets in zip(dataset.values("id"), dataset.values(field)):
        out[sid] = None if dets is None else [d.to_dict() for d in dets.detections]
    return out


def _raw(dataset, field):
    return [doc.get(field) for doc in dataset._sample_collection.find({}, {field: 1}).sort("_id", 1)]


def test_copies_exactly_the_accepted_labels_cleanly(reviewed):
    dataset, accepted, rejected, queue = reviewed
    source_before = _raw(dataset, "autolabels")
    summary = finalize_labels(dataset, "autolabels")
    assert summary["num_final_labels"] == summary["num_accepted"] == len(accepted)
    assert summary["num_green"] == 0 and summary["num_samples"] == len(dataset)

    final = _final(dataset)
    got = {d["source_id"] for dets in final.values() if dets for d in dets}
    assert got == accepted
    source = {d.id: d for dets in dataset.values("autolabels") if dets for d in dets.detections}
    for sid, dets in final.items():
        for d in dets or []:
            src = source[d["source_id"]]
            assert d["label"] == src.label and d["bounding_box"] == src.bounding_box
            assert d["confidence"] == src.confidence
            assert d["source_field"] == "autolabels" and d["review"] == "accepted"
            assert d["reviewed_by"] == "alice" and d["reviewed_at"] == src.reviewed_at
            assert d["auto_accepted"] is False
            assert str(d["_id"]) == final_label_id("autolabels_final", src.id) != src.id
            # no score clutter
            assert not {"hardness", "uncertainty", "class_scores", "review_action"} & set(d)
    # the never-labeled sample gets no final labels (not an empty claim)
    assert final[dataset.last().id] is None
    # the source field is untouched, byte for byte
    assert _raw(dataset, "autolabels") == source_before
    schema = dataset.get_field_schema(flat=True)
    assert all(f"autolabels_final.detections.{a}" in schema for a in FINAL_ATTRS)

    # provenance in the runs registry
    info = dataset.get_run_info(summary["run_key"])
    assert info.config.stoplight_method == "finalize_labels"
    assert info.config.final_field == "autolabels_final" and info.config.status == "completed"
    assert info.config.num_final_labels == len(accepted)


def test_include_green_adds_green_labels_nobody_rejected(reviewed):
    dataset, accepted, rejected, queue = reviewed
    summary = finalize_labels(dataset, "autolabels", final_field="final", include_green=True)
    green_ok = {i for i, q in queue.items() if q == "green" and i not in rejected and i not in accepted}
    assert green_ok and {i for i in rejected if queue[i] == "green"}  # the fixture covers both
    final = _final(dataset, "final")
    got = {d["source_id"]: d for dets in final.values() if dets for d in dets}
    assert set(got) == accepted | green_ok
    assert summary["num_green"] == len(green_ok) and summary["num_accepted"] == len(accepted)
    assert all(got[i]["auto_accepted"] and got[i]["queue"] == "green" for i in green_ok)
    assert all(got[i]["review"] is None for i in green_ok)


def test_rerun_is_idempotent_and_follows_new_decisions(reviewed):
    dataset, accepted, rejected, queue = reviewed
    finalize_labels(dataset, "autolabels", include_green=True)
    first = _final(dataset)
    finalize_labels(dataset, "autolabels", include_green=True)
    assert _final(dataset) == first  # same labels, same ids, no duplicates
    n = sum(len(d or []) for d in first.values())
    assert len(dataset.values("autolabels_final.detections.id", unwind=True)) == n

    # a label rejected since disappears, a newly accepted one appears
    gone = sorted(accepted)[0]
    new = next(i for i in queue if i not in accepted and i not in rejected and queue[i] != "green")
    D.review_labels(dataset, "autolabels", "reject", label_ids=[gone], user="carol")
    D.review_labels(dataset, "autolabels", "accept", label_ids=[new], user="carol")
    finalize_labels(dataset, "autolabels", include_green=True)
    ids = {d["source_id"] for dets in _final(dataset).values() if dets for d in dets}
    before = {d["source_id"] for dets in first.values() if dets for d in dets}
    assert ids == (before - {gone}) | {new}
    assert len(dataset.list_runs()) == 3


def test_view_picks_samples_and_keeps_label_filters_from_dropping_accepted(reviewed):
    dataset, accepted, rejected, queue = reviewed
    view = dataset.limit(2).filter_labels("autolabels", fo.ViewField("confidence") > 0.5)
    summary = finalize_labels(view, "autolabels")
    in_view = set(dataset.limit(2).values("id"))
    final = _final(dataset)
    assert summary["num_samples"] == 2
    for sid, dets in final.items():
        if sid not in in_view:
            assert dets is None  # samples outside the view are not written
    got = {d["source_id"] for sid in in_view for d in final[sid]}
    owners = dict(zip(dataset.values("autolabels.detections.id", unwind=True),
                      [s for s, dets in zip(dataset.values("id"), dataset.values("autolabels.detections.id"))
                       for _ in dets or []]))
    assert got == {i for i in accepted if owners[i] in in_view}
    # some of those are hidden by the view's filter and still copied
    assert any(d.confidence <= 0.5 for dets in dataset.limit(2).values("autolabels") for d in dets.detections
               if d.id in got)


def test_patches_view_finalizes_the_source_samples(reviewed):
    dataset, accepted, rejected, queue = reviewed
    patches = dataset.to_patches("autolabels").match(fo.ViewField("autolabels.review") == "accepted")
    summary = finalize_labels(patches, "autolabels")
    owners = set(patches.values("sample_id"))
    assert summary["num_samples"] == len(owners)
    final = _final(dataset)
    assert {sid for sid, dets in final.items() if dets is not None} == owners
    assert {d["source_id"] for dets in final.values() if dets for d in dets} == accepted


def test_clear_errors(reviewed):
    dataset, *_ = reviewed
    with pytest.raises(ValueError, match="Unknown label field 'nope'"):
        finalize_labels(dataset, "nope")
    with pytest.raises(ValueError, match="'final_field' must differ"):
        finalize_labels(dataset, "autolabels", final_field="autolabels")
    dataset.add_sample_field("taken", fo.StringField)
    with pytest.raises(ValueError, match="'taken' exists and is not an fo.Detections"):
        finalize_labels(dataset, "autolabels", final_field="taken")
    dataset.add_sample_field("cls", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classifications)
    with pytest.raises(ValueError, match="'cls' must be an fo.Detections"):
        finalize_labels(dataset, "cls")
    assert not dataset.has_field("autolabels_final") and not dataset.list_runs()


def test_operator_immediate_and_delegated(reviewed):
    dataset, accepted, rejected, queue = reviewed
    result = foo.execute_operator(
        URI, ctx={"dataset": dataset, "params": {"label_field": "autolabels", "final_field": "final"}},
    )
    assert result.error is None, result.error
    assert result.result["num_final_labels"] == len(accepted)
    assert set(dataset.values("final.detections.source_id", unwind=True)) == accepted

    # selected samples only, delegated
    sid = dataset.first().id
    result = foo.execute_operator(
        URI,
        ctx={"dataset": dataset, "view": dataset.view(), "selected": [sid],
             "params": {"view_target": "SELECTED_SAMPLES", "final_field": "final2",
                        "include_green": True, "delegate": True}},
        request_delegation=True,
    )
    assert result.delegated and not dataset.has_field("final2")
    DelegatedOperationService().execute_queued_operations(dataset_name=dataset.name)
    dataset.reload()
    assert dataset.exists("final2").values("id") == [sid]
    with pytest.raises(Exception, match="must differ"):
        foo.execute_operator(URI, ctx={"dataset": dataset, "params": {"final_field": "autolabels"}})
