"""Masks and video tracks from the FiftyOne App in headless Chromium, end to end.

Masks: a dataset of real photos whose auto-labels are partly decided
(accepted, rejected) and triaged (green, yellow, red); find
``segment_labels`` in the operator browser, fill its form (a tiny
random-weight SAM 2 checkpoint, CPU), execute, read the run summary, and
see the masks in the App (the label field's mask scores in the sidebar,
the masks drawn in the sample modal). In the database: masks on exactly
the accepted and green labels nobody rejected, no decision touched.

Tracks: a video dataset (a WebM the test writes: moving shapes over a
photo) whose frame labels are partly accepted / green; ``track_labels``
from the operator browser with a tiny random SAM 2 video checkpoint; the
summary, the tracks in the database (an ``index`` on every frame), the new
frame field in the App's sidebar and the video in the sample modal.

Video auto-labels: ``zero_shot_detect`` from the operator form of a video
dataset (tiny OWLv2, every k-th frame): frame labels on exactly those
frames, the frame field in the sidebar.

Review per track: a frame label clicked in the video modal (the App tells
its server the selection through its ``setSelectedLabels`` mutation),
then ``review_labels`` from the operator browser: the form targets the
selected label with "Whole tracks"; every frame label of that track gets
the decision, the other track none, and the audit log holds one action
with the reviewer the App request declared.

Screenshots go to ``artifacts/masks/<test>/``. Selectors as in
``test_browser.py``: ``data-cy`` attributes for App chrome, visible text
for the operator form.
"""

from __future__ import annotations

import json
import uuid

import fiftyone as fo
import pytest
from fiftyone import ViewField as F

from appkit import (
    add_classes, close_modal, commit, execute_form, hover_until_visible, input_after, open_dataset_page,
    open_operator_form, output_value, persistent_dataset, save_failure, screenshot, wait_for_grid,
)
from maskkit import make_video, segmenter_checkpoint, set_mixed_labels, tracker_checkpoint

pytest_plugins = ["appkit"]

URI = "@stoplight/autolabel/segment_labels"
OPERATOR_LABEL = "Stoplight: masks from labels (SAM)"
FORM_TITLE = "Instance masks from labels"
FIELD = "autolabels"


@pytest.fixture()
def labeled(image_dir):
    """A persistent dataset of the real photos, each with five boxes of
    mixed queues and decisions, visible to the App server."""
    with persistent_dataset("stoplight-masks", image_dir) as ds:
        set_mixed_labels(ds, FIELD)
        yield ds


@pytest.fixture()
def shots(artifacts_dir, request):
    """``artifacts/masks/<test name>/``, emptied first."""
    d = artifacts_dir / "masks" / request.node.name.replace("test_", "")
    d.mkdir(parents=True, exist_ok=True)
    for old in [*d.glob("*.png"), *d.glob("*.html")]:
        old.unlink()
    return d


def _labels(ds) -> dict:
    """``{label id: (queue, review, has mask, mask_iou)}``."""
    ids, queues, reviews, iou = ds.values(
        [f"{FIELD}.detections.{a}" for a in ("id", "queue", "review", "mask_iou")], unwind=True)
    masked = set(ds.filter_labels(FIELD, F("mask").exists()).values(f"{FIELD}.detections.id", unwind=True))
    return {i: (q, r, i in masked, m) for i, q, r, m in zip(ids, queues, reviews, iou)}


