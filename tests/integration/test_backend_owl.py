"""OWL-ViT and OWLv2 backends on tiny random-weight checkpoints.

Random weights make scores meaningless: these tests check structure,
batching, prompt order and exact box conversions, never label quality. The
checks every backend shares (layout, min_score, options, the pipeline end to
end) are in ``test_backend_contract.py``.
"""

from __future__ import annotations

import os

from backendkit import assert_score_vectors, both_prompt_orders, counted_forwards, photo_arrays, prompted
import numpy as np
import pytest

from stoplight.plugins.autolabel.backends import get_backend
from stoplight.plugins.autolabel.backends._hf import resolve_checkpoint
from stoplight.plugins.autolabel.backends.owl import decode_owl

PROMPTS = ["person", "bus", "a photo of a remote control"]
NUM_BOXES = (256 // 32) ** 2  # tiny checkpoints: one box per 32-pixel patch


@pytest.fixture(scope="session")
def owl_checkpoints(tmp_root) -> dict[str, str]:
    root = tmp_root / "owl-tests"
    return {
        name: get_backend(name).build_random_checkpoint(str(root / name), size="tiny")
        for name in ("owlvit", "owlv2")
    }


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    return photo_arrays()


@pytest.fixture(scope="module", params=["owlvit", "owlv2"])
def detector(request, owl_checkpoints):
    # min_score=0 keeps every box, so the box count is known exactly
    return prompted(request.param, owl_checkpoints[request.param], PROMPTS)


def test_predicts_real_photos_in_one_forward(detector, photos):
    with counted_forwards(detector.model) as calls:
        preds = detector.predict(detector.prepare(photos))
    assert len(calls) == 1
    assert_score_vectors(preds, len(photos), NUM_BOXES, len(PROMPTS))
    for p in preds:
        assert (p.boxes[:, 2:] >= p.boxes[:, :2]).all()


def test_batch_equals_images_alone(detector, photos):
    batch = detector(photos[:2])
    for img, pb in zip(photos[:2], batch):
        alone = detector([img])[0]
        np.testing.assert_allclose(pb.boxes, alone.boxes, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(pb.prompt_scores, alone.prompt_scores, rtol=1e-4, atol=1e-5)


def test_score_columns_follow_prompt_order(detector, photos):
    forward, backward = both_prompt_orders(detector, photos[0], PROMPTS)
    # OWL scores each prompt independently: reversing prompts reverses columns
    np.testing.assert_allclose(backward.prompt_scores, forward.prompt_scores[:, ::-1], atol=1e-5)
    np.testing.assert_allclose(backward.boxes, forward.boxes, atol=1e-3)


def test_decode_owlv2_scales_by_padded_square():
    # 1280x720 is padded to 1280x1280 (bottom) before resizing
    pred = decode_owl(
        np.array([[0.0, 2.0]]), np.array([[0.5, 0.25, 0.2, 0.1]]), 1280, 720, square_pad=True
    )
    np.testing.assert_allclose(pred.boxes, [[512.0, 256.0, 768.0, 384.0]], atol=1e-6)
    np.testing.assert_allclose(pred.prompt_scores, [[0.5, 1 / (1 + np.exp(-2.0))]], atol=1e-12)
    # portrait: padded on the right, side = height
    box = np.array([[0.5, 0.5, 0.5, 0.5]])
    pred = decode_owl(np.zeros((1, 1)), box, 600, 1000, square_pad=True)
    np.testing.assert_allclose(pred.boxes, [[250.0, 250.0, 750.0, 750.0]], atol=1e-6)


def test_decode_owlvit_scales_by_width_and_height():
    box = np.array([[0.5, 0.25, 0.2, 0.1]])
    pred = decode_owl(np.zeros((1, 2)), box, 1280, 720, square_pad=False)
    np.testing.assert_allclose(pred.boxes, [[512.0, 144.0, 768.0, 216.0]], atol=1e-6)


def test_decode_handles_masked_logits_and_min_score():
    logits = np.array([[-np.inf, np.finfo(np.float32).min], [-10.0, 0.0], [-8.0, -7.0]])
    boxes = np.tile([0.5, 0.5, 0.1, 0.1], (3, 1))
    pred = decode_owl(logits, boxes, 100, 100, square_pad=False, min_score=0.001)
    # row 0 scores exactly 0, row 2 peaks at sigmoid(-7) ~ 0.0009 < 0.001
    assert len(pred.boxes) == 1
    np.testing.assert_allclose(pred.prompt_scores, [[1 / (1 + np.exp(10.0)), 0.5]])
    empty = decode_owl(logits[:1], boxes[:1], 100, 100, square_pad=True)
    assert empty.boxes.shape == (0, 4) and empty.prompt_scores.shape == (0, 2)


def test_processors_follow_the_box_conventions(owl_checkpoints):
    """The installed processors pad (OWLv2) or stretch (OWL-ViT) as decoded."""
    white = np.full((100, 200, 3), 255, np.uint8)  # landscape: h=100, w=200
    v2 = get_backend("owlv2")(checkpoint=owl_checkpoints["owlv2"], device="cpu")
    assert v2.square_pad
    px = v2.prepare([white]).pixel_inputs["pixel_values"][0, 0].numpy()
    side = px.shape[0]
    top, bottom = px[: int(0.45 * side)], px[int(0.55 * side) :]
    # image (white) in the top half, padding (one constant: black in
    # transformers 5, gray in 4) in the bottom half
    np.testing.assert_allclose(top, px.max(), atol=1e-4)
    assert np.ptp(bottom) < 1e-4 and bottom.max() < px.max() - 1.0

    vit = get_backend("owlvit")(checkpoint=owl_checkpoints["owlvit"], device="cpu")
    assert not vit.square_pad
    px = vit.prepare([white]).pixel_inputs["pixel_values"][0, 0].numpy()
    assert (px > 1.0).all()  # stretched, no padding anywhere


def test_tiny_checkpoint_layout(owl_checkpoints):
    for name, path in owl_checkpoints.items():
        files = os.listdir(path)
        assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
        det = get_backend(name)(checkpoint=path, device="cpu")
        assert det.checkpoint == path
        # the real CLIP BPE ids (openai/clip-vit-base-patch32's tokenizer)
        ids = det.processor.tokenizer("a photo of a cat")["input_ids"]
        assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_checkpoint_and_option_validation(owl_checkpoints, tmp_path):
    cls = get_backend("owlv2")
    with pytest.raises(ValueError, match="'checkpoint'.*does not exist"):
        cls(checkpoint=str(tmp_path / "missing"), device="cpu")
    with pytest.raises(ValueError, match="'checkpoint'.*does not exist"):
        cls(checkpoint="./models/owl", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="'checkpoint'.*config.json"):
        cls(checkpoint=str(tmp_path / "empty"), device="cpu")
    with pytest.raises(ValueError, match="'checkpoint'.*'owlvit' model"):
        cls(checkpoint=owl_checkpoints["owlvit"], device="cpu")
    # hub ids pass validation untouched (nothing is downloaded here)
    assert resolve_checkpoint("google/owlv2-base-patch16-ensemble") == (
        "google/owlv2-base-patch16-ensemble",
        False,
    )
    assert cls.default_checkpoint == "google/owlv2-base-patch16-ensemble"
    assert get_backend("owlvit").default_checkpoint == "google/owlvit-base-patch32"
