"""Upper bounds on sizes a caller chooses, so one request cannot exhaust the
server.

Operators run inside the App server process (or a delegated worker); a
request asking for a batch of a million images, ten thousand decoding
threads or a million prompts would take its memory down for everyone. Each
bound is generous for real work (LVIS has 1,203 classes, V3Det 13,204) and
can be raised by the server's administrator with an environment variable
``STOPLIGHT_MAX_<NAME>`` (e.g. ``STOPLIGHT_MAX_DETECT_BATCH_SIZE=512``),
which the App cannot change.
"""

from __future__ import annotations

import os

#: name -> default upper bound
LIMITS = {
    "detect_batch_size": 256,  # images per detector forward pass
    "embed_batch_size": 4096,  # crops per CLIP forward pass
    "train_batch_size": 1024,  # images per training step
    "num_workers": 64,  # decoding threads / dataloader processes
    "folds": 50,  # cross-fitting folds
    "prompts": 20_000,  # text prompts / classes of one run
    "neighbors": 1000,  # k of kNN agreement
}


def limit(name: str) -> int:
    """The upper bound ``name`` (its environment override, if set)."""
    raw = os.environ.get(f"STOPLIGHT_MAX_{name.upper()}")
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"STOPLIGHT_MAX_{name.upper()} must be an integer; got {raw!r}") from None
        if value >= 1:
            return value
    return LIMITS[name]


def check_int(value, param: str, low: int, limit_name: str) -> int:
    """Returns ``value`` if it is an integer in ``[low, limit(limit_name)]``.

    Raises:
        ValueError: naming ``param`` and the bound otherwise
    """
    high = limit(limit_name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"Parameter '{param}' must be an integer in [{low}, {high}]; got {value!r}"
            + (f" (the server's limit; STOPLIGHT_MAX_{limit_name.upper()} raises it)"
               if isinstance(value, int) and value > high else "")
        )
    return value


def check_count(count: int, limit_name: str, param: str) -> None:
    """Raises a ValueError naming ``param`` when ``count`` items exceed
    ``limit(limit_name)``."""
    high = limit(limit_name)
    if count > high:
        raise ValueError(
            f"Parameter '{param}': {count} {limit_name} exceed the server's limit of {high} "
            f"(STOPLIGHT_MAX_{limit_name.upper()} raises it)"
        )
