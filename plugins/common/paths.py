"""Local paths an operator request may name: only inside the allowed roots.

Every operator parameter is attacker-controlled (the App's execute endpoint
takes parameters its forms never show). A request may therefore name a
local file or folder (a checkpoint, CLIP weights, text embeddings, a YOLO
model, an export folder) only inside the folders the server allows:

- ``STOPLIGHT_ALLOWED_ROOTS``: absolute folders separated by ``os.pathsep``
  (``:`` on Linux and macOS), set in the App server's (and delegated
  workers') environment, which the App cannot change;
- by default FiftyOne's dataset folder (``fo.config.default_dataset_dir``,
  ``~/fiftyone``) and model-zoo folder (``fo.config.model_zoo_dir``).

The check runs on the resolved path (``~``, ``..`` and symlinks followed),
*before* anything looks at the file system there, and a refusal reads the
same whether the path exists, is a file, a folder or nothing: errors never
tell what lies outside the roots. The Python API is not restricted: its
caller already runs code on the machine.

Values that are names rather than paths (a hub id ``org/model``, an
ultralytics weight name ``yolo11n.pt``, an open_clip tag ``openai``) pass
through unchanged; a value with a path separator counts as a path when it is
absolute, starts with ``~`` or ``.``, or exists relative to the server's
working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

#: environment variable holding the allowed roots (``os.pathsep``-separated)
ROOTS_ENV = "STOPLIGHT_ALLOWED_ROOTS"


def allowed_roots() -> list[Path]:
    """The resolved folders inside which requests may name local paths."""
    configured = os.environ.get(ROOTS_ENV, "")
    if configured.strip():
        raw = [r for r in configured.split(os.pathsep) if r.strip()]
    else:
        import fiftyone as fo

        raw = [fo.config.default_dataset_dir, fo.config.model_zoo_dir]
    roots = []
    for r in raw:
        path = Path(os.path.realpath(os.path.expanduser(r.strip())))
        if path not in roots:
            roots.append(path)
    return roots


def is_inside_roots(path: str | os.PathLike) -> bool:
    """Whether ``path``, resolved, lies inside an allowed root."""
    real = Path(os.path.realpath(os.path.expanduser(str(path))))
    return any(real == root or root in real.parents for root in allowed_roots())


def looks_like_local_path(value: str) -> bool:
    """Whether a request value names something on this machine rather than a
    hub id or a model name (see the module docstring)."""
    text = str(value).strip()
    if not text:
        return False
    if os.path.isabs(text) or text.startswith(("~", ".")):
        return True
    if "/" in text or os.sep in text:
        # "org/model" is a hub id unless a relative path of that name exists
        return os.path.lexists(text)
    return False


def request_path(value, param: str) -> str:
    """A local path from a request, if it lies inside the allowed roots.

    Args:
        value: the path the request gives
        param: the parameter's name, for the error

    Returns:
        the path, resolved (absolute, symlinks followed)

    Raises:
        ValueError: naming ``param``, for anything but a non-empty string,
            and for a path outside the allowed roots (the same message
            whether it exists or not)
    """
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ValueError(f"Parameter '{param}' must be a path; got {value!r}")
    text = str(value).strip()
    if "\0" in text:
        raise ValueError(f"Parameter '{param}' must be a path; got {value!r}")
    if not is_inside_roots(text):
        roots = os.pathsep.join(str(r) for r in allowed_roots())
        raise ValueError(
            f"Parameter '{param}': local paths in an operator request must lie inside the "
            f"folders this server allows ({roots}; set {ROOTS_ENV} on the server to change "
            f"them); {text!r} does not"
        )
    return os.path.realpath(os.path.expanduser(text))


def request_location(value, param: str):
    """A request value that is a name or a local path: names pass unchanged,
    local paths must lie inside the allowed roots (:func:`request_path`).
    ``None`` and ``""`` pass unchanged."""
    if value is None or value == "":
        return value
    if not isinstance(value, str):
        raise ValueError(f"Parameter '{param}' must be a string; got {value!r}")
    if looks_like_local_path(value):
        return request_path(value, param)
    return value
