"""What the detection-backend tests share: a prompted tiny detector on the
CPU, the real photos as arrays, a forward counter, the logistic function.

Each test module keeps its own fixtures (their scopes and checkpoints
differ); the fixtures call these.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import imagekit
import numpy as np

from stoplight.plugins.autolabel.backends import get_backend
from stoplight.plugins.common.images import load_image


def sigmoid(x) -> np.ndarray:
    """The logistic function in float64, for exact expected scores."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def photo_arrays(n: int | None = None) -> list[np.ndarray]:
    """The first ``n`` real photos (all with ``None``) as RGB arrays."""
    return [load_image(str(p)) for p in imagekit.photo_paths()[:n]]


def prompted(backend: str, checkpoint: str, prompts: list[str], **options):
    """Backend ``backend`` on ``checkpoint`` on the CPU with ``prompts`` set;
    ``min_score=0`` unless ``options`` say otherwise, so that every box is
    kept and box counts are known exactly."""
    det = get_backend(backend)(checkpoint=checkpoint, device="cpu", **{"min_score": 0.0, **options})
    det.set_prompts(prompts)
    return det


@contextmanager
def counted_forwards(module) -> Iterator[list[int]]:
    """Counts the forward calls of ``module`` (a torch module) inside the
    block: the list it yields gets one entry per call."""
    calls: list[int] = []
    handle = module.register_forward_hook(lambda *a: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()


def owl_run_params(tiny_checkpoint, **extra) -> dict:
    """``zero_shot_detect`` parameters that run fast: the tiny OWLv2 on the
    CPU, two classes, every box kept; ``extra`` adds or replaces some."""
    return {**dict(backend="owlv2", checkpoint=tiny_checkpoint("owlv2"), classes=["person", "bus"],
                   confidence_threshold=0.0, device="cpu", batch_size=4), **extra}


def assert_score_vectors(preds, num_images: int, num_boxes: int, num_prompts: int) -> None:
    """One prediction per image, each with ``num_boxes`` finite boxes and a
    full score vector (a probability per prompt) per box."""
    from stoplight.plugins.autolabel.backends import Predictions

    assert len(preds) == num_images
    for p in preds:
        assert isinstance(p, Predictions) and p.has_score_vector
        assert p.boxes.shape == (num_boxes, 4)
        assert p.prompt_scores.shape == (num_boxes, num_prompts)
        assert np.isfinite(p.boxes).all()
        assert ((p.prompt_scores >= 0) & (p.prompt_scores <= 1)).all()


def both_prompt_orders(detector, image, prompts: list[str]) -> tuple:
    """``detector``'s prediction for ``image`` with ``prompts`` and with
    them reversed; the detector has ``prompts`` set again afterwards."""
    forward = detector([image])[0]
    detector.set_prompts(prompts[::-1])
    try:
        backward = detector([image])[0]
    finally:
        detector.set_prompts(prompts)
    return forward, backward
