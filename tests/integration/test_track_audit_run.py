"""``audit_tracks``: the audit of video tracks on real FiftyOne datasets.

Real MP4 videos (tests/support/maskkit.py shapes on a photo), real FiftyOne frame
labels with an ``index`` per track (what ``track_labels`` writes), a
simulated reviewer who decides the sampled tracks through ``review_tracks``
(looking at one random frame of each, the decision spreading to the track).

- all sampled tracks right: certified, with the exact lower bound; enough
  wrong: not certifiable;
- human decisions before, during and after the audit are never written
  over; decided tracks are not in the lot; one decided frame does not
  answer a track;
- the control: an audit whose units are frames reads answers nobody gave
  (a decision on one sampled frame spreads along its track to other sampled
  frames) and is caught here; the statistical harm of that is measured by
  the pure control in tests/integration/test_track_audit.py.
"""

from __future__ import annotations

import fiftyone as fo
import numpy as np
import pytest
from maskkit import make_video

from stoplight.plugins.review import review_labels
from stoplight.plugins.review.tracks import review_tracks
from stoplight.plugins.triage import acceptance as A
from stoplight.plugins.triage import track_audit as TA
from stoplight.plugins.triage.track_audit_run import audit_tracks, peek_track_audit, read_track_labels, track_units_of

FIELD = "frames.tracks"
VIDEOS, TRACKS, FRAMES = 4, 6, 12
TARGET, CONFIDENCE = 0.75, 0.9


@pytest.fixture(scope="module")
def videos(tmp_root):
    root = tmp_root / "track_audit_run"
    root.mkdir(exist_ok=True)
    return [make_video(root / f"v{i}.mp4", num_frames=FRAMES) for i in range(VIDEOS)]


@pytest.fixture()
def ds(videos):
    """4 videos x 6 tracks; track ``i`` of a video spans frames ``i..12``
    (boxes from the shapes' ground truth, shifted per track), plus one
    label without a track on frame 1 of each video."""
    dataset = fo.Dataset()
    samples = []
    for v in videos:
        s = fo.Sample(filepath=v.path)
        for t in range(FRAMES):
            dets = []
            for idx in range(1, TRACKS + 1):
                if t + 1 >= idx:
                    x, y, w, h = v.boxes["square" if idx % 2 else "disc"][t]
                    dets.append(fo.Detection(label="square" if idx % 2 else "disc",
                                             bounding_box=[min(x + 0.01 * idx, 1 - w), y, w, h], index=idx))
            if t == 0:
                dets.append(fo.Detection(label="loose", bounding_box=[0.5, 0.5, 0.1, 0.1]))
            s.frames[t + 1] = fo.Frame(tracks=fo.Detections(detections=dets))
        samples.append(s)
    dataset.add_samples(samples)
    yield dataset
    dataset.delete()


def _reviews(ds) -> dict:
    labels = read_track_labels(ds, FIELD)
    reviews = ds.values(f"{FIELD}.detections.review", unwind=True)
    return dict(zip(labels["label_id"], reviews))


def _track_labels(ds, sample_id, index):
    labels = read_track_labels(ds, FIELD)
    return [lid for s, i, lid in zip(labels["sample_id"], labels["index"], labels["label_id"])
            if s == sample_id and i == index]


def _reviewer(ds, rng, wrong: set):
    """Decides every pending track of the audit as a person would: looks
    at one random frame of it and accepts or rejects the whole track."""
    looked = 0
    result = audit_tracks(ds, FIELD)
    while result["status"] == "needs_answers":
        for track in result["pending"]:
            key = (track["sample_id"], track["index"])
            action = "reject" if key in wrong else "accept"
            if track["index"] is None:  # a label outside any track: decided alone
                review_labels(ds, FIELD, action, label_ids=[track["label_id"]], user="ana")
            else:
                ids = _track_labels(ds, track["sample_id"], track["index"])
                review_tracks(ds, FIELD, action, [ids[rng.integers(len(ids))]], user="ana")
            looked += 1
        result = audit_tracks(ds, FIELD)
    return result, looked


def _all_tracks(ds):
    labels = read_track_labels(ds, FIELD)
    return sorted({(s, i) for s, i in zip(labels["sample_id"], labels["index"])}, key=str)


