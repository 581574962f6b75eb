"""Training and evaluating an ultralytics YOLO detector, offline and safely.

- :func:`train_yolo` trains a detector on a ``data.yaml``
  (:func:`.export.write_data_yaml`);
- :func:`evaluate_yolo` computes mAP50 on a split with ultralytics' own
  validator;
- :func:`predict_to_field` stores the model's predictions on samples as
  ``fo.Detections`` (FiftyOne's ultralytics converter), so that FiftyOne's
  ``evaluate_detections`` can score them too (:mod:`.compare`).

What keeps ultralytics from reaching the network or running code from a
checkpoint (facts read in ultralytics 8.4's source):

- ``YOLO_OFFLINE=1`` is set before ultralytics is first imported, unless
  the user set it: otherwise importing it resolves two DNS names and may
  send usage analytics;
- importing ultralytics replaces ``PIL.Image.open`` for the whole process
  with a wrapper that pip-installs a package on the first unreadable image;
  Pillow's own function is put back at once (:mod:`..common.ultralytics_env`);
- a model given as ``.yaml`` (default ``yolo11n.yaml``, shipped inside
  ultralytics) is built with random weights: nothing is downloaded.
  Pretrained weights come only from a local ``.pt`` the user gives, or from
  a weight name such as ``yolo11n.pt``, which ultralytics downloads because
  the user asked for it;
- every ``.pt`` (the user's, and the ``best.pt`` training writes and loads
  back) is loaded with ``weights_only=True`` and ultralytics' allow-list of
  model classes (its safe-load mode, switched on around these calls only);
- the dataset check downloads the Arial font for plots even with
  ``plots=False``; while training, that check only looks for local fonts
  (plots are off by default, so no font is needed);
- the AMP check on CUDA downloads ``yolo26n.pt`` to compare fp16 with fp32;
  when that file is not already local, the check is skipped and AMP stays
  on (pass ``amp=False`` if fp16 losses turn NaN on your GPU).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import time
from pathlib import Path
from typing import Any, Iterator

from ..common.limits import check_int
from ..common import ultralytics_env

logger = logging.getLogger(__name__)

#: ultralytics' validation defaults, also used for the stored predictions so
#: that both mAP computations see the same boxes
VAL_CONF = 0.001
VAL_IOU = 0.7
MAX_DET = 300
_MODEL_SUFFIXES = (".pt", ".yaml", ".yml")


def _no_ultralytics_network() -> None:
    ultralytics_env.import_ultralytics()  # offline, and PIL.Image.open left to Pillow


def import_ultralytics() -> None:
    """Imports ultralytics offline (``YOLO_OFFLINE`` unless the user set it).

    Call it before a FiftyOne progress bar starts: ultralytics binds its
    logger to ``sys.stdout`` at import, and the bar swaps ``sys.stdout`` for
    a capture that is closed when the bar ends.
    """
    _no_ultralytics_network()


def default_device() -> str:
    """``"0"`` (the first CUDA GPU) when torch sees one, else ``"cpu"``."""
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def check_model(model: str) -> str:
    """Validates the ``model`` parameter; returns it (user-expanded).

    Accepted: a local ``.pt`` checkpoint or ``.yaml`` architecture, or an
    ultralytics name ending in ``.yaml`` (random weights, no download) or
    ``.pt`` (pretrained weights that ultralytics downloads).

    Raises:
        ValueError: naming ``model``, for URLs, missing local paths and
            other suffixes
    """
    value = str(model).strip()
    if not value:
        raise ValueError("Parameter 'model' must name a .yaml architecture or a .pt checkpoint")
    if "://" in value:
        raise ValueError(f"Parameter 'model': URLs are not supported ({value!r}); download the file and pass its path")
    if not value.lower().endswith(_MODEL_SUFFIXES):
        raise ValueError(
            f"Parameter 'model': {value!r} must end in .yaml (architecture, random weights) "
            "or .pt (weights)"
        )
    path = Path(os.path.expanduser(value))
    if path.exists():
        if not path.is_file():
            raise ValueError(f"Parameter 'model': {value!r} is not a file")
        return str(path)
    if "/" in value or os.sep in value or value.startswith(("~", ".")):
        raise ValueError(f"Parameter 'model': no such file: {value!r}")
    return value


def check_train_args(**args: Any) -> None:
    """Raises a ValueError naming the first of ``epochs``, ``imgsz``,
    ``batch``, ``workers`` that is not an integer in its range (``batch``
    and ``workers`` are bounded by :mod:`..common.limits`)."""
    lows = dict(epochs=1, imgsz=32, batch=1, workers=0)
    bounded = dict(batch="train_batch_size", workers="num_workers")
    for name, v in args.items():
        low = lows[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"Parameter '{name}' must be an integer >= {low}; got {v!r}")
        if name in bounded:
            check_int(v, name, low, bounded[name])


@contextlib.contextmanager
def _safe_ultralytics(param: str, source: str) -> Iterator[None]:
    """Runs ultralytics with weights-only loading and no font/AMP downloads.

    The switches are module globals of ultralytics, so they are set under
    the lock the zero-shot backends use for the same safe-load flag, and
    restored afterwards: other ultralytics calls in the process keep their
    behavior. A zero-shot YOLO load in another thread of the same process
    waits while a training holds the lock.
    """
    _no_ultralytics_network()
    import ultralytics.data.utils as data_utils
    import ultralytics.engine.trainer as trainer_mod
    import ultralytics.nn.tasks as tasks

    safe_load = getattr(tasks, "_SafeLoad", None)
    if safe_load is None or not safe_load.SUPPORTED or not hasattr(tasks, "SAFE_LOAD"):
        raise ValueError(
            f"Parameter '{param}': checkpoints cannot be loaded safely with this ultralytics/torch "
            "(weights_only loading needs ultralytics >= 8.4 and torch >= 2.6); upgrade them"
        )
    with ultralytics_env.SAFE_LOAD_LOCK:
        saved = (tasks.SAFE_LOAD, data_utils.check_font, trainer_mod.check_amp)
        tasks.SAFE_LOAD = True
        data_utils.check_font = _local_font
        trainer_mod.check_amp = _check_amp_offline(saved[2])
        try:
            yield
        except (TypeError, pickle.UnpicklingError) as e:
            refused = isinstance(e, pickle.UnpicklingError) or any(
                s in str(e) for s in ("weights_only", "Unsupported global", "references types outside")
            )
            if not refused:
                raise
            raise ValueError(
                f"Parameter '{param}': {source!r} was refused by weights_only loading (it references "
                f"code outside ultralytics' model classes; nothing was run): {e}"
            ) from e
        finally:
            tasks.SAFE_LOAD, data_utils.check_font, trainer_mod.check_amp = saved


def _local_font(font: str = "Arial.ttf"):
    """ultralytics' ``check_font`` without its download: a local match or None."""
    from matplotlib import font_manager
    from ultralytics.utils import USER_CONFIG_DIR

    file = USER_CONFIG_DIR / Path(font).name
    if file.exists():
        return file
    matches = [f.fname for f in font_manager.fontManager.ttflist if font in f.fname and os.path.exists(f.fname)]
    return matches[0] if matches else None


