"""Auto-labels vs human labels, trained for real: the GPU half.

Runs on a machine with torch + ultralytics but no FiftyOne (see
``benchmarks/train_compare.py`` for the whole procedure). ``--data`` is the
folder ``train_compare.py prep`` wrote: ``images/`` (every image once),
``<model>/labels/{train,val}/`` per label set, ``test/labels/test/`` and
``meta.json``. For each label set this links the images next to its labels
(ultralytics finds a label file by replacing ``/images/`` with ``/labels/``
in the image path), trains with Stoplight's ``train_yolo`` (yolo11n from its
YAML: random init, no download) and tests on the human test labels with
``evaluate_yolo``. Writes ``results.json`` and each ``best.pt`` (as
``<model>.pt``) to ``--out``.

Only the module ``plugins/training/yolo.py`` (and the ultralytics helpers of
``plugins/common/ultralytics_env.py`` it uses) is loaded: the plugin's
package ``__init__`` files import FiftyOne. ``polars`` (imported by
ultralytics only to read its results CSV into the checkpoint) may be
missing there; a stand-in then makes that read fail, which ultralytics
catches.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
import types
from pathlib import Path


def load_training_module(code_root: Path):
    """``plugins.training.yolo`` under a stand-in package, without the
    package ``__init__`` files (they import FiftyOne)."""
    for name, rel in (("stoplight", ""), ("stoplight.plugins", "plugins"),
                      ("stoplight.plugins.training", "plugins/training")):
        mod = types.ModuleType(name)
        mod.__path__ = [str(code_root / rel)]
        sys.modules[name] = mod
    spec = importlib.util.spec_from_file_location(
        "stoplight.plugins.training.yolo", code_root / "plugins/training/yolo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _polars_stand_in() -> None:
    try:
        import polars  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("polars")

        def read_csv(*args, **kwargs):
            raise RuntimeError("polars is not installed on this machine")

        stand_in.read_csv = read_csv
        sys.modules["polars"] = stand_in


def link_images(data: Path, model: str, split: str) -> Path:
    """``<data>/<model>/images/<split>/`` with a link per label file."""
    labels = data / model / "labels" / split
    images = data / model / "images" / split
    images.mkdir(parents=True, exist_ok=True)
    for txt in labels.glob("*.txt"):
        link = images / f"{txt.stem}.png"
        if not link.exists():
            link.symlink_to(data / "images" / f"{txt.stem}.png")
    return images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--code", default=str(Path(__file__).resolve().parents[1]))
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu-train-out"))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--device", default="0")
    ap.add_argument("--models", default="human,auto_all,auto_accepted")
    args = ap.parse_args()

    os.environ.setdefault("YOLO_CONFIG_DIR", "/tmp/yolo-config")
    _polars_stand_in()
    yolo = load_training_module(Path(args.code))
    import torch
    import yaml

    data = Path(args.data).resolve()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((data / "meta.json").read_text())
    test_images = link_images(data, "test", "test")
    # every digits test image has labels; an image without one would be left out here
    results = dict(gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                   epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, models={})
    for model in args.models.split(","):
        train = link_images(data, model, "train")
        val = link_images(data, model, "val") if (data / model / "labels" / "val").is_dir() else train
        cfg = dict(path=str(data), train=str(train), val=str(val), test=str(test_images),
                   names=dict(enumerate(meta["classes"])))
        data_yaml = data / f"{model}.yaml"
        data_yaml.write_text(yaml.safe_dump(cfg, sort_keys=False))
        t = time.perf_counter()
        trained = yolo.train_yolo(data_yaml, "yolo11n.yaml", epochs=args.epochs, imgsz=args.imgsz,
                                  batch=args.batch, device=args.device, workers=args.workers,
                                  project=data / "runs", name=f"train_{model}")
        tested = yolo.evaluate_yolo(trained["weights"], data_yaml, "test", imgsz=args.imgsz, batch=args.batch,
                                    device=args.device, workers=args.workers, project=data / "runs",
                                    name=f"test_{model}")
        shutil.copy(trained["weights"], out / f"{model}.pt")
        results["models"][model] = dict(tested, train_seconds=trained["train_seconds"],
                                        wall_seconds=round(time.perf_counter() - t, 1))
        print(model, json.dumps(results["models"][model]), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
