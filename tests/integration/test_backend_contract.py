"""The backend contract, checked once for every registered backend.

Every backend in ``plugins/autolabel/backends`` (found by the registry, so a
new module is covered without touching this file) must load a tiny random
checkpoint through the same path users take with hub ids, turn a batch of
real photos into one :class:`Predictions` per image in the documented
layout, keep ``prepare`` free of the model, validate its options and
checkpoint, and label a FiftyOne dataset end to end. What is specific to a
model (exact box conversions, prompt handling) stays in its own
``test_backend_<name>.py``.

Random weights make scores meaningless: nothing here judges label quality.
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import imagekit
import numpy as np
import pytest

from stoplight.plugins.autolabel import backends as backends_pkg
from stoplight.plugins.autolabel.backends import (
    Predictions,
    ZeroShotDetector,
    available_backends,
    get_backend,
)
from stoplight.plugins.common.images import load_image
from stoplight.plugins.autolabel.pipeline import zero_shot_detect
from stoplight.plugins.common.masks import box_pixel_bounds

BACKENDS = available_backends()
PROMPTS = ["person", "bus", "a photo of a remote control"]
#: libraries a backend module may import only inside functions, so that
#: listing backends (every App registry build) stays cheap
HEAVY = {"torch", "torchvision", "transformers", "ultralytics", "open_clip", "timm", "cv2", "PIL",
         "safetensors", "yaml", "fiftyone"}


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    return [load_image(str(p)) for p in imagekit.photo_paths()[:3]]


@pytest.fixture(scope="module")
def detector(tiny_checkpoint):
    """``detector(name)``: the backend on its tiny checkpoint, ``min_score=0``, cached."""
    loaded: dict[str, ZeroShotDetector] = {}

    def get(name: str) -> ZeroShotDetector:
        if name not in loaded:
            loaded[name] = get_backend(name)(checkpoint=tiny_checkpoint(name), device="cpu", min_score=0.0)
        det = loaded[name]
        det.set_prompts(PROMPTS)
        return det

    return get


def test_every_backend_module_registers_a_backend():
    modules = {m.name for m in pkgutil.iter_modules(backends_pkg.__path__)}
    owners = {get_backend(n).__module__.rsplit(".", 1)[-1] for n in BACKENDS}
    # base and private helper modules register nothing; every other one does
    assert modules - owners == {m for m in modules if m == "base" or m.startswith("_")}
    assert {"owlvit", "owlv2", "grounding-dino", "yolo-world", "yoloe", "mm-grounding-dino",
            "omdet-turbo", "sam3"} <= set(BACKENDS)


@pytest.mark.parametrize("name", BACKENDS)
def test_class_contract(name, tmp_path):
    cls = get_backend(name)
    assert issubclass(cls, ZeroShotDetector) and cls.name == name
    assert isinstance(cls.default_checkpoint, str) and cls.default_checkpoint
    assert "min_score" in cls.default_options
    assert isinstance(cls.produces_masks, bool) and isinstance(cls.exposes_score_vector, bool)
    assert cls.__doc__ and "option" in cls.__doc__.lower()  # documents its options
    with pytest.raises(ValueError, match="size"):
        cls.build_random_checkpoint(str(tmp_path / "never-written"), size="huge")


@pytest.mark.parametrize(
    "module", sorted(m.name for m in pkgutil.iter_modules(backends_pkg.__path__))
)
def test_backend_modules_import_heavy_libraries_lazily(module):
    tree = ast.parse((Path(backends_pkg.__file__).parent / f"{module}.py").read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            top.add(node.module.split(".")[0])
    assert not top & HEAVY


@pytest.mark.parametrize("name", BACKENDS)
def test_loads_a_tiny_checkpoint_like_a_user(name, tiny_checkpoint):
    import torch

    det = get_backend(name)(checkpoint=tiny_checkpoint(name), device="cpu")
    assert det.device == "cpu" and det.fp16 is False  # fp16 only on CUDA by default
    assert not det.model.training
    assert all(p.dtype == torch.float32 for p in det.model.parameters())
    assert det.options["min_score"] == get_backend(name).default_options["min_score"]


@pytest.mark.parametrize("name", BACKENDS)
def test_predictions_layout(name, detector, photos):
    det = detector(name)
    cls = type(det)
    assert det.prompts == PROMPTS
    preds = det.predict(det.prepare(photos))
    assert len(preds) == len(photos)
    assert sum(len(p.boxes) for p in preds) > 0
    for img, p in zip(photos, preds):
        assert isinstance(p, Predictions)
        n = len(p.boxes)
        assert p.boxes.shape == (n, 4) and p.prompt_scores.shape == (n, len(PROMPTS))
        assert np.isfinite(p.boxes).all() and np.isfinite(p.prompt_scores).all()
        assert ((p.prompt_scores >= 0) & (p.prompt_scores <= 1)).all()
        assert (p.boxes[:, 2:] >= p.boxes[:, :2]).all()
        # original-image pixels: random boxes may lie in a model's padding
        # (OWLv2 pads to a square), never far beyond the image's long side
        side = max(img.shape[:2])
        centers = (p.boxes[:, :2] + p.boxes[:, 2:]) / 2
        assert ((centers >= -0.5 * side) & (centers <= 1.5 * side)).all()
        if not cls.exposes_score_vector:
            assert not p.has_score_vector  # several prompts: one column per box
        if cls.produces_masks:
            assert p.masks is not None and p.masks.ndim == 3 and len(p.masks) == n
            m = p.masks.astype(np.float64)
            assert ((m >= 0) & (m <= 1)).all()
        else:
            assert p.masks is None


@pytest.mark.parametrize("name", BACKENDS)
def test_reprompting_sets_the_score_columns(name, detector, photos):
    det = detector(name)
    det.set_prompts(["bus"])
    (one,) = det([photos[0]])
    assert det.prompts == ["bus"] and one.prompt_scores.shape[1] == 1
    det.set_prompts(PROMPTS + ["dog", "tie"])
    (five,) = det([photos[0]])
    assert five.prompt_scores.shape[1] == 5


@pytest.mark.parametrize("name", BACKENDS)
def test_prepare_does_not_touch_the_model(name, detector, photos):
    """``prepare`` runs in loader threads while the model runs another batch."""

    class NoModel:
        def __getattr__(self, attr):
            raise AssertionError(f"prepare() used model.{attr}")

    det = detector(name)
    model, det.model = det.model, NoModel()
    try:
        batch = det.prepare(photos[:2])
    finally:
        det.model = model
    assert len(det.predict(batch)) == 2


@pytest.mark.parametrize("name", BACKENDS)
def test_needs_prompts_before_predicting(name, tiny_checkpoint, photos):
    det = get_backend(name)(checkpoint=tiny_checkpoint(name), device="cpu")
    with pytest.raises(RuntimeError, match="set_prompts"):
        det.predict(det.prepare(photos[:1]))


@pytest.mark.parametrize("name", BACKENDS)
def test_min_score_drops_low_boxes(name, tiny_checkpoint, detector, photos):
    everything = detector(name)([photos[0]])[0].prompt_scores.max(axis=1)
    cut = float(np.median(everything)) if len(everything) else 0.5
    det = get_backend(name)(checkpoint=tiny_checkpoint(name), device="cpu", min_score=cut)
    det.set_prompts(PROMPTS)
    (p,) = det([photos[0]])
    assert (p.prompt_scores.max(axis=1) >= cut).all()
    assert len(p.boxes) <= len(everything)


@pytest.mark.parametrize("name", BACKENDS)
def test_bad_options_and_checkpoints(name, tiny_checkpoint, tmp_path):
    cls = get_backend(name)
    with pytest.raises(ValueError, match="Unknown option.*bogus"):
        cls(checkpoint=tiny_checkpoint(name), device="cpu", bogus=1)
    with pytest.raises(ValueError, match="'min_score'"):
        cls(checkpoint=tiny_checkpoint(name), device="cpu", min_score=2)
    with pytest.raises(ValueError, match="'checkpoint'"):
        cls(checkpoint=str(tmp_path / "missing" / "model"), device="cpu")


@pytest.mark.parametrize("name", BACKENDS)
def test_zero_shot_detect_end_to_end(name, dataset, tiny_checkpoint):
    import fiftyone as fo

    cls = get_backend(name)
    summary = zero_shot_detect(
        dataset, backend=name, checkpoint=tiny_checkpoint(name), classes=["person", "bus"],
        confidence_threshold=0.0, batch_size=3, device="cpu", progress=False,
    )
    assert summary["status"] == "completed" and summary["backend"] == name
    assert summary["num_processed_samples"] == len(dataset)
    assert summary["num_failed_samples"] == 0
    labels = 0
    for path, dets in zip(*dataset.values(["filepath", "autolabels"])):
        assert isinstance(dets, fo.Detections)
        height, width = load_image(path).shape[:2]
        for d in dets.detections:
            x, y, w, h = d.bounding_box
            assert 0 <= x <= 1 and 0 <= y <= 1 and w > 0 and h > 0
            assert x + w <= 1 + 1e-9 and y + h <= 1 + 1e-9
            assert d.label in ("person", "bus") and 0 <= d.confidence <= 1
            if cls.exposes_score_vector:  # two prompts: one pass for all backends that expose it
                assert len(d["class_scores"]) == 2 and all(0 <= v <= 1 for v in d["class_scores"])
                assert d.confidence == pytest.approx(max(d["class_scores"]), abs=1e-9)
            else:
                assert "class_scores" not in d.to_dict()  # a partial vector is never written
            if cls.produces_masks:
                x0, y0, x1, y1 = box_pixel_bounds(d.bounding_box, width, height)
                assert d.mask.dtype == bool and d.mask.shape == (y1 - y0, x1 - x0)
            else:
                assert d.mask is None
            labels += 1
    assert labels == summary["num_labels"] > 0
