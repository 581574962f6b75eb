"""Bad input, generated, through the real pipeline (issue 7, item 1).

Every kind of bad input runs through the real ``zero_shot_detect`` (tiny
random OWLv2 checkpoint), and where the kind reaches them through
``compute_label_embeddings`` (tiny random CLIP) and ``score_labels``, on a
real dataset in the test MongoDB. Each test snapshots the raw sample
documents before and after, and checks:

- a bad file fails only its own sample, with a message naming the file, a
  failure entry in the run record, and no write to that sample;
- an odd-but-valid file is decoded and labeled;
- a bad parameter raises a ``ValueError`` naming the parameter before
  anything is written (no field, no run record);
- the other samples are labeled, and nothing stored before is changed: the
  ground truth, other fields, and a label a person already reviewed
  (``review``, ``reviewed_by``, ``reviewed_at``), which a resuming run skips.
"""

from __future__ import annotations

import datetime
import uuid

import fiftyone as fo
import numpy as np
import pytest

import badkit
import imagekit
from dbkit import non_finite_paths, raw_docs, without
from stoplight.plugins.autolabel.backends import Predictions, ZeroShotDetector
from stoplight.plugins.autolabel.pipeline import zero_shot_detect
from stoplight.plugins.scoring import embeddings as E
from stoplight.plugins.common.field_owner import mark_field
from stoplight.plugins.scoring.scores import SCORE_ATTRS, score_labels

LABELS = "autolabels"
CLASSES = ["person", "bus"]
REVIEW = dict(review="accepted", reviewed_by="alice", reviewed_at=datetime.datetime(2024, 1, 2, 3, 4, 5))


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def good_paths(tmp_path_factory):
    """Three real photos, downscaled so that a run takes milliseconds."""
    from PIL import Image

    out = tmp_path_factory.mktemp("good")
    paths = []
    for i, src in enumerate(imagekit.photo_paths()[:3]):
        with Image.open(src) as im:
            im = im.convert("RGB")
            im.thumbnail((320, 320))
            paths.append(out / f"good{i}.jpg")
            im.save(paths[-1], quality=90)
    return paths


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="module")
def clip(tmp_root):
    name, ckpt = E.build_random_clip(str(tmp_root / "checkpoints" / "clip-bad-input"))
    return E.load_clip(name, ckpt, device="cpu")


@pytest.fixture()
def make_dataset(good_paths):
    """``make_dataset(extra_paths)``: the good photos, then ``extra_paths``.

    Every sample has a ``ground_truth`` and a ``notes`` field; the first
    sample already holds an auto-label a person reviewed.
    """
    created = []

    def make(extra_paths=()):
        ds = fo.Dataset(f"bad-input-{uuid.uuid4().hex[:8]}")
        samples = [fo.Sample(filepath=str(p)) for p in [*good_paths, *extra_paths]]
        for s in samples:
            s["ground_truth"] = fo.Detections(
                detections=[fo.Detection(label="person", bounding_box=[0.1, 0.1, 0.3, 0.3])]
            )
            s["notes"] = "stored before the run"
        samples[0][LABELS] = fo.Detections(
            detections=[fo.Detection(label="bus", bounding_box=[0.2, 0.2, 0.5, 0.5], confidence=0.9, **REVIEW)]
        )
        ds.add_samples(samples)
        # as if an earlier zero_shot_detect had made it (the field's owner
        # mark): a field of someone else's labels is refused (test_security_fields)
        mark_field(ds, LABELS, "autolabels")
        created.append(ds)
        return ds

    yield make
    for ds in created:
        if fo.dataset_exists(ds.name):
            ds.delete()


@pytest.fixture()
def label(tiny_checkpoint):
    def _label(view, **kwargs):
        kwargs.setdefault("backend", "owlv2")
        kwargs.setdefault("checkpoint", tiny_checkpoint("owlv2"))
        if "ontology" not in kwargs:
            kwargs.setdefault("classes", CLASSES)
        kwargs.setdefault("confidence_threshold", 0.0)
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("batch_size", 2)  # the bad sample shares a batch
        kwargs.setdefault("write_every", 2)
        kwargs.setdefault("num_workers", 1)
        kwargs.setdefault("progress", False)
        return zero_shot_detect(view, **kwargs)

    return _label


# ------------------------------------------------------------------- checks


def _ids(ds):
    return ds.values("id")


