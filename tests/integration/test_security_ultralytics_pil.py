"""Threat: one broken image makes the server pip-install a package.

Importing ultralytics replaces ``PIL.Image.open`` for the whole process with
a wrapper that, the first time Pillow cannot identify a file, calls
ultralytics' ``check_requirements("pi-heif")``: a package install (and a
network call) on the server, triggered by any unreadable image any library
opens (FiftyOne's metadata, thumbnails, exports). Once Stoplight has
imported ultralytics, ``PIL.Image.open`` must be Pillow's own again.

Driven in-process (the SDK path): the install is observed by replacing
``check_requirements``; in an App server process it could only be observed
by letting it install into the shared environment.
"""

from __future__ import annotations

import uuid

import fiftyone as fo
import pytest

from securitykit import sdk_execute


@pytest.fixture()
def installs(monkeypatch):
    """Calls of ultralytics' requirement installer (each would pip-install)."""
    import ultralytics.utils.checks as checks

    calls = []

    def check_requirements(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("ultralytics would pip-install " + repr(args))

    monkeypatch.setattr(checks, "check_requirements", check_requirements)
    return calls


@pytest.fixture()
def broken(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"this is not an image " * 20)
    return path


def test_loading_a_yolo_model_leaves_pil_to_pillow(tiny_checkpoint, installs, broken):
    from PIL import Image, UnidentifiedImageError

    from stoplight.plugins.autolabel.backends import get_backend

    get_backend("yoloe")(checkpoint=tiny_checkpoint("yoloe"), device="cpu")  # ultralytics imported
    with pytest.raises(UnidentifiedImageError):
        Image.open(broken)
    assert installs == [], "opening a broken image asked ultralytics to install a package"
    assert Image.open.__module__ == "PIL.Image"


def test_a_run_then_fiftyone_on_a_broken_image_installs_nothing(image_dir, tiny_checkpoint, installs, broken):
    ds = fo.Dataset(f"stoplight-pil-{uuid.uuid4().hex[:8]}")
    try:
        ds.add_samples([fo.Sample(filepath=str(p)) for p in sorted(image_dir.glob("*.jpg"))[:1]]
                       + [fo.Sample(filepath=str(broken))])
        params = dict(backend="yoloe", checkpoint=tiny_checkpoint("yoloe"), classes=["person"], device="cpu",
                      label_field="yolo")
        assert sdk_execute("@stoplight/autolabel/zero_shot_detect", {"dataset": ds, "params": params}) is None
        ds.compute_metadata(overwrite=True, skip_failures=True)  # FiftyOne opens every image with PIL
        assert installs == [], "FiftyOne's read of a broken image asked ultralytics to install a package"
    finally:
        ds.delete()
