"""Review per track: one label's decision applies to its whole track, logged
and undoable; frame-level fields otherwise need label ids.

Real FiftyOne video datasets and the real audit log; tracks are built as
FiftyOne frame labels with an ``index`` (what track_labels writes).
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import pytest

from stoplight.plugins.common.identity import Identity
from stoplight.plugins.review import review_labels, undo_last
from stoplight.plugins.common.audit import read_log
from stoplight.plugins.review.tracks import review_tracks

FIELD = "frames.tracks"


@pytest.fixture()
def tracked(tmp_path):
    """Two videos; video A has tracks 1 (frames 1-4) and 2 (frames 2-3),
    video B has track 1 (frames 1-2); plus one label without an index."""
    ds = fo.Dataset()
    samples = []
    for name, spans in (("a", {1: range(1, 5), 2: range(2, 4)}), ("b", {1: range(1, 3)})):
        s = fo.Sample(filepath=str(tmp_path / f"{name}.mp4"))
        for number in range(1, 5):
            dets = [fo.Detection(label=f"obj{idx}", bounding_box=[0.1 * idx, 0.1, 0.2, 0.2], index=idx)
                    for idx, span in spans.items() if number in span]
            if name == "a" and number == 4:
                dets.append(fo.Detection(label="loose", bounding_box=[0.5, 0.5, 0.1, 0.1]))
            s.frames[number] = fo.Frame(tracks=fo.Detections(detections=dets))
        samples.append(s)
    ds.add_samples(samples)
    yield ds
    ds.delete()


def _states(ds):
    """``{(video, index): [review of each frame label]}``."""
    out = {}
    for sample in ds:
        name = sample.filepath.rsplit("/", 1)[-1][0]
        for number in sorted(sample.frames.keys()):
            for d in sample.frames[number]["tracks"].detections:
                review = d["review"] if d.has_field("review") else None
                out.setdefault((name, d.index), []).append(review)
    return out


def _ids(ds, video, index):
    sample = ds.match(fo.ViewField("filepath").ends_with(f"/{video}.mp4")).first()
    return [d.id for n in sorted(sample.frames.keys()) for d in sample.frames[n]["tracks"].detections
            if d.index == index]


def test_accepting_one_label_accepts_its_track_only(tracked):
    pick = _ids(tracked, "a", 1)[2]  # frame 3 of track 1 of video A
    summary = review_tracks(tracked, FIELD, "accept", [pick], user="ana")
    assert summary["num_tracks"] == 1 and summary["num_labels"] == 4 and summary["num_changed"] == 4
    states = _states(tracked)
    assert states[("a", 1)] == ["accepted"] * 4
    # the other track of the video, the same index in another video, the
    # label without a track: untouched
    assert states[("a", 2)] == [None, None] and states[("b", 1)] == [None, None]
    assert states[("a", None)] == [None]
    log = read_log(tracked, user="ana")
    assert {e["label_id"] for e in log} == set(_ids(tracked, "a", 1))


def test_several_tracks_reject_and_undo(tracked):
    review_tracks(tracked, "tracks", "accept", [_ids(tracked, "b", 1)[0]], user="ana")
    picks = [_ids(tracked, "a", 2)[1], _ids(tracked, "b", 1)[1]]
    summary = review_tracks(tracked, FIELD, "reject", picks, user="ana")
    assert summary["num_tracks"] == 2 and summary["num_labels"] == 4
    assert _states(tracked)[("a", 2)] == ["rejected"] * 2 and _states(tracked)[("b", 1)] == ["rejected"] * 2
    undone = undo_last(tracked, user="ana")
    assert undone["num_labels"] == 4
    states = _states(tracked)
    assert states[("a", 2)] == [None, None] and states[("b", 1)] == ["accepted"] * 2  # the earlier decision
    assert states[("a", 1)] == [None] * 4


def test_bad_input(tracked):
    loose = [d.id for d in tracked.first().frames[4]["tracks"].detections if d.label == "loose"]
    with pytest.raises(ValueError, match="no track 'index'"):
        review_tracks(tracked, FIELD, "accept", loose)
    with pytest.raises(ValueError, match="not found"):
        review_tracks(tracked, FIELD, "accept", ["0" * 24])
    with pytest.raises(ValueError, match="'action'"):
        review_tracks(tracked, FIELD, "approve", _ids(tracked, "a", 1)[:1])
    # frame fields need label ids; nothing was written
    with pytest.raises(ValueError, match="'label_ids'"):
        review_labels(tracked, FIELD, "accept", label="obj1")
    assert all(v == [None] * len(v) for v in _states(tracked).values())
    assert read_log(tracked) == []


def test_the_review_operator_decides_tracks_of_selected_frame_labels(tracked):
    sample = tracked.first()
    pick = _ids(tracked, "a", 2)[0]
    for field in ("frames.tracks", "tracks"):  # the App may name it either way
        sel = [{"label_id": pick, "sample_id": sample.id, "field": field, "frame_number": 2}]
        result = foo.execute_operator("@stoplight/autolabel/review_labels", ctx={
            "dataset": tracked, "view": tracked.view(), "selected_labels": sel,
            "params": {"action": "accept", "target": "SELECTED_LABELS", "user": "ana"}})
        assert result.error is None, result.error
        assert _states(tracked)[("a", 2)] == ["accepted"] * 2 and _states(tracked)[("a", 1)] == [None] * 4
        # the request's name is self-declared (no login): only that identity may undo it
        undo_last(tracked, user=Identity("ana", "self-declared"))
    # whole_tracks=False: just the selected frame label
    sel = [{"label_id": pick, "sample_id": sample.id, "field": "frames.tracks", "frame_number": 2}]
    result = foo.execute_operator("@stoplight/autolabel/review_labels", ctx={
        "dataset": tracked, "view": tracked.view(), "selected_labels": sel,
        "params": {"action": "reject", "target": "SELECTED_LABELS", "user": "ana", "whole_tracks": False}})
    assert result.error is None, result.error
    assert _states(tracked)[("a", 2)] == ["rejected", None]
