"""Importing ultralytics without its side effects on the whole process.

- Network: importing ultralytics resolves ``one.one.one.one`` and
  ``dns.google`` (a DNS query from a machine that may be air-gapped, and a
  stall where DNS times out), and when that succeeds it sends usage
  analytics. Its ``YOLO_OFFLINE`` switch stops both; weight downloads the
  user asks for by name do not depend on it. Set only when ultralytics is
  not imported yet (later it would change nothing) and the user has not
  chosen.
- ``PIL.Image.open``: importing ultralytics replaces it, for every library
  in the process (FiftyOne's thumbnails, metadata, exports...), with a
  wrapper that pip-installs a HEIF plugin the first time Pillow cannot
  identify a file: a network call and a package install on the server,
  triggered by any broken image. :func:`import_ultralytics` puts Pillow's
  own function back (and disarms the wrapper for code holding a reference
  to it).
- Loading: ``.pt`` files are pickles. :func:`safe_loading` switches
  ultralytics' ``SAFE_LOAD`` (``torch.load(weights_only=True)`` plus its
  allow-list of model classes) on around one load, under
  :data:`SAFE_LOAD_LOCK`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import threading

#: held while ultralytics' process-wide ``SAFE_LOAD`` flag is switched on
#: for one load (zero-shot backends, training): one switch at a time, so
#: that no load restores the flag under another one still loading
SAFE_LOAD_LOCK = threading.Lock()


def set_offline() -> None:
    """``YOLO_OFFLINE=1`` unless ultralytics is imported or the user chose."""
    if "ultralytics" not in sys.modules:
        os.environ.setdefault("YOLO_OFFLINE", "1")


def restore_pil_open() -> None:
    """Undoes ultralytics' process-wide ``PIL.Image.open`` patch, if applied."""
    patches = sys.modules.get("ultralytics.utils.patches")
    if patches is None:
        return
    from PIL import Image

    original = getattr(patches, "_image_open", None)
    if original is not None and Image.open is getattr(patches, "image_open", None):
        Image.open = original
    if hasattr(patches, "_pil_plugins_registered"):
        # the wrapper, called directly, now only opens: no install
        patches._pil_plugins_registered = True


def import_ultralytics():
    """Imports ultralytics offline and without its PIL patch; returns it."""
    set_offline()
    import ultralytics

    restore_pil_open()
    return ultralytics


@contextlib.contextmanager
def safe_loading(safe: bool, checkpoint: str):
    """Runs an ultralytics model load, restricted to plain tensors if ``safe``.

    ultralytics reads its ``ULTRALYTICS_SAFE_LOAD`` flag once, at import, into
    ``ultralytics.nn.tasks.SAFE_LOAD``; it is switched on only around this
    load (under a lock), so the user's own ultralytics calls elsewhere in
    the process keep their behavior. Refusals become a ``ValueError``
    naming the ``checkpoint`` parameter.
    """
    if not safe:
        yield
        return
    import ultralytics.nn.tasks as tasks

    loader = getattr(tasks, "_SafeLoad", None)
    if loader is None or not loader.SUPPORTED or not hasattr(tasks, "SAFE_LOAD"):
        raise ValueError(
            f"Parameter 'checkpoint': {checkpoint!r} cannot be loaded safely with this "
            "ultralytics/torch (weights_only loading needs ultralytics >= 8.4 and "
            "torch >= 2.6); upgrade them, or pass backend_options={'allow_pickle': True} "
            "to unpickle a file you trust"
        )
    with SAFE_LOAD_LOCK:
        previous = tasks.SAFE_LOAD
        tasks.SAFE_LOAD = True
        try:
            yield
        except (TypeError, pickle.UnpicklingError) as e:
            raise ValueError(
                f"Parameter 'checkpoint': {checkpoint!r} was refused by weights_only loading "
                f"(it references code outside ultralytics' model classes): {e}. Only if you "
                "trust the file, pass backend_options={'allow_pickle': True}"
            ) from e
        finally:
            tasks.SAFE_LOAD = previous
