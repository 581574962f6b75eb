"""Grounding DINO backend (Hugging Face transformers).

Grounding DINO reads all prompts as one caption, ``"cat. remote control."``
(lowercase, each prompt followed by a period: what
``GroundingDinoProcessor`` builds from a list of labels), and scores each of
its queries against every *token* of that caption: ``logits`` is ``(queries,
max_text_len=256)``. A prompt's score is derived from the tokens of its span
in the caption, found through the tokenizer's character offsets, so
multi-token prompts ("remote control", "hot dog" -> ``h ##ot dog``) and the
``[CLS]``/``.``/``[SEP]`` tokens between them are handled exactly.

Score of a prompt: ``sigmoid(max logit over its tokens)`` by default (option
``token_score="max"``), the rule of transformers'
``post_process_grounded_object_detection`` (which takes the max over all
tokens) restricted to one prompt's span: a box matching the head noun of a
multi-word prompt scores high even when the modifier tokens respond less.
``token_score="mean"`` averages the token probabilities instead (the rule of
mmdetection's ``convert_grounding_to_cls_scores``), stricter for multi-word
prompts.

Boxes: ``pred_boxes`` are ``cxcywh`` normalized to the *unpadded* image,
which is the original image resized with its aspect ratio kept. Batches are
padded bottom/right to a common size, but the model gets the
``pixel_mask`` and normalizes its proposals by the valid (unpadded) extent
(``generate_encoder_output_proposals`` and ``get_valid_ratio`` in
``modeling_grounding_dino.py``), and ``post_process_grounded_object_detection``
simply multiplies by each image's own ``(width, height)``. So pixels =
normalized * ``(width, height)`` of the original image.

Text length: the model reads at most ``config.max_text_len`` (256) tokens;
longer captions are silently truncated by the model. When the prompts do not
fit, they are split into chunks that do and each batch runs one forward per
chunk; each box then only has scores for the prompts of its chunk, so those
predictions are marked ``has_score_vector=False`` (no ``class_scores`` are
written, rather than zeros that would look like confident rejections).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar, Sequence

import numpy as np

from .. import boxes as B
from ._hf import (HFBatch, HFDetector, bert_tokenizer, check_size, join_chunks, save_checkpoint, seeded, stable_sigmoid,
                  widen_scores)
from .base import Predictions, register

#: characters Grounding DINO treats as phrase delimiters (ids 1012, 1029)
_DELIMITERS = re.compile(r"[.?]")


def clean_prompt(prompt: str) -> str:
    """Lowercases a prompt and removes the model's delimiters from it.

    ``.`` and ``?`` inside a prompt would split it into two phrases for the
    model, so they become spaces (``"st. bernard"`` -> ``"st bernard"``).

    Raises:
        ValueError: if nothing is left of the prompt
    """
    text = " ".join(_DELIMITERS.sub(" ", str(prompt)).lower().split())
    if not text:
        raise ValueError(f"Prompt {prompt!r} is empty once its '.' and '?' are removed")
    return text


def join_prompts(prompts: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Builds the caption ``"a. b."`` and each prompt's character span in it."""
    text, spans = "", []
    for p in prompts:
        if text:
            text += " "
        spans.append((len(text), len(text) + len(p)))
        text += p + "."
    return text, spans


