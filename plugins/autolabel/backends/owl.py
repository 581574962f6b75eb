"""OWL-ViT and OWLv2 backends (Hugging Face transformers).

Both models score every image patch (one box per patch) against every text
query, so a batch is one forward pass: the prompts are tokenized once in
:meth:`set_prompts` and repeated for each image of the batch, because the
model's forward expects ``batch_size * num_queries`` text rows.

Box conventions, checked in transformers 5's sources
(``models/owlvit/image_processing_owlvit.py`` and
``models/owlv2/image_processing_owlv2.py``):

- OWL-ViT resizes (stretches) the image to a fixed square without padding,
  so ``pred_boxes`` (``cxcywh``) are normalized to the original image:
  pixels = normalized * ``(width, height)``.
- OWLv2 first pads the image to a square at the bottom/right
  (``Owlv2ImageProcessor.pad``) and then resizes, so normalized boxes are
  relative to the padded square of side ``max(width, height)``: pixels =
  normalized * ``max(width, height)`` on both axes (the same ``_scale_boxes``
  rule its ``post_process_object_detection`` applies).
"""

from __future__ import annotations

import logging
from typing import ClassVar, Sequence

import numpy as np

from .. import boxes as B
from ._hf import (
    HFBatch,
    HFDetector,
    check_size,
    clip_tokenizer,
    image_sizes,
    save_checkpoint,
    seeded,
    stable_sigmoid,
)
from .base import Predictions, register

logger = logging.getLogger(__name__)


def decode_owl(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    width: int,
    height: int,
    square_pad: bool,
    min_score: float = 0.001,
) -> Predictions:
    """Decodes one image's raw OWL outputs into original-image boxes.

    Args:
        logits: ``(Q, P)`` class logits of each box for each prompt
        pred_boxes: ``(Q, 4)`` ``cxcywh`` boxes normalized to the model input
        width: original image width in pixels
        height: original image height in pixels
        square_pad: whether the processor padded the image to a square
            (bottom/right) before resizing (OWLv2), making boxes relative to
            a square of side ``max(width, height)``
        min_score: boxes whose best prompt score is below are dropped

    Returns:
        boxes in original-image ``xyxy`` pixels, with ``sigmoid(logits)`` as
        the per-prompt score vector
    """
    scores = stable_sigmoid(np.asarray(logits).reshape(len(pred_boxes), -1))
    keep = scores.max(axis=1, initial=0.0) >= min_score
    xyxy = B.cxcywh_to_xyxy(np.asarray(pred_boxes)[keep])
    if square_pad:
        side = max(width, height)
        xyxy = B.scale_normalized(xyxy, side, side)
    else:
        xyxy = B.scale_normalized(xyxy, width, height)
    return Predictions(xyxy, scores[keep], has_score_vector=True)


def _input_side(image_processor) -> int | None:
    """The long side of the model input the processor resizes to."""
    size = getattr(image_processor, "size", None) or {}
    get = size.get if isinstance(size, dict) else lambda k: getattr(size, k, None)
    sides = [get(k) for k in ("height", "width", "longest_edge", "shortest_edge")]
    sides = [int(v) for v in sides if v]
    return max(sides) if sides else None


