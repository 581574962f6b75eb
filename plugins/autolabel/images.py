"""Decoding images the way people see them.

Every backend receives ``HxWx3`` uint8 RGB arrays, oriented as the EXIF tag
says (which is how the App and browsers display them). Boxes are therefore
relative to the displayed image.
"""

from __future__ import annotations

import numpy as np


class ImageLoadError(Exception):
    """An image that cannot be decoded; the message names the file."""


def to_rgb_array(img) -> np.ndarray:
    """Converts any PIL image to an ``HxWx3`` uint8 RGB array.

    - EXIF orientation is applied;
    - 16-bit and 32-bit grayscale (``I;16``, ``I``, ``F``) are scaled from
      their full range (65535 for 16-bit) to 0-255, not clipped;
    - palette and alpha images are composited on white, so transparent
      regions do not turn black;
    - grayscale is replicated to three channels, CMYK/YCbCr/LAB converted.
    """
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            scale = 65535.0
        else:
            # 32-bit: most such files hold 16-bit data; use the real range
            scale = 65535.0 if arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def _pil_open():
    """PIL's own ``Image.open``, even where ultralytics patched it.

    Importing ultralytics replaces ``PIL.Image.open`` with a wrapper that,
    on any file Pillow cannot identify, tries to pip-install a HEIF plugin:
    a network call (and a long stall offline) per broken file.
    """
    import sys

    from PIL import Image

    opener = Image.open
    if getattr(opener, "__module__", "").startswith("ultralytics"):
        opener = getattr(sys.modules[opener.__module__], "_image_open", opener)
    return opener


def load_image(path: str) -> np.ndarray:
    """Reads an image file into an ``HxWx3`` uint8 RGB array.

    Raises:
        ImageLoadError: if the file is missing, empty, truncated or not an
            image; the message names the path
    """
    from PIL import UnidentifiedImageError

    try:
        with _pil_open()(path) as img:
            img.load()
            return to_rgb_array(img)
    except FileNotFoundError:
        raise ImageLoadError(f"Image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f"Cannot decode image {path}: {e}") from None
