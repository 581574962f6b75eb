"""segment_labels: box-prompted SAM / SAM 2 masks written onto chosen labels.

Tiny random SAM and SAM 2 checkpoints built from configs, saved and loaded
like hub ids; real photos. What is checked: the masks equal transformers'
own pre- and post-processing cropped to each box; only the chosen labels
get masks and only the three mask attributes change; resume, overwrite,
label ids, failures, the box guard, the run record, the operator, safe
loading.
"""

from __future__ import annotations

import os
import shutil

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
import torch
from fiftyone import ViewField as F

from maskkit import segmenter_checkpoint, set_mixed_labels
from stoplight.plugins.autolabel import sam as S
from stoplight.plugins.common.images import load_image
from stoplight.plugins.autolabel.segment import (
    MASK_ATTRS, mask_and_stability, segment_labels, select_targets, write_masks,
)
from stoplight.plugins.common.masks import box_pixel_bounds, crop_mask

URI = "@stoplight/autolabel/segment_labels"


@pytest.fixture(scope="module", params=["sam", "sam2"])
def model(request, tmp_root):
    return request.param, segmenter_checkpoint(tmp_root, request.param)


@pytest.fixture()
def labeled(dataset):
    """Every photo with 5 labels of mixed queues and reviews."""
    set_mixed_labels(dataset, hardness=lambda j: 0.1 * j)
    return dataset


def _raw_labels(dataset, field="autolabels"):
    out = {}
    for doc in dataset._sample_collection.find({}, {field: 1}):
        for lab in (doc.get(field) or {}).get("detections") or []:
            out[str(lab["_id"])] = lab
    return out


def _chosen(lab) -> bool:
    rev, q = lab.get("review"), lab.get("queue")
    return rev == "accepted" or (q == "green" and rev != "rejected")


# ----------------------------------------------------------- exactness


def _transformers_masks(name, ckpt, img, boxes):
    """Masks and IoUs by transformers' own processor and post-processing."""
    import transformers

    proc_cls = {"sam": "SamProcessor", "sam2": "Sam2Processor"}[name]
    proc = getattr(transformers, proc_cls).from_pretrained(ckpt)
    seg = S.load_segmenter(name, ckpt, device="cpu", cache=False)
    enc = proc(images=[img], input_boxes=[boxes.tolist()], return_tensors="pt")
    with torch.no_grad():
        out = seg.model(pixel_values=enc["pixel_values"], input_boxes=enc["input_boxes"], multimask_output=False)
    if name == "sam":
        full = proc.post_process_masks(out.pred_masks, enc["original_sizes"], enc["reshaped_input_sizes"])[0]
    else:
        full = proc.post_process_masks(out.pred_masks, enc["original_sizes"])[0]
    return enc, full[:, 0].numpy(), out.iou_scores[0, :, 0].clamp(0, 1).numpy()


def test_masks_equal_transformers_processing_cropped_to_each_box(model, image_dir):
    name, ckpt = model
    img = load_image(str(sorted(image_dir.glob("bus.jpg"))[0]))
    h, w = img.shape[:2]
    rel = np.array([[0.1, 0.2, 0.3, 0.25], [0.5, 0.05, 0.45, 0.6], [0.0, 0.0, 1.0, 1.0]])
    xyxy = np.c_[rel[:, 0] * w, rel[:, 1] * h, (rel[:, 0] + rel[:, 2]) * w, (rel[:, 1] + rel[:, 3]) * h]
    enc, full, iou = _transformers_masks(name, ckpt, img, xyxy)

    seg = S.load_segmenter(name, ckpt, device="cpu", boxes_per_pass=2)  # two decoder passes
    batch = seg.prepare([img], [xyxy])
    np.testing.assert_allclose(batch.boxes[0], enc["input_boxes"][0].numpy(), rtol=1e-6)
    (res,) = seg.predict(batch)
    np.testing.assert_allclose(res.iou, iou, atol=1e-5)
    for i, box in enumerate(rel):
        x0, y0, x1, y1 = box_pixel_bounds(box, w, h)
        mask, stability = mask_and_stability(res.logits[i], box, w, h)
        expected = full[i, y0:y1, x0:x1]
        # float32 (device) vs float64 (numpy) bilinear: a pixel on the edge may differ
        assert mask.shape == expected.shape
        assert (mask != expected).mean() < 1e-3
        assert np.array_equal(mask, crop_mask(res.logits[i], box, w, h, threshold=0.0))
        assert 0.0 <= stability <= 1.0


