"""Loaded detectors, cached between operator calls.

This lives in a submodule on purpose: the plugin's entry ``__init__.py`` is
re-executed on every registry build, submodules are not, so a model loaded
here survives from one App request to the next.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from .backends import ZeroShotDetector, get_backend

_lock = threading.Lock()
_cache: dict[str, ZeroShotDetector] = {}


def default_device() -> str:
    """``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_detector(
    backend: str,
    checkpoint: str | None = None,
    device: str | None = None,
    fp16: bool | None = None,
    options: dict[str, Any] | None = None,
    cache: bool = True,
) -> ZeroShotDetector:
    """Loads (or reuses) a zero-shot detector.

    Args:
        backend: a name from :func:`available_backends`
        checkpoint: hub id, ultralytics weight name or local path; ``None``
            uses the backend's default
        device: torch device; ``None`` picks CUDA when available
        fp16: half precision; ``None`` means on CUDA only
        options: backend-specific options
        cache: keep the model for later calls (only the last one is kept,
            so GPU memory is not held by models nobody uses)
    """
    cls = get_backend(backend)
    device = device or default_device()
    options = dict(options or {})
    key = json.dumps(
        [backend, checkpoint or cls.default_checkpoint, device, fp16, options],
        sort_keys=True,
        default=str,
    )
    with _lock:
        if cache and key in _cache:
            return _cache[key]
        _cache.clear()
        detector = cls(checkpoint=checkpoint, device=device, fp16=fp16, **options)
        if cache:
            _cache[key] = detector
        return detector


def clear_cache() -> None:
    """Releases cached models (and their GPU memory)."""
    with _lock:
        _cache.clear()
