"""SAM 3 backend: exact decoding, transformers' own post-processing, batching.

The common contract (layout, loading, options, masks written by the
pipeline) is in ``test_backend_contract.py``. Random weights: no label
quality here.
"""

from __future__ import annotations

from backendkit import photo_arrays, prompted, sigmoid
import numpy as np
import pytest

from stoplight.plugins.autolabel.backends import get_backend
from stoplight.plugins.autolabel.backends.sam3 import decode_sam3
from stoplight.plugins.common.masks import box_pixel_bounds, crop_mask, resize_crop

PROMPTS = ["person", "bus", "a photo of a remote control"]
NUM_QUERIES = 20  # tiny checkpoint


@pytest.fixture(scope="module")
def detector(tiny_checkpoint):
    return prompted("sam3", tiny_checkpoint("sam3"), PROMPTS, pairs_per_pass=4)


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    return photo_arrays(3)


def test_decode_exact():
    logits = np.array([2.0, -9.0, 0.0])
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0, 0, 1, 1], [0.5, 0.5, 1.0, 1.0]])
    masks = np.stack([np.full((4, 4), 3.0), np.zeros((4, 4)), np.full((4, 4), -1.0)])
    pred = decode_sam3(logits, 1.0, boxes, masks, 1280, 720, prompt_index=1, num_prompts=3, min_score=0.001)
    keep = [0, 2]  # sigmoid(-9) * sigmoid(1) ~ 9e-5 < 0.001
    np.testing.assert_allclose(pred.boxes, [[128, 144, 640, 432], [640, 360, 1280, 720]], atol=1e-9)
    expected = sigmoid(logits[keep]) * sigmoid(1.0)
    np.testing.assert_allclose(pred.prompt_scores[:, 1], expected, rtol=1e-12)
    assert (pred.prompt_scores[:, [0, 2]] == 0).all() and not pred.has_score_vector
    assert pred.masks.dtype == np.float16
    np.testing.assert_allclose(pred.masks.astype(float), sigmoid(masks[keep]), atol=1e-3)
    one = decode_sam3(logits, 1.0, boxes, None, 10, 10, 0, 1)
    assert one.has_score_vector and one.masks is None  # one prompt: the vector is complete


def test_predict_decodes_constructed_outputs(detector, photos, monkeypatch):
    """predict() sends each pair's outputs to its image and prompt column."""
    import torch
    from types import SimpleNamespace

    def fake(vision, pairs):
        n = len(pairs)
        return SimpleNamespace(
            pred_logits=torch.tensor([[float(10 * i + p), -1.0] for i, p in pairs]),
            presence_logits=torch.zeros(n, 1),
            pred_boxes=torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.0, 0.5, 1.0, 1.0]]).expand(n, 2, 4),
            pred_masks=torch.zeros(n, 2, 8, 8),
        )

    monkeypatch.setattr(detector, "forward_pairs", fake)
    preds = detector.predict(detector.prepare(photos[:2]))
    for i, (img, p) in enumerate(zip(photos[:2], preds)):
        h, w = img.shape[:2]
        assert p.boxes.shape == (2 * len(PROMPTS), 4) and p.masks.shape == (6, 8, 8)
        for k in range(len(PROMPTS)):
            rows = p.prompt_scores[2 * k : 2 * k + 2]
            np.testing.assert_allclose(rows[:, k], sigmoid([10 * i + k, -1.0]) * 0.5, rtol=1e-6)
            assert (np.delete(rows, k, axis=1) == 0).all()
            np.testing.assert_allclose(p.boxes[2 * k], [0.1 * w, 0.2 * h, 0.5 * w, 0.6 * h], atol=1e-4)