def test_all_sampled_tracks_right_certifies(ds):
    lot = VIDEOS * TRACKS + VIDEOS  # tracks, and the loose labels as units of their own
    first = audit_tracks(ds, FIELD, target_precision=TARGET, confidence_level=CONFIDENCE, max_checks=20, seed=7)
    assert first["status"] == "needs_answers" and first["tracks"] == lot and first["sampled"] == 20
    assert len(first["pending"]) == 20 and first["answered"] == 0
    assert first["allowed_wrong"] == A.allowed_wrong(lot, 20, TARGET, 1 - CONFIDENCE) >= 0
    # the same seed draws the same tracks
    again = audit_tracks(ds, FIELD, audit_key="again", target_precision=TARGET, confidence_level=CONFIDENCE,
                         max_checks=20, seed=7)
    assert [(p["sample_id"], p["index"]) for p in again["pending"]] == \
           [(p["sample_id"], p["index"]) for p in first["pending"]]
    # the pending tracks name their frames and the label review_tracks takes
    tracked = [p for p in first["pending"] if p["index"] is not None]
    assert all(p["num_frames"] == FRAMES + 1 - p["index"] for p in tracked)
    assert all(p["label_id"] == _track_labels(ds, p["sample_id"], p["index"])[0] for p in tracked)

    result, looked = _reviewer(ds, np.random.default_rng(0), wrong=set())
    assert looked == 20
    assert result["status"] == "certified" and result["answered"] == 20 and result["wrong"] == 0
    assert result["lower_bound"] == pytest.approx(A.precision_lower_bound(lot, 20, 0, 1 - CONFIDENCE), abs=1e-6)
    assert result["lower_bound"] >= TARGET
    # the state is stored in the run record
    cfg = ds.get_run_info("track_audit").config
    assert cfg.status == "certified" and cfg.answered == 20 and cfg.ended_at
    assert peek_track_audit(ds)["status"] == "certified"


def test_enough_wrong_tracks_are_not_certified(ds):
    every = _all_tracks(ds)
    # half the tracks drift: any sample of 20 of 28 units holds at least
    # 20 - (28 - 14) = 6 wrong ones, more than the plan allows
    wrong = set(every[::2])
    sample = 20
    allowed = A.allowed_wrong(len(every), sample, TARGET, 1 - CONFIDENCE)
    assert sample - (len(every) - len(wrong)) > allowed
    audit_tracks(ds, FIELD, target_precision=TARGET, confidence_level=CONFIDENCE, max_checks=sample, seed=3)
    result, looked = _reviewer(ds, np.random.default_rng(1), wrong)
    assert result["status"] == "not_certifiable" and result["wrong"] > allowed
    assert result["lower_bound"] is None or result["lower_bound"] < TARGET
    assert looked <= sample  # stops as soon as the outcome is known
    assert ds.get_run_info("track_audit").config.status == "not_certifiable"


def test_one_decided_frame_does_not_answer_a_track_and_one_wrong_frame_fails_it(ds):
    result = audit_tracks(ds, FIELD, target_precision=TARGET, confidence_level=CONFIDENCE, max_checks=20, seed=5)
    track = next(p for p in result["pending"] if p["index"] is not None and p["num_frames"] > 2)
    ids = _track_labels(ds, track["sample_id"], track["index"])
    review_labels(ds, FIELD, "accept", label_ids=[ids[0]], user="ana")  # one frame only
    after = audit_tracks(ds, FIELD)
    assert after["answered"] == 0 and (track["sample_id"], track["index"]) in \
        [(p["sample_id"], p["index"]) for p in after["pending"]]
    review_labels(ds, FIELD, "accept", label_ids=ids[1:-1], user="ana")
    review_labels(ds, FIELD, "reject", label_ids=[ids[-1]], user="ana")  # drifted on its last frame
    after = audit_tracks(ds, FIELD)
    assert after["answered"] == 1 and after["wrong"] == 1


