"""OmDet-Turbo backend: task chunking, exact box conversion, the split forward.

The common contract (layout, loading, options, pipeline) is in
``test_backend_contract.py``. Random weights: no label quality here.
"""

from __future__ import annotations

from backendkit import photo_arrays, prompted, sigmoid
import numpy as np
import pytest

from stoplight.plugins.autolabel.backends import get_backend
from stoplight.plugins.autolabel.backends.omdet_turbo import (
    MAX_TEXT_TOKENS,
    OmDetBatch,
    chunk_task_prompts,
    decode_omdet_turbo,
    task_text,
)

PROMPTS = ["person", "bus", "a photo of a remote control"]
NUM_QUERIES = 30  # tiny checkpoint
#: 40 COCO classes: "Detect person, bicycle, ..." is ~60 tokens past CLIP's 77
MANY = """person bicycle car motorcycle airplane bus train truck boat traffic-light fire-hydrant
stop-sign parking-meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack
umbrella handbag tie suitcase frisbee skis snowboard sports-ball kite baseball-bat baseball-glove
skateboard surfboard tennis-racket bottle""".split()
MANY = [c.replace("-", " ") for c in MANY]


@pytest.fixture(scope="module")
def detector(tiny_checkpoint):
    return prompted("omdet-turbo", tiny_checkpoint("omdet-turbo"), PROMPTS)


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    return photo_arrays(3)


def test_chunk_task_prompts_by_token_count():
    words = lambda text: len(text.replace(",", " ,").split()) + 2  # noqa: E731 - BOS/EOS
    # "Detect a , b , c." -> 5 words + BOS/EOS... chunks stay under the limit
    assert chunk_task_prompts(["a", "b", "c"], words, 20) == [[0, 1, 2]]
    assert chunk_task_prompts(["a", "b", "c"], words, 6) == [[0, 1], [2]]
    assert chunk_task_prompts(["a b c", "d"], words, 6) == [[0], [1]]
    with pytest.raises(ValueError, match="'classes' or 'ontology'"):
        chunk_task_prompts(["a", "b c d e f"], words, 6)


def test_processor_truncates_many_classes_and_tasks_fit(detector):
    """The 77-token problem, and that every chunk's task is read whole."""
    tok = detector.processor.tokenizer
    full = tok(task_text(MANY))["input_ids"]
    assert len(full) > MAX_TEXT_TOKENS
    # what OmDetTurboProcessor feeds the model: the task cut at 77 tokens,
    # so the last classes are missing from it
    cut = detector.processor(images=np.zeros((8, 8, 3), np.uint8), text=MANY, return_tensors="pt")
    assert int(cut["tasks_attention_mask"].sum()) == MAX_TEXT_TOKENS
    assert MANY[-1] not in tok.decode(cut["tasks_input_ids"][0], skip_special_tokens=True)

    det = detector
    det.set_prompts(MANY)
    try:
        assert len(det.tasks) > 1
        assert np.concatenate([t.prompt_indices for t in det.tasks]).tolist() == list(range(len(MANY)))
        for t in det.tasks:
            text = task_text([MANY[i] for i in t.prompt_indices])
            ids = tok(text)["input_ids"]
            assert len(ids) <= MAX_TEXT_TOKENS
            assert int(t.task_mask.sum()) == len(ids)  # nothing cut
            assert t.class_features.shape[0] == len(t.prompt_indices)
    finally:
        det.set_prompts(PROMPTS)
    with pytest.raises(ValueError, match="'classes' or 'ontology'"):
        det.set_prompts(["word " * 100])
    assert det.prompts == PROMPTS  # a refused call keeps the previous prompts


