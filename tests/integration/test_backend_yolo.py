"""The ultralytics backends ``yolo-world`` and ``yoloe``.

Random weights give meaningless scores: these tests check structure, exact
geometry (against hand-computed values and against ultralytics' own
letterbox, box scaling and predictor) and the offline prompting paths. The
checks every backend shares (lazy imports, layout, options, the pipeline end
to end) are in ``test_backend_contract.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import imagekit
from stoplight.plugins.autolabel.backends import ZeroShotDetector, get_backend
from stoplight.plugins.autolabel import letterbox as L
from stoplight.plugins.autolabel.backends import yolo as Y
from stoplight.plugins.common.images import load_image

BACKENDS = ["yolo-world", "yoloe"]
PROMPTS = ["person", "bus", "dog"]


@pytest.fixture(scope="session")
def photos() -> list[np.ndarray]:
    """The four real photos (two landscapes, a portrait, different sizes)."""
    return [load_image(str(p)) for p in imagekit.photo_paths()]


@pytest.fixture(scope="session")
def detector(tiny_checkpoint):
    """``detector(backend, **options)``: loaded like users load it, cached."""
    loaded = {}

    def get(backend: str, **options) -> ZeroShotDetector:
        key = (backend, tuple(sorted(options.items())))
        if key not in loaded:
            cls = get_backend(backend)
            loaded[key] = cls(checkpoint=tiny_checkpoint(backend), device="cpu", **options)
        return loaded[key]

    return get


def check_predictions(preds, num_images: int, num_prompts: int) -> None:
    assert len(preds) == num_images
    for p in preds:
        assert p.has_score_vector
        assert p.boxes.shape == (len(p.boxes), 4)
        assert p.prompt_scores.shape == (len(p.boxes), num_prompts)
        assert np.isfinite(p.boxes).all()
        assert ((p.prompt_scores >= 0) & (p.prompt_scores <= 1)).all()
        assert (p.boxes[:, 2:] >= p.boxes[:, :2]).all()
        best = p.prompt_scores.max(axis=1)
        assert (np.diff(best) <= 0).all()  # sorted by best score


# --------------------------------------------------------------------------
# module, registry


@pytest.mark.parametrize(
    "backend,cls,default",
    [
        ("yolo-world", Y.YOLOWorldDetector, "yolov8l-worldv2.pt"),
        ("yoloe", Y.YOLOEDetector, "yoloe-11l-seg.pt"),
    ],
)
def test_registered(backend, cls, default):
    assert get_backend(backend) is cls
    assert issubclass(cls, ZeroShotDetector)
    assert cls.default_checkpoint == default
    assert cls.exposes_score_vector


# --------------------------------------------------------------------------
# letterbox and decoding: exact geometry


@pytest.mark.parametrize(
    "height,width,rect,out_hw,gain,pad",
    [
        (720, 1280, False, (640, 640), (0.5, 0.5), (0, 140)),  # landscape
        (720, 1280, True, (384, 640), (0.5, 0.5), (0, 12)),  # 280 % 32 = 24 -> 12 each side
        (1280, 720, False, (640, 640), (0.5, 0.5), (140, 0)),  # portrait
        (1280, 720, True, (640, 384), (0.5, 0.5), (12, 0)),
        (1, 1, False, (640, 640), (640.0, 640.0), (0, 0)),  # tiny: scaled up
        (1, 1, True, (640, 640), (640.0, 640.0), (0, 0)),
        (1080, 810, True, (640, 480), (480 / 810, 640 / 1080), (0, 0)),  # bus.jpg
        (333, 1000, False, (640, 640), (0.64, 213 / 333), (0, 213)),  # odd: 427 px padding
        (333, 1000, True, (224, 640), (0.64, 213 / 333), (0, 5)),
        (5, 2000, False, (640, 640), (0.32, 2 / 5), (0, 319)),  # thin
    ],
)
def test_letterbox_geometry(height, width, rect, out_hw, gain, pad):
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(height * 7 + width)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    boxed, g, p = L.letterbox(image, 640, 32, rect)
    assert boxed.shape == (*out_hw, 3) and boxed.dtype == np.uint8
    assert g == pytest.approx(gain, abs=1e-12)
    assert p == pad
    # the very pixels ultralytics' predictor feeds its model
    assert np.array_equal(boxed, LetterBox(640, auto=rect, stride=32)(image=image))
    # padding is ultralytics' gray
    if pad[1]:
        assert (boxed[: pad[1]] == L.PAD_VALUE).all()
    if pad[0]:
        assert (boxed[:, : pad[0]] == L.PAD_VALUE).all()


def test_decode_raw_exact_known_box():
    # 1280x720 -> gain 0.5, 140 px on top; letterboxed box centred at
    # (320, 320), 100 x 50 -> letterboxed xyxy (270, 295, 370, 345)
    # -> original ((270 - 0) / 0.5, (295 - 140) / 0.5, ...)
    raw = np.zeros((4 + 2 + 3, 3))  # 2 prompts, 3 mask coefficients (ignored)
    raw[:, 0] = [320, 320, 100, 50, 0.9, 0.1, 5, 5, 5]
    raw[:, 1] = [10, 10, 4, 4, 0.0001, 0.0002, 5, 5, 5]  # below min_score
    raw[:, 2] = [600, 500, 20, 40, 0.3, 0.5, 5, 5, 5]
    pred = L.decode_raw(raw, 0.5, (0, 140), num_prompts=2, min_score=0.001)
    assert pred.has_score_vector
    np.testing.assert_allclose(pred.boxes[0], [540, 310, 740, 410], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pred.boxes[1], [1180, 680, 1220, 760], rtol=0, atol=1e-6)
    np.testing.assert_allclose(pred.prompt_scores, [[0.9, 0.1], [0.3, 0.5]], atol=1e-12)

    # per-axis gains and left padding
    pred = L.decode_raw(raw[:, :1], (0.25, 0.5), (8, 4), num_prompts=2)
    np.testing.assert_allclose(
        pred.boxes[0],
        [(270 - 8) / 0.25, (295 - 4) / 0.5, (370 - 8) / 0.25, (345 - 4) / 0.5],
        atol=1e-6,
    )


def test_decode_raw_filters_caps_and_empty():
    raw = np.zeros((4 + 3, 5))
    raw[:4] = [[10], [10], [4], [4]]
    raw[4:] = np.array([[0.2, 0.9, 0.0005, np.nan, 0.5], [0, 0, 0, 0, 0.6], [0, 0, 0, 0, 0]])
    pred = L.decode_raw(raw, 1.0, (0, 0), 3, min_score=0.001, max_candidates=1000)
    np.testing.assert_allclose(
        pred.prompt_scores.max(axis=1), [0.9, 0.6, 0.2]
    )  # NaN and 0.0005 dropped
    pred = L.decode_raw(raw, 1.0, (0, 0), 3, min_score=0.001, max_candidates=1)
    np.testing.assert_allclose(pred.prompt_scores, [[0.9, 0, 0]])
    empty = L.decode_raw(raw, 1.0, (0, 0), 3, min_score=0.95)
    assert empty.boxes.shape == (0, 4) and empty.prompt_scores.shape == (0, 3)
    with pytest.raises(ValueError, match="raw must have shape"):
        L.decode_raw(raw, 1.0, (0, 0), 4)


@pytest.mark.parametrize(
    "height,width,rect", [(720, 1280, True), (1280, 720, False), (333, 1000, True), (1, 1, False)]
)
def test_decode_raw_matches_ultralytics_scale_boxes(height, width, rect):
    import torch
    from ultralytics.utils.ops import scale_boxes, xywh2xyxy

    (new_w, new_h), gain, (left, top, right, bottom) = L.letterbox_params(
        height, width, 640, 32, rect
    )
    lb_shape = (new_h + top + bottom, new_w + left + right)
    rng = np.random.default_rng(0)
    # boxes inside the letterboxed image area (ultralytics clips to the image)
    cx = rng.uniform(left + 0.3 * new_w, left + 0.7 * new_w, 16)
    cy = rng.uniform(top + 0.3 * new_h, top + 0.7 * new_h, 16)
    w, h = rng.uniform(0, 0.3 * new_w, 16), rng.uniform(0, 0.3 * new_h, 16)
    raw = np.stack([cx, cy, w, h, np.linspace(1, 0.5, 16)])
    ours = L.decode_raw(raw, gain, (left, top), 1).boxes
    theirs = scale_boxes(lb_shape, xywh2xyxy(torch.tensor(raw[:4].T)), (height, width)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6 * max(height, width))


# --------------------------------------------------------------------------
# loading, prompting, batching (tiny random checkpoints)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_on_real_photos(backend, detector, photos):
    det = detector(backend)
    det.set_prompts(PROMPTS)
    assert det.prompts == PROMPTS
    preds = det(photos)
    check_predictions(preds, len(photos), len(PROMPTS))
    assert sum(len(p.boxes) for p in preds) > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_is_one_forward_pass(backend, detector, photos):
    det = detector(backend)
    det.set_prompts(PROMPTS)
    calls = []
    hook = det.model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    try:
        batch = det.prepare(photos[:3])
        assert tuple(batch.pixels.shape) == (3, 640, 640, 3)  # mixed shapes: square padding
        preds = det.predict(batch)
    finally:
        hook.remove()
    assert len(calls) == 1 and tuple(calls[0]) == (3, 3, 640, 640)
    check_predictions(preds, 3, len(PROMPTS))
    # same result as image by image (rect padding differs, so compare with
    # batches of one same-shaped image each: square vs rect changes the input)
    single = det.predict(det.prepare(photos[:1]))
    assert tuple(det.prepare(photos[:1]).pixels.shape) == (1, 640, 480, 3)  # rect for one shape
    check_predictions(single, 1, len(PROMPTS))


@pytest.mark.parametrize("backend", BACKENDS)
def test_batching_does_not_change_results(backend, detector, photos):
    det = detector(backend)
    det.set_prompts(PROMPTS)
    img = photos[1]
    batched = det([img, img[:, ::-1].copy(), img])  # same shape: rect letterbox for all
    alone = det([img])[0]
    # float32 convolutions of a batch and of one image differ in the last
    # bits, which can swap near-tied candidates: compare rows as sets
    for i in (0, 2):
        a = np.hstack([batched[i].boxes, batched[i].prompt_scores * 100])
        b = np.hstack([alone.boxes, alone.prompt_scores * 100])
        assert a.shape == b.shape
        nearest = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2).min(axis=1)
        assert nearest.max() < 0.02


@pytest.mark.parametrize("backend", BACKENDS)
def test_prompt_order_and_reprompting(backend, detector, photos):
    det = detector(backend)
    det.set_prompts(["person", "bus"])
    a = det([photos[0]])[0]
    det.set_prompts(["bus", "person"])
    b = det([photos[0]])[0]
    assert det.model.model[-1].nc == 2
    # swapping prompts swaps score columns
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    np.testing.assert_allclose(a.prompt_scores, b.prompt_scores[:, ::-1], atol=1e-5)

    det.set_prompts(["person", "bus", "dog", "cat", "car"])
    c = det([photos[0]])[0]
    assert det.model.model[-1].nc == 5
    check_predictions([c], 1, 5)
    det.set_prompts(["bus"])
    check_predictions(det([photos[0]]), 1, 1)
    assert det.model.model[-1].nc == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_prepare_is_model_free_and_thread_safe(backend, detector, photos):
    import concurrent.futures as cf

    det = detector(backend)
    det.set_prompts(PROMPTS)
    with cf.ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(det.prepare, [photos[:2], photos[2:], photos[:2], photos[2:]]))
    assert np.array_equal(batches[0].pixels.numpy(), batches[2].pixels.numpy())
    assert batches[1].gains == batches[3].gains and batches[1].pads == batches[3].pads
    assert str(batches[0].pixels.dtype) == "torch.uint8"


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_ultralytics_predictor(backend, detector, tiny_checkpoint, photos):
    """Letterbox + forward + decode == ultralytics' own predict() (NMS off)."""
    from ultralytics import YOLOE, YOLOWorld

    det = detector(backend)
    det.set_prompts(PROMPTS)
    ref = (YOLOE if backend == "yoloe" else YOLOWorld)(
        str(Path(tiny_checkpoint(backend)) / "model.pt")
    )
    if backend == "yoloe":
        ref.set_classes(PROMPTS, det.model.pe.clone())
    else:
        ref.model.txt_feats = det.model.txt_feats.clone()
        ref.model.model[-1].nc = len(PROMPTS)
        ref.model.names = PROMPTS
    compared = 0
    for img in photos[:3]:
        h, w = img.shape[:2]
        pred = det([img])[0]
        best = pred.prompt_scores.max(axis=1)
        # a threshold in the widest gap of our scores near 0.25, so float noise
        # between the two runs cannot move a box across it
        s = np.sort(best[(best > 0.1) & (best < 0.5)])
        k = int(np.argmax(np.diff(s)))
        thr = float(s[k] + s[k + 1]) / 2
        keep = best > thr
        # IoU threshold 1.0 switches ultralytics' NMS off; it takes BGR arrays
        res = ref.predict(
            img[:, :, ::-1].copy(),
            conf=thr,
            iou=1.0,
            max_det=1000,
            imgsz=640,
            device="cpu",
            verbose=False,
        )[0]
        theirs = np.concatenate(
            [
                res.boxes.xyxy.numpy(),
                res.boxes.conf.numpy()[:, None],
                res.boxes.cls.numpy()[:, None],
            ],
            axis=1,
        ).astype(np.float64)
        ours = np.concatenate(
            [
                np.clip(pred.boxes[keep], 0, [w, h, w, h]),  # ultralytics clips to the image
                best[keep, None],
                pred.prompt_scores[keep].argmax(axis=1)[:, None],
            ],
            axis=1,
        )
        assert len(ours) == len(theirs)
        # match each of our boxes to its nearest ultralytics box, one to one
        dist = np.abs(ours[:, None, :4] - theirs[None, :, :4]).max(axis=2)
        match = dist.argmin(axis=1)
        assert len(set(match.tolist())) == len(match)
        # float32 noise (random deep nets amplify it): 0.05 px on ~1000 px
        np.testing.assert_allclose(ours[:, :4], theirs[match, :4], atol=0.05)
        np.testing.assert_allclose(ours[:, 4], theirs[match, 4], atol=1e-4)
        assert (ours[:, 5] == theirs[match, 5]).all()
        compared += len(ours)
    assert compared > 0