def test_batched_prediction_equals_one_image_at_a_time(model, image_dir):
    name, ckpt = model
    seg = S.load_segmenter(name, ckpt, device="cpu", boxes_per_pass=3)
    imgs = [load_image(str(p)) for p in sorted(image_dir.glob("*.jpg"))[:3]]
    boxes = [np.array([[5, 5, 60, 40]] * (k + 1), dtype=float) + 7 * k for k in range(3)]
    together = seg(imgs, boxes)
    for img, b, res in zip(imgs, boxes, together):
        (alone,) = seg([img], [b])
        np.testing.assert_allclose(res.iou, alone.iou, atol=1e-5)
        np.testing.assert_allclose(res.logits, alone.logits, atol=1e-4)


def test_fp16_masks_agree_with_fp32(model, image_dir):
    """Half precision (the CUDA default) runs end to end; checked on CPU."""
    name, ckpt = model
    img = load_image(str(sorted(image_dir.glob("bus.jpg"))[0]))
    boxes = [np.array([[10, 20, 200, 300], [100, 100, 400, 500]], dtype=float)]
    full = S.load_segmenter(name, ckpt, device="cpu", fp16=False, cache=False)
    half = S.load_segmenter(name, ckpt, device="cpu", fp16=True, cache=False)
    assert half.dtype == torch.float16 and full.dtype == torch.float32
    (a,), (b,) = full([img], boxes), half([img], boxes)
    np.testing.assert_allclose(a.iou, b.iou, atol=0.01)
    # random tiny weights give logits near 0 (fp16's subnormal range), so
    # only shapes and finiteness are compared, not values
    assert b.logits.dtype == np.float32 and b.logits.shape == a.logits.shape and np.isfinite(b.logits).all()


def test_stability_score_formula():
    logits = np.array([[3.0, 0.5, -0.5], [-3.0, 2.0, 0.2]])
    mask, stability = mask_and_stability(logits, [0, 0, 1, 1], 3, 2)
    np.testing.assert_array_equal(mask, logits > 0)
    assert stability == pytest.approx(2 / 5)  # >1: 3.0, 2.0; >-1: all but -3.0
    empty, s0 = mask_and_stability(np.full((4, 4), -5.0), [0.25, 0.25, 0.5, 0.5], 8, 8)
    assert not empty.any() and s0 == 0.0


# ----------------------------------------------------------- the run


def test_segments_exactly_the_chosen_labels_and_touches_nothing_else(labeled, model):
    name, ckpt = model
    before = _raw_labels(labeled)
    summary = segment_labels(labeled, "autolabels", model=name, checkpoint=ckpt, device="cpu", batch_size=2)
    after = _raw_labels(labeled)
    chosen = {i for i, lab in before.items() if _chosen(lab)}
    assert chosen and len(chosen) < len(before)
    assert summary["num_candidates"] == summary["num_segmented"] == len(chosen)
    assert summary["num_skipped"] == summary["num_failed_samples"] == 0 and summary["status"] == "completed"
    for lid, lab in after.items():
        if lid in chosen:
            assert set(lab) - set(before[lid]) == {"mask", *MASK_ATTRS}
            assert 0.0 <= lab["mask_iou"] <= 1.0 and 0.0 <= lab["mask_stability"] <= 1.0
        # box, class, scores, queue and review stay byte for byte
        assert {k: v for k, v in lab.items() if k not in ("mask", *MASK_ATTRS)} == before[lid]
    # FiftyOne reads the masks back as the box's pixels
    labeled.reload()
    for sample in labeled.select_fields("autolabels"):
        h, w = load_image(sample.filepath).shape[:2]  # as displayed (EXIF applied)
        for d in sample.autolabels.detections:
            if d.id in chosen:
                x0, y0, x1, y1 = box_pixel_bounds(d.bounding_box, w, h)
                assert d.mask.dtype == bool and d.mask.shape == (y1 - y0, x1 - x0)
            else:
                assert d.mask is None
    info = labeled.get_run_info(summary["run_key"])
    assert info.config.stoplight_method == "segment_labels" and info.config.status == "completed"
    assert info.config.model == name and info.config.num_segmented == len(chosen)
    assert labeled.has_field("autolabels.detections.mask_iou")


