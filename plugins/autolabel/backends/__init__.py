"""Zero-shot detector backends.

Every module in this package that defines a :class:`ZeroShotDetector`
subclass decorated with :func:`register` is discovered automatically, so a new
backend is one new module and nothing else. Backend modules import their
heavy libraries (torch, transformers, ultralytics) lazily, inside methods, so
that listing backends stays cheap when the App rebuilds its registry.
"""

import importlib
import pkgutil

from .base import Predictions, ZeroShotDetector, register, registered

_discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    _discovered = True


def available_backends() -> list[str]:
    """The names accepted by the ``backend`` parameter, sorted."""
    _discover()
    return sorted(registered())


def get_backend(name: str) -> type[ZeroShotDetector]:
    """Returns the backend class registered as ``name``.

    Raises:
        ValueError: if no backend has that name
    """
    _discover()
    try:
        return registered()[name]
    except KeyError:
        raise ValueError(
            f"Unknown backend {name!r}; choose one of "
            f"{', '.join(available_backends())}"
        ) from None


__all__ = [
    "Predictions",
    "ZeroShotDetector",
    "available_backends",
    "get_backend",
    "register",
]
