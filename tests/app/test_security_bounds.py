"""Threat: an App user exhausts the server with sizes no form would send.

Operators run inside the App server (or a delegated worker): a batch of
millions of images, thousands of decoding threads or cross-fitting folds, a
million prompts would take its memory and CPU down for everyone. Each
such size has an upper bound (:mod:`stoplight.plugins.common.limits`,
raised only by the server's environment). A request past one is refused,
naming the parameter, before anything runs or is written; the server's
override raises the bound.
"""

from __future__ import annotations

import json
import re
import uuid

import fiftyone as fo
import pytest

from securitykit import db_changes, db_snapshot, http_execute, sdk_execute

pytest_plugins = ["appkit"]

P = "@stoplight/autolabel/"


@pytest.fixture()
def labeled(image_dir):
    """Persistent (the App server sees it): auto-labels and human labels."""
    ds = fo.Dataset(f"stoplight-bounds-{uuid.uuid4().hex[:8]}", persistent=True)
    ds.add_samples([fo.Sample(filepath=str(p)) for p in sorted(image_dir.glob("*.jpg"))[:4]])
    for i, s in enumerate(ds):
        box = [0.1 + 0.05 * i, 0.1, 0.3, 0.3]
        s["autolabels"] = fo.Detections(detections=[fo.Detection(label="person", bounding_box=box, confidence=0.9)])
        s["ground_truth"] = fo.Detections(detections=[fo.Detection(label="person", bounding_box=box)])
        s.tags = ["train" if i < 3 else "test"]
        s.save()
    yield ds
    if fo.dataset_exists(ds.name):
        fo.delete_dataset(ds.name)


_DETECT = dict(backend="owlv2", checkpoint="<tiny owlv2>", classes=["person"], device="cpu", label_field="bounded")
_EMBED = dict(model_name="ViT-B-32", pretrained=None, device="cpu", embeddings_attr="bounded_emb")
CASES = {
    "detect-batch": ("zero_shot_detect", dict(_DETECT, batch_size=257), "batch_size"),
    "detect-workers": ("zero_shot_detect", dict(_DETECT, num_workers=65), "num_workers"),
    "detect-classes": ("zero_shot_detect", dict(_DETECT, classes=[f"c{i}" for i in range(20_001)]), "classes"),
    "detect-ontology": ("zero_shot_detect",
                        dict(_DETECT, classes=None, ontology=json.dumps({f"p{i}": "c" for i in range(20_001)})),
                        "ontology"),
    "embed-batch": ("compute_label_embeddings", dict(_EMBED, batch_size=4097), "batch_size"),
    "embed-prompts": ("compute_label_embeddings", dict(_EMBED, prompts=[f"c{i}" for i in range(20_001)]), "prompts"),
    "score-k": ("score_labels", dict(k=1001, rer=False, device="cpu"), "k"),
    "calibrate-folds": ("calibrate_triage", dict(label_field="autolabels", gt_field="ground_truth", folds=51,
                                                 calibration_key="bounded"), "folds"),
    "train-batch": ("train_on_accepted", dict(batch=1025, epochs=1, imgsz=32, device="cpu", include="all"), "batch"),
    "train-workers": ("train_on_accepted", dict(workers=65, epochs=1, imgsz=32, device="cpu", include="all"),
                      "workers"),
}


def _case(name, tiny_checkpoint):
    op, params, param = CASES[name]
    params = dict(params)
    if params.get("checkpoint") == "<tiny owlv2>":
        params["checkpoint"] = tiny_checkpoint("owlv2")
    return P + op, params, param


def _names(text: str, param: str) -> bool:
    """Whether an error names ``param``: Stoplight's "Parameter 'x'" or the
    form validation's "Path: x." (quotes may come JSON-escaped)."""
    return re.search(r"(['\"]|Path: )" + re.escape(param) + r"(['\"\\.]|$)", text) is not None


@pytest.mark.parametrize("case", list(CASES))
def test_sizes_past_the_bounds_are_refused_sdk(labeled, tiny_checkpoint, case):
    uri, params, param = _case(case, tiny_checkpoint)
    before = db_snapshot()
    error = sdk_execute(uri, {"dataset": labeled, "view": labeled.view(), "params": params})
    assert error is not None and _names(error, param), (error or "it ran")[-1500:]
    assert db_changes(before, db_snapshot()) == []


@pytest.mark.parametrize("case", list(CASES))
def test_sizes_past_the_bounds_are_refused_http(app_server, labeled, tiny_checkpoint, case):
    uri, params, param = _case(case, tiny_checkpoint)
    before = db_snapshot()
    status, text = http_execute(app_server, uri, labeled.name, params, generator=True)
    assert status >= 400 or '"variant": "error"' in text, text[-1500:]
    assert _names(text, param), text[-1500:]
    assert db_changes(before, db_snapshot()) == []


def test_the_server_can_raise_a_bound(labeled, tiny_checkpoint, monkeypatch):
    params = dict(backend="owlv2", checkpoint=tiny_checkpoint("owlv2"), classes=["person"], device="cpu",
                  label_field="raised", batch_size=300)
    assert "batch_size" in sdk_execute(P + "zero_shot_detect", {"dataset": labeled, "params": params})
    monkeypatch.setenv("STOPLIGHT_MAX_DETECT_BATCH_SIZE", "512")
    assert sdk_execute(P + "zero_shot_detect", {"dataset": labeled, "params": params}) is None
    assert labeled.has_field("raised")


def test_python_api_has_the_same_bounds(labeled, tiny_checkpoint):
    from stoplight.plugins.autolabel.pipeline import zero_shot_detect

    with pytest.raises(ValueError, match=r"'batch_size' must be an integer in \[1, 256\]"):
        zero_shot_detect(labeled, backend="owlv2", checkpoint=tiny_checkpoint("owlv2"), classes=["person"],
                         device="cpu", batch_size=10**6, progress=False)
    assert not labeled.has_field("autolabels_x")