# --------------------------------------------------------------------------
# offline prompting options


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_embeddings_and_text_encoder_options(
    backend, detector, tiny_checkpoint, photos, tmp_path
):
    det = detector(backend)
    det.set_prompts(PROMPTS)
    feats = det.text_features(PROMPTS).numpy()
    assert feats.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-6)
    expected = det([photos[3]])[0]

    ckpt_dir = Path(tiny_checkpoint(backend))
    model_file = str(ckpt_dir / "model.pt")  # a bare .pt: no text encoder of its own
    cls = get_backend(backend)
    np.savez(
        tmp_path / "emb.npz", prompts=np.array(PROMPTS), embeddings=feats * 3.0
    )  # renormalized
    np.save(tmp_path / "dog.npy", feats[2])
    variants = [
        dict(text_embeddings={p: f.tolist() for p, f in zip(PROMPTS, feats)}),
        dict(text_embeddings=str(tmp_path / "emb.npz")),
        # mixed: two precomputed, one from the encoder
        dict(
            text_embeddings={"person": feats[0], "dog": str(tmp_path / "dog.npy")},
            text_encoder=str(ckpt_dir / "text_encoder"),
        ),
        dict(text_encoder="local-dir:" + str(ckpt_dir / "text_encoder")),
    ]
    for options in variants:
        other = cls(checkpoint=model_file, device="cpu", **options)
        other.set_prompts(PROMPTS)
        got = other([photos[3]])[0]
        np.testing.assert_allclose(got.prompt_scores, expected.prompt_scores, atol=1e-5)
        np.testing.assert_allclose(got.boxes, expected.boxes, atol=1e-3)

    # an open_clip architecture name with a local weights file
    other = cls(
        checkpoint=model_file,
        device="cpu",
        text_encoder="ViT-B-32",
        text_encoder_checkpoint=str(_save_open_clip(tmp_path / "vitb32.safetensors")),
    )
    other.set_prompts(["person"])
    assert other.text_features(["person"]).shape == (1, 512)


