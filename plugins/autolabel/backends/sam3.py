"""SAM 3 backend (Hugging Face transformers): text prompt -> boxes, scores, masks.

SAM 3 ("Segment Anything with Concepts") finds every instance of one text
concept in an image and returns, per query (200 in the published model), a
box, a mask and a score. It reads ONE prompt per forward: the text conditions
the DETR encoder, decoder and mask decoder. So a batch of ``B`` images and
``P`` prompts is run as:

- the vision encoder (the ViT, most of the compute) once per image;
- the text encoder once per prompt, in :meth:`set_prompts`;
- the prompt-conditioned part once per (image, prompt) pair, with up to
  ``pairs_per_pass`` pairs batched in one pass (each pair holds the image's
  feature maps and its masks in memory, so this bounds memory).

Scores: transformers' post-processing rule, ``sigmoid(pred_logits) *
sigmoid(presence_logits)`` (the presence token says whether the concept is
in the image at all). A box comes from one prompt's queries and has no score
for the others, so with several prompts its score vector holds only its own
prompt's column (``has_score_vector=False``; no ``class_scores`` are
written). With one prompt the vector is complete.

Boxes: ``pred_boxes`` are ``xyxy`` in ``[0, 1]`` of the model input, a
stretched (not padded) resize of the original image to 1008 x 1008, so
pixels = normalized * ``(width, height)``. Masks: ``pred_masks`` are logits
over the whole input at 288 x 288; their sigmoid is passed on as soft masks
(``Predictions.masks``), which the pipeline resizes to the image and
thresholds at 0.5 (transformers' ``post_process_instance_segmentation``),
keeping the part inside each written box as the label's instance mask.

Checkpoints: ``facebook/sam3`` holds SAM 3's image detector next to its
video tracker (a ``sam3_video`` config); only the detector is loaded.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Sequence

import numpy as np

from ._hf import HFBatch, HFDetector, check_size, clip_tokenizer, save_checkpoint, seeded, stable_sigmoid
from .base import Predictions, register

logger = logging.getLogger(__name__)

#: text length of SAM 3's processor (its CLIP text tower has 32 positions)
MAX_TEXT_TOKENS = 32


def decode_sam3(
    logits: np.ndarray,
    presence_logit: float,
    pred_boxes: np.ndarray,
    mask_logits: np.ndarray | None,
    width: int,
    height: int,
    prompt_index: int,
    num_prompts: int,
    min_score: float = 0.001,
) -> Predictions:
    """Decodes one (image, prompt) pair of raw SAM 3 outputs.

    Args:
        logits: ``(Q,)`` query logits for the prompt
        presence_logit: the prompt's presence logit in this image
        pred_boxes: ``(Q, 4)`` ``xyxy`` normalized to the original image
        mask_logits: ``(Q, h, w)`` mask logits over the whole image, or None
        width: original image width in pixels
        height: original image height in pixels
        prompt_index: the column of the prompt's scores
        num_prompts: number of prompts (score columns)
        min_score: queries scoring below are dropped

    Returns:
        boxes in original-image ``xyxy`` pixels; scores ``sigmoid(logit) *
        sigmoid(presence)`` in column ``prompt_index``, zeros elsewhere;
        soft masks (``sigmoid`` of the mask logits, float16) if given
    """
    scores = stable_sigmoid(logits).reshape(-1) * float(stable_sigmoid(presence_logit))
    keep = scores >= min_score
    prompt_scores = np.zeros((int(keep.sum()), num_prompts))
    prompt_scores[:, prompt_index] = scores[keep]
    xyxy = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)[keep] * [width, height, width, height]
    masks = None
    if mask_logits is not None:
        masks = stable_sigmoid(np.asarray(mask_logits)[keep]).astype(np.float16)
    return Predictions(xyxy, prompt_scores, has_score_vector=num_prompts == 1, masks=masks)


def concat_predictions(parts: Sequence[Predictions], has_score_vector: bool) -> Predictions:
    """One image's predictions of several prompts as one :class:`Predictions`."""
    masks = None
    if parts and all(p.masks is not None for p in parts):
        masks = np.concatenate([p.masks for p in parts])
    return Predictions(
        np.concatenate([p.boxes for p in parts]),
        np.concatenate([p.prompt_scores for p in parts]),
        has_score_vector=has_score_vector,
        masks=masks,
    )


