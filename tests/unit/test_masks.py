"""Instance masks: FiftyOne's crop convention, bilinear resizing, storage.

The property that matters: a mask cropped by ``common.masks.crop_mask`` and
stored on a ``fo.Detection`` is drawn by FiftyOne on exactly the pixels of
the full-size mask it came from.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stoplight.plugins.autolabel.backends import Predictions
from stoplight.plugins.autolabel.detections import detections_doc, postprocess
from stoplight.plugins.autolabel.ontology import Ontology
from stoplight.plugins.common.masks import box_pixel_bounds, crop_mask, mask_to_mongo, resize_crop


def _torch_resize(soft: np.ndarray, height: int, width: int) -> np.ndarray:
    t = torch.as_tensor(soft, dtype=torch.float64)[None, None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


@pytest.mark.parametrize(
    "low,size",
    [((32, 32), (427, 640)), ((288, 288), (1080, 810)), ((7, 5), (13, 11)), ((50, 60), (20, 30)),
     ((1, 1), (4, 6)), ((9, 9), (9, 9))],
)
def test_resize_crop_equals_torch_interpolate(low, size):
    rng = np.random.default_rng(sum(low) + sum(size))
    soft = rng.random(low)
    height, width = size
    full = _torch_resize(soft, height, width)
    for bounds in [(0, 0, width, height), (1, 2, width // 2 + 1, height - 1),
                   (width - 1, height - 1, width, height), (width // 3, 0, width // 3 + 1, 1)]:
        x0, y0, x1, y1 = bounds
        np.testing.assert_allclose(resize_crop(soft, bounds, width, height), full[y0:y1, x0:x1],
                                   rtol=0, atol=1e-12)


def test_box_pixel_bounds_follow_fiftyone_truncation():
    # eta's render_instance_mask: int(x * W) .. int((x + w) * W)
    assert box_pixel_bounds([0.1, 0.2, 0.5, 0.25], 640, 427) == (64, 85, 384, 192)
    # thinner than a pixel, at the far edge, spilling over: one pixel, inside
    assert box_pixel_bounds([0.999, 0.5, 0.0001, 0.0], 100, 100) == (99, 50, 100, 51)
    assert box_pixel_bounds([1.0, 1.0, 0.0, 0.0], 10, 10) == (9, 9, 10, 10)
    assert box_pixel_bounds([-0.1, 0.0, 1.5, 1.0], 10, 10) == (0, 0, 10, 10)


@pytest.mark.parametrize("box", [[0.1, 0.2, 0.5, 0.25], [0.0, 0.0, 1.0, 1.0], [0.33, 0.71, 0.2, 0.29],
                                 [0.5, 0.5, 0.001, 0.001]])
def test_fiftyone_draws_the_crop_on_the_pixels_of_the_full_mask(box):
    import fiftyone as fo

    width, height = 640, 427
    rng = np.random.default_rng(7)
    soft = rng.random((36, 36))
    full = _torch_resize(soft, height, width) > 0.5
    crop = crop_mask(soft, box, width, height)
    x0, y0, x1, y1 = box_pixel_bounds(box, width, height)
    assert crop.dtype == bool and crop.shape == (y1 - y0, x1 - x0)
    if box[2] * width >= 1 and box[3] * height >= 1:
        # FiftyOne renders the stored mask onto the box: the same pixels
        seg = fo.Detection(label="x", bounding_box=box, mask=crop).to_segmentation(
            frame_size=(width, height), target=1
        )
        drawn = seg.mask.astype(bool)
        expected = np.zeros_like(full)
        expected[y0:y1, x0:x1] = full[y0:y1, x0:x1]
        assert np.array_equal(drawn, expected)


def test_crop_mask_threshold_and_nan():
    soft = np.array([[0.2, 0.8], [np.nan, 0.5]])
    np.testing.assert_array_equal(crop_mask(soft, [0, 0, 1, 1], 2, 2), [[False, True], [False, False]])
    # logits: threshold 0
    np.testing.assert_array_equal(crop_mask(np.array([[-1.0, 2.0]]), [0, 0, 1, 1], 2, 1, 0.0), [[False, True]])
    with pytest.raises(ValueError, match="2-D"):
        crop_mask(np.zeros((2, 2, 2)), [0, 0, 1, 1], 2, 2)


def test_mask_storage_is_fiftyones():
    import fiftyone.core.utils as fou

    mask = np.random.default_rng(0).random((17, 9)) > 0.5
    assert mask_to_mongo(mask) == fou.serialize_numpy_array(mask)
    np.testing.assert_array_equal(fou.deserialize_numpy_array(mask_to_mongo(mask)), mask)


def test_postprocess_keeps_masks_with_their_boxes():
    import fiftyone as fo

    onto = Ontology.from_params(classes=["a", "b"])
    width, height = 200, 100
    # three boxes over a 20 x 20 soft-mask grid; box 1 is suppressed by box 0
    # (same class, IoU 0.8); box 2 scores below the threshold
    boxes = np.array([[0, 0, 100, 100], [0, 0, 100, 80], [100, 0, 200, 50], [120, 50, 180, 100]], float)
    scores = np.array([[0.6, 0.1], [0.5, 0.2], [0.1, 0.15], [0.2, 0.9]])
    soft = np.zeros((4, 20, 20), np.float16)
    soft[0, :, :10] = 1.0   # left half
    soft[1] = 1.0
    soft[3, 10:, 12:18] = 0.9
    pred = Predictions(boxes, scores, masks=soft)
    dets = postprocess(pred, onto, width, height, confidence_threshold=0.2)
    assert dets.labels.tolist() == [1, 0]  # by decreasing score: box 3, then box 0
    assert len(dets.masks) == 2
    full3 = _torch_resize(soft[3].astype(np.float64), height, width) > 0.5
    x0, y0, x1, y1 = box_pixel_bounds(dets.boxes[0], width, height)
    assert (x0, y0, x1, y1) == (120, 50, 180, 100)
    np.testing.assert_array_equal(dets.masks[0], full3[y0:y1, x0:x1])
    assert dets.masks[1].shape == (100, 100) and dets.masks[1].all()

    # the written document rebuilds as FiftyOne detections with these masks
    stored = fo.Detections.from_dict(detections_doc(dets, onto))
    for d, m in zip(stored.detections, dets.masks):
        np.testing.assert_array_equal(d.mask, m)
        assert d.has_mask

    # boxes-only backends write no mask key at all
    plain = postprocess(Predictions(boxes, scores), onto, width, height, 0.2)
    assert plain.masks is None
    assert all("mask" not in d for d in detections_doc(plain, onto)["detections"])


def test_predictions_validate_mask_shapes():
    with pytest.raises(ValueError, match="masks"):
        Predictions([[0, 0, 1, 1]], [[0.5]], masks=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="masks"):
        Predictions([[0, 0, 1, 1]], [[0.5]], masks=np.zeros((1, 4)))
    assert Predictions.empty(3).masks is None