def test_segment_labels_from_the_operator_browser(app_server, labeled, tmp_root, shots, page):
    from playwright.sync_api import expect

    ds = labeled
    checkpoint = segmenter_checkpoint(tmp_root, "sam2")
    before = _labels(ds)
    chosen = {i for i, (q, r, _, _) in before.items() if r == "accepted" or (q == "green" and r != "rejected")}
    assert 0 < len(chosen) < len(before)
    execute = page.get_by_role("button", name="Execute", exact=True)
    try:
        # 1. the dataset page
        open_dataset_page(page, app_server, ds)

        # 2. the operator browser finds the operator; its form opens with
        # the core function's defaults
        open_operator_form(page, "masks", OPERATOR_LABEL, "label_field", FIELD)
        expect(page.get_by_text(FORM_TITLE, exact=True)).to_be_visible()
        expect(page.get_by_text("Accepted / green labels of the current view")).to_be_visible()
        expect(input_after(page, "Label field")).to_have_value(FIELD)

        # 3. fill it: the tiny checkpoint on the CPU
        commit(page, input_after(page, "Checkpoint"), checkpoint, "checkpoint", checkpoint)
        commit(page, input_after(page, "Device"), "cpu", "device", "cpu")
        expect(input_after(page, "Checkpoint")).to_have_value(checkpoint)
        expect(input_after(page, "Device")).to_have_value("cpu")
        expect(execute).to_be_enabled()
        screenshot(page, shots, "01-form-filled")

        # 4. execute; the summary counts the masks written
        body = execute_form(page)
        assert body["operator_uri"] == URI
        assert body["dataset_name"] == ds.name
        params = body["params"]
        assert (params.get("checkpoint"), params.get("device"), params.get("label_field")) == (checkpoint, "cpu", FIELD)
        expect(output_value(page, "Masks written:")).to_have_text(str(len(chosen)))
        expect(output_value(page, "Images that failed:")).to_have_text("0")
        run_key = output_value(page, "Run key:").inner_text().strip()
        screenshot(page, shots, "02-run-summary")

        # 5. in the database: masks on exactly the chosen labels, decisions
        # and queues as they were
        ds.reload()
        after = _labels(ds)
        assert {i for i, (_, _, m, _) in after.items() if m} == chosen
        assert {i: v[:2] for i, v in after.items()} == {i: v[:2] for i, v in before.items()}
        assert all(0.0 <= after[i][3] <= 1.0 for i in chosen)
        assert run_key in ds.list_runs()

        # 6. in the App: the sidebar lists the mask scores among the
        # label field's attributes (the operator reloads the dataset) ...
        page.get_by_role("button", name="Done").click()
        page.locator(f'[data-cy="sidebar-field-arrow-enabled-{FIELD}"]').click()
        sidebar = page.locator('[data-cy="sidebar"]')
        expect(sidebar.get_by_text("mask_iou", exact=True)).to_be_visible()
        expect(sidebar.get_by_text("mask_stability", exact=True)).to_be_visible()
        screenshot(page, shots, "03-sidebar-mask-scores")
        # ... and the first photo (its first label is green) opens with its
        # masks drawn
        page.locator('[data-cy="fo-grid"] [data-cy="looker"]').first.click()
        modal = page.locator('[data-cy="modal-content"]')
        expect(modal).to_be_visible()
        expect(modal.locator('canvas[canvas-loaded="true"]').first).to_be_attached()
        screenshot(page, shots, "04-masks-in-modal")
    except BaseException:
        save_failure(page, shots, app_server)
        raise


# ------------------------------------------------------------------ video

VIDEO_FRAMES = 8


def _webm_sample(tmp_root):
    """A short WebM the test writes and its sample, with the metadata the
    App needs (VP8: what Chromium plays; no ffprobe here to read it)."""
    root = tmp_root / "browser-videos"
    root.mkdir(exist_ok=True)
    video = make_video(root / f"shapes-{uuid.uuid4().hex[:6]}.webm", num_frames=VIDEO_FRAMES, fourcc="VP80")
    sample = fo.Sample(filepath=video.path, metadata=fo.VideoMetadata(
        frame_width=video.width, frame_height=video.height, frame_rate=video.fps,
        total_frame_count=video.num_frames, duration=video.num_frames / video.fps, mime_type="video/webm"))
    return video, sample


@pytest.fixture()
def seeded_video(tmp_root):
    """A persistent video dataset of one short WebM (VP8: what Chromium
    plays; the App gets its size and frame rate from the stored metadata,
    as no ffprobe is installed here) whose frames 1 and 5 carry labels of
    both shapes: frame 1 square accepted, frame 1 disc green, frame 5
    square rejected, frame 5 disc yellow."""
    video, sample = _webm_sample(tmp_root)
    for number, extra in ((1, [dict(review="accepted"), dict(queue="green")]),
                          (5, [dict(review="rejected"), dict(queue="yellow")])):
        dets = []
        for name, attrs in zip(("square", "disc"), extra):
            d = fo.Detection(label=name, bounding_box=list(video.boxes[name][number - 1]), confidence=0.9, **attrs)
            dets.append(d)
        sample.frames[number] = fo.Frame(autolabels=fo.Detections(detections=dets))
    with persistent_dataset("stoplight-tracks") as ds:
        ds.add_sample(sample)
        yield ds


def _tracks(ds, field="tracks") -> dict:
    """``{index: {frame number: label}}``."""
    out: dict = {}
    for sample in ds.select_fields(f"frames.{field}"):
        for number, frame in sample.frames.items():
            for d in (frame[field].detections if frame[field] else []):
                out.setdefault(d.index, {})[number] = d.label
    return out