def _save_open_clip(path: Path) -> Path:
    """A random ViT-B-32 state dict, as a user's downloaded weights file."""
    import open_clip
    from safetensors.torch import save_file

    model = open_clip.create_model("ViT-B-32", pretrained=None)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.mark.parametrize(
    "backend,yaml_name", [("yoloe", "yoloe-11n.yaml"), ("yolo-world", "yolov8n-worldv2.yaml")]
)
def test_yaml_checkpoint_with_precomputed_embeddings(backend, yaml_name, photos):
    """A shipped YAML (random weights, detection head) works fully offline."""
    rng = np.random.default_rng(1)
    emb = {p: rng.normal(size=512) for p in PROMPTS}
    det = get_backend(backend)(
        checkpoint=yaml_name, device="cpu", imgsz=300, text_embeddings=emb, min_score=0.0
    )
    assert det.imgsz == 320  # rounded up to the stride
    det.set_prompts(PROMPTS)
    batch = det.prepare(photos[:2])
    assert tuple(batch.pixels.shape) == (2, 320, 320, 3)
    preds = det.predict(batch)
    check_predictions(preds, 2, 3)
    assert all(len(p.boxes) == 1000 for p in preds)  # min_score 0: capped by max_candidates


# --------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    "checkpoint,match",
    [
        ("/nonexistent/dir/model.pt", "no such file"),
        ("./missing-model.pt", "no such file"),
        ("~/missing-stoplight-model.pt", "no such file"),
        ("https://example.com/yoloe.pt", "URLs are not supported"),
        ("yoloe-11l-seg", "neither a local path"),
    ],
)
def test_bad_checkpoints(checkpoint, match):
    with pytest.raises(ValueError, match=match) as e:
        get_backend("yoloe")(checkpoint=checkpoint, device="cpu")
    assert "'checkpoint'" in str(e.value)


