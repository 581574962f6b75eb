"""The labeling pipeline on a real dataset, real MongoDB, a real tiny model."""


import fiftyone as fo
import numpy as np
import pytest

from stoplight.plugins.autolabel.pipeline import Progress, zero_shot_detect

BACKEND = "owlv2"
CLASSES = ["person", "bus"]


@pytest.fixture()
def run(tiny_checkpoint):
    def _run(view, **kwargs):
        kwargs.setdefault("backend", BACKEND)
        kwargs.setdefault("checkpoint", tiny_checkpoint(BACKEND))
        if "ontology" not in kwargs:
            kwargs.setdefault("classes", CLASSES)
        kwargs.setdefault("confidence_threshold", 0.0)
        kwargs.setdefault("device", "cpu")
        kwargs.setdefault("batch_size", 3)
        kwargs.setdefault("progress", False)
        return zero_shot_detect(view, **kwargs)

    return _run


def _label_ids(ds, field="autolabels"):
    return {
        sid: [d.id for d in (dets.detections if dets else [])]
        for sid, dets in zip(*ds.values(["id", field]))
    }


def test_labels_and_run_record(dataset, run):
    summary = run(dataset)
    assert summary["status"] == "completed"
    assert summary["num_processed_samples"] == len(dataset)
    assert summary["num_failed_samples"] == 0

    n = 0
    for dets in dataset.values("autolabels"):
        assert isinstance(dets, fo.Detections)
        for d in dets.detections:
            x, y, w, h = d.bounding_box
            assert 0 <= x <= 1 and 0 <= y <= 1 and 0 < w <= 1 - x + 1e-9 and 0 < h <= 1 - y + 1e-9
            assert d.label in CLASSES
            assert 0.0 <= d.confidence <= 1.0
            assert len(d["class_scores"]) == len(CLASSES)
            assert d.confidence == pytest.approx(max(d["class_scores"]))
            n += 1
    assert n == summary["num_labels"] > 0

    key = summary["run_key"]
    assert key in dataset.list_runs()
    config = dataset.get_run_info(key).config
    assert config.backend == BACKEND
    assert config.classes == CLASSES
    assert config.ontology == {"person": "person", "bus": "bus"}
    assert config.confidence_threshold == 0.0
    assert config.status == "completed"
    assert config.versions["fiftyone"] and config.versions["torch"]
    assert config.started_at and config.ended_at
    assert config.num_labels == n
    results = dataset.load_run_results(key)
    assert results.num_processed_samples == len(dataset)


def test_ontology_writes_classes_not_prompts(dataset, run):
    run(dataset, ontology={"a photo of a man": "person", "a woman": "person", "a bus": "bus"})
    labels = set(dataset.distinct("autolabels.detections.label"))
    assert labels <= {"person", "bus"} and labels
    d = dataset.first().autolabels.detections[0]
    assert len(d["class_scores"]) == 2


def test_threshold_filters(dataset, run):
    run(dataset, confidence_threshold=0.0, label_field="all_boxes")
    scores = dataset.values("all_boxes.detections.confidence", unwind=True)
    cut = float(np.median(scores))
    run(dataset, confidence_threshold=cut, label_field="kept")
    kept = dataset.values("kept.detections.confidence", unwind=True)
    assert kept and min(kept) >= cut and len(kept) < len(scores)


def test_resume_labels_only_missing_samples(dataset, run):
    first = dataset.limit(3)
    run(first)
    before = _label_ids(dataset)
    summary = run(dataset)
    assert summary["num_skipped_samples"] == 3
    assert summary["num_processed_samples"] == len(dataset) - 3
    after = _label_ids(dataset)
    for sid in first.values("id"):
        assert after[sid] == before[sid]  # untouched
    assert all(dets is not None for dets in dataset.values("autolabels"))


def test_overwrite_relabels_everything(dataset, run):
    run(dataset)
    before = _label_ids(dataset)
    summary = run(dataset, overwrite=True)
    assert summary["num_processed_samples"] == len(dataset)
    after = _label_ids(dataset)
    assert all(set(after[s]).isdisjoint(before[s]) for s in before if before[s])