def test_track_labels_from_the_operator_browser(app_server, seeded_video, tmp_root, shots, page):
    from playwright.sync_api import expect

    ds = seeded_video
    checkpoint = tracker_checkpoint(tmp_root, "sam2")
    execute = page.get_by_role("button", name="Execute", exact=True)
    try:
        # 1. the dataset page: the video's thumbnail is drawn
        open_dataset_page(page, app_server, ds)

        # 2. the operator's form, with the core function's defaults
        open_operator_form(page, "track", "Stoplight: track labels through videos (SAM 2)",
                           "label_field", "frames.autolabels")
        expect(page.get_by_text("Track labels through videos", exact=True)).to_be_visible()
        expect(input_after(page, "Frame label field")).to_have_value("frames.autolabels")
        expect(input_after(page, "Track field")).to_have_value("tracks")

        # 3. fill it and execute
        commit(page, input_after(page, "Checkpoint"), checkpoint, "checkpoint", checkpoint)
        commit(page, input_after(page, "Device"), "cpu", "device", "cpu")
        expect(execute).to_be_enabled()
        screenshot(page, shots, "01-form-filled")
        body = execute_form(page)
        assert body["operator_uri"] == "@stoplight/autolabel/track_labels"
        assert (body["params"].get("checkpoint"), body["params"].get("device")) == (checkpoint, "cpu")
        # seeds: frame 1's accepted square and green disc (frame 5's are
        # rejected / yellow); the tiny tracker finds both on every frame
        expect(output_value(page, "Tracks written:")).to_have_text("2")
        expect(output_value(page, "Frame labels written:")).to_have_text(str(2 * VIDEO_FRAMES))
        expect(output_value(page, "Videos that failed:")).to_have_text("0")
        screenshot(page, shots, "02-run-summary")

        # 4. in the database: two tracks with an index on every frame
        ds.reload()
        tracks = _tracks(ds)
        assert set(tracks) == {1, 2}
        assert all(set(frames) == set(range(1, VIDEO_FRAMES + 1)) for frames in tracks.values())
        assert sorted({label for frames in tracks.values() for label in frames.values()}) == ["disc", "square"]

        # 5. in the App: the sidebar lists the new frame field, and the
        # video opens in the sample modal and plays its frames
        page.get_by_role("button", name="Done").click()
        expect(page.locator('[data-cy="sidebar-field-frames.tracks"]')).to_be_visible()
        page.locator('[data-cy="fo-grid"] [data-cy="looker"]').first.click()
        modal = page.locator('[data-cy="modal-content"]')
        expect(modal).to_be_visible()
        screenshot(page, shots, "03-modal")
    except BaseException:
        save_failure(page, shots, app_server)
        raise


# ------------------------------------------------------- video auto-labels

DETECT_FIELD = "frame_labels"
DETECT_CLASSES = ["person", "square"]
FRAME_STEP = 3


@pytest.fixture()
def plain_video(tmp_root):
    """A persistent video dataset of one unlabeled WebM."""
    _, sample = _webm_sample(tmp_root)
    with persistent_dataset("stoplight-vdetect") as ds:
        ds.add_sample(sample)
        yield ds