def test_resume_skips_masked_labels_and_overwrite_recomputes(labeled, model):
    name, ckpt = model
    first = segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu", include="accepted")
    again = segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu", include="accepted")
    assert first["num_segmented"] > 0
    assert again["num_segmented"] == 0 and again["num_skipped"] == first["num_segmented"]
    wider = segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu")  # + green
    assert wider["num_skipped"] == first["num_segmented"] and wider["num_segmented"] > 0
    redo = segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu", overwrite=True)
    assert redo["num_skipped"] == 0
    assert redo["num_segmented"] == first["num_segmented"] + wider["num_segmented"]


def test_label_ids_view_filters_and_patches(labeled, model):
    name, ckpt = model
    ids = labeled.values("autolabels.detections.id", unwind=True)
    rejected = labeled.filter_labels("autolabels", F("review") == "rejected").values(
        "autolabels.detections.id", unwind=True)
    pick = [ids[0], rejected[0]]  # explicit ids: even a rejected label may get a mask
    s = segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu", label_ids=pick)
    assert s["num_segmented"] == 2
    masked = set(labeled.filter_labels("autolabels", F("mask").exists()).values("autolabels.detections.id", unwind=True))
    assert masked == set(pick)
    # a view's label filter narrows the choice; a patches view segments its labels
    view = labeled.filter_labels("autolabels", F("label") == "person")
    targets, _ = select_targets(view, "autolabels", "all")
    assert targets and all(lid in set(view.values("autolabels.detections.id", unwind=True))
                           for t in targets for lid in t.label_ids)
    patches = labeled.to_patches("autolabels").match(F("autolabels.label") == "car").limit(3)
    p = segment_labels(patches, model=name, checkpoint=ckpt, device="cpu", include="all")
    assert p["num_candidates"] == 3
    with pytest.raises(ValueError, match="label id"):
        segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu", label_ids=["0" * 24])


def test_broken_image_is_recorded_and_the_run_goes_on(labeled, model, tmp_path):
    name, ckpt = model
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    s = fo.Sample(filepath=str(broken))
    s["autolabels"] = fo.Detections(detections=[fo.Detection(label="car", bounding_box=[0.1, 0.1, 0.2, 0.2],
                                                              review="accepted")])
    labeled.add_sample(s)
    summary = segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu", batch_size=2)
    assert summary["num_failed_samples"] == 1 and summary["num_failed_labels"] == 1
    assert summary["failures"][0]["sample_id"] == s.id and "broken.jpg" in summary["failures"][0]["error"]
    assert summary["num_segmented"] > 0 and summary["status"] == "completed"


def test_a_box_edited_meanwhile_keeps_its_label_untouched(labeled):
    sample = labeled.first()
    det = sample.autolabels.detections[0]
    stale = list(det.bounding_box)
    det.bounding_box = [0.3, 0.3, 0.1, 0.1]  # a person corrected it
    sample.save()
    other = sample.autolabels.detections[1]
    rows = [(sample.id, det.id, stale, np.ones((3, 3), bool), 0.9, 0.8),
            (sample.id, other.id, list(other.bounding_box), np.ones((2, 2), bool), 0.7, 0.6)]
    assert write_masks(labeled, "autolabels", rows) == 1
    labeled.reload()
    after = labeled.first().autolabels.detections
    assert after[0].mask is None and after[0].bounding_box == [0.3, 0.3, 0.1, 0.1]
    assert after[1].mask.shape == (2, 2) and after[1].mask_iou == 0.7


def test_bad_parameters(labeled, model, tmp_path):
    name, ckpt = model
    with pytest.raises(ValueError, match="'include'"):
        segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu", include="green")
    with pytest.raises(ValueError, match="'label_field'"):
        segment_labels(labeled, "nope", model=name, checkpoint=ckpt, device="cpu")
    with pytest.raises(ValueError, match="'model'"):
        segment_labels(labeled, model="sam9", device="cpu")
    other = "sam2" if name == "sam" else "sam"
    with pytest.raises(ValueError, match=f"'checkpoint'.*model '{other}' needs"):
        segment_labels(labeled, model=other, checkpoint=ckpt, device="cpu")
    with pytest.raises(ValueError, match="'batch_size'"):
        segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu", batch_size=0)
    assert not any(labeled.get_run_info(k).config.stoplight_method == "segment_labels"
                   for k in labeled.list_runs())


