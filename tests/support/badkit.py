"""Bad and odd image files, generated: the corpus of tests/integration/test_bad_input.py.

Each writer takes a destination path (the extension is the writer's) and
creates the file from a real photo or from scratch. :data:`UNREADABLE` must
be refused with a message naming the file; :data:`READABLE` must decode and
be labeled.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import imagekit


def _photo() -> Image.Image:
    with Image.open(imagekit.photo_paths()[0]) as im:  # ultralytics' bus.jpg
        return im.convert("RGB").resize((270, 360))


def _photo_bytes(fmt: str) -> bytes:
    import io

    buf = io.BytesIO()
    _photo().save(buf, format=fmt)
    return buf.getvalue()


# ------------------------------------------------------------ unreadable


def truncated_jpeg(path: Path) -> Path:
    data = _photo_bytes("JPEG")
    path.write_bytes(data[: len(data) // 3])
    return path


def truncated_png(path: Path) -> Path:
    data = _photo_bytes("PNG")
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_jpeg(path: Path) -> Path:
    """A JPEG start-of-image marker followed by noise."""
    rng = np.random.default_rng(0)
    path.write_bytes(b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return path


def corrupt_png(path: Path) -> Path:
    """A PNG whose header chunk fails its CRC."""
    data = bytearray(_photo_bytes("PNG"))
    data[16:24] = b"\xff" * 8  # width/height inside IHDR: CRC no longer matches
    path.write_bytes(bytes(data))
    return path


def missing_file(path: Path) -> Path:
    return path  # never written


def zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def text_as_jpeg(path: Path) -> Path:
    path.write_text("This is a text file, not a JPEG.\n" * 20)
    return path


def directory_as_jpeg(path: Path) -> Path:
    path.mkdir()
    return path


def huge_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid all-black grayscale PNG of ``width`` x ``height`` pixels.

    Written row by row through zlib (1.3 MB on disk for 400 MP), so the test
    itself never holds the image in memory.
    """
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF
        )

    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + one byte per pixel
    parts = [comp.compress(row * 500) for _ in range(height // 500)]
    parts.append(comp.compress(row * (height % 500)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr))
        f.write(chunk(b"IDAT", b"".join(parts)))
        f.write(chunk(b"IEND", b""))
    return path


UNREADABLE = {
    "truncated_jpeg": ("jpg", truncated_jpeg),
    "truncated_png": ("png", truncated_png),
    "corrupt_jpeg": ("jpg", corrupt_jpeg),
    "corrupt_png": ("png", corrupt_png),
    "missing_file": ("jpg", missing_file),
    "zero_bytes": ("jpg", zero_bytes),
    "text_as_jpeg": ("jpg", text_as_jpeg),
    "directory_as_jpeg": ("jpg", directory_as_jpeg),
    "huge_20000x20000": ("png", huge_png),
}


# --------------------------------------------------------------- readable


def cmyk_jpeg(path: Path) -> Path:
    _photo().convert("CMYK").save(path, quality=90)
    return path


def png_16bit(path: Path) -> Path:
    gray = np.asarray(_photo().convert("L"), dtype=np.uint16) * 257
    Image.fromarray(gray).save(path)
    return path


def palette_png(path: Path) -> Path:
    pal = _photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal.save(path, transparency=0)  # palette index 0 transparent
    return path


def rgba_png(path: Path) -> Path:
    rgba = _photo().convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, np.uint8)
    alpha[:, : rgba.width // 3] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(path)
    return path


def gray_alpha_png(path: Path) -> Path:
    _photo().convert("LA").save(path)
    return path


def one_by_one(path: Path) -> Path:
    Image.new("RGB", (1, 1), (200, 30, 30)).save(path)
    return path


def thin_strip(path: Path) -> Path:
    _photo().resize((2000, 3)).save(path)
    return path


def exif_rotated_jpeg(path: Path) -> Path:
    imagekit.exif_rotated_copy(imagekit.photo_paths()[1], path, orientation=6)
    return path


def png_named_jpeg(path: Path) -> Path:
    _photo().save(path, format="PNG")
    return path


def animated_gif(path: Path) -> Path:
    frames = [_photo().convert("P"), _photo().rotate(90).convert("P")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def large_jpeg(path: Path) -> Path:
    """6000 x 4000: large (24 MP) but under the decoding limit."""
    _photo().resize((6000, 4000)).save(path, quality=70)
    return path


READABLE = {
    "cmyk_jpeg": ("jpg", cmyk_jpeg),
    "png_16bit": ("png", png_16bit),
    "palette_png_transparent": ("png", palette_png),
    "rgba_png": ("png", rgba_png),
    "gray_alpha_png": ("png", gray_alpha_png),
    "one_by_one": ("png", one_by_one),
    "thin_strip_2000x3": ("png", thin_strip),
    "exif_rotated_jpeg": ("jpg", exif_rotated_jpeg),
    "png_named_jpeg": ("jpg", png_named_jpeg),
    "animated_gif": ("gif", animated_gif),
    "large_6000x4000": ("jpg", large_jpeg),
}


def write(kind: str, directory: Path) -> Path:
    """Writes the corpus file ``kind`` into ``directory`` (non-ASCII name with
    a space, so paths themselves are exercised too); returns its path."""
    ext, writer = {**UNREADABLE, **READABLE}[kind]
    directory.mkdir(parents=True, exist_ok=True)
    return writer(directory / f"{kind} фото.{ext}")
