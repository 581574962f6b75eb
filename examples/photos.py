"""Real photos that ship inside installed packages (no download)."""

from __future__ import annotations

from pathlib import Path


def photo_paths() -> list[Path]:
    """ultralytics' bus and Zidane pictures, scikit-learn's China and flower pictures."""
    import sklearn.datasets
    import ultralytics

    u = Path(ultralytics.__file__).parent / "assets"
    s = Path(sklearn.datasets.__file__).parent / "images"
    return [u / "bus.jpg", u / "zidane.jpg", s / "china.jpg", s / "flower.jpg"]
