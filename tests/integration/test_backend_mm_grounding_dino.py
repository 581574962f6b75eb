"""MM-Grounding-DINO backend: Grounding DINO's decoding on its own model.

Caption building, token spans and chunking are shared with Grounding DINO
and tested in ``test_backend_grounding_dino.py``; the common contract is in
``test_backend_contract.py``. Here: the checkpoint types are kept apart, raw
outputs decode exactly through ``predict``, and the boxes are transformers'
own post-processed boxes. Random weights: no label quality here.
"""

from __future__ import annotations

from backendkit import counted_forwards, photo_arrays, prompted, sigmoid
import numpy as np
import pytest

from stoplight.plugins.autolabel.backends import get_backend

PROMPTS = ["person", "bus", "remote control"]
NUM_QUERIES = 30  # tiny checkpoint


@pytest.fixture(scope="module")
def detector(tiny_checkpoint):
    return prompted("mm-grounding-dino", tiny_checkpoint("mm-grounding-dino"), PROMPTS)


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    return photo_arrays(3)


def test_is_mm_grounding_dino_and_types_stay_apart(detector, tiny_checkpoint):
    from transformers import MMGroundingDinoForObjectDetection

    assert isinstance(detector.model, MMGroundingDinoForObjectDetection)
    assert detector.default_checkpoint.startswith("openmmlab-community/mm_grounding_dino")
    with pytest.raises(ValueError, match="'checkpoint'.*'grounding-dino' model"):
        get_backend("mm-grounding-dino")(checkpoint=tiny_checkpoint("grounding-dino"), device="cpu")
    with pytest.raises(ValueError, match="'checkpoint'.*'mm-grounding-dino' model"):
        get_backend("grounding-dino")(checkpoint=tiny_checkpoint("mm-grounding-dino"), device="cpu")


def test_predict_decodes_constructed_outputs(detector, photos, monkeypatch):
    """Token logits -> prompt scores and cxcywh -> original pixels, exactly."""
    import torch
    from types import SimpleNamespace

    (cap,) = detector._captions
    logits = torch.full((3, NUM_QUERIES, 256), -20.0)
    logits[:, 0, cap.spans[0]] = 3.0  # query 0: "person"
    logits[:, 1, cap.spans[2]] = torch.linspace(1.0, 2.0, len(cap.spans[2]))  # "remote control"
    boxes = torch.tensor([0.5, 0.25, 0.2, 0.1]).expand(3, NUM_QUERIES, 4)
    monkeypatch.setattr(detector, "_forward", lambda **kw: SimpleNamespace(logits=logits, pred_boxes=boxes))
    preds = detector.predict(detector.prepare(photos))
    for img, p in zip(photos, preds):
        h, w = img.shape[:2]
        np.testing.assert_allclose(p.boxes[0], [0.4 * w, 0.2 * h, 0.6 * w, 0.3 * h], atol=1e-4)
        np.testing.assert_allclose(p.prompt_scores[0], sigmoid([3.0, -20.0, -20.0]), rtol=1e-6)
        np.testing.assert_allclose(p.prompt_scores[1, 2], sigmoid(2.0), rtol=1e-6)  # max over its tokens


def test_boxes_are_transformers_post_processed_boxes(detector, photos):
    import torch

    proc = detector.processor
    for img in photos[:2]:
        # one image at a time, as the reference runs: in a batch, padding
        # to a common size changes the features and so the chosen queries
        (pred,) = detector([img])
        h, w = img.shape[:2]
        inputs = proc(images=img.copy(), text=". ".join(PROMPTS) + ".", return_tensors="pt")
        with torch.inference_mode():
            out = detector.model(**inputs)
        (ref,) = proc.post_process_grounded_object_detection(
            out, inputs["input_ids"], threshold=0.0, text_threshold=0.0, target_sizes=[(h, w)]
        )
        assert len(ref["boxes"]) == NUM_QUERIES
        # the same query boxes (transformers sorts them by score; random
        # weights repeat some boxes, so compare as sorted multisets)
        unused = list(ref["boxes"].numpy())
        for box in pred.boxes:
            dist = [np.abs(box - other).max() for other in unused]
            assert min(dist) < 1e-2
            unused.pop(int(np.argmin(dist)))
        # transformers' score is the max over ALL caption tokens (periods,
        # [CLS], [SEP] included); ours over each prompt's own tokens
        assert pred.prompt_scores.max() <= ref["scores"].numpy().max() + 1e-6


def test_long_prompt_lists_run_in_chunks(tiny_checkpoint, photos):
    det = get_backend("mm-grounding-dino")(checkpoint=tiny_checkpoint("mm-grounding-dino"), device="cpu")
    det.set_prompts([f"object number {i}" for i in range(100)])
    with counted_forwards(det.model) as calls:
        preds = det(photos[:1])
    assert len(det._captions) > 1 and len(calls) == len(det._captions)
    assert not preds[0].has_score_vector and preds[0].prompt_scores.shape[1] == 100