def token_spans(offsets: np.ndarray, char_spans: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Maps each prompt's character span to the indices of its tokens.

    Args:
        offsets: ``(T, 2)`` character ``[start, end)`` of each token, as the
            tokenizer's ``offset_mapping`` gives them (special tokens are
            ``(0, 0)``)
        char_spans: ``[start, end)`` of each prompt in the caption

    Returns:
        one int array of token indices per prompt
    """
    offsets = np.asarray(offsets).reshape(-1, 2)
    real = offsets[:, 1] > offsets[:, 0]
    return [
        np.flatnonzero(real & (offsets[:, 0] >= s) & (offsets[:, 1] <= e)) for s, e in char_spans
    ]


def chunk_prompts(token_counts: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Greedily groups prompts into captions of at most ``max_tokens`` tokens.

    A caption costs ``[CLS]`` + ``[SEP]`` + each prompt's tokens and period.

    Returns:
        lists of prompt indices, in prompt order

    Raises:
        ValueError: naming 'classes'/'ontology' if one prompt alone is too long
    """
    chunks: list[list[int]] = []
    used = max_tokens  # forces a new chunk for the first prompt
    for i, n in enumerate(token_counts):
        if n + 3 > max_tokens:
            raise ValueError(
                f"Prompt #{i} is {n} tokens long; Grounding DINO reads at most "
                f"{max_tokens} tokens in all. Shorten it in 'classes' or 'ontology'"
            )
        if used + n + 1 > max_tokens:
            chunks.append([])
            used = 2
        chunks[-1].append(i)
        used += n + 1
    return chunks


def decode_grounding_dino(
    logits: np.ndarray,
    pred_boxes: np.ndarray,
    spans: Sequence[np.ndarray],
    width: int,
    height: int,
    min_score: float = 0.001,
    token_score: str = "max",
) -> Predictions:
    """Decodes one image's raw Grounding DINO outputs.

    Args:
        logits: ``(Q, T)`` logits of each query for each caption token
            (``-inf`` past the caption)
        pred_boxes: ``(Q, 4)`` ``cxcywh`` normalized to the original image
        spans: token indices of each prompt (see :func:`token_spans`)
        width: original image width in pixels
        height: original image height in pixels
        min_score: queries whose best prompt score is below are dropped
        token_score: ``"max"`` (sigmoid of the best token) or ``"mean"``
            (mean token probability) over a prompt's tokens

    Returns:
        boxes in original-image ``xyxy`` pixels with one score per prompt
    """
    probs = stable_sigmoid(logits)
    reduce = {"max": np.max, "mean": np.mean}[token_score]
    scores = np.stack([reduce(probs[:, s], axis=1) for s in spans], axis=1) if len(spans) else (
        np.zeros((len(probs), 0))
    )
    keep = scores.max(axis=1, initial=0.0) >= min_score
    xyxy = B.scale_normalized(B.cxcywh_to_xyxy(np.asarray(pred_boxes)[keep]), width, height)
    return Predictions(xyxy, scores[keep], has_score_vector=True)


@dataclasses.dataclass
class _Caption:
    """One caption: which prompts it holds, its tokens, their spans."""

    prompt_indices: np.ndarray
    inputs: dict[str, Any]
    spans: list[np.ndarray]