def _check_labeling(ds, before, summary, bad_id=None, bad_fails=False, bad_name=None):
    """The run completed, labeled every sample it should, changed nothing else."""
    after = raw_docs(ds)
    reviewed_id = _ids(ds)[0]
    assert summary["status"] == "completed"
    assert set(after) == set(before)
    # skipped (already labeled): byte for byte the same, review included
    assert after[reviewed_id] == before[reviewed_id]
    # only the label field was written
    assert without(after, [LABELS]) == without(before, [LABELS])
    for sid, doc in after.items():
        assert not non_finite_paths(doc.get(LABELS)), sid
        if sid in (reviewed_id, bad_id):
            continue
        assert doc.get(LABELS) is not None, f"sample {sid} was not labeled"
        for d in doc[LABELS]["detections"]:
            x, y, w, h = d["bounding_box"]
            assert 0 <= x <= 1 and 0 <= y <= 1 and 0 < w <= 1 and 0 < h <= 1
            assert x + w <= 1 + 1e-9 and y + h <= 1 + 1e-9
    results = ds.load_run_results(summary["run_key"])
    assert ds.get_run_info(summary["run_key"]).config.status == "completed"
    if bad_id is None:
        return
    if bad_fails:
        assert after[bad_id] == before[bad_id], "a failed sample was written"
        assert summary["num_failed_samples"] == 1
        (failure,) = summary["failures"]
        assert failure["sample_id"] == bad_id
        assert failure["filepath"] == ds[bad_id].filepath
        if bad_name:
            assert bad_name in failure["error"], failure["error"]
        assert [f["sample_id"] for f in results.failures] == [bad_id]
        assert summary["num_processed_samples"] == len(after) - 2
    else:
        assert summary["num_failed_samples"] == 0 and summary["failures"] == []
        assert after[bad_id].get(LABELS) is not None, "the odd image was not labeled"


def _copy_labels(ds, src_id, dst_id):
    """Gives ``dst_id`` fresh copies of ``src_id``'s auto-labels."""
    dets = ds[src_id][LABELS].detections
    copies = [fo.Detection(label=d.label, bounding_box=d.bounding_box, confidence=d.confidence) for d in dets]
    ds.set_values(LABELS, {dst_id: fo.Detections(detections=copies)}, key_field="id")


def _check_embedding(ds, clip, bad_id=None, bad_fails=False, bad_name=None):
    before = raw_docs(ds)
    summary = E.compute_label_embeddings(ds, LABELS, clip=clip, batch_size=16, num_workers=1, progress=False)
    after = raw_docs(ds)
    assert summary["status"] == "completed"
    assert without(after, label_attrs=["embedding"]) == without(before, label_attrs=["embedding"])
    for sid, doc in after.items():
        assert not non_finite_paths(doc.get(LABELS)), sid
        for d in (doc.get(LABELS) or {}).get("detections", []):
            if sid == bad_id and bad_fails:
                assert d.get("embedding") is None
            else:
                assert len(d["embedding"]) == clip.dim, sid
    if bad_fails:
        (failure,) = summary["failures"]
        assert failure["sample_id"] == bad_id
        if bad_name:
            assert bad_name in failure["error"], failure["error"]
        assert summary["num_failed_labels"] == len(after[bad_id][LABELS]["detections"]) > 0
    else:
        assert summary["failures"] == []
    return summary


def _check_scoring(ds, rer=False):
    """score_labels completes, writes no NaN, changes nothing but scores.

    RER (autoencoders trained per class: pure computation, tens of seconds
    on a loaded 2-core machine) only where NaN inputs could reach it.
    """
    before = raw_docs(ds)
    summary = score_labels(ds, LABELS, k=3, rer=rer, progress=False)
    after = raw_docs(ds)
    assert summary["status"] == "completed"
    assert without(after, label_attrs=SCORE_ATTRS) == without(before, label_attrs=SCORE_ATTRS)
    scored = 0
    for sid, doc in after.items():
        for d in (doc.get(LABELS) or {}).get("detections", []):
            assert not non_finite_paths({a: d.get(a) for a in SCORE_ATTRS}), (sid, d["_id"])
            scored += d.get("uncertainty") is not None
    assert scored > 0
    return summary


# ------------------------------------------------------------ image files


