"""Threat: an App user wipes human labels by pointing a writer at their field.

``finalize_labels(final_field="ground_truth")`` used to rewrite the whole
field (None on samples without auto-labels), and
``zero_shot_detect(label_field="ground_truth", overwrite=True)`` to replace
its labels. Each writer now writes only a new field, or one Stoplight
created for the same purpose (marked in the field's ``info``, or known from
the runs registry for fields made before the mark), unless the caller says
``adopt_field=True``. A refusal writes nothing.
"""

from __future__ import annotations

import uuid

import fiftyone as fo
import pytest

from securitykit import db_changes, db_snapshot, http_error, http_execute, sdk_execute

pytest_plugins = ["appkit"]

DETECT = "@stoplight/autolabel/zero_shot_detect"
FINAL = "@stoplight/autolabel/finalize_labels"


@pytest.fixture()
def humans(image_dir):
    """Persistent: human ``ground_truth`` and reviewed ``autolabels`` on two
    samples, nothing on the third."""
    ds = fo.Dataset(f"stoplight-fields-{uuid.uuid4().hex[:8]}", persistent=True)
    ds.add_samples([fo.Sample(filepath=str(p)) for p in sorted(image_dir.glob("*.jpg"))[:3]])
    for i, s in enumerate(ds):
        if i < 2:  # the third sample is not labeled by a person yet
            s["ground_truth"] = fo.Detections(
                detections=[fo.Detection(label="person", bounding_box=[0.1, 0.1, 0.5, 0.5])])
            s["autolabels"] = fo.Detections(detections=[
                fo.Detection(label="bus", bounding_box=[0.2, 0.2, 0.3, 0.3], confidence=0.9, review="accepted")])
        s.save()
    yield ds
    if fo.dataset_exists(ds.name):
        fo.delete_dataset(ds.name)


def _gt(ds):
    ds.reload()
    return [[(d.label, d.bounding_box) for d in dets.detections] if dets else None
            for dets in ds.values("ground_truth")]


def _detect(tiny_checkpoint, **extra):
    return dict(backend="owlv2", checkpoint=tiny_checkpoint("owlv2"), classes=["person"], device="cpu",
                confidence_threshold=0.0, **extra)


CASES = {
    "finalize": (FINAL, lambda ck: dict(label_field="autolabels", final_field="ground_truth"), "final_field"),
    "detect-overwrite": (DETECT, lambda ck: _detect(ck, label_field="ground_truth", overwrite=True), "label_field"),
    "detect-resume": (DETECT, lambda ck: _detect(ck, label_field="ground_truth"), "label_field"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_human_labels_are_never_replaced_sdk(humans, tiny_checkpoint, case):
    uri, params, param = CASES[case]
    gt, before = _gt(humans), db_snapshot()
    error = sdk_execute(uri, {"dataset": humans, "view": humans.view(), "params": params(tiny_checkpoint)})
    assert _gt(humans) == gt, "the human labels were replaced"
    assert error and f"'{param}'" in error and "adopt_field" in error, error
    assert db_changes(before, db_snapshot()) == []


@pytest.mark.parametrize("case", list(CASES))
def test_human_labels_are_never_replaced_http(app_server, humans, tiny_checkpoint, case):
    uri, params, param = CASES[case]
    gt, before = _gt(humans), db_snapshot()
    status, text = http_execute(app_server, uri, humans.name, params(tiny_checkpoint), generator=uri == DETECT)
    assert _gt(humans) == gt, "the human labels were replaced"
    assert param in text and "adopt_field" in text, text[-1500:]
    assert db_changes(before, db_snapshot()) == []


def test_the_caller_can_take_a_field_over_explicitly(humans):
    assert sdk_execute(FINAL, {"dataset": humans, "params": dict(
        label_field="autolabels", final_field="ground_truth", adopt_field=True)}) is None
    assert _gt(humans) == [[("bus", [0.2, 0.2, 0.3, 0.3])]] * 2 + [None]


def test_stoplights_own_fields_stay_writable(humans, tiny_checkpoint):
    from stoplight.plugins.autolabel.pipeline import zero_shot_detect
    from stoplight.plugins.review.finalize import finalize_labels

    for _ in range(2):  # re-running into its own fields needs no flag
        finalize_labels(humans, "autolabels", "final")
        zero_shot_detect(humans, **_detect(tiny_checkpoint, label_field="auto2", overwrite=True), progress=False)
    assert humans.get_field("final").info["stoplight"]["purpose"] == "final"
    # a field labeled before fields were marked: its run record vouches for it
    field = humans.get_field("auto2")
    field.info = {}
    field.save()
    zero_shot_detect(humans, **_detect(tiny_checkpoint, label_field="auto2", overwrite=True), progress=False)
    # but an auto-label field is no final field
    with pytest.raises(ValueError, match="'final_field'.*created it for 'autolabels'"):
        finalize_labels(humans, "autolabels", "auto2")