def test_matches_transformers_processor_and_post_processing(detector, photos):
    """Vision once per image and pairs batched across images == one
    processor + Sam3Model forward per (image, prompt), post-processed by
    transformers (scores, boxes, masks resized to the image)."""
    import torch

    proc, model = detector.processor, detector.model
    preds = detector.predict(detector.prepare(photos[:2]))  # 6 pairs, 4 per pass
    compared = 0
    for img, pred in zip(photos[:2], preds):
        h, w = img.shape[:2]
        for k, prompt in enumerate(PROMPTS):
            inputs = proc(images=img.copy(), text=prompt, return_tensors="pt")
            with torch.inference_mode():
                out = model(pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                            attention_mask=inputs["attention_mask"])
            (ref,) = proc.post_process_instance_segmentation(out, threshold=0.0, target_sizes=[(h, w)])
            rows = slice(k * NUM_QUERIES, (k + 1) * NUM_QUERIES)
            np.testing.assert_allclose(pred.prompt_scores[rows, k], ref["scores"].numpy(), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(pred.boxes[rows], ref["boxes"].numpy(), rtol=1e-4, atol=1e-2)
            np.testing.assert_allclose(pred.masks[rows].astype(float), out.pred_masks[0].sigmoid().numpy(),
                                       atol=1e-3)
            # crop_mask on the model's masks == transformers' full-size masks
            # inside each box (up to float32 rounding at exactly 0.5: random
            # weights put many pixels there)
            soft = out.pred_masks[0].sigmoid().numpy()
            for q in range(NUM_QUERIES):
                x1, y1, x2, y2 = np.clip(ref["boxes"][q].numpy(), 0, [w, h, w, h])
                box = [x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h]
                bounds = box_pixel_bounds(box, w, h)
                a, b, c, d = bounds
                differ = crop_mask(soft[q], box, w, h) != ref["masks"][q, b:d, a:c].numpy().astype(bool)
                assert (np.abs(resize_crop(soft[q], bounds, w, h)[differ] - 0.5) < 1e-6).all()
                compared += 1
    assert compared == 2 * len(PROMPTS) * NUM_QUERIES


def test_pairs_per_pass_does_not_change_results(detector, tiny_checkpoint, photos):
    one = get_backend("sam3")(checkpoint=tiny_checkpoint("sam3"), device="cpu", min_score=0.0, pairs_per_pass=1)
    one.set_prompts(PROMPTS)
    calls = []
    hook = one.model.detr_decoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        a = one(photos[:2])
    finally:
        hook.remove()
    assert len(calls) == 2 * len(PROMPTS)  # one pass per (image, prompt)
    b = detector(photos[:2])
    for pa, pb in zip(a, b):
        np.testing.assert_allclose(pa.boxes, pb.boxes, atol=1e-3)
        np.testing.assert_allclose(pa.prompt_scores, pb.prompt_scores, atol=1e-6)
        np.testing.assert_allclose(pa.masks.astype(float), pb.masks.astype(float), atol=2e-3)


def test_options(tiny_checkpoint, photos):
    cls = get_backend("sam3")
    for bad in (0, 2.5, True, "4"):
        with pytest.raises(ValueError, match="'pairs_per_pass'"):
            cls(checkpoint=tiny_checkpoint("sam3"), device="cpu", pairs_per_pass=bad)
    with pytest.raises(ValueError, match="'masks'"):
        cls(checkpoint=tiny_checkpoint("sam3"), device="cpu", masks="no")
    det = cls(checkpoint=tiny_checkpoint("sam3"), device="cpu", masks=False, min_score=0.0)
    det.set_prompts(["bus"])
    (p,) = det(photos[:1])
    assert p.masks is None and p.has_score_vector and p.boxes.shape == (NUM_QUERIES, 4)


def test_loads_the_detector_of_a_video_checkpoint(tmp_path, tiny_checkpoint, photos):
    """``facebook/sam3`` is a sam3_video checkpoint: its detector is loaded."""
    import torch
    from transformers import AutoConfig, Sam3Processor, Sam3VideoConfig, Sam3VideoModel

    from stoplight.plugins.autolabel.backends._hf import save_checkpoint, seeded

    detector_config = AutoConfig.from_pretrained(tiny_checkpoint("sam3"))
    video = seeded(lambda: Sam3VideoModel(Sam3VideoConfig(detector_config=detector_config.to_dict())).eval())
    ckpt = save_checkpoint(video, Sam3Processor.from_pretrained(tiny_checkpoint("sam3")),
                           str(tmp_path / "sam3-video"))
    assert AutoConfig.from_pretrained(ckpt).model_type == "sam3_video"
    det = get_backend("sam3")(checkpoint=ckpt, device="cpu", min_score=0.0)
    expected = video.detector_model.state_dict()
    for key, value in det.model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    det.set_prompts(PROMPTS)
    (p,) = det(photos[:1])
    assert p.boxes.shape == (NUM_QUERIES * len(PROMPTS), 4)
