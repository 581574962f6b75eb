"""Label embeddings: crop math, and a tiny random CLIP on real photos in MongoDB.

The labels come from the real labeling pipeline (a tiny random OWLv2); the
CLIP is a tiny random-weight checkpoint written to disk and loaded through
the same ``load_clip(model_name, <checkpoint file>)`` path users take.
"""

import shutil

import fiftyone as fo
import numpy as np
import pytest

from stoplight.plugins.autolabel.pipeline import Progress, zero_shot_detect
from stoplight.plugins.scoring import embeddings as E

LABELS = "autolabels"
MAX_BOXES = 4  # per image: keeps the file fast


# ---------------------------------------------------------------- crop math


def _img(w, h):
    return np.arange(h * w * 3, dtype=np.uint32).reshape(h, w, 3).astype(np.uint8)


def test_crop_box_pads_by_context_of_box_size():
    img = _img(200, 100)
    # x: 20..80 px, pad 6 -> 14..86; y: 20..60 px, pad 4 -> 16..64
    assert E.crop_box(img, [0.1, 0.2, 0.3, 0.4], context=0.1) == (14, 16, 86, 64)
    assert E.crop_box(img, [0.1, 0.2, 0.3, 0.4], context=0.0) == (20, 20, 80, 60)
    # fractional edges round outwards to whole pixels
    assert E.crop_box(img, [0.1025, 0.205, 0.3, 0.4], context=0.0) == (20, 20, 81, 61)


def test_crop_box_clips_at_borders():
    img = _img(200, 100)
    # x: 190..210 padded by 10 -> 180..220 -> clipped to 200
    assert E.crop_box(img, [0.95, 0.9, 0.1, 0.2], context=0.5) == (180, 80, 200, 100)
    # whole image padded: stays the whole image
    assert E.crop_box(img, [0, 0, 1, 1], context=0.25) == (0, 0, 200, 100)
    # left/top padding past 0 clips to 0
    assert E.crop_box(img, [0.01, 0.02, 0.1, 0.1], context=0.5) == (0, 0, 32, 17)


def test_crop_box_tiny_and_degenerate_boxes_are_at_least_one_pixel():
    img = _img(200, 100)
    assert E.crop_box(img, [0.5, 0.5, 0.0, 0.0]) == (100, 50, 101, 51)
    assert E.crop_box(img, [0.5, 0.5, 1e-4, 1e-4], context=0.0) == (100, 50, 101, 51)
    # padding of 0.002 px still reaches into the pixel before
    assert E.crop_box(img, [0.5, 0.5, 1e-4, 1e-4], context=0.1) == (99, 49, 101, 51)
    # a box on the far edge, or past it, still gives the last pixel
    assert E.crop_box(img, [1.0, 1.0, 0.0, 0.0]) == (199, 99, 200, 100)
    assert E.crop_box(img, [1.2, 1.5, 0.1, 0.1]) == (199, 99, 200, 100)
    assert E.crop_box(img, [0.2, 0.2, -0.1, float("nan")]) == (40, 20, 41, 21)
    with pytest.raises(ValueError, match="context"):
        E.crop_box(img, [0, 0, 1, 1], context=-0.1)


def test_crop_boxes_returns_the_pixels():
    img = _img(200, 100)
    crops = E.crop_boxes(img, np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.0, 0.0]]), context=0.1)
    assert [c.shape for c in crops] == [(48, 72, 3), (1, 1, 3)]
    np.testing.assert_array_equal(crops[0], img[16:64, 14:86])
    np.testing.assert_array_equal(crops[1], img[50:51, 100:101])


# ------------------------------------------------------------------ the model


@pytest.fixture(scope="session")
def tiny_clip(tmp_root):
    """``(model_name, checkpoint_path)`` of a tiny random CLIP on disk."""
    return E.build_random_clip(str(tmp_root / "checkpoints" / "clip"))