@pytest.mark.parametrize("kind", sorted(badkit.UNREADABLE))
def test_unreadable_file_fails_its_sample_only(kind, corpus_dir, make_dataset, label, clip):
    path = badkit.write(kind, corpus_dir / kind)
    ds = make_dataset([path])
    bad_id = _ids(ds)[-1]
    before = raw_docs(ds)

    summary = label(ds)
    _check_labeling(ds, before, summary, bad_id, bad_fails=True, bad_name=str(path))

    # the same file behind a sample that has labels: embedding fails that
    # sample alone, scoring (no pixels) scores everything
    _copy_labels(ds, _ids(ds)[1], bad_id)
    _check_embedding(ds, clip, bad_id, bad_fails=True, bad_name=str(path))
    _check_scoring(ds)


def test_huge_image_is_refused_from_its_header(corpus_dir):
    """20000 x 20000: refused with the limit in the message, before decoding."""
    from stoplight.plugins.common.images import MAX_IMAGE_PIXELS, ImageLoadError, load_image

    path = badkit.write("huge_20000x20000", corpus_dir / "huge-header")
    with pytest.raises(ImageLoadError, match="too large") as info:
        load_image(str(path))
    assert str(path) in str(info.value)
    # under Pillow's own refusal (179 MP) the explicit limit decides
    mid = badkit.huge_png(corpus_dir / "huge-header" / "mid.png", width=12000, height=12000)
    assert 12000 * 12000 > MAX_IMAGE_PIXELS
    with pytest.raises(ImageLoadError, match="MAX_IMAGE_PIXELS"):
        load_image(str(mid))
    # and a caller may raise it
    small = badkit.huge_png(corpus_dir / "huge-header" / "small.png", width=300, height=200)
    with pytest.raises(ImageLoadError, match="300x200"):
        load_image(str(small), max_pixels=300 * 200 - 1)
    assert load_image(str(small), max_pixels=300 * 200).shape == (200, 300, 3)


@pytest.mark.parametrize("kind", sorted(badkit.READABLE))
def test_odd_but_valid_file_is_labeled(kind, corpus_dir, make_dataset, label, clip):
    path = badkit.write(kind, corpus_dir / kind)
    ds = make_dataset([path])
    bad_id = _ids(ds)[-1]
    before = raw_docs(ds)

    summary = label(ds)
    _check_labeling(ds, before, summary, bad_id, bad_fails=False)
    _check_embedding(ds, clip)
    _check_scoring(ds)


def test_point_cloud_dataset_is_refused_by_the_operator_too(tmp_path, label):
    import fiftyone.operators as foo

    ds = fo.Dataset(f"bad-input-pcd-{uuid.uuid4().hex[:8]}")
    try:
        ds.add_sample(fo.Sample(filepath=str(tmp_path / "scan.pcd")))
        with pytest.raises(ValueError, match=f"'{ds.name}' has media type 'point-cloud'"):
            label(ds)
        with pytest.raises(Exception, match="has media type 'point-cloud'"):
            foo.execute_operator(
                "@stoplight/autolabel/zero_shot_detect",
                ctx={"dataset": ds, "view": ds.view()},
                params={"view_target": "DATASET", "classes": CLASSES, "backend": "owlv2", "device": "cpu"},
            )
        assert not ds.has_field(LABELS) and ds.list_runs() == []
    finally:
        ds.delete()


# --------------------------------------------------------------- parameters


