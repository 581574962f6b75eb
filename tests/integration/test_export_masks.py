"""The YOLO export keeps instance masks as segmentation polygons.

Real photos, a real FiftyOne dataset whose accepted labels carry masks of
known shapes (a disc, two separate blocks, an empty mask), ultralytics' own
label checker reading what was written. What is checked: one polygon row per
exported label, in the label's class; the polygon covers its mask (area and
position); a label without a usable mask is its box as a rectangle, so that
ultralytics keeps every polygon; rejected labels stay out. Control: the same
labels with ``masks=False`` (and a view without masks) give box rows.
"""

from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image

import imagekit
from stoplight.plugins.training import export as E

W, H = 640, 480


def _disc(h, w):
    yy, xx = np.mgrid[:h, :w]
    return (yy - h / 2 + 0.5) ** 2 / (h / 2) ** 2 + (xx - w / 2 + 0.5) ** 2 / (w / 2) ** 2 <= 1.0


@pytest.fixture()
def ds(tmp_path):
    src = imagekit.photo_paths()[0]
    path = tmp_path / "photo.jpg"
    Image.open(src).convert("RGB").resize((W, H)).save(path)
    two = np.zeros((60, 100), bool)
    two[5:55, 5:60] = True  # the larger piece
    two[20:40, 80:95] = True
    dets = [
        fo.Detection(label="disc", bounding_box=[0.1, 0.1, 100 / W, 80 / H], mask=_disc(80, 100), review="accepted"),
        fo.Detection(label="two", bounding_box=[0.5, 0.5, 100 / W, 60 / H], mask=two, review="accepted"),
        fo.Detection(label="box", bounding_box=[0.6, 0.1, 0.2, 0.2], review="accepted"),
        fo.Detection(label="empty", bounding_box=[0.1, 0.6, 0.1, 0.1], mask=np.zeros((20, 20), bool),
                     review="accepted"),
        fo.Detection(label="disc", bounding_box=[0.3, 0.3, 0.1, 0.1], mask=_disc(10, 10), review="rejected"),
    ]
    d = fo.Dataset()
    d.add_sample(fo.Sample(filepath=str(path), autolabels=fo.Detections(detections=dets)))
    yield d
    d.delete()


CLASSES = ["box", "disc", "empty", "two"]


def _rows(result) -> list[list[float]]:
    (txt,) = Path(result["labels_dir"]).glob("*.txt")
    return [[float(v) for v in line.split()] for line in txt.read_text().splitlines() if line.strip()]


def _area(xy) -> float:
    """Shoelace area of a polygon."""
    x, y = np.asarray(xy, dtype=float).reshape(-1, 2).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def test_masks_export_as_one_polygon_per_label(ds, tmp_path):
    result = E.export_training_set(ds, "autolabels", tmp_path / "out", include="accepted", classes=CLASSES)
    assert result["masks"] and result["num_masks"] == 3 and result["num_labels"] == 4
    rows = _rows(result)
    assert len(rows) == 4  # one row per exported label; the rejected one is out
    by_class = {CLASSES[int(r[0])]: np.asarray(r[1:]).reshape(-1, 2) for r in rows}
    assert set(by_class) == set(CLASSES)
    # the disc: area of the ellipse (pi/4 of its box), inside its box
    disc = by_class["disc"]
    box_area = (100 / W) * (80 / H)
    assert len(disc) > 4 and abs(_area(disc) / (box_area * np.pi / 4) - 1) < 0.1
    assert disc[:, 0].min() >= 0.1 - 1e-3 and disc[:, 0].max() <= 0.1 + 100 / W + 1e-3
    # two pieces: one row, the larger block (55 x 50 px of the 100 x 60 box)
    two = by_class["two"]
    assert abs(_area(two) / ((55 / W) * (50 / H)) - 1) < 0.15
    assert two[:, 0].max() < 0.5 + 62 / W  # not the small piece on the right
    # no mask / an empty mask: the box as a rectangle
    for name, (x, y, w, h) in (("box", (0.6, 0.1, 0.2, 0.2)), ("empty", (0.1, 0.6, 0.1, 0.1))):
        np.testing.assert_allclose(sorted(map(tuple, by_class[name])),
                                   sorted([(x, y), (x + w, y), (x + w, y + h), (x, y + h)]), atol=1e-5)


def test_ultralytics_reads_every_polygon(ds, tmp_path):
    from ultralytics.data.utils import verify_image_label

    result = E.export_training_set(ds, "autolabels", tmp_path / "out", include="accepted", classes=CLASSES)
    (img,) = Path(result["images_dir"]).iterdir()
    (txt,) = Path(result["labels_dir"]).glob("*.txt")
    out = verify_image_label((str(img), str(txt), "", False, len(CLASSES), 0, 0, False))
    _, labels, _, segments, _, nm, nf, ne, nc, msg = out
    assert (nm, nf, ne, nc) == (0, 1, 0, 0), msg
    assert len(segments) == len(labels) == 4  # ultralytics kept all polygons


def test_control_masks_off_or_absent_gives_box_rows(ds, tmp_path):
    off = E.export_training_set(ds, "autolabels", tmp_path / "off", include="accepted", classes=CLASSES, masks=False)
    assert not off["masks"] and off["num_masks"] == 3
    rows = _rows(off)
    assert len(rows) == 4 and all(len(r) == 5 for r in rows)
    disc = next(r for r in rows if CLASSES[int(r[0])] == "disc")
    np.testing.assert_allclose(disc[1:], [0.1 + 50 / W, 0.1 + 40 / H, 100 / W, 80 / H], atol=1e-5)
    # auto on labels without masks: boxes, as before
    from fiftyone import ViewField as F

    plain = ds.filter_labels("autolabels", F("label") == "box")
    auto = E.export_training_set(plain, "autolabels", tmp_path / "auto", include="accepted", classes=CLASSES)
    assert not auto["masks"] and auto["num_masks"] == 0 and all(len(r) == 5 for r in _rows(auto))


def test_bad_masks_parameters_are_named(ds, tmp_path):
    with pytest.raises(ValueError, match="'masks'"):
        E.export_training_set(ds, "autolabels", tmp_path / "x", masks="yes")
    with pytest.raises(ValueError, match="'tolerance'"):
        E.export_training_set(ds, "autolabels", tmp_path / "x", tolerance=-1)