def test_letterbox_centers_the_crop_on_a_square_of_the_fill_color():
    crop = _img(6, 2)  # 2 rows, 6 columns
    out = E.letterbox(crop, (10.2, 20.6, 30.0))
    assert out.shape == (6, 6, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[2:4], crop)
    assert (out[:2] == [10, 21, 30]).all() and (out[4:] == [10, 21, 30]).all()
    tall = E.letterbox(_img(2, 5), (0, 0, 0))
    assert tall.shape == (5, 5, 3)
    np.testing.assert_array_equal(tall[:, 1:3], _img(2, 5))
    square = _img(4, 4)
    assert E.letterbox(square, (0, 0, 0)) is square


def test_letterbox_keeps_both_ends_of_an_elongated_box_through_clip_preprocessing(tiny_clip):
    """CLIP's resize + center crop cuts a 1:10 box's ends; the letterbox keeps them."""
    from PIL import Image

    clip = E.load_clip(*tiny_clip, device="cpu")
    box = np.full((20, 200, 3), 128, dtype=np.uint8)
    box[:, :20] = [255, 0, 0]  # red left end
    box[:, -20:] = [0, 0, 255]  # blue right end

    def ends(pixels):
        t = clip.preprocess(Image.fromarray(pixels)).numpy()  # normalized (3, S, S)
        return bool(((t[0] - t[2]) > 2).any()), bool(((t[2] - t[0]) > 2).any())

    assert ends(box) == (False, False)
    assert ends(E.letterbox(box, box.reshape(-1, 3).mean(axis=0))) == (True, True)


def test_load_clip_reads_the_checkpoint_file(tiny_clip, tmp_root):
    name, ckpt = tiny_clip
    clip = E.load_clip(name, ckpt, device="cpu")
    assert clip is E.load_clip(name, ckpt, device="cpu")  # cached
    assert clip.dim == E.TINY_MODEL_CONFIG["embed_dim"]
    text = clip.encode_texts(["a photo of a person", "a photo of a bus"])
    assert text.shape == (2, clip.dim)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)

    # other weights in another file give other embeddings: the file is used
    _, other = E.build_random_clip(str(tmp_root / "checkpoints" / "clip-seed1"), seed=1)
    text1 = E.load_clip(name, other, device="cpu").encode_texts(["a photo of a person"])
    assert not np.allclose(text[0], text1[0])

    with pytest.raises(ValueError, match="pretrained"):
        E.load_clip(name, str(tmp_root / "missing.safetensors"), device="cpu")
    with pytest.raises(ValueError, match="architecture"):
        E.load_clip("no-such-clip", None, device="cpu")


# ----------------------------------------------------------- on real images


@pytest.fixture()
def labeled(dataset, tiny_checkpoint):
    """The dataset labeled by the real pipeline, at most MAX_BOXES per image."""
    zero_shot_detect(
        dataset,
        backend="owlv2",
        checkpoint=tiny_checkpoint("owlv2"),
        classes=["person", "bus"],
        confidence_threshold=0.0,
        device="cpu",
        progress=False,
    )
    dets = dataset.values(LABELS)
    for d in dets:
        d.detections = d.detections[:MAX_BOXES]
    dataset.set_values(LABELS, dets)
    assert dataset.count(f"{LABELS}.detections") > 0
    return dataset


@pytest.fixture()
def embed(tiny_clip):
    name, ckpt = tiny_clip

    def _embed(view, **kwargs):
        kwargs.setdefault("model_name", name)
        kwargs.setdefault("pretrained", ckpt)
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("progress", False)
        kwargs.setdefault("batch_size", 5)  # crops of several images share a forward
        return E.compute_label_embeddings(view, LABELS, **kwargs)

    return _embed


def _embeddings(ds):
    out = {}
    for dets in ds.values(LABELS):
        for d in dets.detections:
            out[d.id] = d.get_field("embedding") if d.has_field("embedding") else None
    return out