def test_operator_through_the_sdk(labeled, tmp_root):
    ckpt = segmenter_checkpoint(tmp_root, "sam2")
    ids = labeled.values("autolabels.detections.id", unwind=True)[:3]
    sel = [{"label_id": i, "sample_id": None, "field": "autolabels", "frame_number": None} for i in ids]
    result = foo.execute_operator(
        URI, ctx={"dataset": labeled, "view": labeled.view(), "selected_labels": sel,
                  "params": {"target": "SELECTED_LABELS", "label_field": "autolabels",
                             "model": "sam2", "checkpoint": ckpt, "device": "cpu"}},
    )
    assert result.error is None, result.error
    masked = set(labeled.filter_labels("autolabels", F("mask").exists()).values("autolabels.detections.id", unwind=True))
    assert masked == set(ids)
    # default target: the view, accepted + green
    result = foo.execute_operator(URI, ctx={"dataset": labeled, "view": labeled.view(),
                                            "params": {"checkpoint": ckpt, "device": "cpu"}})
    assert result.error is None, result.error
    chosen = {i for i, lab in _raw_labels(labeled).items() if _chosen(lab)}
    masked = set(labeled.filter_labels("autolabels", F("mask").exists()).values("autolabels.detections.id", unwind=True))
    assert masked == chosen | set(ids)


def test_finalize_copies_masks_with_the_kept_labels(labeled, model):
    from stoplight.plugins.review.finalize import finalize_labels

    name, ckpt = model
    segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu", include="accepted")
    source = _raw_labels(labeled)
    summary = finalize_labels(labeled, "autolabels", include_green=True)
    finals = [lab for labs in labeled.values("autolabels_final.detections") for lab in labs or []]
    assert len(finals) == summary["num_final_labels"] > 0
    with_mask = [f for f in finals if source[f.source_id].get("review") == "accepted"]
    green_only = [f for f in finals if source[f.source_id].get("review") != "accepted"]
    assert with_mask and green_only  # control: green labels were not segmented
    for f in with_mask:
        src = labeled.select_labels(ids=[f.source_id], fields="autolabels").first().autolabels.detections[0]
        assert np.array_equal(f.mask, src.mask) and f.mask_iou == src.mask_iou
        assert f.mask_stability == src.mask_stability
    assert all(f.mask is None and not f.has_field("mask_iou") for f in green_only)
    assert labeled.get_field("autolabels_final.detections.mask_iou") is not None


def test_mask_scores_are_triage_signals(labeled, model):
    from stoplight.plugins.triage.workflow import calibrate_triage

    name, ckpt = model
    signals = ["confidence", "mask_iou", "mask_stability"]
    with pytest.raises(ValueError, match="mask_iou"):  # control: not there before a run
        calibrate_triage(labeled, "autolabels", gt_field=None, use_reviews=True, signals=signals)
    segment_labels(labeled, model=name, checkpoint=ckpt, device="cpu", include="all")
    summary = calibrate_triage(labeled, "autolabels", gt_field=None, use_reviews=True, signals=signals)
    assert {"mask_iou", "mask_stability"} <= set(summary["signals"])


# ----------------------------------------------------------- safe loading


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickled_weights_that_run_code_are_refused(model, tmp_path):
    name, ckpt = model
    marker = tmp_path / "code-ran"
    torch.save({"x": _Payload(marker)}, tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert marker.exists()  # control: the payload runs when unpickled for real
    os.rmdir(marker)
    evil = tmp_path / "evil"
    shutil.copytree(ckpt, evil)
    (evil / "model.safetensors").unlink()
    torch.save({"weight": _Payload(marker)}, evil / "pytorch_model.bin")
    with pytest.raises(ValueError, match="'checkpoint'.*pickle.*refused.*nothing was run"):
        S.load_segmenter(name, str(evil), device="cpu", cache=False)
    assert not marker.exists(), "the checkpoint's code ran"


def test_missing_checkpoint_folder_names_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="'checkpoint'"):
        S.load_segmenter("sam2", str(tmp_path / "nothing-here"), device="cpu", cache=False)
