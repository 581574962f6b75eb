"""track_labels: frame labels propagated along videos with SAM 2 / SAM 3 trackers.

A real MP4 the tests write (a red square moving right, a blue disc moving
down, over a photo; tests/support/maskkit.py), tiny random SAM 2 video and SAM 3
tracker checkpoints, real FiftyOne video datasets. Random weights track
nothing meaningful, so what is checked is the machinery: the memory
pruning changes nothing; seeds -> one track each with an ``index`` on the
tracked frames; which labels seed; ``frame_step``; resume and overwrite
keeping tracks a person decided; the jump rule on the shapes' ground
truth (smooth vs teleporting); the run record; the operator.
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest

from maskkit import make_video, tracker_checkpoint
from stoplight.plugins.autolabel import sam_video as SV
from stoplight.plugins.autolabel.track_quality import jump_flags
from stoplight.plugins.autolabel.tracking import Seed, Track, covered, track_labels
from stoplight.plugins.autolabel.video_frames import read_frames

URI = "@stoplight/autolabel/track_labels"
N = 8


@pytest.fixture(scope="module")
def video(tmp_root):
    root = tmp_root / "track-videos"
    root.mkdir(exist_ok=True)
    return make_video(root / "shapes.mp4", num_frames=N)


@pytest.fixture(scope="module")
def sam2(tmp_root):
    return tracker_checkpoint(tmp_root, "sam2")


@pytest.fixture()
def seeded(video):
    """A video dataset whose frames 1 and 5 carry labels of both shapes:
    frame 1 square accepted, frame 1 disc green, frame 5 square rejected,
    frame 5 disc yellow."""
    ds = fo.Dataset()
    sample = fo.Sample(filepath=video.path)
    for number, extra in ((1, [dict(review="accepted"), dict(queue="green")]),
                          (5, [dict(review="rejected"), dict(queue="yellow")])):
        dets = []
        for name, attrs in zip(("square", "disc"), extra):
            d = fo.Detection(label=name, bounding_box=list(video.boxes[name][number - 1]), confidence=0.9)
            for k, v in attrs.items():
                d[k] = v
            dets.append(d)
        sample.frames[number] = fo.Frame(autolabels=fo.Detections(detections=dets))
    ds.add_sample(sample)
    yield ds
    ds.delete()


def _tracks(ds, field="tracks"):
    """``{index: {frame_number: Detection}}``."""
    out: dict = {}
    for sample in ds.select_fields(f"frames.{field}"):
        for number, frame in sample.frames.items():
            for d in (frame[field].detections if frame[field] else []):
                out.setdefault(d.index, {})[number] = d
    return out


def test_pruning_memory_changes_no_output(video, sam2):
    frames = [rgb for _, rgb in read_frames(video.path)]
    h, w = frames[0].shape[:2]
    boxes = np.array([[b[0] * w, b[1] * h, (b[0] + b[2]) * w, (b[1] + b[3]) * h]
                      for b in (video.boxes["square"][3], video.boxes["disc"][3])])
    runs = []
    for prune in (True, False):
        tracker = SV.Sam2VideoTracker(sam2, device="cpu", prune=prune)
        assert tracker.window() < N  # short memory: pruning really drops outputs
        runs.append(list(tracker.track(tracker.frame_store(frames), 3, [1, 2], boxes, (w, h))))
    pruned, full = runs
    # prompted frame, later frames in order, earlier frames backwards
    assert [f.frame_index for f in pruned] == [3, 4, 5, 6, 7, 2, 1, 0]
    for a, b in zip(pruned, full):
        assert a.frame_index == b.frame_index and a.obj_ids == b.obj_ids == [1, 2]
        np.testing.assert_array_equal(a.logits, b.logits)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.object_scores, b.object_scores)
        assert a.logits.shape[0] == 2 and a.boxes.shape == (2, 4)


def test_fp16_tracking_agrees_with_fp32(video, sam2):
    """Half precision (the CUDA default) runs end to end; checked on CPU."""
    frames = [rgb for _, rgb in read_frames(video.path)][:4]
    h, w = frames[0].shape[:2]
    runs = []
    for fp16 in (False, True):
        tracker = SV.Sam2VideoTracker(sam2, device="cpu", fp16=fp16)
        runs.append(list(tracker.track(tracker.frame_store(frames), 0, [1], np.array([[10.0, 10, 60, 50]]),
                                       (w, h))))
    for a, b in zip(*runs):
        assert a.frame_index == b.frame_index and b.logits.dtype == np.float32
        np.testing.assert_allclose(a.object_scores, b.object_scores, atol=0.05)
        # random tiny weights give mask logits near 0 (fp16's subnormal
        # range): shapes and finiteness only
        assert b.logits.shape == a.logits.shape and np.isfinite(b.logits).all()


def test_frame_store_holds_the_processors_frames(video, sam2):
    """The uint8 store normalizes frames as transformers' processor does
    (up to the rounding to uint8 of the resized frame)."""
    tracker = SV.load_tracker("sam2", sam2, device="cpu", cache=False)
    frames = [rgb for _, rgb in read_frames(video.path)][:3]
    store = tracker.frame_store(frames)
    ref = tracker.processor.video_processor(videos=[frames], return_tensors="pt")["pixel_values_videos"][0]
    assert len(store) == 3 and ref.shape[-1] == tracker.side
    for i in range(3):
        diff = (store[i] - ref[i]).abs().max().item()
        assert diff < 0.03  # half a uint8 step divided by the smallest std (~0.225)


def test_seeds_become_tracks_with_an_index_on_every_frame(seeded, sam2):
    summary = track_labels(seeded, model="sam2", checkpoint=sam2, device="cpu", progress=False)
    assert summary["status"] == "completed" and summary["num_tracked_videos"] == 1
    # seeds: frame 1 square (accepted) and disc (green); frame 5's are rejected / yellow
    assert summary["num_seeds"] == 2 and summary["num_tracks"] == 2
    tracks = _tracks(seeded)
    assert set(tracks) == {1, 2}
    seed_ids = {d.id: d.label for d in seeded.first().frames[1]["autolabels"].detections}
    labels = {}
    for index, frames in tracks.items():
        # the tiny tracker's object-score head is biased to "present": every frame
        assert set(frames) == set(range(1, N + 1))
        (label,) = {d.label for d in frames.values()}
        (seed,) = {d.track_seed for d in frames.values()}
        assert seed_ids[seed] == label
        labels[index] = label
        for d in frames.values():
            assert 0.5 < d.confidence <= 1.0 and d.mask is not None and d.mask.dtype == bool
            assert d.track_jump == any(f.frame_jump for f in frames.values())
        assert not frames[1].frame_jump  # a first appearance never jumps
    assert sorted(labels.values()) == ["disc", "square"]
    assert summary["num_track_labels"] == 2 * N
    info = seeded.get_run_info(summary["run_key"])
    assert info.config.stoplight_method == "track_labels" and info.config.num_tracks == 2
    # the seed labels are untouched
    assert [d.get_field("review") if d.has_field("review") else None
            for d in seeded.first().frames[1]["autolabels"].detections] == ["accepted", None]


def test_include_label_ids_and_frame_step(seeded, sam2):
    s = track_labels(seeded, model="sam2", checkpoint=sam2, device="cpu", include="accepted", frame_step=3,
                     progress=False)
    assert s["num_seeds"] == 1 and s["num_tracks"] == 1
    (frames,) = _tracks(seeded).values()
    assert set(frames) == {1, 4, 7}  # every 3rd frame from 1 (the seed is on frame 1)
    rejected = seeded.first().frames[5]["autolabels"].detections[0]
    s = track_labels(seeded, model="sam2", checkpoint=sam2, device="cpu", label_ids=[rejected.id],
                     track_field="picked", frame_step=3, progress=False)
    assert s["num_tracks"] == 1
    (frames,) = _tracks(seeded, "picked").values()
    assert set(frames) == {1, 4, 5, 7} and {d.label for d in frames.values()} == {"square"}
    with pytest.raises(ValueError, match="label id"):
        track_labels(seeded, model="sam2", checkpoint=sam2, device="cpu", label_ids=["0" * 24], progress=False)


def test_resume_and_overwrite_keep_tracks_a_person_decided(seeded, sam2):
    first = track_labels(seeded, model="sam2", checkpoint=sam2, device="cpu", progress=False)
    again = track_labels(seeded, model="sam2", checkpoint=sam2, device="cpu", progress=False)
    assert again["num_skipped_videos"] == 1 and again["num_tracks"] == 0
    before = _tracks(seeded)
    # a person accepts one frame label of track 1
    sample = seeded.first()
    for d in sample.frames[3]["tracks"].detections:
        if d.index == 1:
            d["review"] = "accepted"
    sample.save()
    redo = track_labels(seeded, model="sam2", checkpoint=sam2, device="cpu", overwrite=True, progress=False)
    assert redo["num_kept_tracks"] == 1
    after = _tracks(seeded)
    # track 1 is kept whole, ids and all; it covers its seed, so only the
    # other seed starts a new track, with a new index
    assert {n: d.id for n, d in after[1].items()} == {n: d.id for n, d in before[1].items()}
    assert redo["num_tracks"] == 1 and set(after) == {1, 3}
    assert not {d.id for d in after[3].values()} & {d.id for d in before[2].values()}
    assert first["num_tracks"] == 2


def test_covered_links_a_later_seed_to_a_track_of_its_class():
    track = Track(1, "square", "x", {5: ([0.1, 0.1, 0.2, 0.2], None, 0.9)})
    same = Seed("a", 5, "square", [0.11, 0.1, 0.2, 0.2], 0.8)
    assert covered(same, [track], 0.5)
    assert not covered(Seed("b", 5, "disc", same.box, 0.8), [track], 0.5)  # other class
    assert not covered(Seed("c", 6, "square", same.box, 0.8), [track], 0.5)  # track not on frame 6
    assert not covered(Seed("d", 5, "square", [0.6, 0.6, 0.2, 0.2], 0.8), [track], 0.5)  # elsewhere


def test_jump_rule_on_the_shapes_ground_truth(tmp_path):
    smooth = make_video(tmp_path / "smooth.mp4", num_frames=12)
    jumpy = make_video(tmp_path / "jumpy.mp4", num_frames=12, jump_at=6)
    px = np.array([smooth.width, smooth.height] * 2)
    frames = np.arange(1, 13)
    for name in ("square", "disc"):
        assert not jump_flags(frames, smooth.boxes[name] * px).any()
    flags = jump_flags(frames, jumpy.boxes["square"] * px)
    assert flags.tolist() == [t == 6 for t in range(12)]  # only the teleport
    assert not jump_flags(frames, jumpy.boxes["disc"] * px).any()
    # every 3rd frame: three times the motion per step, still no jump
    assert not jump_flags(frames[::3], smooth.boxes["square"][::3] * px).any()
    # a mask that halves its area jumps even when its box is steady
    areas = np.r_[np.full(6, 400.0), np.full(6, 150.0)]
    assert jump_flags(frames, smooth.boxes["disc"] * px, areas).tolist() == [t == 6 for t in range(12)]
    with pytest.raises(ValueError, match="'max_area_ratio'"):
        jump_flags(frames, smooth.boxes["disc"] * px, max_area_ratio=1.0)


def test_bad_input(seeded, sam2, tmp_path):
    with pytest.raises(ValueError, match="'track_field' must differ"):
        track_labels(seeded, track_field="autolabels", checkpoint=sam2, device="cpu", progress=False)
    with pytest.raises(ValueError, match="'label_field'"):
        track_labels(seeded, label_field="frames.nope", checkpoint=sam2, device="cpu", progress=False)
    with pytest.raises(ValueError, match="'frame_step'"):
        track_labels(seeded, frame_step=0, checkpoint=sam2, device="cpu", progress=False)
    with pytest.raises(ValueError, match="'model'"):
        track_labels(seeded, model="sam9", device="cpu", progress=False)
    images = fo.Dataset()
    try:
        with pytest.raises(ValueError, match="videos"):
            track_labels(images, checkpoint=sam2, device="cpu", progress=False)
    finally:
        images.delete()
    assert not seeded.list_runs()
    # a video that does not decode is recorded, the others are tracked
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    other = fo.Sample(filepath=str(broken))
    other.frames[1] = fo.Frame(autolabels=fo.Detections(detections=[
        fo.Detection(label="square", bounding_box=[0.1, 0.1, 0.2, 0.2], review="accepted")]))
    seeded.add_sample(other)
    s = track_labels(seeded, checkpoint=sam2, device="cpu", progress=False)
    assert s["num_failed_videos"] == 1 and "broken.mp4" in s["failures"][0]["error"]
    assert s["num_tracked_videos"] == 1 and s["status"] == "completed"


def test_sam3_tracker(seeded, tmp_root):
    ckpt = tracker_checkpoint(tmp_root, "sam3")
    s = track_labels(seeded, model="sam3", checkpoint=ckpt, device="cpu", frame_step=4, progress=False)
    assert s["num_tracks"] == 2 and s["model"] == "sam3"
    assert all(set(frames) == {1, 5} for frames in _tracks(seeded).values())


def test_operator_through_the_sdk(seeded, sam2):
    label = seeded.first().frames[1]["autolabels"].detections[1]  # the green disc
    sel = [{"label_id": label.id, "sample_id": seeded.first().id, "field": "frames.autolabels", "frame_number": 1}]
    result = foo.execute_operator(URI, ctx={
        "dataset": seeded, "view": seeded.view(), "selected_labels": sel,
        "params": {"target": "SELECTED_LABELS", "checkpoint": sam2, "device": "cpu", "frame_step": 2},
    })
    assert result.error is None, result.error
    (frames,) = _tracks(seeded).values()
    assert set(frames) == {1, 3, 5, 7} and {d.label for d in frames.values()} == {"disc"}
