"""Random-weight YOLO checkpoints that behave like detectors (offline
tests and speed benchmarks; their labels are meaningless).

Helper module of :mod:`.yolo`: it registers no backend."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..letterbox import letterbox

#: prompts whose (random) features calibrate random checkpoints
CALIBRATION_PROMPTS = ["person", "car", "dog", "bus", "bicycle", "chair", "cup", "tree"]


def head_embed_dim(net) -> int:
    """YOLOE heads store it; YOLO-World's is the last cv3 conv's width."""
    head = net.model[-1]
    return int(getattr(head, "embed", None) or head.cv3[0][-1].out_channels)


def calibration_images(imgsz: int):
    """ultralytics' bundled photos (and mirror images), letterboxed, ``[0, 1]``."""
    import torch
    import ultralytics
    from PIL import Image

    assets = Path(ultralytics.__file__).parent / "assets"
    images = []
    for name in ("bus.jpg", "zidane.jpg"):
        with Image.open(assets / name) as im:
            rgb = np.asarray(im.convert("RGB"))
        images += [rgb, np.ascontiguousarray(rgb[:, ::-1])]
    boxed = np.stack([letterbox(im, imgsz)[0] for im in images])
    return torch.from_numpy(boxed).permute(0, 3, 1, 2).float().div(255)


def calibrate_random_head(net, install_prompts, feats, imgsz: int = 640) -> None:
    """Makes a random-weight model's outputs look like a detector's.

    With ultralytics' initialization, activations shrink layer after layer
    (to ~1e-10 at the head), so every anchor predicts the same box and every
    score is below 0.001. Two fixes, measured on ultralytics' two bundled
    photos and their mirror images with the text features ``feats``
    (``1 x P x D``, from the checkpoint's own text encoder):

    1. batch-norm statistics are re-estimated (train-mode forwards with
       cumulative averaging), so every layer's activations have unit scale;
    2. per detection level, the last box convolution is scaled to logits of
       std 1.5 (boxes of varied sizes) and each contrastive head's
       ``logit_scale``/``bias`` are set so class logits are ~N(-4, 1.5):
       about 4% of scores above 0.2, 0.4% above 0.5.
    """
    import torch

    head = net.model[-1]
    images = calibration_images(imgsz)
    with torch.no_grad():
        install_prompts(net, feats)
        norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        net.train()
        net(images)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        net.eval()

        stats: dict[str, list] = {"box": [], "cls": []}
        hooks = [
            conv.register_forward_hook(
                lambda m, i, o: stats["box"].append(o - m.bias.view(1, -1, 1, 1))
            )
            for conv in (seq[-1] for seq in head.cv2)
        ] + [
            ch.register_forward_hook(
                lambda m, i, o: stats["cls"].append((o - m.bias) / m.logit_scale.exp())
            )
            for ch in head.cv4
        ]
        try:
            net(images)
        finally:
            for h in hooks:
                h.remove()
        for seq, box in zip(head.cv2, stats["box"]):
            seq[-1].weight.mul_(1.5 / max(float(box.std()), 1e-3))
        for ch, sim in zip(head.cv4, stats["cls"]):
            scale = 1.5 / max(float(sim.std()), 1e-3)
            ch.logit_scale.fill_(math.log(scale))
            ch.bias.fill_(-4.0 - scale * float(sim.mean()))