def test_bad_checkpoint_files(tmp_path, tiny_checkpoint):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="'checkpoint'.*model.pt"):
        get_backend("yoloe")(checkpoint=str(tmp_path / "empty"), device="cpu")
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ValueError, match="'checkpoint'"):
        get_backend("yoloe")(checkpoint=str(tmp_path / "weights.txt"), device="cpu")
    # a YOLOE checkpoint is not a YOLO-World model, and vice versa
    with pytest.raises(ValueError, match="not a YOLO-World model"):
        get_backend("yolo-world")(checkpoint=tiny_checkpoint("yoloe"), device="cpu")
    with pytest.raises(ValueError, match="not a YOLOE model"):
        get_backend("yoloe")(checkpoint=tiny_checkpoint("yolo-world"), device="cpu")


@pytest.mark.parametrize(
    "options,match",
    [
        (dict(max_det=300), "Unknown option"),
        (dict(imgsz=0), "'imgsz'"),
        (dict(imgsz=320.5), "'imgsz'"),
        (dict(max_candidates=0), "'max_candidates'"),
        (dict(text_encoder="ViT-B-32"), "text_encoder_checkpoint"),
        (
            dict(text_encoder="no-such-arch", text_encoder_checkpoint=__file__),
            "open_clip model name",
        ),
        (dict(text_encoder_checkpoint=__file__), "needs 'text_encoder'"),
        (dict(text_embeddings="/nonexistent.npz"), "no such file"),
        (dict(text_embeddings=[1, 2]), "text_embeddings"),
    ],
)
def test_bad_options(options, match, tiny_checkpoint):
    with pytest.raises(ValueError, match=match):
        get_backend("yolo-world")(checkpoint=tiny_checkpoint("yolo-world"), device="cpu", **options)