def test_zero_shot_detect_labels_video_frames_from_the_operator_browser(
        app_server, plain_video, tiny_checkpoint, shots, page):
    from playwright.sync_api import expect

    ds = plain_video
    checkpoint = tiny_checkpoint("owlv2")
    execute = page.get_by_role("button", name="Execute", exact=True)
    try:
        open_dataset_page(page, app_server, ds)

        # 1. the auto-label form of a video dataset offers the frame step
        open_operator_form(page, "zero-shot", "Stoplight: zero-shot auto-label", "label_field", "autolabels")
        expect(page.get_by_text("Zero-shot auto-label", exact=True)).to_be_visible()
        expect(page.get_by_text("Label every k-th frame", exact=True)).to_be_visible()
        expect(input_after(page, "Label every k-th frame")).to_have_value("1")

        # 2. fill it: tiny OWLv2 on the CPU, every third frame
        page.locator("xpath=//p[normalize-space()='Backend']/following::*[@role='combobox'][1]").click()
        page.locator('[role="option"][data-value="owlv2"]').click()
        expect(page.get_by_role("listbox")).to_have_count(0)
        commit(page, input_after(page, "Checkpoint"), checkpoint, "checkpoint", checkpoint)
        add_classes(page, DETECT_CLASSES)
        commit(page, input_after(page, "Label field"), DETECT_FIELD, "label_field", DETECT_FIELD)
        commit(page, input_after(page, "Confidence threshold"), "0", "confidence_threshold", 0)
        commit(page, input_after(page, "Device"), "cpu", "device", "cpu")
        commit(page, input_after(page, "Label every k-th frame"), str(FRAME_STEP), "frame_step", FRAME_STEP)
        expect(input_after(page, "Checkpoint")).to_have_value(checkpoint)
        expect(input_after(page, "Label every k-th frame")).to_have_value(str(FRAME_STEP))
        expect(execute).to_be_enabled()
        input_after(page, "Label every k-th frame").scroll_into_view_if_needed()
        screenshot(page, shots, "01-form-filled")

        # 3. execute; the summary counts the labels
        body = execute_form(page)
        assert body["operator_uri"] == "@stoplight/autolabel/zero_shot_detect"
        params = body["params"]
        assert {k: params.get(k) for k in ("backend", "checkpoint", "classes", "label_field", "frame_step")} == dict(
            backend="owlv2", checkpoint=checkpoint, classes=DETECT_CLASSES, label_field=DETECT_FIELD,
            frame_step=FRAME_STEP)
        expect(output_value(page, "Samples labeled:")).to_have_text("1")
        expect(output_value(page, "Samples failed:")).to_have_text("0")
        num_labels = int(output_value(page, "Labels written:").inner_text())
        run_key = output_value(page, "Run key:").inner_text().strip()
        screenshot(page, shots, "02-run-summary")

        # 4. in the database: frame labels on frames 1, 1 + k, 1 + 2k, ...
        # only, as many as the summary says
        ds.reload()
        labeled = {n: len(f[DETECT_FIELD].detections)
                   for s in ds.select_fields(f"frames.{DETECT_FIELD}") for n, f in s.frames.items()
                   if f[DETECT_FIELD] is not None}
        assert set(labeled) == set(range(1, VIDEO_FRAMES + 1, FRAME_STEP)) == {1, 4, 7}
        assert sum(labeled.values()) == num_labels > 0
        assert ds.get_field(DETECT_FIELD) is None  # frame-level, not a sample field
        assert set(ds.distinct(f"frames.{DETECT_FIELD}.detections.label")) <= set(DETECT_CLASSES)
        config = ds.get_run_info(run_key).config
        assert (config.media_type, config.frame_step, config.label_field) == ("video", FRAME_STEP, f"frames.{DETECT_FIELD}")

        # 5. in the App: the sidebar lists the frame field
        page.get_by_role("button", name="Done").click()
        expect(page.locator(f'[data-cy="sidebar-field-frames.{DETECT_FIELD}"]')).to_be_visible()
        screenshot(page, shots, "03-frame-field-in-sidebar")
    except BaseException:
        save_failure(page, shots, app_server)
        raise


# ------------------------------------------------------ review of a track

REVIEWER = "Ada Lovelace"
#: two tracks of still boxes on every frame: (index, class, box) — the
#: left and right halves of the frame, so a click at a half's centre hits
#: its track on whatever frame the modal shows
TRACKS = ((1, "square", [0.05, 0.1, 0.4, 0.8]), (2, "disc", [0.55, 0.1, 0.4, 0.8]))


@pytest.fixture()
def tracked_video(tmp_root):
    """A persistent video dataset of one WebM whose every frame carries the
    two :data:`TRACKS` as pending yellow labels of ``frames.tracks``."""
    _, sample = _webm_sample(tmp_root)
    for number in range(1, VIDEO_FRAMES + 1):
        sample.frames[number] = fo.Frame(tracks=fo.Detections(detections=[
            fo.Detection(label=name, bounding_box=box, index=index, confidence=0.8, queue="yellow")
            for index, name, box in TRACKS]))
    with persistent_dataset("stoplight-review-tracks") as ds:
        ds.add_sample(sample)
        yield ds


def _selected_labels_mutation(request) -> list | None:
    """The labels of the App's ``setSelectedLabels`` GraphQL mutation (the
    App tells its server the selection), else None."""
    if "/graphql" not in request.url or request.method != "POST":
        return None
    try:
        body = json.loads(request.post_data or "{}")
    except ValueError:
        return None
    if "setSelectedLabels" not in (body.get("query") or ""):
        return None
    return (body.get("variables") or {}).get("selectedLabels")


def _track_states(ds) -> dict:
    """``{index: [(label id, review, reviewed_by) per frame]}``."""
    out: dict = {}
    for sample in ds.select_fields("frames.tracks"):
        for number in sorted(sample.frames.keys()):
            for d in sample.frames[number]["tracks"].detections:
                out.setdefault(d.index, []).append((d.id, d.get_field("review") if d.has_field("review") else None,
                                                    d.get_field("reviewed_by") if d.has_field("reviewed_by") else None))
    return out