def _check_amp_offline(check_amp):
    """ultralytics' AMP check where its reference weights are local, else a skip."""

    def check(model) -> bool:
        from ultralytics.utils import WEIGHTS_DIR

        device = next(model.parameters()).device
        if device.type != "cuda" or (WEIGHTS_DIR / "yolo26n.pt").is_file():
            return check_amp(model)
        logger.warning(
            "AMP check skipped (it downloads yolo26n.pt); training with AMP. Pass amp=False "
            "if losses turn NaN on this GPU"
        )
        return True

    return check


def _load(model: str):
    from ultralytics import YOLO

    return YOLO(model, task="detect")


def train_yolo(
    data_yaml: str | os.PathLike,
    model: str = "yolo11n.yaml",
    epochs: int = 50,
    imgsz: int = 640,
    batch: int = 16,
    device: str | None = None,
    workers: int = 0,
    seed: int = 0,
    project: str | os.PathLike | None = None,
    name: str = "train",
    **train_kwargs: Any,
) -> dict:
    """Trains a YOLO detector with ultralytics on a ``data.yaml``.

    Args:
        data_yaml: ultralytics dataset file (``train``/``val`` image
            folders, ``names``)
        model: ``.yaml`` architecture (random weights; default
            ``yolo11n.yaml``), a local ``.pt`` to fine-tune, or an
            ultralytics weight name such as ``yolo11n.pt`` (downloaded)
        epochs: training epochs
        imgsz: training image size (pixels, longest side)
        batch: batch size
        device: ``"cpu"``, ``"0"``, ``"cuda:1"``...; default the first GPU
            if any, else CPU
        workers: dataloader worker processes (0: load in this process,
            which an operator in a server process needs)
        seed: random seed (ultralytics trains deterministically by default)
        project: folder for ultralytics' run folders (``<project>/<name>``)
        name: the run folder's name
        **train_kwargs: any other ``YOLO.train`` argument (``lr0``,
            ``patience``, ``amp``...); ``plots`` defaults to False

    Returns:
        dict: ``weights`` (path of ``best.pt``), ``run_dir``,
        ``train_seconds`` (wall time, informational), ``epochs``,
        ``model``

    Raises:
        ValueError: for a bad ``model``, ``epochs``, ``imgsz``, ``batch``
            or ``data_yaml``, or a checkpoint refused by safe loading
    """
    model = check_model(model)
    check_train_args(epochs=epochs, imgsz=imgsz, batch=batch, workers=workers)
    if not Path(data_yaml).is_file():
        raise ValueError(f"Parameter 'data_yaml': no such file: {str(data_yaml)!r}")
    device = device or default_device()
    project = Path(project) if project else Path(data_yaml).parent / "runs"
    args = dict(
        data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers,
        seed=seed, project=str(project.resolve()), name=name, exist_ok=True, plots=False, verbose=False,
    )
    if model.lower().endswith((".yaml", ".yml")):
        args["pretrained"] = False  # random init: never look for weights
    args.update(train_kwargs)
    start = time.perf_counter()
    with _safe_ultralytics("model", model):
        yolo = _load(model)
        yolo.train(**args)
        trainer = yolo.trainer
    best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
    return dict(
        weights=str(best),
        run_dir=str(trainer.save_dir),
        train_seconds=round(time.perf_counter() - start, 2),
        epochs=epochs,
        model=model,
    )