def _param_cases(tmp_path, tiny_checkpoint):
    jpg = badkit.write("cmyk_jpeg", tmp_path)
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "weights.txt").write_text("not a model")
    (tmp_path / "garbage.pt").write_bytes(b"not a pickle at all" * 10)
    return {
        "classes_empty_list": (dict(classes=[]), "'classes'"),
        "classes_empty_string": (dict(classes=""), "'classes'"),
        "classes_whitespace_only": (dict(classes=["person", "  \t "]), "'classes'.*whitespace"),
        "classes_none_entry": (dict(classes=["person", None]), "'classes' must hold strings"),
        "classes_as_mapping": (dict(classes={"a": "b"}), "'classes'"),
        "ontology_whitespace_class": (dict(ontology={"a person": " "}), "'ontology'"),
        "ontology_not_json": (dict(ontology="{a person: x"), "'ontology' is not valid JSON"),
        "label_field_other_type": (dict(label_field="notes"), "'notes' already exists"),
        "label_field_reference_type": (dict(label_field="ground_truth_cls"), "'ground_truth_cls'"),
        "label_field_not_a_name": (dict(label_field="auto.labels"), "'label_field'"),
        "confidence_threshold_nan": (dict(confidence_threshold=float("nan")), "'confidence_threshold'"),
        "batch_size_zero": (dict(batch_size=0), "'batch_size'"),
        "unknown_backend": (dict(backend="yolo-v99"), "Unknown backend 'yolo-v99'"),
        "checkpoint_missing": (dict(checkpoint=str(tmp_path / "nope")), "'checkpoint'.*does not exist"),
        "checkpoint_is_an_image": (dict(checkpoint=str(jpg)), "'checkpoint'.*is a file"),
        "checkpoint_dir_without_config": (dict(checkpoint=str(tmp_path / "empty_dir")), "'checkpoint'.*config.json"),
        "checkpoint_other_model_type": (
            dict(backend="owlvit", checkpoint=tiny_checkpoint("owlv2")), "'checkpoint'.*owlv2"
        ),
        "yolo_checkpoint_text_file": (
            dict(backend="yoloe", checkpoint=str(tmp_path / "weights.txt")), "'checkpoint'.*not an ultralytics"
        ),
        "yolo_checkpoint_garbage_pt": (
            dict(backend="yoloe", checkpoint=str(tmp_path / "garbage.pt")), "'checkpoint'"
        ),
        "yolo_checkpoint_url": (
            dict(backend="yoloe", checkpoint="https://example.com/model.pt"), "'checkpoint'.*URLs"
        ),
        "backend_option_unknown": (dict(backend_options={"colour": 1}), "Unknown option"),
        "trust_remote_code_string": (
            dict(backend_options={"trust_remote_code": "false"}), "'trust_remote_code' must be True or False"
        ),
    }


PARAM_KINDS = [
    "classes_empty_list", "classes_empty_string", "classes_whitespace_only", "classes_none_entry",
    "classes_as_mapping", "ontology_whitespace_class", "ontology_not_json", "label_field_other_type",
    "label_field_reference_type", "label_field_not_a_name", "confidence_threshold_nan",
    "batch_size_zero", "unknown_backend", "checkpoint_missing", "checkpoint_is_an_image",
    "checkpoint_dir_without_config", "checkpoint_other_model_type", "yolo_checkpoint_text_file",
    "yolo_checkpoint_garbage_pt", "yolo_checkpoint_url", "backend_option_unknown",
    "trust_remote_code_string",
]


