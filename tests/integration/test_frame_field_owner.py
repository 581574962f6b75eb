"""Field ownership on video frame fields (``frames.<field>``).

``zero_shot_detect`` on videos replaces the labels of the frames it labels
and ``track_labels`` replaces a video's undecided track labels: pointed at a
frame field of a person's labels, either would wipe them. Both refuse such a
field unless the caller takes it over (``adopt_field=True``), as the image
writers do (:mod:`stoplight.plugins.common.field_owner`). Real MP4s, tiny
OWLv2 and SAM 2 checkpoints, real FiftyOne video datasets. Each refusal has
its control: the same call on a field Stoplight made for that purpose (or
adopted) goes through.
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import pytest

from maskkit import make_video, tracker_checkpoint
from stoplight.plugins.autolabel.pipeline import zero_shot_detect
from stoplight.plugins.autolabel.tracking import track_labels
from stoplight.plugins.common.field_owner import field_purpose

CLASSES = ["person", "square"]


@pytest.fixture(scope="module")
def video(tmp_root):
    root = tmp_root / "owner-videos"
    root.mkdir(exist_ok=True)
    return make_video(root / "shapes.mp4", num_frames=5)


@pytest.fixture(scope="module")
def sam2(tmp_root):
    return tracker_checkpoint(tmp_root, "sam2")


@pytest.fixture()
def ds(video):
    """One video whose frames 1 and 3 hold a person's labels in ``frames.gt``
    (the square, accepted) and nothing else."""
    ds = fo.Dataset()
    sample = fo.Sample(filepath=video.path)
    for n in (1, 3):
        det = fo.Detection(label="square", bounding_box=list(video.boxes["square"][n - 1]), review="accepted")
        sample.frames[n] = fo.Frame(gt=fo.Detections(detections=[det]))
    ds.add_sample(sample)
    yield ds
    ds.delete()


def _gt(ds, field="gt"):
    return sorted((n, d.id, d.label, tuple(d.bounding_box)) for s in ds.select_fields(f"frames.{field}")
                  for n, f in s.frames.items() if f[field] for d in f[field].detections)


def _detect(view, tiny_checkpoint, **kw):
    return zero_shot_detect(view, backend="owlv2", checkpoint=tiny_checkpoint("owlv2"), classes=CLASSES,
                            confidence_threshold=0.0, device="cpu", batch_size=4, progress=False, **kw)


def test_video_labeling_refuses_a_frame_field_of_human_labels(ds, tiny_checkpoint):
    before = _gt(ds)
    for name in ("frames.gt", "gt"):  # with or without the prefix
        with pytest.raises(ValueError, match=r"'label_field': field 'frames\.gt' exists.*adopt_field=True"):
            _detect(ds, tiny_checkpoint, label_field=name, overwrite=True)
    ds.reload()
    assert _gt(ds) == before and len(before) == 2
    assert not ds.list_runs()  # refused before anything was recorded

    # control: a new frame field is Stoplight's, and its own re-runs go through
    _detect(ds, tiny_checkpoint, label_field="frames.auto")
    assert field_purpose(ds, "frames.auto") == "autolabels"
    assert ds.get_field("frames.auto").info == {"stoplight": {"purpose": "autolabels"}}
    summary = _detect(ds, tiny_checkpoint, label_field="frames.auto", overwrite=True)
    assert summary["status"] == "completed" and summary["num_labels"] > 0

    # taking the human field over is explicit, keeps decided labels, and marks it
    summary = _detect(ds, tiny_checkpoint, label_field="frames.gt", overwrite=True, adopt_field=True)
    assert summary["status"] == "completed"
    assert field_purpose(ds, "frames.gt") == "autolabels"
    kept = {i for _, i, _, _ in _gt(ds)}
    assert {i for _, i, _, _ in before} <= kept  # accepted labels survive the overwrite


def test_tracking_refuses_a_frame_field_it_does_not_own(ds, video, tiny_checkpoint, sam2):
    _detect(ds, tiny_checkpoint, label_field="frames.auto")
    before = _gt(ds)
    kw = dict(label_field="frames.gt", checkpoint=sam2, device="cpu", progress=False)
    # a person's labels, and Stoplight's autolabels (another purpose): refused
    for target, found in (("gt_copy", "did not create it"), ("auto", "created it for 'autolabels'")):
        if target == "gt_copy":
            ds.clone_frame_field("gt", "gt_copy")
        with pytest.raises(ValueError, match=rf"'track_field': field 'frames\.{target}' exists and .*{found}"):
            track_labels(ds, track_field=target, **kw)
    ds.reload()
    assert _gt(ds) == before and _gt(ds, "gt_copy") == before
    assert not [k for k in ds.list_runs() if ds.get_run_info(k).config.stoplight_method == "track_labels"]

    # control: a new field is Stoplight's tracks; re-running it goes through
    first = track_labels(ds, track_field="tracks", **kw)
    assert first["num_tracks"] >= 1 and field_purpose(ds, "frames.tracks") == "tracks"
    again = track_labels(ds, track_field="frames.tracks", overwrite=True, **kw)
    assert again["status"] == "completed" and again["num_track_labels"] > 0
    adopted = track_labels(ds, track_field="gt_copy", adopt_field=True, **kw)
    assert adopted["status"] == "completed" and field_purpose(ds, "frames.gt_copy") == "tracks"


def test_a_field_from_before_the_mark_is_known_by_its_run(ds, sam2):
    track_labels(ds, label_field="frames.gt", track_field="tracks", checkpoint=sam2, device="cpu", progress=False)
    f = ds.get_field("frames.tracks")
    f.info = {}
    f.save()
    ds.reload()
    assert field_purpose(ds, "frames.tracks") == "tracks"  # by the track_labels run record
    again = track_labels(ds, label_field="frames.gt", track_field="tracks", checkpoint=sam2, device="cpu",
                         overwrite=True, progress=False)
    assert again["status"] == "completed"
    # control: without that run, the same unmarked field is nobody's
    for key in ds.list_runs():
        ds.delete_run(key)
    assert field_purpose(ds, "frames.tracks") is None


def test_track_operator_refuses_unless_adopt_field(ds, sam2):
    ds.clone_frame_field("gt", "gt_copy")
    params = {"label_field": "frames.gt", "track_field": "gt_copy", "checkpoint": sam2, "device": "cpu"}
    ctx = {"dataset": ds, "view": ds.view()}
    with pytest.raises(Exception, match="adopt_field=True"):
        foo.execute_operator("@stoplight/autolabel/track_labels", ctx=dict(ctx, params=params))
    ok = foo.execute_operator("@stoplight/autolabel/track_labels", ctx=dict(ctx, params=dict(params, adopt_field=True)))
    assert ok.error is None, ok.error
    assert field_purpose(ds, "frames.gt_copy") == "tracks"