def test_every_label_gets_a_unit_vector_and_the_run_is_recorded(labeled, embed, tiny_clip):
    n = labeled.count(f"{LABELS}.detections")
    events = []
    summary = embed(labeled, prompts=["person", "bus"], progress=events.append, write_every=3)
    assert summary["status"] == "completed"
    assert summary["num_target_labels"] == summary["num_embedded_labels"] == n
    assert summary["num_skipped_labels"] == summary["num_failed_samples"] == 0
    assert all(isinstance(e, Progress) for e in events)
    assert events[-1].done == events[-1].total == n

    dim = E.TINY_MODEL_CONFIG["embed_dim"]
    embs = _embeddings(labeled)
    assert len(embs) == n
    for vec in embs.values():
        assert len(vec) == dim
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    # declared in the schema, so the App and get_field_schema show it
    assert labeled.has_field(f"{LABELS}.detections.embedding")

    # text embeddings of the prompts, from the same model
    text = summary["text_embeddings"]
    assert text.shape == (2, dim)
    clip = E.load_clip(*tiny_clip, device="cpu")
    np.testing.assert_allclose(text, clip.encode_texts(["person", "bus"]), atol=1e-6)

    key = summary["run_key"]
    assert key in labeled.list_runs()
    config = labeled.get_run_info(key).config
    assert config.stoplight_method == "compute_label_embeddings"
    assert config.model_name == tiny_clip[0]
    assert config.pretrained == tiny_clip[1]
    assert config.context == 0.1
    assert config.status == "completed"
    assert config.num_embedded_labels == n
    results = labeled.load_run_results(key)
    assert np.allclose(results.text_embeddings, text)

    # reading back: aligned ids and rows
    label_ids, sample_ids, arr = E.load_label_embeddings(labeled, LABELS, "embedding")
    assert arr.shape == (n, dim) and arr.dtype == np.float32
    assert set(label_ids) == set(embs)
    owner = {d.id: sid for sid, dets in zip(*labeled.values(["id", LABELS])) for d in dets.detections}
    for lid, sid, row in zip(label_ids, sample_ids, arr):
        assert owner[lid] == sid
        np.testing.assert_allclose(row, embs[lid], atol=1e-7)


def test_embedding_matches_the_crop_fed_alone(labeled, embed, tiny_clip):
    """Batching crops across images does not change any label's vector."""
    embed(labeled, context=0.2)
    clip = E.load_clip(*tiny_clip, device="cpu")
    sample = labeled.first()
    from stoplight.plugins.common.images import load_image

    img = load_image(sample.filepath)
    dets = sample[LABELS].detections
    import torch

    crops = E.crop_boxes(img, [d.bounding_box for d in dets], context=0.2)
    mean = img.reshape(-1, 3).mean(axis=0)
    crops = [E.letterbox(c, mean) for c in crops]
    from PIL import Image

    pixels = torch.stack([clip.preprocess(Image.fromarray(np.ascontiguousarray(c))) for c in crops])
    expected = clip.encode_images(pixels)
    got = np.array([d["embedding"] for d in dets])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_resume_computes_only_missing_and_overwrite_recomputes(labeled, embed):
    n = labeled.count(f"{LABELS}.detections")
    first = embed(labeled)
    assert first["num_embedded_labels"] == n
    before = _embeddings(labeled)

    # drop the embedding of some labels: a resumed run computes only those
    ids = list(before)[::3]
    labeled.set_label_values(f"{LABELS}.detections.embedding", {i: None for i in ids})
    again = embed(labeled)
    assert again["num_embedded_labels"] == len(ids)
    assert again["num_skipped_labels"] == n - len(ids)
    after = _embeddings(labeled)
    assert all(after[i] is not None for i in after)
    for i in before:
        np.testing.assert_allclose(after[i], before[i], atol=1e-6)

    # nothing missing: nothing computed
    assert embed(labeled)["num_embedded_labels"] == 0

    # overwrite recomputes all (with other settings, other vectors)
    over = embed(labeled, overwrite=True, context=0.5)
    assert over["num_embedded_labels"] == n and over["num_skipped_labels"] == 0
    changed = _embeddings(labeled)
    assert any(not np.allclose(changed[i], before[i]) for i in before)