def test_decode_boxes_exact():
    logits = np.array([[2.0, -1.0], [-30.0, -40.0], [0.0, 1.0]])
    boxes = np.array([[0.5, 0.25, 0.2, 0.1], [0.5, 0.5, 1, 1], [0.1, 0.9, 0.2, 0.2]])
    pred = decode_omdet_turbo(logits, boxes, 1280, 720, min_score=0.001)
    # stretched input: normalized * (width, height); query 1 below min_score
    np.testing.assert_allclose(pred.boxes, [[512, 144, 768, 216], [0, 576, 256, 720]], atol=1e-9)
    np.testing.assert_allclose(pred.prompt_scores, sigmoid([[2.0, -1.0], [0.0, 1.0]]), rtol=1e-12)
    assert pred.has_score_vector
    # padded canvas: the image fills 1/2 of the input's width, 2/3 of its height
    pred = decode_omdet_turbo(logits[:1], boxes[:1], 1280, 720, canvas_scale=(2.0, 1.5))
    np.testing.assert_allclose(pred.boxes, [[1024, 216, 1536, 324]], atol=1e-9)


def test_predict_decodes_constructed_decoder_outputs(detector, photos, monkeypatch):
    """predict() wires each image's size into the decoding, exactly."""
    import torch

    coords = torch.tensor([[0.5, 0.25, 0.2, 0.1], [0.25, 0.5, 0.5, 0.5]]).expand(3, 2, 4)
    classes = torch.tensor([[3.0, 0.0, -3.0], [-2.0, 1.0, 0.0]]).expand(3, 2, 3)
    monkeypatch.setattr(detector, "decode_task", lambda features, task, n: (coords[:n], classes[:n]))
    preds = detector.predict(detector.prepare(photos))
    for img, p in zip(photos, preds):
        h, w = img.shape[:2]
        np.testing.assert_allclose(
            p.boxes, [[0.4 * w, 0.2 * h, 0.6 * w, 0.3 * h], [0, 0.25 * h, 0.5 * w, 0.75 * h]], atol=1e-4
        )
        np.testing.assert_allclose(p.prompt_scores, sigmoid(classes[0].numpy()), rtol=1e-6)


def test_split_forward_equals_the_models_own(detector, photos):
    """Image pass once + decoder per task == OmDetTurboForObjectDetection.forward,
    and our boxes are transformers' post-processed boxes."""
    import torch

    det, proc = detector, detector.processor
    ours = det.predict(det.prepare(photos[:2]))
    for img, pred in zip(photos[:2], ours):
        h, w = img.shape[:2]
        inputs = proc(images=img.copy(), text=PROMPTS, return_tensors="pt")
        with torch.inference_mode():
            out = det.model(**{k: v for k, v in inputs.items() if k != "pixel_mask"})
        ref = decode_omdet_turbo(out.decoder_class_logits[0].numpy(), out.decoder_coord_logits[0].numpy(),
                                 w, h, min_score=0.0)
        np.testing.assert_allclose(pred.boxes, ref.boxes, rtol=1e-4, atol=1e-2)
        np.testing.assert_allclose(pred.prompt_scores, ref.prompt_scores, rtol=1e-4, atol=1e-5)
        # transformers' own post-processing (no threshold, no NMS) gives one
        # (box, class, score) per query and class: each is one of ours
        res = proc.post_process_grounded_object_detection(
            out, text_labels=PROMPTS, threshold=0.0, nms_threshold=1.0, target_sizes=[(h, w)],
            max_num_det=NUM_QUERIES * len(PROMPTS),
        )[0]
        assert len(res["scores"]) == NUM_QUERIES * len(PROMPTS)
        for box, label, score in zip(res["boxes"].numpy(), res["labels"].tolist(), res["scores"].numpy()):
            q = np.argmin(np.abs(pred.prompt_scores[:, label] - score))
            assert pred.prompt_scores[q, label] == pytest.approx(score, abs=1e-5)
            # transformers clips to the image; ours are clipped when written
            np.testing.assert_allclose(np.clip(pred.boxes[q], 0, [w, h, w, h]), box, atol=1e-2)


