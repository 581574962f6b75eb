"""Threat: an App user reads or writes the server's file system through
operator paths.

Checkpoints (``zero_shot_detect``), CLIP weights
(``compute_label_embeddings``), YOLO models and export folders
(``train_on_accepted``) named by a request must lie inside the server's
allowed roots (``STOPLIGHT_ALLOWED_ROOTS``). A refusal reads the same
whether the path outside is a folder (whose files an error used to list),
a file or nothing; nothing is created, loaded or written; the form marks
the field invalid. Temporary export/training folders are removed when the
run ends.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from pathlib import Path

import fiftyone as fo
import pytest

from appkit import operator_request, persistent_dataset, post_json
from securitykit import db_changes, db_snapshot, http_execute, sdk_execute, start_app_server

pytest_plugins = ["appkit"]

DETECT = "@stoplight/autolabel/zero_shot_detect"
EMBED = "@stoplight/autolabel/compute_label_embeddings"
TRAIN = "@stoplight/autolabel/train_on_accepted"


@pytest.fixture(scope="module")
def roots(tmp_root):
    """``(allowed, outside)`` folders; ``outside`` holds a folder with two
    .pt files, a file, and names nothing holds."""
    base = Path(tmp_root) / f"paths-{uuid.uuid4().hex[:6]}"
    allowed, outside = base / "allowed", base / "outside"
    allowed.mkdir(parents=True)
    (outside / "models").mkdir(parents=True)
    for name in ("secret-a.pt", "secret-b.pt"):
        (outside / "models" / name).write_bytes(b"\0" * 64)
    (outside / "weights.safetensors").write_bytes(b"\0" * 64)
    return allowed, outside


@pytest.fixture(scope="module")
def server(tmp_root, roots):
    srv = start_app_server(tmp_root, "paths", {"STOPLIGHT_ALLOWED_ROOTS": str(roots[0])})
    yield srv
    srv.stop()


@pytest.fixture()
def allowed_env(roots, monkeypatch):
    monkeypatch.setenv("STOPLIGHT_ALLOWED_ROOTS", str(roots[0]))
    return roots


@pytest.fixture()
def served(image_dir):
    with persistent_dataset("stoplight-sec", image_dir, "*.jpg", limit=2) as ds:
        yield ds


def _outside_values(outside: Path) -> list[str]:
    """A folder (with files), a file, a missing path, a symlink escape and a
    ``..`` escape: all outside the allowed roots."""
    return [str(outside / "models"), str(outside / "models" / "secret-a.pt"), str(outside / "missing"),
            str(outside / "models" / "missing.pt"), str(outside.parent / "allowed" / ".." / "outside" / "models")]


def _normalized(text: str, value: str) -> str:
    """The error text with the echoed path (and the traceback's noise) cut."""
    line = next((l for l in text.splitlines() if "allowed" in l and "Parameter" in l), text)
    return line.replace(value, "<path>")[-300:]


def _check_refusals(errors: dict[str, str], param: str):
    for value, text in errors.items():
        assert text is not None, f"{value} was accepted"
        assert f"Parameter '{param}'" in text and "allowed" in text, text[-1500:]
        # nothing about what lies there: not its files, not its existence
        assert "secret-" not in text.replace(value, ""), text[-1500:]
        assert not re.search(r"does not exist|no such file|is a file|is not a file|exactly one|found \[",
                             text.replace(value, ""), re.I), text[-1500:]
    shapes = {_normalized(t, v) for v, t in errors.items()}
    assert len(shapes) == 1, shapes


@pytest.mark.parametrize("backend", ["yoloe", "owlv2"])
def test_checkpoint_outside_the_roots_is_refused_alike_http(server, served, roots, backend):
    before = db_snapshot()
    errors = {}
    for value in _outside_values(roots[1]):
        params = dict(backend=backend, checkpoint=value, classes=["person"], device="cpu", label_field="p")
        status, text = http_execute(server, DETECT, served.name, params)
        assert status >= 400
        errors[value] = text
    _check_refusals(errors, "checkpoint")
    assert db_changes(before, db_snapshot()) == []


@pytest.mark.parametrize("backend", ["yoloe", "owlv2"])
def test_checkpoint_outside_the_roots_is_refused_alike_sdk(dataset, allowed_env, backend):
    before = db_snapshot()
    errors = {}
    for value in _outside_values(allowed_env[1]):
        params = dict(backend=backend, checkpoint=value, classes=["person"], device="cpu", label_field="p")
        errors[value] = sdk_execute(DETECT, {"dataset": dataset, "params": params}, request_delegation=False)
    _check_refusals(errors, "checkpoint")
    assert db_changes(before, db_snapshot()) == []


def test_the_form_marks_an_outside_checkpoint_invalid(server, served, roots):
    value = str(roots[1] / "models")
    r = post_json(server, "/operators/resolve-type",
                  operator_request(DETECT, served.name, {"backend": "yoloe", "checkpoint": value}, target="inputs"))
    assert r.status_code == 200, r.text[-2000:]
    prop = r.json()["type"]["properties"]["checkpoint"]
    assert prop["invalid"] is True and "allowed" in prop["error_message"]
    assert "secret-" not in prop["error_message"]


def test_checkpoint_inside_the_roots_still_loads(dataset, allowed_env, tiny_checkpoint):
    import shutil

    ckpt = allowed_env[0] / f"owlv2-{uuid.uuid4().hex[:6]}"
    shutil.copytree(tiny_checkpoint("owlv2"), ckpt)
    params = dict(backend="owlv2", checkpoint=str(ckpt), classes=["person"], device="cpu", label_field="ok")
    assert sdk_execute(DETECT, {"dataset": dataset, "params": params}) is None
    assert dataset.has_field("ok")


def test_clip_weights_outside_the_roots_are_refused(dataset, allowed_env):
    before = db_snapshot()
    errors = {}
    for value in _outside_values(allowed_env[1])[:3] + [str(allowed_env[1] / "weights.safetensors")]:
        params = dict(label_field="autolabels", model_name="ViT-B-32", pretrained=value, device="cpu")
        errors[value] = sdk_execute(EMBED, {"dataset": dataset, "params": params})
    _check_refusals(errors, "pretrained")
    for name in ("local-dir:/etc", "../../etc/x"):
        error = sdk_execute(EMBED, {"dataset": dataset, "params": dict(model_name=name, pretrained=None)})
        assert error and "'model_name'" in error, error
    assert db_changes(before, db_snapshot()) == []


@pytest.fixture()
def trainable(dataset):
    """Two train and one test sample with human labels and accepted
    auto-labels, so that a training run gets as far as its export."""
    det = fo.Detection(label="person", bounding_box=[0.1, 0.1, 0.5, 0.5])
    for i, sample in enumerate(dataset.limit(3)):
        sample.tags = ["train" if i < 2 else "test"]
        sample["ground_truth"] = fo.Detections(detections=[det.copy()])
        auto = det.copy()
        auto["review"] = "accepted"
        sample["autolabels"] = fo.Detections(detections=[auto])
        sample.save()
    return dataset


def _train_params(**extra):
    # a device ultralytics refuses: a run that gets past the checks fails
    # right after exporting, in seconds
    return dict(label_field="autolabels", gt_field="ground_truth", epochs=1, imgsz=32, batch=2,
                device="no-such-device", val_fraction=0.0, delegate=False, **extra)


def test_export_folder_outside_the_roots_is_refused_and_not_created(trainable, allowed_env):
    before = db_snapshot()
    target = allowed_env[1] / f"export-{uuid.uuid4().hex[:6]}"
    error = sdk_execute(TRAIN, {"dataset": trainable, "view": trainable.view(),
                                "params": _train_params(export_dir=str(target))})
    assert not target.exists(), "the export folder was created outside the roots"
    assert error and "'export_dir'" in error and "allowed" in error, error
    model = str(allowed_env[1] / "models" / "secret-a.pt")
    error = sdk_execute(TRAIN, {"dataset": trainable, "view": trainable.view(), "params": _train_params(model=model)})
    assert error and "'model'" in error and "allowed" in error and "secret-b" not in error, error
    assert db_changes(before, db_snapshot()) == []


def test_export_folder_outside_the_roots_is_refused_http(server, served, roots):
    target = roots[1] / f"export-{uuid.uuid4().hex[:6]}"
    before = db_snapshot()
    status, text = http_execute(server, TRAIN, served.name, _train_params(export_dir=str(target)), generator=True)
    assert status >= 400 and "export_dir" in text and "allowed" in text, text[-2000:]
    assert not target.exists()
    assert db_changes(before, db_snapshot()) == []


def test_temporary_training_folder_is_removed_when_the_run_ends(trainable, tmp_path, monkeypatch):
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    error = sdk_execute(TRAIN, {"dataset": trainable, "view": trainable.view(), "params": _train_params()})
    assert error is not None  # the run failed (the device), after creating its temporary folder
    runs = [trainable.get_run_info(k).config for k in trainable.list_runs()]
    assert [r.status for r in runs if r.stoplight_method == "train_on_accepted"] == ["failed"]
    assert list(private.iterdir()) == [], "the temporary export (links to the dataset's media) was left behind"