def test_broken_image_is_recorded_and_the_rest_embedded(labeled, embed, tmp_path):
    samples = list(labeled.select_fields(LABELS))
    victim = next(s for s in samples if len(s[LABELS].detections))
    broken = tmp_path / "broken.jpg"
    shutil.copy(victim.filepath, broken)
    broken.write_bytes(broken.read_bytes()[:200])  # truncated
    victim = labeled[victim.id]
    victim.filepath = str(broken)
    victim.save()
    n_victim = len(victim[LABELS].detections)
    n = labeled.count(f"{LABELS}.detections")

    summary = embed(labeled)
    assert summary["status"] == "completed"
    assert summary["num_failed_samples"] == 1
    assert summary["num_failed_labels"] == n_victim
    assert summary["num_embedded_labels"] == n - n_victim
    (failure,) = summary["failures"]
    assert failure["sample_id"] == victim.id and failure["filepath"] == str(broken)
    assert str(broken) in failure["error"]
    results = labeled.load_run_results(summary["run_key"])
    assert results.failures[0]["sample_id"] == victim.id

    label_ids, sample_ids, arr = E.load_label_embeddings(labeled, LABELS, "embedding")
    assert len(label_ids) == n - n_victim and victim.id not in sample_ids


def _poisoned_clip(clip, poison=None):
    """``clip`` whose forward fails on any batch holding ``poison`` (a
    preprocessed crop), or on every batch when ``poison`` is None."""
    import dataclasses

    import torch

    class Poisoned(E.ClipModel):
        def encode_images(self, pixels):
            if poison is None or any(torch.equal(p, poison) for p in pixels):
                raise RuntimeError("poisoned crop")
            return super().encode_images(pixels)

    return Poisoned(*[getattr(clip, f.name) for f in dataclasses.fields(clip)])


def test_a_crop_failing_in_the_model_is_isolated_and_recorded(labeled, embed, tiny_clip):
    from PIL import Image

    from stoplight.plugins.common.images import load_image

    clip = E.load_clip(*tiny_clip, device="cpu")
    sample = next(s for s in labeled if len(s[LABELS].detections) >= 2)
    victim = sample[LABELS].detections[1]
    img = load_image(sample.filepath)
    (crop,) = E.crop_boxes(img, [victim.bounding_box], context=0.1)
    poison = clip.preprocess(Image.fromarray(np.ascontiguousarray(
        E.letterbox(crop, img.reshape(-1, 3).mean(axis=0)))))
    n = labeled.count(f"{LABELS}.detections")

    summary = embed(labeled, clip=_poisoned_clip(clip, poison), batch_size=8)
    assert summary["status"] == "completed"
    assert summary["num_failed_labels"] == 1 and summary["num_embedded_labels"] == n - 1
    (failure,) = summary["failures"]
    assert failure["label_id"] == victim.id and failure["sample_id"] == sample.id
    assert "poisoned crop" in failure["error"]
    embs = _embeddings(labeled)
    assert embs[victim.id] is None
    assert sum(v is not None for v in embs.values()) == n - 1

    # a model that fails on everything is broken, not the data: the run stops
    with pytest.raises(RuntimeError, match="poisoned crop"):
        embed(labeled, clip=_poisoned_clip(clip), overwrite=True)
    failed = [k for k in labeled.list_runs()
              if labeled.get_run_info(k).config.status == "failed"]
    assert len(failed) == 1


