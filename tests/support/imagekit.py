"""Real test images: photos shipped inside installed packages, and variants.

The photos are ultralytics' ``bus.jpg`` and ``zidane.jpg`` and
scikit-learn's ``china.jpg`` and ``flower.jpg``. The variants exercise
decoding: grayscale, RGBA, palette, 16-bit, and an EXIF-rotated JPEG whose
stored pixels are sideways.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from photos import photo_paths  # real photos shipped inside installed packages


def exif_rotated_copy(src: Path, dst: Path, orientation: int = 6) -> None:
    """Saves ``src`` with pixels stored rotated and an EXIF tag undoing it.

    Orientation 6 means "rotate 90 degrees clockwise to display", so the
    pixels are stored rotated 90 degrees counter-clockwise: viewers (and
    :func:`load_image`) show the original photo.
    """
    from PIL import Image

    with Image.open(src) as im:
        im = im.convert("RGB")
        if orientation == 6:
            stored = im.transpose(Image.Transpose.ROTATE_90)
        elif orientation == 8:
            stored = im.transpose(Image.Transpose.ROTATE_270)
        elif orientation == 3:
            stored = im.transpose(Image.Transpose.ROTATE_180)
        else:
            raise ValueError(orientation)
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs = {"quality": 95} if str(dst).lower().endswith((".jpg", ".jpeg")) else {}
        stored.save(dst, exif=exif.tobytes(), **kwargs)


def build_image_dir(root: Path) -> Path:
    """Creates (once) a directory of real photos and decoding variants."""
    from PIL import Image

    root = Path(root)
    if root.exists():
        return root
    root.mkdir(parents=True)
    photos = photo_paths()
    for p in photos:
        shutil.copy(p, root / p.name)

    bus = Image.open(photos[0]).convert("RGB")
    small = bus.resize((bus.width // 2, bus.height // 2))
    small.convert("L").save(root / "bus_gray.png")
    rgba = small.convert("RGBA")
    alpha = np.full((small.height, small.width), 255, np.uint8)
    alpha[:, : small.width // 4] = 0  # a transparent stripe
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(root / "bus_rgba.png")
    small.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(root / "bus_palette.png")
    gray16 = (np.asarray(small.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(gray16).save(root / "bus_16bit.png")
    exif_rotated_copy(photos[1], root / "zidane_exif6.jpg", orientation=6)
    # lossless twins: an upright PNG and the same pixels stored sideways
    Image.open(photos[1]).convert("RGB").save(root / "zidane_upright.png")
    exif_rotated_copy(photos[1], root / "zidane_exif8.png", orientation=8)
    os.sync() if hasattr(os, "sync") else None
    return root
