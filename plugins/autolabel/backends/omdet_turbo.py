"""OmDet-Turbo backend (Hugging Face transformers).

OmDet-Turbo reads two kinds of text. Each prompt is a *class*, encoded on
its own by the CLIP text tower (pooled at its end token) and compared with
every query (cosine similarity / 0.07, then sigmoid), so each box has a
score for each prompt. All prompts together also form one *task*,
``"Detect a, b, c."``, whose token features condition the decoder. The
processor cuts the task at CLIP's 77 tokens (``truncation=True``), so with
many classes the last ones silently vanish from the task the model was
trained to read with every class in it.

Long prompt lists are therefore split into chunks whose task fits in 77
tokens (counted by tokenizing the real task text); each chunk is one decoder
pass with its own task and classes. The image side (Swin backbone and hybrid
encoder: most of the compute) runs once per batch, not once per chunk; the
text side is encoded once, in :meth:`set_prompts`. The 900 queries are
picked per chunk from the encoder's similarity to that chunk's classes, so
a box has scores only for the prompts of its chunk: split predictions are
marked ``has_score_vector=False``, as in :mod:`.grounding_dino`. A single
prompt longer than 77 tokens cannot be read at all and is refused.

Boxes: ``decoder_coord_logits`` are ``cxcywh`` in ``[0, 1]`` of the model
input. The published processor (``DetrImageProcessor`` with a fixed
``height x width``) stretches each image to that size, so pixels =
normalized * ``(width, height)`` of the original image; if a checkpoint's
processor keeps the aspect ratio and pads, the model (which takes no pixel
mask) sees the padded canvas, and boxes are rescaled by canvas / valid
extent, read from the processor's ``pixel_mask``.

Checkpoints: the hub model ``omlab/omdet-turbo-swin-tiny-hf`` builds its
Swin-T backbone with ``timm`` (installed with open-clip-torch), whose
feature maps are channels-last, and layer-normalizes them
(``apply_layernorm_after_vision_backbone``). transformers' own Swin returns
channels-first maps that are already normalized, which is what crashed a
tiny config before; the tiny random checkpoint uses transformers' Swin with
that extra normalization off (same forward otherwise), and the tests also
load a checkpoint with the hub's timm layout.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Sequence

import numpy as np

from .. import boxes as B
from ._hf import (HFBatch, HFDetector, check_size, clip_tokenizer, join_chunks, save_checkpoint, seeded, stable_sigmoid,
                  widen_scores)
from .base import Predictions, register

#: CLIP's context length, at which the processor truncates tasks and classes
MAX_TEXT_TOKENS = 77


def task_text(prompts: Sequence[str]) -> str:
    """The task OmDet-Turbo's processor builds from a list of classes."""
    return f"Detect {', '.join(prompts)}."


def chunk_task_prompts(
    prompts: Sequence[str], count_tokens, max_tokens: int = MAX_TEXT_TOKENS
) -> list[list[int]]:
    """Greedily groups prompts into tasks of at most ``max_tokens`` tokens.

    Args:
        prompts: the prompts, in order
        count_tokens: ``count_tokens(text) -> int``, the token count of a
            text with its start and end tokens (the real tokenizer)
        max_tokens: the longest task the model reads

    Returns:
        lists of prompt indices, in prompt order, each fitting in one task

    Raises:
        ValueError: naming 'classes'/'ontology' if one prompt alone does not
            fit in a task
    """
    chunks: list[list[int]] = []
    for i, p in enumerate(prompts):
        if chunks and count_tokens(task_text([prompts[j] for j in chunks[-1]] + [p])) <= max_tokens:
            chunks[-1].append(i)
            continue
        if count_tokens(task_text([p])) > max_tokens:
            raise ValueError(
                f"Prompt #{i} ({p[:40]!r}...) is too long: OmDet-Turbo reads at most "
                f"{max_tokens} tokens per task. Shorten it in 'classes' or 'ontology'"
            )
        chunks.append([i])
    return chunks