def test_invalid_inputs(labeled, embed):
    with pytest.raises(ValueError, match="does not exist"):
        E.compute_label_embeddings(labeled, "nope", progress=False)
    labeled.add_sample_field("cls", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    with pytest.raises(ValueError, match="fo.Detections"):
        E.compute_label_embeddings(labeled, "cls", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        embed(labeled, batch_size=0)


# ------------------------------------------------------------ the operator

EMBED_URI = "@stoplight/autolabel/compute_label_embeddings"


@pytest.mark.parametrize("delegated", [False, True])
def test_operator_embeds_every_label_and_the_class_prompts(labeled, tiny_clip, delegated):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    name, ckpt = tiny_clip
    params = dict(label_field=LABELS, model_name=name, pretrained=ckpt, device="cpu",
                  batch_size=7, delegate=delegated)
    result = foo.execute_operator(EMBED_URI, ctx={"dataset": labeled}, params=params,
                                  request_delegation=delegated)
    assert result.error is None, result.error
    if delegated:
        DelegatedOperationService().execute_queued_operations(dataset_name=labeled.name)

    n = labeled.count(f"{LABELS}.detections")
    vectors = [v for per_sample in labeled.values(f"{LABELS}.detections.embedding")
               for v in per_sample or []]
    assert len(vectors) == n and all(v is not None and len(v) == E.TINY_MODEL_CONFIG["embed_dim"] for v in vectors)
    (key,) = [k for k in labeled.list_runs()
              if labeled.get_run_info(k).config.stoplight_method == "compute_label_embeddings"]
    config = labeled.get_run_info(key).config
    assert config.status == "completed"
    # CLIP agreement needs every class's prompt: the operator passes them
    assert sorted(config.prompts) == sorted(labeled.distinct(f"{LABELS}.detections.label"))


# ------------------------------------------------------- reading embeddings


def test_read_label_vectors_matches_values_for_every_layout(dataset):
    """Floats (fast path), integers and None elements (decoded path), missing
    and null attributes (left out), a filtered view, 1-d to 3-digit keys."""
    from fiftyone import ViewField as F

    from stoplight.plugins.common import bulk

    rng = np.random.default_rng(0)
    dim = 130  # keys "0".."129": one-, two- and three-byte runs
    expected = {}
    for i, sample in enumerate(dataset):
        dets = []
        for j in range(4):
            d = fo.Detection(label="a" if j % 2 else "b", bounding_box=[0.1, 0.1, 0.2, 0.2])
            if (i, j) == (0, 1):
                d["embedding"] = [int(v) for v in rng.integers(-3, 3, dim)]  # int32s
            elif (i, j) == (1, 2):
                d["embedding"] = None
            elif (i, j) == (1, 3):
                pass  # no attribute at all
            elif (i, j) == (2, 0):
                vec = rng.normal(size=dim).tolist()
                vec[5] = None
                d["embedding"] = vec
            else:
                d["embedding"] = rng.normal(size=dim).tolist()
            if d.has_field("embedding") and d["embedding"] is not None:
                expected[d.id] = (sample.id, np.asarray(
                    [np.nan if v is None else v for v in d["embedding"]], dtype=np.float32))
            dets.append(d)
        sample["autolabels"] = fo.Detections(detections=dets)
        sample.save()

    sids, lids, arr = bulk.read_label_vectors(dataset, "autolabels.detections", "embedding")
    assert sorted(lids) == sorted(expected) and arr.shape == (len(expected), dim)
    for sid, lid, row in zip(sids, lids, arr):
        assert sid == expected[lid][0]
        np.testing.assert_array_equal(row, expected[lid][1])

    view = dataset.filter_labels("autolabels", F("label") == "a")
    _, vlids, varr = bulk.read_label_vectors(view, "autolabels.detections", "embedding")
    want = [lid for lid in view.values("autolabels.detections.id", unwind=True) if lid in expected]
    assert vlids == want and varr.shape == (len(want), dim)

    # the same order as FiftyOne's own reader
    assert lids == [lid for lid in dataset.values("autolabels.detections.id", unwind=True)
                    if lid in expected]
    # load_label_embeddings reads declared attributes through it
    bulk.declare_field(dataset, "autolabels", fo.Detections, {"embedding": fo.FloatField})
    lids_e, sids_e, emb = E.load_label_embeddings(dataset, "autolabels", "embedding")
    assert lids_e == lids and sids_e == sids
    np.testing.assert_array_equal(emb, arr)


def test_read_label_vectors_names_the_label_of_another_length(dataset):
    from stoplight.plugins.common import bulk

    sample = dataset.first()
    odd = fo.Detection(label="a", bounding_box=[0, 0, 1, 1], embedding=[0.5] * 7)
    sample["autolabels"] = fo.Detections(detections=[
        fo.Detection(label="a", bounding_box=[0, 0, 1, 1], embedding=[0.5] * 8), odd,
    ])
    sample.save()
    with pytest.raises(ValueError, match=odd.id):
        bulk.read_label_vectors(dataset, "autolabels.detections", "embedding")
