"""Grounding DINO backend on a tiny random-weight checkpoint.

Random weights make scores meaningless: these tests check structure,
batching, the prompt -> token span mapping and exact box conversions.
"""

from __future__ import annotations

import os

from backendkit import assert_score_vectors, both_prompt_orders, counted_forwards, photo_arrays, prompted, sigmoid
import numpy as np
import pytest

from stoplight.plugins.autolabel.backends import get_backend
from stoplight.plugins.autolabel.backends.grounding_dino import (
    chunk_prompts,
    clean_prompt,
    decode_grounding_dino,
    join_prompts,
    token_spans,
)

PROMPTS = ["person", "bus", "Remote control", "hot dog", "St. Bernard"]
NUM_QUERIES = 30  # tiny checkpoints


@pytest.fixture(scope="session")
def gd_checkpoint(tmp_root) -> str:
    return get_backend("grounding-dino").build_random_checkpoint(
        str(tmp_root / "gd-tests" / "grounding-dino"), size="tiny"
    )


@pytest.fixture(scope="module")
def detector(gd_checkpoint):
    return prompted("grounding-dino", gd_checkpoint, PROMPTS)


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    return photo_arrays()


def test_caption_and_token_spans(detector):
    tok = detector.processor.tokenizer
    (cap,) = detector._captions
    ids = cap.inputs["input_ids"][0].tolist()
    assert tok.decode(ids) == "[CLS] person. bus. remote control. hot dog. st bernard. [SEP]"
    for prompt, span in zip(PROMPTS, cap.spans):
        # each span covers exactly the prompt's word pieces: no [CLS], '.', [SEP]
        assert tok.decode([ids[i] for i in span]) == clean_prompt(prompt)
        assert not {ids[i] for i in span} & {101, 102, 1012, 1029}
    assert [len(s) > 1 for s in cap.spans] == [False, False, True, True, True]


def test_token_spans_from_offsets():
    text, char_spans = join_prompts(["cat", "remote control"])
    assert text == "cat. remote control."
    assert char_spans == [(0, 3), (5, 19)]
    # [CLS] cat . remote con ##trol . [SEP]
    offsets = [(0, 0), (0, 3), (3, 4), (5, 11), (12, 15), (15, 19), (19, 20), (0, 0)]
    spans = token_spans(np.array(offsets), char_spans)
    assert [s.tolist() for s in spans] == [[1], [3, 4, 5]]


def test_decode_maps_token_logits_to_prompt_scores():
    # 3 queries x 256 tokens; caption: [CLS] cat . remote con ##trol . [SEP]
    logits = np.full((3, 256), -np.inf)
    logits[:, :8] = -20.0
    logits[0, 1] = 3.0  # "cat"
    logits[1, [3, 4, 5]] = [-1.0, 2.0, 0.5]  # "remote control"
    logits[2, [0, 2, 6, 7]] = 9.0  # special and period tokens must not count
    spans = [np.array([1]), np.array([3, 4, 5])]
    boxes = np.tile([0.5, 0.5, 0.2, 0.2], (3, 1))

    pred = decode_grounding_dino(logits, boxes, spans, 100, 100, min_score=0.0)
    expected = np.array(
        [
            [sigmoid(3.0), sigmoid(-20.0)],
            [sigmoid(-20.0), sigmoid(2.0)],
            [sigmoid(-20.0), sigmoid(-20.0)],
        ]
    )
    np.testing.assert_allclose(pred.prompt_scores, expected, rtol=1e-12)
    assert pred.has_score_vector

    mean = decode_grounding_dino(logits, boxes, spans, 100, 100, min_score=0.0, token_score="mean")
    expected_mean = sigmoid([-1.0, 2.0, 0.5]).mean()
    np.testing.assert_allclose(mean.prompt_scores[1, 1], expected_mean, rtol=1e-12)

    # the default floor drops the query that matches no prompt
    kept = decode_grounding_dino(logits, boxes, spans, 100, 100)
    assert len(kept.boxes) == 2


