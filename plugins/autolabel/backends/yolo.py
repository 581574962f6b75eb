"""YOLO-World and YOLOE backends (ultralytics).

Both are open-vocabulary YOLO detectors: text prompts become embedding
vectors once (in :meth:`set_prompts`), and every anchor of a forward pass gets
one sigmoid score per prompt. This module does not use ultralytics'
``predict()``: it letterboxes images itself (in :meth:`prepare`, off the main
thread), runs the torch model once per batch and hands every candidate box
with its full per-prompt score vector to the pipeline, which does
thresholding and NMS. Facts checked in ultralytics 8.4's sources:

- ``LetterBox`` (``data/augment.py``) keeps the aspect ratio, rounds the
  resized size, pads with 114 around the centre, to ``imgsz`` square or, when
  every image of a batch has the same shape, to the next stride multiple
  ("rect"); boxes map back with one gain per axis (``new_w / w``,
  ``new_h / h``) and the integer left/top padding (``ops.scale_boxes``).
- In eval mode the detection heads return ``(y, raw)`` where ``y`` is
  ``(B, 4 + nc, anchors)``: ``cx, cy, w, h`` in letterboxed pixels, then
  per-class sigmoid scores; segmentation heads append mask coefficients and
  return ``((y, proto), raw)``.
- YOLO-World reads ``WorldModel.txt_feats`` (``1 x nc x 512``, unit CLIP
  ViT-B/32 text features); YOLOE reads ``YOLOEModel.pe``, the unit text
  features passed through the head's ``get_tpe`` (a residual MLP, then L2
  normalization), which is what ``YOLOE.get_text_pe`` returns.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from ...common.ultralytics_env import import_ultralytics, safe_loading

from .base import Predictions, ZeroShotDetector, register
from ..letterbox import LetterboxedBatch, decode_raw, letterbox
from ._yolo_random import CALIBRATION_PROMPTS, calibrate_random_head, head_embed_dim
from ._yolo_text import (
    MODEL_FILE,
    TEXT_ENCODER_DIR,
    TextEncoder,
    load_text_embeddings,
    open_clip_source,
    resolve_checkpoint,
    save_random_text_encoder,
)

logger = logging.getLogger(__name__)


class _NoProto:
    """Stands in for a segmentation head's mask-prototype branch.

    Masks are not used, and the prototype convolutions run at 1/4 input
    resolution: skipping them saves a sizeable share of a -seg model's
    forward. Plain callable (not an nn.Module) so it carries no weights.
    """

    def __call__(self, *args, **kwargs):
        return None


def _unwrap_output(out):
    """``(y, raw)`` / ``((y, proto), raw)`` -> ``y`` ``(B, 4 + nc [+ extra], A)``."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