def test_human_decisions_are_never_written_over(ds):
    every = [t for t in _all_tracks(ds) if t[1] is not None]
    # decided before the audit: not in the lot
    review_tracks(ds, FIELD, "accept", [_track_labels(ds, *every[0])[3]], user="ana")
    review_tracks(ds, FIELD, "reject", [_track_labels(ds, *every[1])[0]], user="bo")
    before = _reviews(ds)
    first = audit_tracks(ds, FIELD, target_precision=TARGET, confidence_level=CONFIDENCE, max_checks=25, seed=1)
    assert first["tracks"] == VIDEOS * TRACKS + VIDEOS - 2
    assert not {(p["sample_id"], p["index"]) for p in first["pending"]} & set(every[:2])
    assert _reviews(ds) == before
    # answers given, then the audit read again and restarted: every decision stays
    result, _ = _reviewer(ds, np.random.default_rng(2), wrong=set(every[2:4]))
    decided = _reviews(ds)
    assert all(decided[k] == v for k, v in before.items() if v is not None)
    audit_tracks(ds, FIELD)
    audit_tracks(ds, FIELD, restart=True, max_checks=10, seed=9)
    assert _reviews(ds) == decided
    assert result["status"] in ("certified", "not_certifiable")


def test_control_an_audit_of_frames_reads_answers_nobody_gave(ds):
    """The same reviewer and review_tracks, but the audit's units are frame
    labels: a decision on one sampled frame spreads along its track, so
    other sampled frames read as answered though nobody looked at them.
    28 units hold the 232 labels: a sample of 40 labels has at least 12
    labels in a track already asked about (pigeonhole)."""
    labels = read_track_labels(ds, FIELD)
    n = len(labels["label_id"])
    frame_unit, _ = TA.track_units([None] * n)  # the control: each frame label a unit
    sampled = TA.draw_tracks(n, 40, seed=4)
    looked = 0
    while True:
        labels = read_track_labels(ds, FIELD)
        state = TA.track_audit_state(frame_unit, labels["answer"], sampled, n, TARGET, 1 - CONFIDENCE)
        if not state["pending_units"]:
            break
        i = state["pending_units"][0]
        action = "accept"
        if labels["index"][i] is None:
            review_labels(ds, FIELD, action, label_ids=[labels["label_id"][i]], user="ana")
        else:
            review_tracks(ds, FIELD, action, [labels["label_id"][i]], user="ana")
        looked += 1
    answered = state["sets"][0]["answered"]
    assert answered == 40 and looked <= 28 and answered - looked >= 12  # caught: answers nobody gave

    # the track audit on the same decisions counts each looked-at track once
    unit, keys = track_units_of(labels)
    tracks_looked = {int(unit[p]) for p in sampled}
    verdicts = TA.track_verdicts(unit, labels["answer"], len(keys))
    assert sum(verdicts[u] is not None for u in tracks_looked) == len(tracks_looked) <= looked


def test_bad_input(ds, tmp_path):
    with pytest.raises(ValueError, match="'track_field'.*does not exist"):
        audit_tracks(ds, "frames.nope")
    with pytest.raises(ValueError, match="'target_precision'"):
        audit_tracks(ds, FIELD, target_precision=1.5)
    with pytest.raises(ValueError, match="'max_checks'"):
        audit_tracks(ds, FIELD, max_checks=0)
    with pytest.raises(ValueError, match="'audit_key'"):
        audit_tracks(ds, FIELD, audit_key="not a key")
    audit_tracks(ds, FIELD, max_checks=10, seed=0)
    with pytest.raises(ValueError, match="'max_checks'.*restart=True"):
        audit_tracks(ds, FIELD, max_checks=12)
    images = fo.Dataset()
    try:
        images.add_sample(fo.Sample(filepath=str(tmp_path / "a.jpg")))
        with pytest.raises(ValueError, match="'track_field'.*video"):
            audit_tracks(images, FIELD)
    finally:
        images.delete()
    # too small a sample to certify anything: said at once
    small = audit_tracks(ds, FIELD, audit_key="small", target_precision=0.99, max_checks=2, seed=0)
    assert small["status"] == "not_certifiable" and "cannot certify" in small["message"]


def test_the_operator_runs_the_same_audit(ds):
    import fiftyone.operators as foo

    params = {"track_field": "tracks", "target_precision": TARGET, "confidence_level": CONFIDENCE,
              "max_checks": 12, "audit_key": "op_audit"}
    run = foo.execute_operator("@stoplight/autolabel/audit_tracks", ctx={"dataset": ds, "view": ds.view(),
                                                                            "params": params})
    assert run.error is None, run.error
    result = run.result
    assert result["status"] == "needs_answers" and result["sampled"] == 12 and result["track_field"] == FIELD
    # the SDK continues the audit the operator started, with its sample
    sdk = audit_tracks(ds, FIELD, audit_key="op_audit")
    assert sdk["pending"] == result["pending"] and sdk["seed"] == result["seed"]
    # a request's bad parameter is named, and nothing is stored
    with pytest.raises(Exception, match="'track_field'.*frames.nope"):
        foo.execute_operator("@stoplight/autolabel/audit_tracks", ctx={
            "dataset": ds, "view": ds.view(), "params": dict(params, audit_key="x2", track_field="frames.nope")})
    assert not ds.has_run("x2")