def test_decode_boxes_normalized_to_original_image():
    logits = np.zeros((1, 256))
    box = np.array([[0.5, 0.25, 0.2, 0.1]])
    pred = decode_grounding_dino(logits, box, [np.array([1])], 1280, 720)
    np.testing.assert_allclose(pred.boxes, [[512.0, 144.0, 768.0, 216.0]], atol=1e-6)


def test_clean_prompt():
    assert clean_prompt("  St. Bernard?  ") == "st bernard"
    with pytest.raises(ValueError, match="empty"):
        clean_prompt(" . ")


def test_predicts_real_photos_in_one_forward(detector, photos):
    with counted_forwards(detector.model) as calls:
        preds = detector.predict(detector.prepare(photos))
    assert len(calls) == 1
    assert_score_vectors(preds, len(photos), NUM_QUERIES, len(PROMPTS))


def test_score_columns_follow_prompt_order(detector, photos):
    forward, backward = both_prompt_orders(detector, photos[0], PROMPTS)
    # phrases attend only within themselves and positions restart at each
    # period, so reversing the prompts only permutes the score columns
    np.testing.assert_allclose(backward.prompt_scores, forward.prompt_scores[:, ::-1], atol=1e-4)


def test_chunk_prompts():
    # caption = [CLS] + sum(tokens + period) + [SEP]
    assert chunk_prompts([1, 1, 1], 8) == [[0, 1, 2]]
    assert chunk_prompts([1, 1, 1], 7) == [[0, 1], [2]]
    assert chunk_prompts([2, 3], 9) == [[0, 1]]
    with pytest.raises(ValueError, match="'classes' or 'ontology'"):
        chunk_prompts([1, 7], 9)


def test_long_prompt_lists_run_in_chunks(gd_checkpoint, photos):
    det = get_backend("grounding-dino")(checkpoint=gd_checkpoint, device="cpu", min_score=0.0)
    prompts = [f"object number {i}" for i in range(100)]  # ~ 6 tokens each
    det.set_prompts(prompts)
    assert len(det._captions) > 1
    assert all(c.inputs["input_ids"].shape[1] <= 256 for c in det._captions)
    assert np.concatenate([c.prompt_indices for c in det._captions]).tolist() == list(range(100))

    with counted_forwards(det.model) as calls:
        preds = det(photos[:2])
    assert len(calls) == len(det._captions)  # one forward per caption chunk
    for p in preds:
        assert p.prompt_scores.shape == (NUM_QUERIES * len(det._captions), 100)
        assert not p.has_score_vector  # other chunks' prompts are unscored
        # each box has scores only for the prompts of its own chunk
        for k, cap in enumerate(det._captions):
            rows = slice(k * NUM_QUERIES, (k + 1) * NUM_QUERIES)
            others = np.setdiff1d(np.arange(100), cap.prompt_indices)
            assert (p.prompt_scores[rows][:, others] == 0).all()

    with pytest.raises(ValueError, match="'classes' or 'ontology'"):
        det.set_prompts(["word " * 300])


def test_tiny_checkpoint_and_validation(gd_checkpoint):
    files = os.listdir(gd_checkpoint)
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    cls = get_backend("grounding-dino")
    det = cls(checkpoint=gd_checkpoint, device="cpu")
    tok = det.processor.tokenizer
    # Grounding DINO's hard-coded delimiter ids hold in the offline vocab
    assert tok.convert_tokens_to_ids(["[CLS]", "[SEP]", ".", "?"]) == [101, 102, 1012, 1029]
    ids = tok("a zebra. traffic light. wheelbarrow.")["input_ids"]
    assert tok.unk_token_id not in ids
    assert cls.default_checkpoint == "IDEA-Research/grounding-dino-tiny"
    with pytest.raises(ValueError, match="'token_score'"):
        cls(checkpoint=gd_checkpoint, device="cpu", token_score="median")