def test_interrupted_run_keeps_chunks_and_resumes_exactly_once(dataset, run):
    events = []

    def stop_midway(p: Progress):
        events.append(p.done)
        if p.done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(dataset, batch_size=2, write_every=1, progress=stop_midway)
    labeled = dataset.exists("autolabels").count()
    assert labeled == 4
    (key,) = dataset.list_runs()
    assert dataset.get_run_info(key).config.status == "interrupted"

    before = _label_ids(dataset)
    summary = run(dataset)
    assert summary["num_processed_samples"] == len(dataset) - 4
    after = _label_ids(dataset)
    assert all(after[s] == before[s] for s in before if before[s])
    assert dataset.exists("autolabels").count() == len(dataset)


def test_progress_events_reach_total(dataset, run):
    events = []
    run(dataset, batch_size=2, progress=events.append)
    assert events[0].done == 0 and events[-1].done == events[-1].total == len(dataset)
    assert [e.done for e in events] == sorted(e.done for e in events)


def test_broken_images_are_recorded_and_the_run_goes_on(dataset, run, tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    src = dataset.first().filepath
    data = open(src, "rb").read()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 4])
    bad = [tmp_path / "empty.jpg", tmp_path / "text.png", tmp_path / "truncated.jpg", tmp_path / "missing.jpg"]
    dataset.add_samples([fo.Sample(filepath=str(p)) for p in bad])

    summary = run(dataset)
    assert summary["status"] == "completed"
    assert summary["num_failed_samples"] == 4
    failed_paths = {f["filepath"] for f in summary["failures"]}
    assert failed_paths == {str(p) for p in bad}
    assert all(str(f["sample_id"]) for f in summary["failures"])
    for p in bad:
        assert dataset.one(fo.ViewField("filepath") == str(p)).autolabels is None
    assert dataset.exists("autolabels").count() == len(dataset) - 4
    stored = dataset.load_run_results(summary["run_key"])
    assert len(stored.failures) == 4


def test_existing_field_of_another_type_is_refused_and_kept(dataset, run):
    dataset.set_values("autolabels", [fo.Classification(label="x")] * len(dataset))
    with pytest.raises(ValueError, match="autolabels"):
        run(dataset)
    assert dataset.values("autolabels.label") == ["x"] * len(dataset)
    assert dataset.list_runs() == []


def test_bad_parameters_name_themselves(dataset, run):
    with pytest.raises(ValueError, match="confidence_threshold"):
        run(dataset, confidence_threshold=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        run(dataset, batch_size=0)
    with pytest.raises(ValueError, match="backend"):
        run(dataset, backend="nope")
    with pytest.raises(ValueError, match="checkpoint"):
        run(dataset, checkpoint="/does/not/exist")
    assert not dataset.has_field("autolabels")


def test_point_cloud_dataset_is_refused(run, tmp_path):
    # videos are labeled frame by frame (test_video_detect.py); other media are refused
    ds = fo.Dataset()
    ds.add_sample(fo.Sample(filepath=str(tmp_path / "scan.pcd")))
    try:
        with pytest.raises(ValueError, match="image and video datasets.*media type 'point-cloud'"):
            run(ds)
    finally:
        ds.delete()


def test_exif_rotated_image_boxes_are_relative_to_the_displayed_image(dataset, run):
    """The same pixels stored sideways with an EXIF tag get the same boxes."""
    view = dataset.match(fo.ViewField("filepath").re_match(r".*/zidane_(upright|exif8)\.png$"))
    assert len(view) == 2
    run(view, confidence_threshold=0.0)
    upright, rotated = (
        view.match(fo.ViewField("filepath").ends_with(n)).first().autolabels.detections
        for n in ("zidane_upright.png", "zidane_exif8.png")
    )
    assert len(upright) == len(rotated) > 0
    for a, b in zip(upright, rotated):
        assert a.label == b.label
        assert a.bounding_box == pytest.approx(b.bounding_box, abs=1e-6)
        assert a.confidence == pytest.approx(b.confidence, abs=1e-6)