@register
class GroundingDinoDetector(HFDetector):
    """Grounding DINO (``IDEA-Research/grounding-dino-*``).

    Options: ``min_score`` (default 0.001), ``trust_remote_code`` (default
    False), see :class:`HFDetector`, and ``token_score``: ``"max"`` (default)
    or ``"mean"``, how a prompt's token probabilities become its score.
    """

    name = "grounding-dino"
    default_checkpoint = "IDEA-Research/grounding-dino-tiny"
    model_types = ("grounding-dino",)
    default_options: ClassVar[dict[str, Any]] = {**HFDetector.default_options, "token_score": "max"}
    # transformers class names of random checkpoints, resolved lazily
    _config_cls: ClassVar[str] = "GroundingDinoConfig"
    _model_cls: ClassVar[str] = "GroundingDinoForObjectDetection"

    def __init__(self, checkpoint: str | None = None, device: str = "cpu",
                 fp16: bool | None = None, **options: Any):
        super().__init__(checkpoint, device=device, fp16=fp16, **options)
        self.token_score = self.options["token_score"]
        if self.token_score not in ("max", "mean"):
            raise ValueError(
                f"Option 'token_score' must be 'max' or 'mean'; got {self.token_score!r}"
            )
        self._captions: list[_Caption] = []

    @property
    def max_text_len(self) -> int:
        return int(self.model.config.max_text_len)

    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Tokenizes the caption(s) once, splitting prompts that do not fit."""
        tok = self.processor.tokenizer
        prompts = [str(p) for p in prompts]
        cleaned = [clean_prompt(p) for p in prompts]
        counts = [len(ids) for ids in tok(cleaned, add_special_tokens=False)["input_ids"]]
        captions = []
        for idx in chunk_prompts(counts, self.max_text_len):
            text, char_spans = join_prompts([cleaned[i] for i in idx])
            enc = tok(
                text, return_offsets_mapping=True, return_token_type_ids=True, return_tensors="pt"
            )
            offsets = enc.pop("offset_mapping")[0].numpy()
            spans = token_spans(offsets, char_spans)
            if enc["input_ids"].shape[1] > self.max_text_len or any(len(s) == 0 for s in spans):
                # cannot happen with a WordPiece tokenizer; guards odd ones
                names = [prompts[i] for i in idx]
                raise ValueError(f"Cannot map prompts {names} to caption tokens")
            captions.append(_Caption(np.asarray(idx), dict(enc), spans))
        # assigned last: a failed call keeps the previous prompts usable
        self.prompts, self._captions = prompts, captions

    def predict(self, batch: HFBatch) -> list[Predictions]:
        """One forward pass per batch (per caption chunk if prompts were split)."""
        if not self._captions:
            raise RuntimeError("set_prompts() must be called before predict()")
        n, num_prompts = len(batch.sizes), len(self.prompts)
        parts: list[list[Predictions]] = [[] for _ in range(n)]
        for cap in self._captions:
            text = {k: v.repeat(n, 1) for k, v in cap.inputs.items()}
            out = self._forward(**batch.pixel_inputs, **text)
            logits = out.logits.float().cpu().numpy()  # (B, Q, 256)
            boxes = out.pred_boxes.float().cpu().numpy()  # (B, Q, 4)
            for i, (w, h) in enumerate(batch.sizes):
                pred = decode_grounding_dino(
                    logits[i], boxes[i], cap.spans, w, h, self.min_score, self.token_score
                )
                if len(self._captions) > 1:
                    pred = widen_scores(pred, cap.prompt_indices, num_prompts)
                parts[i].append(pred)
        return join_chunks(parts)

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        """Builds a random-weight Grounding DINO with an offline BERT vocab.

        ``tiny``: Swin of width 16 with one block per stage, a 1-layer BERT
        of width 32, ``d_model`` 32, one encoder and two decoder layers
        (fewer breaks the decoder's weight tying), 30 queries, images
        resized to 64-96 pixels. ``full``: the config defaults, which are
        grounding-dino-tiny's architecture (Swin-T, BERT-base, 900 queries,
        6+6 layers) at the published 800-1333 pixel input size.
        """
        import transformers
        from transformers import GroundingDinoImageProcessor, GroundingDinoProcessor

        config_cls = getattr(transformers, cls._config_cls)
        model_cls = getattr(transformers, cls._model_cls)
        check_size(size)
        tokenizer = bert_tokenizer()
        if size == "tiny":
            config = config_cls(
                backbone_config=dict(
                    model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
                    window_size=4, out_features=["stage2", "stage3", "stage4"],
                ),
                text_config=dict(
                    model_type="bert", hidden_size=32, intermediate_size=64, num_attention_heads=2,
                    num_hidden_layers=1, vocab_size=len(tokenizer),
                ),
                d_model=32, encoder_layers=1, decoder_layers=2,
                encoder_ffn_dim=64, decoder_ffn_dim=64,
                encoder_attention_heads=2, decoder_attention_heads=2, num_queries=30,
            )
            image_processor = GroundingDinoImageProcessor(
                size={"shortest_edge": 64, "longest_edge": 96}
            )
        else:
            config = config_cls()
            image_processor = GroundingDinoImageProcessor()
        model = seeded(lambda: model_cls(config).eval())
        processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
        return save_checkpoint(model, processor, directory)