def shrink_long_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` reduced so that its long side is ``max_side``, if larger.

    Pillow's reducing resize (box-averaging by whole factors, then Lanczos)
    is antialiased and runs in milliseconds on large photos.
    """
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.asarray(pil.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


class _OwlDetector(HFDetector):
    """OWL-ViT/OWLv2 logic shared by both backends."""

    # transformers class names, resolved lazily
    _config_cls: ClassVar[str]
    _model_cls: ClassVar[str]
    _image_processor_cls: ClassVar[str]
    _processor_cls: ClassVar[str]
    #: (image size, patch size) of the published base architecture
    _full_vision: ClassVar[tuple[int, int]]

    @property
    def square_pad(self) -> bool:
        """Whether normalized boxes are relative to the padded square."""
        return False

    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Tokenizes the prompts once; :meth:`predict` repeats them per image."""
        tokenizer = self.processor.tokenizer
        self.prompts = [str(p) for p in prompts]
        # OWL text encoders have 16 positions; longer prompts are cut
        max_len = int(self.model.config.text_config.max_position_embeddings)
        for p, ids in zip(self.prompts, tokenizer(self.prompts)["input_ids"]):
            if len(ids) > max_len:
                logger.warning("Prompt %r is longer than %d tokens and is truncated", p, max_len)
        enc = tokenizer(
            self.prompts,
            padding="max_length",
            max_length=max_len,
            truncation=True,
            return_tensors="pt",
        )
        self._text = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def predict(self, batch: HFBatch) -> list[Predictions]:
        """One forward pass over the batch, decoded image by image."""
        if not self.prompts:
            raise RuntimeError("set_prompts() must be called before predict()")
        n = len(batch.sizes)
        text = {k: v.repeat(n, 1) for k, v in self._text.items()}
        out = self._forward(**batch.pixel_inputs, **text)
        logits = out.logits.float().cpu().numpy()  # (B, Q, P)
        boxes = out.pred_boxes.float().cpu().numpy()  # (B, Q, 4)
        return [
            decode_owl(logits[i], boxes[i], w, h, self.square_pad, self.min_score)
            for i, (w, h) in enumerate(batch.sizes)
        ]

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        """Builds a random-weight OWL checkpoint with a real CLIP tokenizer.

        ``tiny``: 1-layer text and vision transformers of width 32 on 256x256
        inputs with 32-pixel patches (64 boxes per image; a smaller input
        would make OWLv2's anti-aliasing blur, whose kernel grows with the
        downscale factor, the slowest step). ``full``: the config defaults (the
        published base text/vision towers) at the published input size and
        patch size of :attr:`default_checkpoint`.
        """
        import transformers

        check_size(size)
        if size == "tiny":
            tower = dict(
                hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=1
            )
            config_kwargs = dict(
                text_config=dict(tower),
                vision_config=dict(tower, image_size=256, patch_size=32),
                projection_dim=32,
            )
            image_size = 256
        else:
            image_size, patch_size = cls._full_vision
            config_kwargs = dict(vision_config=dict(image_size=image_size, patch_size=patch_size))
        config = getattr(transformers, cls._config_cls)(**config_kwargs)
        model = seeded(lambda: getattr(transformers, cls._model_cls)(config).eval())
        image_processor = getattr(transformers, cls._image_processor_cls)(
            size={"height": image_size, "width": image_size}
        )
        tokenizer = clip_tokenizer(config.text_config.max_position_embeddings)
        processor = getattr(transformers, cls._processor_cls)(
            image_processor=image_processor, tokenizer=tokenizer
        )
        return save_checkpoint(model, processor, directory)


@register
class OwlViTDetector(_OwlDetector):
    """OWL-ViT (``google/owlvit-*``): no padding, boxes scale by ``(w, h)``.

    Options: ``min_score`` (default 0.001) and ``trust_remote_code``
    (default False), see :class:`HFDetector`.
    """

    name = "owlvit"
    default_checkpoint = "google/owlvit-base-patch32"
    model_types = ("owlvit",)
    _config_cls = "OwlViTConfig"
    _model_cls = "OwlViTForObjectDetection"
    _image_processor_cls = "OwlViTImageProcessor"
    _processor_cls = "OwlViTProcessor"
    _full_vision = (768, 32)


@register
class Owlv2Detector(_OwlDetector):
    """OWLv2 (``google/owlv2-*``): square padding, boxes scale by ``max(w, h)``.

    Options: ``min_score`` (default 0.001) and ``trust_remote_code``
    (default False), see :class:`HFDetector`.
    """

    name = "owlv2"
    default_checkpoint = "google/owlv2-base-patch16-ensemble"
    model_types = ("owlv2",)
    _config_cls = "Owlv2Config"
    _model_cls = "Owlv2ForObjectDetection"
    _image_processor_cls = "Owlv2ImageProcessor"
    _processor_cls = "Owlv2Processor"
    _full_vision = (960, 16)

    @property
    def square_pad(self) -> bool:
        # a checkpoint whose processor config turns padding off stretches
        # the image instead, like OWL-ViT
        return bool(getattr(self.processor.image_processor, "do_pad", True))

    def prepare(self, images: Sequence[np.ndarray]) -> HFBatch:
        """Runs the processor, first shrinking images far larger than its input.

        OWLv2's processor blurs the whole padded square before resizing, with
        a Gaussian whose kernel grows with the downscale factor: one 24 MP
        photo took 114 s and over a gigabyte on a CPU core for a 256-pixel
        input. Images whose long side exceeds twice the model input are
        first reduced (area-averaging, aspect ratio kept) to twice the input
        side, which leaves the processor a factor-2 blur. Boxes are decoded
        against the original sizes; the rounding of the shrunken short side
        moves box edges by at most half a shrunken pixel.
        """
        side = _input_side(self.processor.image_processor)
        small = [shrink_long_side(img, 2 * side) if side else img for img in images]
        batch = super().prepare(small)
        batch.sizes = image_sizes(images)
        return batch
