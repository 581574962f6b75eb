"""The one gate between an operator request and a detector load.

A ``zero_shot_detect`` request (App form, HTTP execute endpoint, SDK
``execute_operator``, a queued delegated operation, a scale-out worker
started from one) becomes detector arguments only through
:func:`request_detect_params`; its ``backend_options`` only through
:func:`request_backend_options`. Whatever executes the request (immediate,
delegated, a cluster of workers) must start from what these return.

What a request cannot do:

- switch on unsafe loading: ``trust_remote_code`` (imports and runs the
  Python code of a model repository) and ``allow_pickle`` (unpickles a
  checkpoint: any code in it runs). They stay off unless the server's
  administrator lists the checkpoint in ``STOPLIGHT_TRUST_REMOTE_CODE`` or
  ``STOPLIGHT_ALLOW_PICKLE`` (comma-separated hub ids or local paths, in the
  server's environment, which the App cannot change); then the option is
  set for that checkpoint by the server, whatever the request says;
- name local files outside the allowed roots (:mod:`..common.paths`): the
  checkpoint and the path-valued options;
- pass options the backend does not document.

The Python API (:func:`.pipeline.zero_shot_detect`, :func:`.models.load_detector`)
is not restricted: its caller already runs code on the machine.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from ..common import paths
from ..common.limits import check_count

#: the two options that load code with the weights (named once: a dict
#: literal keyed by the option's name reads as loader defaults to
#: tests/integration/test_security.py's source scan)
TRUST_REMOTE_CODE, ALLOW_PICKLE = "trust_remote_code", "allow_pickle"
#: why each is refused
UNSAFE_OPTIONS = {
    TRUST_REMOTE_CODE: "it imports and runs the Python code of a model repository on this server",
    ALLOW_PICKLE: "it unpickles a checkpoint, and any code in the pickle runs on this server",
}
#: server-side lists of checkpoints the administrator trusts, per option
TRUST_ENV = {TRUST_REMOTE_CODE: "STOPLIGHT_TRUST_REMOTE_CODE", ALLOW_PICKLE: "STOPLIGHT_ALLOW_PICKLE"}
#: options whose values are local paths (or names) checked against the roots
PATH_OPTIONS = ("text_encoder", "text_encoder_checkpoint", "text_embeddings")


def trusted_checkpoints(option: str) -> list[str]:
    """The checkpoints the server's administrator allows ``option`` for."""
    raw = os.environ.get(TRUST_ENV[option], "")
    return [c.strip() for c in raw.split(",") if c.strip()]


def _is_trusted(option: str, checkpoint: str | None) -> bool:
    if not checkpoint:
        return False
    listed = trusted_checkpoints(option)
    if checkpoint in listed:
        return True
    if paths.looks_like_local_path(checkpoint):
        real = os.path.realpath(os.path.expanduser(checkpoint))
        return any(
            paths.looks_like_local_path(c) and os.path.realpath(os.path.expanduser(c)) == real
            for c in listed
        )
    return False


def request_backend_options(backend: str, checkpoint: str | None, options: Any) -> dict:
    """The backend options of an operator request, made safe.

    This is the guard every executor of a ``zero_shot_detect`` request
    must use (see the module docstring).

    Args:
        backend: the backend name of the request
        checkpoint: the checkpoint of the request (after
            :func:`request_detect_params`' path check)
        options: the request's ``backend_options`` (``None``, ``{}`` or a
            dict)

    Returns:
        the options to load the detector with: unsafe loading set only
        where the server trusts ``checkpoint``, local paths resolved

    Raises:
        ValueError: naming the option, for an unsafe option the request
            switches on, a path outside the allowed roots, or an option the
            backend does not know
    """
    from .backends import get_backend

    if options is None or options == "":
        options = {}
    if not isinstance(options, Mapping):
        raise ValueError(f"Parameter 'backend_options' must be an object; got {type(options).__name__}")
    cls = get_backend(backend)
    out = dict(options)
    unknown = sorted(set(out) - set(cls.default_options))
    if unknown:
        raise ValueError(
            f"Parameter 'backend_options': unknown option(s) {', '.join(map(str, unknown))} for backend "
            f"{backend!r}; valid options: {', '.join(sorted(cls.default_options)) or 'none'}"
        )
    for option, why in UNSAFE_OPTIONS.items():
        if option not in cls.default_options:
            continue
        asked = out.pop(option, False)
        if asked is not False and asked is not None:
            raise ValueError(
                f"Option '{option}' cannot be set by an operator request: {why}. The server's "
                f"administrator can allow it for given checkpoints with {TRUST_ENV[option]} "
                "(comma-separated), or call zero_shot_detect from Python"
            )
        if _is_trusted(option, checkpoint):
            out[option] = True
    for option in PATH_OPTIONS:
        if option in out and out[option] is not None:
            out[option] = _request_path_option(option, out[option])
    return out


def _request_path_option(option: str, value: Any) -> Any:
    param = f"backend_options.{option}"
    if option == "text_encoder_checkpoint":
        return paths.request_path(value, param)
    if option == "text_encoder":
        if isinstance(value, str) and value.startswith("local-dir:"):
            return "local-dir:" + paths.request_path(value[len("local-dir:"):], param)
        return paths.request_location(value, param)
    # text_embeddings: a .npz path, or {prompt: vector or .npy path}
    if isinstance(value, (str, os.PathLike)):
        return paths.request_path(value, param)
    if isinstance(value, Mapping):
        check_count(len(value), "prompts", param)
        return {
            str(k): paths.request_path(v, param) if isinstance(v, (str, os.PathLike)) else v
            for k, v in value.items()
        }
    return value


def request_detect_params(params: Mapping[str, Any]) -> dict:
    """The keyword arguments of a ``zero_shot_detect`` request, made safe.

    Checks the ``checkpoint`` (a hub id or name passes; a local path must
    lie inside the allowed roots) and runs :func:`request_backend_options`.

    Args:
        params: ``zero_shot_detect`` keyword arguments read from a request
            (``backend``, ``checkpoint``, ``backend_options``, ...)

    Returns:
        a copy with the checkpoint and ``backend_options`` made safe

    Raises:
        ValueError: naming the parameter (see :func:`request_backend_options`)
    """
    out = dict(params)
    out["checkpoint"] = paths.request_location(out.get("checkpoint") or None, "checkpoint")
    out["backend_options"] = request_backend_options(
        out.get("backend", "owlv2"), out["checkpoint"], out.get("backend_options")
    ) or None
    return out