def test_review_a_whole_track_from_a_label_selected_in_the_video_modal(app_server, tracked_video, shots, page):
    from playwright.sync_api import expect

    from stoplight.plugins.common import audit

    ds = tracked_video
    before = _track_states(ds)
    assert sorted(before) == [1, 2] and all(len(v) == VIDEO_FRAMES for v in before.values())
    try:
        page.goto(f"{app_server.url}/datasets/{ds.name}")
        wait_for_grid(page)

        # 1. open the video in the modal and click track 1's box
        page.locator('[data-cy="fo-grid"] [data-cy="looker"]').first.click()
        modal = page.locator('[data-cy="modal-content"]')
        expect(modal).to_be_visible()
        canvas = modal.locator("canvas").first
        expect(canvas).to_be_visible()
        screenshot(page, shots, "01-modal")
        c = canvas.bounding_box()
        w, h = ds.first().metadata.frame_width, ds.first().metadata.frame_height
        scale = min(c["width"] / w, c["height"] / h)  # the frame is fitted and centred
        x0, y0 = c["x"] + (c["width"] - w * scale) / 2, c["y"] + (c["height"] - h * scale) / 2
        box = TRACKS[0][2]
        x, y = x0 + (box[0] + box[2] / 2) * w * scale, y0 + (box[1] + box[3] / 2) * h * scale
        # the looker takes clicks on labels once it has drawn them: hover
        # until its tooltip shows the label, then click
        hover_until_visible(page, page.locator('[data-cy="attribute-index"]'), x, y,
                            "the video modal never showed track 1's label")
        with page.expect_request(lambda r: bool(_selected_labels_mutation(r))) as sel:
            page.mouse.click(x, y)
        (selected,) = _selected_labels_mutation(sel.value)
        track1 = [lid for lid, _, _ in before[1]]
        assert selected["labelId"] in track1 and selected["field"] == "frames.tracks"
        screenshot(page, shots, "02-label-selected")

        # 2. close the modal (the selection stays) and open review_labels:
        # its form targets the one selected frame label, whole tracks on
        close_modal(page, modal)
        open_operator_form(page, "review labels", "Stoplight: review labels", "target", "SELECTED_LABELS")
        expect(page.get_by_text("1 selected label(s)", exact=True)).to_be_visible()
        expect(page.get_by_text("Whole tracks", exact=True)).to_be_visible()
        expect(input_after(page, "Label field")).to_have_value("frames.tracks")
        commit(page, input_after(page, "Reviewer"), REVIEWER, "user", REVIEWER)
        execute = page.get_by_role("button", name="Execute", exact=True)
        expect(execute).to_be_enabled()
        screenshot(page, shots, "03-review-form")

        # 3. execute: one label selected, its whole track (8 frames) accepted
        body = execute_form(page, lambda r: r.url.endswith("/operators/execute"))
        assert body["operator_uri"] == "@stoplight/autolabel/review_labels"
        assert [s["label_id"] for s in body["selected_labels"]] == [selected["labelId"]]
        params = body["params"]
        assert (params.get("action"), params.get("target"), params.get("whole_tracks"), params.get("user")) == (
            "accept", "SELECTED_LABELS", True, REVIEWER)
        expect(output_value(page, "Labels:")).to_have_text(str(VIDEO_FRAMES))
        expect(output_value(page, "Labels whose review changed:")).to_have_text(str(VIDEO_FRAMES))
        expect(output_value(page, "Reviewer:")).to_have_text(REVIEWER)
        expect(output_value(page, "Reviewer known from:")).to_have_text("self-declared")
        screenshot(page, shots, "04-review-summary")

        # 4. in the database: every frame label of track 1 accepted by the
        # App's reviewer, track 2 untouched; one logged action, per label,
        # with the identity the App request carried
        after = _track_states(ds)
        assert after[1] == [(lid, "accepted", REVIEWER) for lid in track1]
        assert after[2] == before[2] and all(r is None for _, r, _ in after[2])
        log = audit.read_log(ds)
        assert sorted(e["label_id"] for e in log) == sorted(track1)
        assert {(e["action"], e["user"], e["user_source"], e["field"]) for e in log} == {
            ("accept", REVIEWER, "self-declared", "frames.tracks")}
        assert len({e["action_id"] for e in log}) == 1
    except BaseException:
        save_failure(page, shots, app_server)
        raise