def decode_omdet_turbo(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    width: int,
    height: int,
    canvas_scale: tuple[float, float] = (1.0, 1.0),
    min_score: float = 0.001,
) -> Predictions:
    """Decodes one image's raw OmDet-Turbo outputs for one task.

    Args:
        logits: ``(Q, K)`` class logits of each query for the task's ``K``
            prompts
        pred_boxes: ``(Q, 4)`` ``cxcywh`` normalized to the model input
        width: original image width in pixels
        height: original image height in pixels
        canvas_scale: model input size / size of the image inside it, per
            axis (``(1, 1)`` when the processor stretches the image)
        min_score: queries whose best prompt score is below are dropped

    Returns:
        boxes in original-image ``xyxy`` pixels with ``sigmoid(logits)``
    """
    scores = stable_sigmoid(np.asarray(logits).reshape(len(pred_boxes), -1))
    keep = scores.max(axis=1, initial=0.0) >= min_score
    sx, sy = canvas_scale
    xyxy = B.scale_normalized(B.cxcywh_to_xyxy(np.asarray(pred_boxes)[keep]), sx * width, sy * height)
    return Predictions(xyxy, scores[keep], has_score_vector=True)


@dataclasses.dataclass
class OmDetBatch(HFBatch):
    """:class:`HFBatch` plus where each image sits in the model input.

    Attributes:
        canvas_scales: per image, model input size / size of the image
            inside it, ``(x, y)``; ``(1, 1)`` when images are stretched
    """

    canvas_scales: list[tuple[float, float]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Task:
    """One chunk of prompts: their indices and encoded text (on the device).

    Attributes:
        prompt_indices: the chunk's prompts, as indices into the prompt list
        class_features: ``(K, D)`` one embedding per prompt (CLIP, pooled)
        task_features: ``(L, 1, D)`` token features of ``"Detect a, b."``
        task_mask: ``(1, L)`` their attention mask
    """

    prompt_indices: np.ndarray
    class_features: Any  # (K, D)
    task_features: Any  # (L, 1, D)
    task_mask: Any  # (1, L)


@register
class OmDetTurboDetector(HFDetector):
    """OmDet-Turbo (``omlab/omdet-turbo-*``): a fast DETR-style open-vocabulary detector.

    Options: ``min_score`` (default 0.001) and ``trust_remote_code``
    (default False), see :class:`HFDetector`.
    """

    name = "omdet-turbo"
    default_checkpoint = "omlab/omdet-turbo-swin-tiny-hf"
    model_types = ("omdet-turbo",)

    def __init__(self, checkpoint: str | None = None, device: str = "cpu",
                 fp16: bool | None = None, **options: Any):
        super().__init__(checkpoint, device=device, fp16=fp16, **options)
        self._tasks: list[Task] = []

    @property
    def tasks(self) -> list[Task]:
        """The prompt chunks of :meth:`set_prompts`, one decoder pass each."""
        return list(self._tasks)

    def _encode(self, texts: list[str]) -> dict:
        tok = self.processor.tokenizer
        enc = tok(texts, padding="max_length", truncation=True, max_length=MAX_TEXT_TOKENS,
                  return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Splits the prompts into tasks that fit and encodes all text once."""
        import torch

        prompts = [str(p) for p in prompts]
        tok = self.processor.tokenizer
        chunks = chunk_task_prompts(prompts, lambda text: len(tok(text)["input_ids"]))
        language = self.model.language_backbone
        tasks = []
        with torch.inference_mode():
            for idx in chunks:
                classes = self._encode([prompts[i] for i in idx])
                class_features = language(classes["input_ids"], encode_type="class")
                task = self._encode([task_text([prompts[i] for i in idx])])
                features, mask = language(task["input_ids"], mask=task["attention_mask"], encode_type="task")
                tasks.append(Task(np.asarray(idx), class_features, features, mask))
        # assigned last: a failed call keeps the previous prompts usable
        self.prompts, self._tasks = prompts, tasks

    def prepare(self, images: Sequence[np.ndarray]) -> OmDetBatch:
        """Runs the image processor; notes how each image sits in the input."""
        batch = super().prepare(images)
        mask = batch.pixel_inputs.pop("pixel_mask", None)  # the model takes none
        scales = [(1.0, 1.0)] * len(batch.sizes)
        if mask is not None:
            h, w = mask.shape[-2:]
            valid_h = mask.any(dim=2).sum(dim=1).clamp(min=1).tolist()
            valid_w = mask.any(dim=1).sum(dim=1).clamp(min=1).tolist()
            scales = [(w / vw, h / vh) for vw, vh in zip(valid_w, valid_h)]
        return OmDetBatch(batch.pixel_inputs, batch.sizes, scales)

    def encode_images(self, pixel_values):
        """Backbone + hybrid encoder: the multi-scale features every task reuses."""
        model = self.model
        features = model.vision_backbone(pixel_values)
        return model.encoder(features, return_dict=True).extracted_states

    def decode_task(self, image_features, task: Task, n: int):
        """One decoder pass of ``n`` images for one task: ``(boxes, logits)``."""
        k, d = task.class_features.shape
        out = self.model.decoder(
            image_features,
            task.class_features[:, None, :].expand(k, n, d),
            task.task_features.expand(-1, n, -1),
            task.task_mask.expand(n, -1),
            return_dict=True,
        )
        return out.decoder_coords[-1], out.decoder_classes[-1]

    def iter_forward(self, batch: OmDetBatch):
        """The model's passes over a batch, undecoded (also what benchmarks time).

        Yields:
            ``(task, boxes, logits)`` per task: ``(B, Q, 4)`` cxcywh and
            ``(B, Q, K)`` logits, on the device
        """
        import torch

        if not self._tasks:
            raise RuntimeError("set_prompts() must be called before predict()")
        pixels = batch.pixel_inputs["pixel_values"].to(self.device, dtype=self.dtype)
        # grad mode is thread state: never left switched while suspended
        with torch.inference_mode():
            image_features = self.encode_images(pixels)
        for task in self._tasks:
            with torch.inference_mode():
                boxes, logits = self.decode_task(image_features, task, len(batch.sizes))
            yield task, boxes, logits

    def predict(self, batch: OmDetBatch) -> list[Predictions]:
        """One image pass per batch, then one decoder pass per task."""
        n, num_prompts = len(batch.sizes), len(self.prompts)
        split = len(self._tasks) > 1
        parts: list[list[Predictions]] = [[] for _ in range(n)]
        for task, boxes, logits in self.iter_forward(batch):
            boxes = boxes.float().cpu().numpy()
            logits = logits.float().cpu().numpy()
            for i, (w, h) in enumerate(batch.sizes):
                pred = decode_omdet_turbo(logits[i], boxes[i], w, h, batch.canvas_scales[i], self.min_score)
                if split:
                    pred = widen_scores(pred, task.prompt_indices, num_prompts)
                parts[i].append(pred)
        return join_chunks(parts)

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        """Builds a random-weight OmDet-Turbo with the real CLIP tokenizer.

        ``tiny``: transformers' Swin of width 16 (one block per stage) with
        the post-backbone layer norms off (see the module docstring), a
        1-layer CLIP text tower of width 64, encoder/decoder width 32, two
        decoder layers, 30 queries, 128-pixel inputs. ``full``: the config
        defaults, which are omdet-turbo-swin-tiny's architecture (timm
        Swin-T, CLIP ViT-B/32's text tower, 900 queries, 6 decoder layers)
        at the published 640 x 640 input.
        """
        from transformers import (
            DetrImageProcessor,
            OmDetTurboConfig,
            OmDetTurboForObjectDetection,
            OmDetTurboProcessor,
        )

        check_size(size)
        if size == "tiny":
            side = 128
            config = OmDetTurboConfig(
                backbone_config=dict(
                    model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                    window_size=4, image_size=side, out_indices=[2, 3, 4],
                ),
                use_timm_backbone=False,
                apply_layernorm_after_vision_backbone=False,
                # text width = class_embed_dim, which must differ from the
                # decoder width (transformers only builds the task projection
                # between them when they differ, and always calls it)
                text_config=dict(
                    model_type="clip_text_model", hidden_size=64, intermediate_size=64,
                    num_attention_heads=2, num_hidden_layers=1, projection_dim=64,
                ),
                image_size=side, text_projection_in_dim=64, text_projection_out_dim=64,
                class_embed_dim=64, task_encoder_hidden_dim=64,
                encoder_in_channels=[32, 64, 128], vision_features_channels=[32, 32, 32],
                encoder_hidden_dim=32, encoder_dim_feedforward=64, encoder_attention_heads=2,
                decoder_hidden_dim=32, decoder_dim_feedforward=64, decoder_num_heads=2,
                decoder_num_layers=2, num_queries=30,
            )
        else:
            side = 640
            config = OmDetTurboConfig()
        model = seeded(lambda: OmDetTurboForObjectDetection(config).eval())
        processor = OmDetTurboProcessor(
            image_processor=DetrImageProcessor(size={"height": side, "width": side}),
            tokenizer=clip_tokenizer(MAX_TEXT_TOKENS),
        )
        return save_checkpoint(model, processor, directory)