@register
class YOLOWorldDetector(ZeroShotDetector):
    """YOLO-World (ultralytics): open-vocabulary YOLOv8 with CLIP prompts.

    Checkpoint formats (``checkpoint``):

    - an ultralytics weight name, e.g. ``"yolov8l-worldv2.pt"`` (default),
      which ultralytics downloads on first use;
    - a local ultralytics ``.pt`` file. ``.pt`` files are pickles, which can
      run code when loaded: they are loaded with ``torch.load(...,
      weights_only=True)`` and ultralytics' allow-list of model classes
      (its ``ULTRALYTICS_SAFE_LOAD`` mode, which also builds YAML models
      without ``eval``), so a file referencing anything else is refused.
      ``allow_pickle=True`` loads such a file anyway (only files you trust);
    - a model ``.yaml`` (a path, or a name ultralytics ships such as
      ``"yolov8s-worldv2.yaml"``): the architecture with random weights;
    - a directory holding ``model.pt`` (or exactly one ``.pt``) and
      optionally ``text_encoder/``, an open_clip model in open_clip's
      local-dir layout (``open_clip_config.json`` + weights) used to embed
      prompts offline. :meth:`build_random_checkpoint` writes this layout.

    Prompt embeddings come, per prompt, from the first source that has one:
    ``text_embeddings``, then ``text_encoder``, then the checkpoint
    directory's ``text_encoder/``, and otherwise ultralytics' own text model
    (OpenAI CLIP ViT-B/32 for YOLO-World, MobileCLIP-B(LT) for YOLOE), which
    ultralytics downloads. To run fully offline with a real model, give the
    matching open_clip weights as a file (``text_encoder="ViT-B-32"`` with
    OpenAI weights for YOLO-World) or put them in ``text_encoder/``.

    Options (``backend_options``):
        imgsz: letterbox size (default 640, rounded up to the stride)
        min_score: anchors whose best prompt score is below are dropped
            before the pipeline's threshold (default 0.001)
        max_candidates: at most this many boxes per image, by best score,
            go to the pipeline's threshold and NMS (default 1000). Ultralytics
            keeps up to 30000 before NMS; 1000 keeps crowded scenes' recall
            while bounding the per-image ``(boxes x prompts)`` score matrix
        text_encoder: an open_clip architecture name (with
            ``text_encoder_checkpoint``) or an open_clip local-dir folder
        text_encoder_checkpoint: local weights file for ``text_encoder``
        text_embeddings: precomputed text features: ``{prompt: vector or
            .npy path}`` or a ``.npz`` with ``prompts`` ``(P,)`` and
            ``embeddings`` ``(P, D)`` arrays; the raw text-encoder features
            (what CLIP's ``encode_text`` returns), L2-normalized here
        allow_pickle: load ``.pt`` checkpoints with full unpickling, which
            runs any code the file carries (default False; needs
            ultralytics >= 8.4 otherwise)

    Batches run as one forward pass of the torch model; every anchor above
    ``min_score`` keeps its full per-prompt score vector. fp16 applies on
    CUDA only.
    """

    name: ClassVar[str] = "yolo-world"
    default_checkpoint: ClassVar[str] = "yolov8l-worldv2.pt"
    default_options: ClassVar[dict[str, Any]] = {
        "imgsz": 640,
        "min_score": 0.001,
        "max_candidates": 1000,
        "text_encoder": None,
        "text_encoder_checkpoint": None,
        "text_embeddings": None,
        "allow_pickle": False,
    }
    #: ultralytics YAMLs of build_random_checkpoint: (base of "tiny", "full")
    _random_yamls: ClassVar[tuple[str, str]] = ("yolov8-worldv2.yaml", "yolov8l-worldv2.yaml")

    def __init__(
        self,
        checkpoint: str | None = None,
        device: str = "cpu",
        fp16: bool | None = None,
        **options: Any,
    ):
        import_ultralytics()
        super().__init__(checkpoint, device=device, fp16=fp16, **options)
        opts = self.options
        self.min_score = float(_check_number("min_score", opts["min_score"], 0.0, 1.0))
        self.max_candidates = int(
            _check_number("max_candidates", opts["max_candidates"], 1, None, True)
        )
        imgsz = int(_check_number("imgsz", opts["imgsz"], 32, None, True))
        model_source, te_dir = resolve_checkpoint(self.checkpoint)

        # text sources are validated before the (slower) model load
        self._embeddings = (
            load_text_embeddings(opts["text_embeddings"])
            if opts["text_embeddings"] is not None
            else {}
        )
        if opts["text_encoder"]:
            self._encoder_source = open_clip_source(
                str(opts["text_encoder"]), opts["text_encoder_checkpoint"]
            )
        elif opts["text_encoder_checkpoint"]:
            raise ValueError(
                "Option 'text_encoder_checkpoint' needs 'text_encoder' (an open_clip model name)"
            )
        elif te_dir:
            self._encoder_source = open_clip_source(te_dir, None)
        else:
            self._encoder_source = None
        self._encoder: TextEncoder | None = None
        self._feature_cache: dict[str, np.ndarray] = {}

        import torch

        if self.fp16 and not str(device).startswith("cuda"):
            logger.warning("fp16 is only used on CUDA; running %s in fp32 on %s", self.name, device)
            self.fp16 = False
        allow_pickle = opts["allow_pickle"]
        if not isinstance(allow_pickle, bool):
            # a string such as "false" must not switch unpickling on
            raise ValueError("Option 'allow_pickle' must be True or False")
        with safe_loading(safe=not allow_pickle, checkpoint=self.checkpoint):
            self.wrapper = self._wrapper_class()(model_source)
        net = self.wrapper.model
        if not isinstance(net, torch.nn.Module):
            raise ValueError(f"Parameter 'checkpoint': {self.checkpoint!r} is not a PyTorch model")
        self._check_model(net)
        head = net.model[-1]
        if getattr(head, "one2one_cv2", None) is not None:
            if getattr(head, "cv2", None) is None:
                raise ValueError(
                    f"Checkpoint {self.checkpoint!r} has only an end-to-end head (top-k boxes, "
                    "no per-class scores); use an unfused checkpoint"
                )
            # the one-to-many branch gives every anchor a score per prompt;
            # fuse() below then drops the unused one-to-one branch
            head.end2end = False
        if hasattr(head, "proto"):
            del head.proto  # unregister the submodule, then shadow it
            head.proto = _NoProto()
        net.eval()
        net.to(device)
        net.fuse(verbose=False)  # Conv+BN folding, as ultralytics' predictor does
        if self.fp16:
            net.half()
        self.model = net
        # plain ints: prepare() runs in worker threads and must not touch the model
        self.stride = max(int(net.stride.max()), 32)
        self.imgsz = math.ceil(imgsz / self.stride) * self.stride
        if self.imgsz != imgsz:
            logger.warning(
                "imgsz %d is not a multiple of %d; using %d", imgsz, self.stride, self.imgsz
            )

    # -- model specifics (YOLOE overrides) ---------------------------------

    def _check_model(self, net) -> None:
        from ultralytics.nn.tasks import WorldModel

        if not isinstance(net, WorldModel):
            raise ValueError(
                f"Parameter 'checkpoint': {self.checkpoint!r} is a {type(net).__name__}, "
                f"not a YOLO-World model"
            )

    @property
    def embed_dim(self) -> int:
        """Text feature size the head expects."""
        return head_embed_dim(self.model)

    def _ultralytics_text_features(self, prompts: list[str]):
        """Unit text features from ultralytics' own (downloaded) CLIP."""
        return self.model.get_text_pe(prompts)[0]

    def _apply_text_features(self, prompts: list[str], feats) -> None:
        net = self.model
        net.txt_feats = feats[None].to(self.device)
        net.model[-1].nc = len(prompts)
        net.names = list(prompts)

    # -- interface ---------------------------------------------------------

    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Embeds the prompts (cached per prompt) and installs them in the head."""
        prompts = [str(p) for p in prompts]
        if not prompts:
            raise ValueError("At least one prompt is required")
        feats = self.text_features(prompts)
        self._apply_text_features(prompts, feats)
        self.prompts = prompts

    def text_features(self, prompts: Sequence[str]):
        """Unit text features ``(P, D)`` (float32, CPU) of the prompts.

        Raises:
            ValueError: if a feature's size is not the head's embedding size
        """
        import torch

        todo = [p for p in dict.fromkeys(prompts) if p not in self._feature_cache]
        given = [p for p in todo if p in self._embeddings]
        rest = [p for p in todo if p not in self._embeddings]
        new: dict[str, np.ndarray] = {p: self._embeddings[p] for p in given}
        if rest:
            if self._encoder_source is not None:
                if self._encoder is None:
                    self._encoder = TextEncoder(*self._encoder_source, device=self.device)
                computed = self._encoder(rest)
            else:
                computed = self._ultralytics_text_features(rest)
            new.update(zip(rest, computed.float().cpu().numpy()))
        for p, vec in new.items():
            vec = np.asarray(vec, dtype=np.float32).reshape(-1)
            if vec.shape[0] != self.embed_dim:
                raise ValueError(
                    f"Text feature of {p!r} has size {vec.shape[0]}; {self.name} checkpoint "
                    f"{self.checkpoint!r} expects {self.embed_dim}"
                )
            norm = float(np.linalg.norm(vec))
            if not np.isfinite(norm) or norm == 0.0:
                raise ValueError(f"Text feature of {p!r} is zero or not finite")
            self._feature_cache[p] = vec / norm
        return torch.from_numpy(np.stack([self._feature_cache[p] for p in prompts]))

    def prepare(self, images: Sequence[np.ndarray]) -> LetterboxedBatch:
        """Letterboxes images into one uint8 tensor (CPU only, thread-safe)."""
        import torch

        images = list(images)
        if not images:
            raise ValueError("prepare() needs at least one image")
        # like ultralytics: minimal stride padding when every shape is equal
        rect = len({im.shape for im in images}) == 1
        boxed = [letterbox(im, self.imgsz, self.stride, rect) for im in images]
        pixels = torch.from_numpy(np.stack([b[0] for b in boxed]))
        return LetterboxedBatch(pixels, [b[1] for b in boxed], [b[2] for b in boxed])

    def predict(self, batch: LetterboxedBatch) -> list[Predictions]:
        """One forward pass over the batch; candidates picked on the device."""
        import torch

        if not self.prompts:
            raise RuntimeError("set_prompts() must be called before predict()")
        num_prompts = len(self.prompts)
        with torch.inference_mode():
            x = batch.pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2).contiguous()
            x = (x.half() if self.fp16 else x.float()).div_(255)
            y = _unwrap_output(self.model(x))
            if y.ndim != 3 or y.shape[1] < 4 + num_prompts:
                raise RuntimeError(
                    f"Unexpected {self.name} output shape {tuple(y.shape)} "
                    f"for {num_prompts} prompts"
                )
            y = y[:, : 4 + num_prompts]
            # pick each image's top anchors here, so only those cross to the CPU
            k = min(self.max_candidates, y.shape[2])
            best, idx = y[:, 4:].amax(dim=1).topk(k, dim=1)
            picked = y.gather(2, idx[:, None, :].expand(-1, y.shape[1], -1))
            counts = (best >= self.min_score).sum(dim=1).tolist()
            picked = picked.float().cpu().numpy()
        return [
            decode_raw(
                picked[i, :, :n], gain, pad, num_prompts, self.min_score, self.max_candidates
            )
            for i, (n, gain, pad) in enumerate(zip(counts, batch.gains, batch.pads))
        ]

    # -- random checkpoints ------------------------------------------------

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        """Builds a random-weight checkpoint directory that works offline.

        Writes ``model.pt`` (saved with ultralytics' ``Model.save``, so
        ``YOLOWorld``/``YOLOE`` load it back) and ``text_encoder/`` (a tiny
        random open_clip model, so prompts embed without a download) into
        ``directory``. ``tiny`` is the package's YAML at depth 0.33 and width
        0.125 (smaller than its ``n`` scale); ``full`` is the architecture of
        :attr:`default_checkpoint` (same compute, for speed benchmarks). The
        text encoder is tiny in both: prompts are embedded once per run.

        Batch-norm statistics are re-estimated and the heads' last layers
        rescaled on ultralytics' bundled photos (see
        :func:`._yolo_random.calibrate_random_head`), so that boxes vary in size and
        scores spread like a detector's: with ultralytics' initialization
        every anchor predicts the same box with a score below 0.001, and
        nothing would reach thresholds, NMS or the database. The labels are
        still meaningless.

        Returns:
            the directory, to pass as ``checkpoint``
        """
        import_ultralytics()
        import torch
        import yaml
        from ultralytics.nn.tasks import yaml_model_load

        if size not in ("tiny", "full"):
            raise ValueError(f"size must be 'tiny' or 'full'; got {size!r}")
        out = Path(directory).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        base, full = cls._random_yamls
        with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            if size == "tiny":
                cfg = yaml_model_load(base)
                for key in ("scale", "scales", "yaml_file"):
                    cfg.pop(key, None)
                cfg.update(depth_multiple=0.33, width_multiple=0.125)
                source = Path(tmp) / f"{Path(base).stem}-tiny.yaml"
                source.write_text(yaml.safe_dump(cfg, sort_keys=False))
            else:
                source = full
            wrapper = cls._wrapper_class()(str(source))
            te_dir = save_random_text_encoder(
                out / TEXT_ENCODER_DIR, embed_dim=head_embed_dim(wrapper.model)
            )
            feats = TextEncoder(f"local-dir:{te_dir}", None, "cpu")(CALIBRATION_PROMPTS)
            feats = torch.nn.functional.normalize(feats, dim=-1)[None]
            calibrate_random_head(wrapper.model, cls._install_random_prompts, feats)
            wrapper.save(str(out / MODEL_FILE))
        return str(out)

    @classmethod
    def _wrapper_class(cls):
        from ultralytics import YOLOWorld

        return YOLOWorld

    @staticmethod
    def _install_random_prompts(net, feats) -> None:
        net.txt_feats = feats
        net.model[-1].nc = feats.shape[1]
        net.names = [f"prompt{i}" for i in range(feats.shape[1])]


@register
class YOLOEDetector(YOLOWorldDetector):
    """YOLOE (ultralytics): open-vocabulary YOLO11 with MobileCLIP prompts.

    Same checkpoint formats, options and prompt sources as
    :class:`YOLOWorldDetector`; the default ``yoloe-11l-seg.pt`` is a
    segmentation model whose masks are not computed (only boxes are used).
    Text features go through the head's text projection (``get_tpe``)
    before use, as in ``YOLOE.get_text_pe``; ``text_embeddings`` therefore
    hold raw text-encoder features too (not ``YOLOE.save_prompt_embeddings``
    output). Prompt-free (``-pf``) checkpoints, whose vocabulary is fused
    into the head, are not supported.
    """

    name: ClassVar[str] = "yoloe"
    default_checkpoint: ClassVar[str] = "yoloe-11l-seg.pt"
    _random_yamls: ClassVar[tuple[str, str]] = ("yoloe-11-seg.yaml", "yoloe-11l-seg.yaml")

    def _check_model(self, net) -> None:
        from ultralytics.nn.tasks import YOLOEModel

        if not isinstance(net, YOLOEModel):
            raise ValueError(
                f"Parameter 'checkpoint': {self.checkpoint!r} is a {type(net).__name__}, "
                f"not a YOLOE model"
            )
        head = net.model[-1]
        if hasattr(head, "lrpc") or getattr(head, "is_fused", False):
            raise ValueError(
                f"Checkpoint {self.checkpoint!r} is prompt-free (its vocabulary is fused into "
                "the head); use a text-promptable YOLOE checkpoint such as 'yoloe-11l-seg.pt'"
            )

    def _ultralytics_text_features(self, prompts: list[str]):
        return self.model.get_text_pe(prompts, without_reprta=True)[0]

    def _apply_text_features(self, prompts: list[str], feats) -> None:
        import torch

        net = self.model
        head = net.model[-1]
        dtype = next(head.parameters()).dtype
        with torch.inference_mode():
            pe = head.get_tpe(feats[None].to(self.device, dtype))
        net.set_classes(list(prompts), pe)

    @classmethod
    def _wrapper_class(cls):
        from ultralytics import YOLOE

        return YOLOE

    @staticmethod
    def _install_random_prompts(net, feats) -> None:
        head = net.model[-1]
        net.set_classes([f"prompt{i}" for i in range(feats.shape[1])], head.get_tpe(feats))


# --------------------------------------------------------------------------
# internals


def _check_number(name: str, value: Any, low: float, high: float | None, integer: bool = False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if ok:
        ok = value >= low and (high is None or value <= high)
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"Option '{name}' must be {kind} {bound}; got {value!r}")
    return value