@register
class Sam3Detector(HFDetector):
    """SAM 3 (``facebook/sam3``): open-vocabulary boxes with instance masks.

    Options: ``min_score`` (default 0.001) and ``trust_remote_code``
    (default False), see :class:`HFDetector`; ``pairs_per_pass`` (default
    16): (image, prompt) pairs per pass of the prompt-conditioned part
    (memory grows with it); ``masks`` (default True): pass the masks on
    (False: boxes only, less memory and no mask storage).
    """

    name = "sam3"
    default_checkpoint = "facebook/sam3"
    model_types = ("sam3", "sam3_video")
    model_class = "Sam3Model"
    processor_class = "Sam3Processor"
    exposes_score_vector = False
    produces_masks = True
    default_options: ClassVar[dict[str, Any]] = {
        **HFDetector.default_options,
        "pairs_per_pass": 16,
        "masks": True,
    }

    def __init__(self, checkpoint: str | None = None, device: str = "cpu",
                 fp16: bool | None = None, **options: Any):
        super().__init__(checkpoint, device=device, fp16=fp16, **options)
        pairs = self.options["pairs_per_pass"]
        if not isinstance(pairs, int) or isinstance(pairs, bool) or pairs < 1:
            raise ValueError(f"Option 'pairs_per_pass' must be a positive integer; got {pairs!r}")
        if not isinstance(self.options["masks"], bool):
            raise ValueError("Option 'masks' must be True or False")
        self.pairs_per_pass = pairs
        self.with_masks = self.options["masks"]
        self._text: tuple[Any, Any] | None = None

    def _model_config(self, config):
        # the hub checkpoint is the video model: its detector is SAM 3 itself
        return config.detector_config if config.model_type == "sam3_video" else config

    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Encodes every prompt once with SAM 3's text tower."""
        import torch

        prompts = [str(p) for p in prompts]
        tok = self.processor.tokenizer
        for p, ids in zip(prompts, tok(prompts)["input_ids"]):
            if len(ids) > MAX_TEXT_TOKENS:
                logger.warning("Prompt %r is longer than %d tokens and is truncated", p, MAX_TEXT_TOKENS)
        enc = tok(prompts, padding="max_length", truncation=True, max_length=MAX_TEXT_TOKENS,
                  return_tensors="pt")
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        with torch.inference_mode():
            features = self.model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output
        # assigned last: a failed call keeps the previous prompts usable
        self.prompts, self._text = prompts, (features, mask)

    def iter_forward(self, batch: HFBatch):
        """The model's passes over a batch, undecoded (also what benchmarks time).

        Yields:
            ``(pairs, outputs)`` per pass: the ``(image, prompt)`` index
            pairs and SAM 3's outputs for them, on the device
        """
        import torch

        if self._text is None:
            raise RuntimeError("set_prompts() must be called before predict()")
        pixels = batch.pixel_inputs["pixel_values"].to(self.device, dtype=self.dtype)
        pairs = [(i, p) for i in range(len(batch.sizes)) for p in range(len(self.prompts))]
        # grad mode is thread state: never left switched while suspended
        with torch.inference_mode():
            vision = self.model.get_vision_features(pixel_values=pixels)
        for start in range(0, len(pairs), self.pairs_per_pass):
            chunk = pairs[start : start + self.pairs_per_pass]
            with torch.inference_mode():
                out = self.forward_pairs(vision, chunk)
            yield chunk, out

    def predict(self, batch: HFBatch) -> list[Predictions]:
        """Vision once per image, then the prompt-conditioned part per pair."""
        n, num_prompts = len(batch.sizes), len(self.prompts)
        parts: list[list[Predictions]] = [[] for _ in range(n)]
        for chunk, out in self.iter_forward(batch):
            logits = out.pred_logits.float()
            presence = out.presence_logits.float().reshape(-1)
            # only queries over min_score leave the device: a real model
            # scores most of its 200 queries near 0, and each mask is 288^2
            keep = (logits.sigmoid() * presence.sigmoid()[:, None]) >= self.min_score
            for j, (i, p) in enumerate(chunk):
                k = keep[j]
                masks = out.pred_masks[j][k].float().cpu().numpy() if self.with_masks else None
                w, h = batch.sizes[i]
                parts[i].append(decode_sam3(
                    logits[j][k].cpu().numpy(), float(presence[j]), out.pred_boxes[j][k].float().cpu().numpy(),
                    masks, w, h, p, num_prompts, self.min_score,
                ))
        return [concat_predictions(ps, num_prompts == 1) for ps in parts]

    def forward_pairs(self, vision, pairs: list[tuple[int, int]]):
        """The prompt-conditioned part of SAM 3 for (image, prompt) pairs.

        Args:
            vision: ``model.get_vision_features`` of the batch's images
            pairs: ``(image index, prompt index)`` pairs
        """
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling
        from transformers.models.sam3.modeling_sam3 import Sam3VisionEncoderOutput

        device = self.device
        images = torch.tensor([i for i, _ in pairs], device=device)
        prompts = torch.tensor([p for _, p in pairs], device=device)
        features, mask = self._text
        pair_vision = Sam3VisionEncoderOutput(
            fpn_hidden_states=tuple(t[images] for t in vision.fpn_hidden_states),
            fpn_position_encoding=tuple(t[images] for t in vision.fpn_position_encoding),
        )
        return self.model(
            vision_embeds=pair_vision,
            text_embeds=BaseModelOutputWithPooling(pooler_output=features[prompts]),
            attention_mask=mask[prompts],
        )

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        """Builds a random-weight SAM 3 image model with the real CLIP tokenizer.

        ``tiny``: a 2-layer ViT of width 32 on 112-pixel inputs (14-pixel
        patches, an 8 x 8 grid), a 1-layer CLIP text tower of width 32,
        DETR/mask heads of width 32, 20 queries, 32 x 32 masks. ``full``:
        the config defaults, SAM 3's published architecture (ViT with 32
        layers of width 1024 at 1008 x 1008, a 24-layer text tower, 200
        queries, 288 x 288 masks; about 840M parameters, 3.4 GB).
        """
        from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

        check_size(size)
        if size == "tiny":
            width, side = 32, 112
            small = dict(hidden_size=width, num_attention_heads=2, intermediate_size=2 * width)
            config = Sam3Config(
                vision_config=dict(
                    backbone_config=dict(
                        model_type="sam3_vit_model", num_hidden_layers=2, image_size=side,
                        patch_size=14, window_size=4, global_attn_indexes=[1],
                        pretrain_image_size=56, **small,
                    ),
                    fpn_hidden_size=width,
                    backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
                ),
                text_config=dict(
                    num_hidden_layers=1, projection_dim=width, vocab_size=49408,
                    max_position_embeddings=MAX_TEXT_TOKENS, **small,
                ),
                geometry_encoder_config=dict(num_layers=1, **small),
                detr_encoder_config=dict(num_layers=1, **small),
                detr_decoder_config=dict(num_layers=2, num_queries=20, **small),
                mask_decoder_config=dict(hidden_size=width, num_attention_heads=2),
            )
            image_processor = Sam3ImageProcessor(
                size={"height": side, "width": side}, mask_size={"height": 32, "width": 32}
            )
        else:
            config = Sam3Config()
            image_processor = Sam3ImageProcessor()
        model = seeded(lambda: Sam3Model(config).eval())
        processor = Sam3Processor(
            image_processor=image_processor, tokenizer=clip_tokenizer(MAX_TEXT_TOKENS)
        )
        return save_checkpoint(model, processor, directory)
