"""Decoding images the way people see them.

Every backend receives ``HxWx3`` uint8 RGB arrays, oriented as the EXIF tag
says (which is how the App and browsers display them). Boxes are therefore
relative to the displayed image.
"""

from __future__ import annotations

import numpy as np

#: images with more pixels are refused before they are decoded. Pillow's own
#: decompression-bomb guard warns at 89 MP and refuses at 179 MP; decoding
#: stays bounded here by one explicit limit instead: 2**27 pixels (134 MP,
#: e.g. 13,000 x 10,000) take about 0.4 GB as an RGB array, and the decoding
#: threads hold a few such images at once. For gigapixel imagery raise it,
#: and Pillow's ``Image.MAX_IMAGE_PIXELS`` too (Pillow refuses above twice its
#: own value before this check is reached).
MAX_IMAGE_PIXELS = 2**27


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


def load_image(path: str, max_pixels: int | None = None) -> np.ndarray:
    """Reads an image file into an ``HxWx3`` uint8 RGB array.

    The size is checked from the header, before any pixel is decoded.

    Args:
        path: the image file
        max_pixels: refuse images with more pixels (width x height);
            ``None`` uses :data:`MAX_IMAGE_PIXELS`

    Raises:
        ImageLoadError: if the file is missing, empty, truncated, not an
            image, or larger than ``max_pixels``; the message names the path
    """
    from PIL import Image

    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with _pil_open()(path) as img:
            width, height = img.size
            if width * height > limit:
                raise ImageLoadError(_too_large(path, width, height, limit))
            img.load()
            return to_rgb_array(img)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(f"Image file not found: {path}") from None
    except IsADirectoryError:
        raise ImageLoadError(f"Image path is a directory, not a file: {path}") from None
    except Image.DecompressionBombError as e:
        # above twice Pillow's own limit: refused by Image.open itself
        raise ImageLoadError(
            f"Image {path} is too large to decode ({e}); refused before decoding to "
            "bound memory (limits: stoplight images.MAX_IMAGE_PIXELS and Pillow's "
            "Image.MAX_IMAGE_PIXELS)"
        ) from None
    except MemoryError:
        raise ImageLoadError(f"Out of memory decoding image {path}") from None
    except Exception as e:  # noqa: BLE001 - one bad file must not stop a run
        # Pillow's decoders raise OSError, SyntaxError, ValueError, but also
        # EOFError, struct.error, IndexError... on malformed files
        raise ImageLoadError(f"Cannot decode image {path}: {type(e).__name__}: {e}") from None


def _too_large(path: str, width: int, height: int, limit: int) -> str:
    return (
        f"Image {path} is {width}x{height} = {width * height:,} pixels, more than the "
        f"limit of {limit:,} (stoplight images.MAX_IMAGE_PIXELS); refused before "
        "decoding to bound memory"
    )
