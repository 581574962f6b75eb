"""zero_shot_detect on a video dataset: frame-level labels, every k-th frame.

A real MP4 the tests write (moving shapes over a photo, tests/support/maskkit.py),
a real tiny OWLv2 checkpoint, real FiftyOne video datasets. What is
checked: which frames get labels; each frame's labels equal the image
pipeline's labels of the same decoded frame; resume per frame; an
overwrite keeps the labels a person decided; a broken video is recorded and
the run goes on; the run record; the operator.
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from PIL import Image

from maskkit import make_video
from stoplight.plugins.autolabel.pipeline import zero_shot_detect
from stoplight.plugins.autolabel.video_frames import read_frames

BACKEND = "owlv2"
CLASSES = ["person", "square"]
URI = "@stoplight/autolabel/zero_shot_detect"


@pytest.fixture(scope="module")
def videos(tmp_root):
    root = tmp_root / "videos"
    root.mkdir(exist_ok=True)
    return [make_video(root / "a.mp4", num_frames=9), make_video(root / "b.mp4", num_frames=5, width=128, height=96)]


@pytest.fixture()
def video_ds(videos):
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=v.path) for v in videos])
    assert ds.media_type == "video"
    yield ds
    ds.delete()


@pytest.fixture()
def run(tiny_checkpoint):
    def _run(view, **kwargs):
        kwargs.setdefault("backend", BACKEND)
        kwargs.setdefault("checkpoint", tiny_checkpoint(BACKEND))
        kwargs.setdefault("classes", CLASSES)
        kwargs.setdefault("confidence_threshold", 0.0)
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("batch_size", 4)  # batches span both videos
        kwargs.setdefault("progress", False)
        return zero_shot_detect(view, **kwargs)

    return _run


def _frame_labels(ds, field="autolabels"):
    """``{(filepath, frame_number): [(label, box, confidence, id, review)]}``."""
    out = {}
    for sample in ds.select_fields(f"frames.{field}"):
        for number, frame in sample.frames.items():
            dets = frame[field]
            if dets is not None:
                out[(sample.filepath, number)] = [
                    (d.label, d.bounding_box, d.confidence, d.id, d.get_field("review") if d.has_field("review") else None)
                    for d in dets.detections]
    return out


def test_every_kth_frame_gets_the_labels_an_image_of_it_gets(video_ds, videos, run, tmp_path):
    summary = run(video_ds, frame_step=3)
    assert summary["status"] == "completed" and summary["num_failed_samples"] == 0
    labels = _frame_labels(video_ds)
    expected = {(videos[0].path, n) for n in (1, 4, 7)} | {(videos[1].path, n) for n in (1, 4)}
    assert set(labels) == expected
    assert summary["num_processed_frames"] == 5 and summary["num_labels"] == sum(map(len, labels.values()))
    assert summary["num_labels"] > 0
    # the same frames, decoded the same way, labeled as images
    images = fo.Dataset()
    for v in videos:
        for n, rgb in read_frames(v.path, step=3):
            path = tmp_path / f"{v.path.split('/')[-1]}-{n}.png"
            Image.fromarray(rgb).save(path)
            images.add_sample(fo.Sample(filepath=str(path), key=f"{v.path}|{n}"))
    run(images)
    try:
        for key, dets in zip(*images.values(["key", "autolabels"])):
            path, n = key.split("|")
            got = labels[(path, int(n))]
            assert [d.label for d in dets.detections] == [g[0] for g in got]
            np.testing.assert_allclose([d.bounding_box for d in dets.detections], [g[1] for g in got], atol=1e-6)
            np.testing.assert_allclose([d.confidence for d in dets.detections], [g[2] for g in got], atol=1e-6)
    finally:
        images.delete()
    info = video_ds.get_run_info(summary["run_key"])
    assert info.config.stoplight_method == "zero_shot_detect" and info.config.media_type == "video"
    assert info.config.frame_step == 3 and info.config.status == "completed"


def test_resume_per_frame_and_overwrite_keeps_decisions(video_ds, videos, run):
    first = run(video_ds, frame_step=2)
    again = run(video_ds, frame_step=2)
    assert again["num_processed_frames"] == 0 and again["num_skipped_frames"] == first["num_processed_frames"] == 8
    before = _frame_labels(video_ds)
    every = run(video_ds)  # frame_step=1: only the frames not labeled yet
    assert every["num_processed_frames"] == 14 - 8 and every["num_skipped_frames"] == 8
    after = _frame_labels(video_ds)
    assert len(after) == 14 and all(after[k] == v for k, v in before.items())  # nothing relabeled

    # a person decides two labels of frame 3 of the first video
    sample = video_ds.match(fo.ViewField("filepath") == videos[0].path).first()
    dets = sample.frames[3]["autolabels"].detections
    dets[0]["review"], dets[1]["review"] = "accepted", "rejected"
    sample.save()
    decided = {dets[0].id: "accepted", dets[1].id: "rejected"}
    redo = run(video_ds, overwrite=True)
    assert redo["num_processed_frames"] == 14 and redo["num_kept_decisions"] == 2
    final = _frame_labels(video_ds)
    frame3 = final[(videos[0].path, 3)]
    assert {g[3]: g[4] for g in frame3 if g[3] in decided} == decided
    # new labels repeating a decided one were dropped: one label per box
    for lid in decided:
        box = next(g[1] for g in frame3 if g[3] == lid)
        label = next(g[0] for g in frame3 if g[3] == lid)
        assert sum(g[0] == label and g[1] == box for g in frame3) == 1
    # every other label was replaced by the new run
    old_ids = {g[3] for labs in after.values() for g in labs} - set(decided)
    assert not old_ids & {g[3] for labs in final.values() for g in labs}


def test_a_broken_video_is_recorded_and_the_run_goes_on(video_ds, run, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    video_ds.add_sample(fo.Sample(filepath=str(broken)))
    summary = run(video_ds, frame_step=4)
    assert summary["status"] == "completed"
    assert summary["num_failed_samples"] == 1 and "broken.mp4" in summary["failures"][0]["error"]
    assert summary["num_processed_frames"] == 3 + 2  # 1, 5, 9 and 1, 5
    assert summary["num_processed_samples"] == 2


def test_bad_frame_step_names_the_parameter(video_ds, run):
    with pytest.raises(ValueError, match="'frame_step'"):
        run(video_ds, frame_step=0)
    assert not video_ds.list_runs()


def test_operator_labels_frames_of_a_video_dataset(video_ds, tiny_checkpoint):
    result = foo.execute_operator(URI, ctx={
        "dataset": video_ds, "view": video_ds.view(),
        "params": {"backend": BACKEND, "checkpoint": tiny_checkpoint(BACKEND), "classes": CLASSES,
                   "confidence_threshold": 0.0, "device": "cpu", "frame_step": 4},
    })
    assert result.error is None, result.error
    assert {n for _, n in _frame_labels(video_ds)} == {1, 5, 9}


def test_overwrite_keeps_a_corrected_label_like_any_decision(video_ds, videos, run):
    """A correction is a person's decision (common.label_vocab.HUMAN_DECISIONS):
    re-labeling with ``overwrite=True`` keeps it. Control: a pending label of
    the same frame is replaced."""
    run(video_ds, frame_step=4)
    sample = video_ds.match(fo.ViewField("filepath") == videos[0].path).first()
    dets = sample.frames[5]["autolabels"].detections
    assert len(dets) >= 2
    dets[0]["review"] = "corrected"
    sample.save()
    corrected, pending = dets[0].id, dets[1].id
    redo = run(video_ds, frame_step=4, overwrite=True)
    assert redo["num_kept_decisions"] == 1
    ids = {g[3]: g[4] for g in _frame_labels(video_ds)[(videos[0].path, 5)]}
    assert ids.get(corrected) == "corrected"
    assert pending not in ids