def test_text_feature_size_must_match_head(tiny_checkpoint):
    det = get_backend("yoloe")(
        checkpoint=tiny_checkpoint("yoloe"),
        device="cpu",
        text_embeddings={"person": [0.1, 0.2, 0.3]},
    )
    with pytest.raises(ValueError, match="size 3.*expects 512"):
        det.set_prompts(["person"])
    with pytest.raises(RuntimeError, match="set_prompts"):
        det.predict(det.prepare([np.zeros((8, 8, 3), np.uint8)]))
    with pytest.raises(ValueError, match="At least one prompt"):
        det.set_prompts([])


def test_fp16_only_on_cuda(tiny_checkpoint):
    det = get_backend("yoloe")(checkpoint=tiny_checkpoint("yoloe"), device="cpu", fp16=True)
    assert det.fp16 is False
    assert (
        next(det.model.parameters()).dtype.is_floating_point
        and str(next(det.model.parameters()).dtype) == "torch.float32"
    )


# --------------------------------------------------------------------------
# random checkpoints and the pipeline


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_checkpoint_layout(backend, tiny_checkpoint):
    from ultralytics import YOLOE, YOLOWorld

    ckpt = Path(tiny_checkpoint(backend))
    assert (ckpt / "model.pt").is_file()
    assert (ckpt / "text_encoder" / "open_clip_config.json").is_file()
    assert (ckpt / "text_encoder" / "open_clip_model.safetensors").is_file()
    # plain ultralytics loads it back
    wrapper = (YOLOE if backend == "yoloe" else YOLOWorld)(str(ckpt / "model.pt"))
    assert sum(p.numel() for p in wrapper.model.parameters()) < 5_000_000  # tiny