def test_processor_stretches_images(detector):
    """The box convention: no padding, every image resized to the same square."""
    white = np.full((100, 200, 3), 255, np.uint8)
    batch = detector.prepare([white, np.full((300, 40, 3), 255, np.uint8)])
    assert isinstance(batch, OmDetBatch) and batch.canvas_scales == [(1.0, 1.0), (1.0, 1.0)]
    px = batch.pixel_inputs["pixel_values"]
    assert tuple(px.shape[-2:]) == (128, 128) and "pixel_mask" not in batch.pixel_inputs
    assert float(px.std(dim=(2, 3)).max()) < 1e-5  # each channel all white: nothing padded


def test_many_prompts_one_image_pass_one_decoder_pass_per_task(detector, photos):
    det = detector
    det.set_prompts(MANY)
    calls = {"vision": 0, "decoder": 0}
    hooks = [
        det.model.vision_backbone.register_forward_hook(lambda *a: calls.__setitem__("vision", calls["vision"] + 1)),
        det.model.decoder.register_forward_hook(lambda *a: calls.__setitem__("decoder", calls["decoder"] + 1)),
    ]
    try:
        preds = det(photos[:2])
    finally:
        for h in hooks:
            h.remove()
        tasks = list(det.tasks)
        det.set_prompts(PROMPTS)
    assert calls == {"vision": 1, "decoder": len(tasks)}
    for p in preds:
        assert p.prompt_scores.shape == (NUM_QUERIES * len(tasks), len(MANY))
        assert not p.has_score_vector
        for k, t in enumerate(tasks):
            rows = p.prompt_scores[k * NUM_QUERIES : (k + 1) * NUM_QUERIES]
            others = np.setdiff1d(np.arange(len(MANY)), t.prompt_indices)
            assert (rows[:, others] == 0).all() and (rows[:, t.prompt_indices] > 0).all()


@pytest.mark.slow
def test_checkpoint_with_the_hubs_timm_swin(tmp_path, photos):
    """The hub checkpoint's layout: timm Swin-T, channels-last maps, layer norms."""
    from transformers import DetrImageProcessor, OmDetTurboConfig, OmDetTurboForObjectDetection, OmDetTurboProcessor

    from stoplight.plugins.autolabel.backends._hf import clip_tokenizer, save_checkpoint, seeded

    small = dict(text_projection_in_dim=64, text_projection_out_dim=64, class_embed_dim=64,
                 task_encoder_hidden_dim=64, vision_features_channels=[32, 32, 32], encoder_hidden_dim=32,
                 encoder_dim_feedforward=64, encoder_attention_heads=2, decoder_hidden_dim=32,
                 decoder_dim_feedforward=64, decoder_num_heads=2, decoder_num_layers=2, num_queries=30)
    config = OmDetTurboConfig(
        image_size=224,
        text_config=dict(model_type="clip_text_model", hidden_size=64, intermediate_size=64,
                         num_attention_heads=2, num_hidden_layers=1, projection_dim=64),
        **small,
    )
    assert config.backbone_config.model_type == "timm_backbone"  # the hub's default
    assert config.apply_layernorm_after_vision_backbone
    model = seeded(lambda: OmDetTurboForObjectDetection(config).eval())
    proc = OmDetTurboProcessor(image_processor=DetrImageProcessor(size={"height": 224, "width": 224}),
                               tokenizer=clip_tokenizer(MAX_TEXT_TOKENS))
    ckpt = save_checkpoint(model, proc, str(tmp_path / "omdet-timm"))
    det = get_backend("omdet-turbo")(checkpoint=ckpt, device="cpu", min_score=0.0)
    det.set_prompts(PROMPTS)
    preds = det(photos[:2])
    assert [p.boxes.shape for p in preds] == [(30, 4), (30, 4)]
    assert all(np.isfinite(p.prompt_scores).all() for p in preds)
