"""Decoding: EXIF orientation, odd modes, broken files."""

import numpy as np
import pytest
from PIL import Image

import imagekit
from stoplight.plugins.common.images import ImageLoadError, load_image


def test_exif_rotated_photo_decodes_upright(image_dir):
    upright = load_image(str(image_dir / "zidane.jpg"))
    rotated = load_image(str(image_dir / "zidane_exif6.jpg"))
    with Image.open(image_dir / "zidane_exif6.jpg") as raw:
        stored_w, stored_h = raw.size
    assert (stored_w, stored_h) == (upright.shape[0], upright.shape[1])  # stored sideways
    assert rotated.shape == upright.shape  # displayed upright
    diff = np.abs(rotated.astype(int) - upright.astype(int)).mean()
    assert diff < 6  # same pixels up to JPEG re-encoding


@pytest.mark.parametrize("name", ["bus_gray.png", "bus_rgba.png", "bus_palette.png", "bus_16bit.png"])
def test_modes_convert_to_uint8_rgb(image_dir, name):
    arr = load_image(str(image_dir / name))
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3


def test_16bit_scales_full_range(tmp_path):
    data = np.array([[0, 65535, 32896]], dtype=np.uint16)
    Image.fromarray(data).save(tmp_path / "a.png")
    assert load_image(str(tmp_path / "a.png"))[0, :, 0].tolist() == [0, 255, 128]


def test_transparency_composites_on_white(image_dir):
    arr = load_image(str(image_dir / "bus_rgba.png"))
    assert (arr[:, :5] == 255).all()


def test_cmyk_converts(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    arr = load_image(str(tmp_path / "c.jpg"))
    assert arr.shape == (8, 8, 3) and arr[..., 0].mean() > 200


@pytest.mark.parametrize("content", [b"", b"not an image at all", None])
def test_broken_files_raise_naming_the_path(tmp_path, content):
    path = tmp_path / "broken.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        load_image(str(path))


def test_truncated_jpeg_raises(tmp_path):
    src = imagekit.photo_paths()[0].read_bytes()
    (tmp_path / "t.jpg").write_bytes(src[: len(src) // 3])
    with pytest.raises(ImageLoadError, match="t.jpg"):
        load_image(str(tmp_path / "t.jpg"))