def test_labels_without_tracks_and_an_empty_field(videos):
    """Labels without any ``index`` (the field never had tracks) are units
    of their own; a field without labels leaves nothing to audit."""
    dataset = fo.Dataset()
    try:
        s = fo.Sample(filepath=videos[0].path)
        for t in range(1, 4):
            s.frames[t] = fo.Frame(tracks=fo.Detections(detections=[
                fo.Detection(label="square", bounding_box=[0.1, 0.1, 0.2, 0.2])]))
        s.frames[4] = fo.Frame()
        dataset.add_sample(s)
        dataset.add_frame_field("empty", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
        result = audit_tracks(dataset, FIELD, target_precision=0.5, confidence_level=0.5, max_checks=3, seed=0)
        assert result["tracks"] == 3 and result["sampled"] == 3 and all(p["index"] is None for p in result["pending"])
        for p in result["pending"]:
            review_labels(dataset, FIELD, "accept", label_ids=[p["label_id"]], user="ana")
        assert audit_tracks(dataset, FIELD)["status"] == "certified"
        none = audit_tracks(dataset, "frames.empty", audit_key="empty")
        assert none["status"] == "not_certifiable" and none["tracks"] == 0 and "Nothing to audit" in none["message"]
    finally:
        dataset.delete()


def test_bulk_decisions_answer_nothing(ds):
    every = [t for t in _all_tracks(ds) if t[1] is not None]
    # a track decided in bulk before the audit is decided: not in the lot
    review_labels(ds, FIELD, "accept", label_ids=_track_labels(ds, *every[0]), user="ana", bulk=True)
    first = audit_tracks(ds, FIELD, target_precision=TARGET, confidence_level=CONFIDENCE, max_checks=10, seed=2)
    assert first["tracks"] == VIDEOS * TRACKS + VIDEOS - 1
    # a sampled track accepted in bulk meanwhile: nobody looked, still pending
    track = next(p for p in first["pending"] if p["index"] is not None)
    review_labels(ds, FIELD, "accept", label_ids=_track_labels(ds, track["sample_id"], track["index"]),
                  user="ana", bulk=True)
    after = audit_tracks(ds, FIELD)
    assert after["answered"] == 0 and len(after["pending"]) == 10


def test_tracks_written_by_track_labels_are_audited(tmp_root):
    """End to end on what ``track_labels`` writes: the tiny SAM 2 video
    tracker follows two seeds of a real video; the audit samples its
    tracks, a person decides them through ``review_tracks`` and the
    audit certifies."""
    from maskkit import tracker_checkpoint

    from stoplight.plugins.autolabel.tracking import track_labels

    root = tmp_root / "track_audit_tl"
    root.mkdir(exist_ok=True)
    video = make_video(root / "shapes.mp4", num_frames=6)
    dataset = fo.Dataset()
    try:
        sample = fo.Sample(filepath=video.path)
        dets = [fo.Detection(label=n, bounding_box=list(video.boxes[n][0]), confidence=0.9, queue="green")
                for n in ("square", "disc")]
        sample.frames[1] = fo.Frame(autolabels=fo.Detections(detections=dets))
        dataset.add_sample(sample)
        summary = track_labels(dataset, model="sam2", checkpoint=tracker_checkpoint(tmp_root, "sam2"),
                               device="cpu", progress=False)
        assert summary["num_tracks"] == 2
        labels = read_track_labels(dataset, FIELD)
        assert len(labels["label_id"]) == summary["num_track_labels"] and None not in labels["index"]
        first = audit_tracks(dataset, FIELD, target_precision=0.5, confidence_level=0.5, max_checks=2, seed=0)
        assert first["tracks"] == 2 and first["sampled"] == 2 and first["allowed_wrong"] >= 0
        result, looked = _reviewer(dataset, np.random.default_rng(3), wrong=set())
        assert looked == 2 and result["status"] == "certified" and result["answered"] == 2
    finally:
        dataset.delete()