def evaluate_yolo(
    weights: str | os.PathLike,
    data_yaml: str | os.PathLike,
    split: str = "test",
    imgsz: int = 640,
    batch: int = 16,
    device: str | None = None,
    workers: int = 0,
    project: str | os.PathLike | None = None,
    name: str = "val",
) -> dict:
    """mAP of a trained detector on a split of a ``data.yaml``, by ultralytics.

    Uses ultralytics' validator (``conf`` 0.001, NMS IoU 0.7, up to 300
    boxes per image, 101-point interpolated AP per class, averaged over the
    classes present in the split's labels).

    Returns:
        dict: ``map50``, ``map50_95``, ``precision``, ``recall`` (mean over
        classes at ultralytics' F1-optimal confidence), ``num_labels``
        (labels in the split)
    """
    device = device or default_device()
    project = Path(project) if project else Path(data_yaml).parent / "runs"
    with _safe_ultralytics("weights", str(weights)):
        yolo = _load(str(weights))
        metrics = yolo.val(
            data=str(data_yaml), split=split, imgsz=imgsz, batch=batch, device=device, workers=workers,
            conf=VAL_CONF, iou=VAL_IOU, max_det=MAX_DET, plots=False, verbose=False,
            project=str(project.resolve()), name=name, exist_ok=True,
        )
    box = metrics.box
    stats = getattr(metrics, "nt_per_class", None)
    return dict(
        map50=float(box.map50),
        map50_95=float(box.map),
        precision=float(box.mp),
        recall=float(box.mr),
        num_labels=int(stats.sum()) if stats is not None else None,
    )


def predict_to_field(
    weights: str | os.PathLike,
    sample_collection,
    pred_field: str,
    imgsz: int = 640,
    batch: int = 16,
    device: str | None = None,
) -> int:
    """Stores the detector's predictions on every sample as ``fo.Detections``.

    Boxes are kept down to ultralytics' validation confidence (0.001, at
    most 300 per image) so that an mAP computed from the field sees what
    ultralytics' validator sees. Converted by FiftyOne's
    ``fiftyone.utils.ultralytics.to_detections`` (relative ``[x, y, w, h]``
    boxes, class names from the model). One bulk write per 256 samples.

    Returns:
        the number of predicted boxes written
    """
    import fiftyone.utils.ultralytics as fouu

    device = device or default_device()
    ids, paths = sample_collection.values(["id", "filepath"])
    total = 0
    with _safe_ultralytics("weights", str(weights)):
        yolo = _load(str(weights))
        for start in range(0, len(ids), 256):
            chunk_paths = paths[start : start + 256]
            results = yolo.predict(
                source=chunk_paths, imgsz=imgsz, batch=batch, device=device, conf=VAL_CONF, iou=VAL_IOU,
                max_det=MAX_DET, verbose=False, stream=False,
            )
            dets = fouu.to_detections(list(results))
            total += sum(len(d.detections) for d in dets)
            values = dict(zip(ids[start : start + 256], dets))
            sample_collection.set_values(pred_field, values, key_field="id")
    return total