@pytest.mark.parametrize("kind", PARAM_KINDS)
def test_bad_parameter_is_named_and_nothing_is_written(kind, tmp_path, make_dataset, label, tiny_checkpoint):
    cases = _param_cases(tmp_path, tiny_checkpoint)
    assert set(cases) == set(PARAM_KINDS)
    kwargs, match = cases[kind]
    ds = make_dataset()
    ds.add_sample_field("ground_truth_cls", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    before, schema = raw_docs(ds), set(ds.get_field_schema(flat=True))
    with pytest.raises(ValueError, match=match):
        label(ds, **kwargs)
    assert raw_docs(ds) == before
    assert set(ds.get_field_schema(flat=True)) == schema
    assert ds.list_runs() == []


@pytest.mark.parametrize(
    "kind, classes, written",
    [
        ("duplicate_classes", ["person", "person", " person ", "bus", "bus\t"], ["person", "bus"]),
        ("non_ascii_classes", ["пешеход", "自転車", "café ☕"], ["пешеход", "自転車", "café ☕"]),
        ("very_long_prompt", ["a " * 400 + "person", "bus"], ["a " * 400 + "person", "bus"]),
        ("thousand_classes", [f"class {i}" for i in range(1000)], [f"class {i}" for i in range(1000)]),
    ],
)
def test_odd_but_valid_prompts_are_labeled(kind, classes, written, make_dataset, label, clip):
    ds = make_dataset()
    before = raw_docs(ds)
    summary = label(ds, classes=classes)
    _check_labeling(ds, before, summary)
    config = ds.get_run_info(summary["run_key"]).config
    assert config.classes == written
    labels = set(ds.distinct(f"{LABELS}.detections.label")) - {"bus"}
    assert labels and labels <= set(written)
    new = [d for d in ds.values(f"{LABELS}.detections", unwind=True) if not d.has_field("review")]
    assert new and all(len(d["class_scores"]) == len(written) for d in new)
    _check_embedding(ds, clip)
    _check_scoring(ds)


# ------------------------------------------------------ misbehaving backends


class ScriptedDetector(ZeroShotDetector):
    """A backend whose outputs a test dictates: ``script(image, num_prompts)``."""

    name = "scripted"
    default_checkpoint = "none"

    def __init__(self, script, prepare_check=None):
        super().__init__(device="cpu")
        self.script = script
        self.prepare_check = prepare_check

    def set_prompts(self, prompts):
        self.prompts = list(prompts)

    def prepare(self, images):
        for img in images:
            if self.prepare_check:
                self.prepare_check(img)
        return list(images)

    def predict(self, batch):
        return [self.script(img, len(self.prompts)) for img in batch]


def _valid_row(p):
    return np.r_[0.9, np.full(p - 1, 0.05)]


def test_nan_and_out_of_range_predictions_are_dropped_and_recorded(make_dataset, label, clip):
    def script(img, p):
        h, w = img.shape[:2]
        boxes = [
            [0.1 * w, 0.1 * h, 0.5 * w, 0.5 * h],      # valid
            [0.2 * w, 0.2 * h, 0.6 * w, 0.6 * h],      # NaN score
            [np.nan, 0.1 * h, 0.5 * w, 0.5 * h],       # NaN coordinate
            [-np.inf, -np.inf, np.inf, np.inf],        # infinite: not "the whole image"
            [0.3 * w, 0.3 * h, 0.7 * w, 0.9 * h],      # score above 1 (logits, not probabilities)
            [0.0, 0.0, 0.4 * w, 0.2 * h],              # negative score
        ]
        scores = np.stack([_valid_row(p)] * 6)
        scores[1, 0] = np.nan
        scores[4, 0] = 3.2
        scores[5, 1] = -0.5
        return Predictions(np.array(boxes), scores)

    ds = make_dataset()
    before = raw_docs(ds)
    summary = label(ds, detector=ScriptedDetector(script))
    _check_labeling(ds, before, summary)
    n_new = len(ds) - 1
    assert summary["num_invalid_predictions"] == 5 * n_new
    assert summary["num_labels"] == n_new
    assert {w["sample_id"] for w in summary["warnings"]} == set(_ids(ds)[1:])
    assert all("5 predictions" in w["warning"] for w in summary["warnings"])
    assert ds.get_run_info(summary["run_key"]).config.num_invalid_predictions == 5 * n_new
    for dets in ds.values(LABELS)[1:]:
        (d,) = dets.detections
        assert d.bounding_box == pytest.approx([0.1, 0.1, 0.4, 0.4])
        assert d.confidence == pytest.approx(0.9)
    _check_embedding(ds, clip)


def test_boxes_outside_the_image_are_clipped_or_dropped(make_dataset, label):
    def script(img, p):
        h, w = img.shape[:2]
        boxes = [
            [-0.5 * w, -0.5 * h, 0.5 * w, 0.5 * h],    # spills over the top-left: clipped
            [0.5 * w, 0.5 * h, 3.0 * w, 3.0 * h],      # spills over the bottom-right: clipped
            [-2.0 * w, -2.0 * h, 4.0 * w, 4.0 * h],    # covers everything: the whole image
            [1.5 * w, 0.1 * h, 2.0 * w, 0.5 * h],      # entirely right of the image: dropped
            [0.1 * w, -3.0 * h, 0.5 * w, -1.0 * h],    # entirely above: dropped
            [0.6 * w, 0.6 * h, 0.2 * w, 0.2 * h],      # inverted corners: dropped
            [0.4 * w, 0.4 * h, 0.4 * w, 0.8 * h],      # zero width: dropped
        ]
        scores = np.stack([_valid_row(p)] * len(boxes))
        scores[:, 0] = np.linspace(0.9, 0.6, len(boxes))  # distinct scores, NMS order
        return Predictions(np.array(boxes), scores)

    ds = make_dataset()
    before = raw_docs(ds)
    summary = label(ds, detector=ScriptedDetector(script), nms_iou=1.0)
    _check_labeling(ds, before, summary)
    assert summary["num_invalid_predictions"] == 0
    for dets in ds.values(LABELS)[1:]:
        got = sorted(tuple(np.round(d.bounding_box, 6)) for d in dets.detections)
        assert got == sorted([(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 0.5, 0.5), (0.0, 0.0, 1.0, 1.0)])


def test_model_failing_on_one_image_fails_that_sample_only(make_dataset, label, corpus_dir):
    odd = badkit.write("one_by_one", corpus_dir / "model-fails")

    def script(img, p):
        if img.shape[:2] == (1, 1):
            raise RuntimeError("kernel size can't be greater than actual input size")
        return Predictions(np.array([[1.0, 1.0, 5.0, 5.0]]), _valid_row(p)[None])

    ds = make_dataset([odd])
    bad_id = _ids(ds)[-1]
    before = raw_docs(ds)
    summary = label(ds, detector=ScriptedDetector(script))
    _check_labeling(ds, before, summary, bad_id, bad_fails=True, bad_name="kernel size")
    assert "The model failed on this image" in summary["failures"][0]["error"]


def test_preprocessing_failing_on_one_image_fails_that_sample_only(make_dataset, label, corpus_dir):
    odd = badkit.write("thin_strip_2000x3", corpus_dir / "prepare-fails")

    def check(img):
        if img.shape[0] < 8:
            raise ValueError("height 3 is below the patch size")

    def script(img, p):
        return Predictions(np.array([[1.0, 1.0, 5.0, 5.0]]), _valid_row(p)[None])

    ds = make_dataset([odd])
    bad_id = _ids(ds)[-1]
    before = raw_docs(ds)
    summary = label(ds, detector=ScriptedDetector(script, prepare_check=check))
    _check_labeling(ds, before, summary, bad_id, bad_fails=True, bad_name=str(odd))
    assert "Cannot prepare image" in summary["failures"][0]["error"]


def test_broken_backend_is_raised_not_recorded_per_sample(make_dataset, label):
    """When every image fails and none ever worked, the backend is broken."""
    def script(img, p):
        raise RuntimeError("CUDA error: device-side assert triggered")

    ds = make_dataset()
    before = raw_docs(ds)
    with pytest.raises(RuntimeError, match="device-side assert"):
        label(ds, detector=ScriptedDetector(script))
    assert without(raw_docs(ds), [LABELS]) == without(before, [LABELS])
    (key,) = ds.list_runs()
    assert ds.get_run_info(key).config.status == "failed"


@pytest.mark.slow
def test_label_document_over_mongodb_limit_fails_its_sample_only(make_dataset, label, corpus_dir):
    """1,000 classes x 2,000 boxes: a 34 MB document, refused by MongoDB
    (16 MB limit); its chunk-mates are still written."""
    big = badkit.write("png_named_jpeg", corpus_dir / "too-large-doc")
    grid = np.stack(np.meshgrid(np.arange(50), np.arange(40)), -1).reshape(-1, 2) * 5.0
    boxes = np.c_[grid, grid + 4.0]  # 2,000 disjoint 4x4 boxes: NMS keeps all

    def script(img, p):
        if img.shape[:2] == (360, 270):  # the big one
            rng = np.random.default_rng(0)
            return Predictions(boxes, rng.uniform(0.3, 0.9, (len(boxes), p)))
        return Predictions(np.array([[1.0, 1.0, 5.0, 5.0]]), np.full((1, p), 0.5))

    classes = [f"class {i}" for i in range(1000)]
    ds = make_dataset([big])
    bad_id = _ids(ds)[-1]
    before = raw_docs(ds)
    summary = label(ds, detector=ScriptedDetector(script), classes=classes, batch_size=4, write_every=4)
    _check_labeling(ds, before, summary, bad_id, bad_fails=True, bad_name="refused the labels")
    assert summary["num_labels"] == len(ds) - 2


# ----------------------------------------------------- NaN into score_labels


def test_score_labels_with_nan_confidences_and_embeddings(make_dataset, label, clip):
    """Broken stored values (NaN confidence, NaN in an embedding or in
    class_scores) must not crash scoring nor be written as scores."""
    ds = make_dataset()
    label(ds)
    E.compute_label_embeddings(ds, LABELS, clip=clip, num_workers=1, progress=False)
    rows = [d for d in ds.values(f"{LABELS}.detections", unwind=True) if not d.has_field("review")]
    assert len(rows) >= 3
    ds.set_label_values(f"{LABELS}.detections.confidence", {rows[0].id: float("nan")})
    ds.set_label_values(f"{LABELS}.detections.embedding", {rows[1].id: [float("nan")] * clip.dim})
    ds.set_label_values(f"{LABELS}.detections.class_scores", {rows[2].id: [float("nan"), 0.5]})
    summary = _check_scoring(ds, rer=True)
    assert "rer" in summary["signals"] and "knn_agreement" in summary["signals"]
