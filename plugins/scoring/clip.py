"""The open_clip model behind label embeddings: loading and encoding.

:func:`load_clip` loads (once per process) an open_clip architecture with
its preprocessing and tokenizer, from a pretrained tag or a local checkpoint
read as plain tensors only; :class:`ClipModel` encodes preprocessed image
batches and texts into L2-normalized vectors; :func:`encode_crops` embeds a
batch of crops so that one bad crop does not stop a run.
:func:`build_random_clip` writes a tiny random-weight model for tests and
offline demos.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import pickle
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

logger = logging.getLogger(__name__)

#: the name of the tiny random CLIP config used by tests and offline demos
TINY_MODEL_NAME = "stoplight-tiny-clip"

#: a CLIP small enough to run in milliseconds on a CPU (same code paths)
TINY_MODEL_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}

CHECKPOINT_NAME = "open_clip_model.safetensors"


@dataclasses.dataclass
class ClipModel:
    """A loaded open_clip model with its image preprocessing and tokenizer."""

    model: Any
    preprocess: Callable
    tokenizer: Callable
    model_name: str
    pretrained: str | None
    device: str
    dim: int

    def encode_images(self, pixels) -> np.ndarray:
        """L2-normalized embeddings of a preprocessed ``(N, 3, S, S)`` batch."""
        import torch

        with torch.inference_mode():
            feats = self.model.encode_image(pixels.to(self.device))
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized text embeddings, one row per text."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            feats = self.model.encode_text(tokens)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32)


_CACHE: dict[tuple, ClipModel] = {}
_CACHE_LOCK = threading.Lock()


def _default_device(device: str | None) -> str:
    if device:
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _register_local_config(model_name: str, checkpoint: str | None) -> None:
    """Registers ``<model_name>.json`` next to a checkpoint if open_clip lacks it."""
    import open_clip

    if model_name in open_clip.list_models():
        return
    if checkpoint and os.path.isfile(checkpoint):
        cfg = Path(checkpoint).resolve().parent / f"{model_name}.json"
        if cfg.is_file():
            open_clip.add_model_config(cfg)


def _create(model_name: str, pretrained: str | None, device: str):
    """``open_clip.create_model_and_transforms`` with checkpoint files loaded
    as plain tensors only (never unpickled objects)."""
    import open_clip
    import torch

    is_file = bool(pretrained) and os.path.isfile(pretrained)
    takes_weights_only = (
        "weights_only" in inspect.signature(open_clip.create_model_and_transforms).parameters
    )
    if not is_file or takes_weights_only or str(pretrained).endswith(".safetensors"):
        kwargs = {"weights_only": True} if takes_weights_only else {}
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained or None, device=device, **kwargs
        )
        return model, preprocess
    # an older open_clip would torch.load the file with pickle enabled
    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name, pretrained=None, device="cpu"
    )
    state = torch.load(pretrained, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    model.load_state_dict(state)
    return model.to(device), preprocess


def load_clip(
    model_name: str = "ViT-B-32", pretrained: str | None = "openai", device: str | None = None
) -> ClipModel:
    """Loads (once per process) an open_clip model, preprocessing and tokenizer.

    Args:
        model_name: an open_clip architecture (``open_clip.list_models()``),
            or the name of a config saved by :func:`build_random_clip` next
            to its checkpoint
        pretrained: an open_clip pretrained tag (downloaded on first use), a
            local checkpoint file (``.safetensors``, or a torch file read
            with ``weights_only=True``), or ``None`` for random weights
        device: torch device; ``None`` uses CUDA when available

    Raises:
        ValueError: for an unknown architecture, or a pretrained value that
            is neither a known tag nor an existing file
    """
    import open_clip

    device = _default_device(device)
    if pretrained and os.path.isfile(pretrained):
        pretrained = str(Path(pretrained).resolve())
    key = (model_name, pretrained, device)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        _register_local_config(model_name, pretrained)
        if model_name not in open_clip.list_models():
            raise ValueError(
                f"Unknown CLIP architecture {model_name!r}; choose one of "
                "open_clip.list_models() (e.g. 'ViT-B-32')"
            )
        if pretrained and not os.path.isfile(pretrained):
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            if pretrained not in tags:
                raise ValueError(
                    f"Parameter 'pretrained' must be a checkpoint file or one of {tags} "
                    f"for {model_name!r}; got {pretrained!r}"
                )
        try:
            model, preprocess = _create(model_name, pretrained, device)
        except pickle.UnpicklingError as e:
            # torch's weights_only refusal; its hint to retry unsafely is not ours
            raise ValueError(
                f"Parameter 'pretrained': {pretrained!r} is a pickled checkpoint holding more than "
                "tensors, refused (loading it could run code). Use a .safetensors file or a plain "
                "tensor state dict"
            ) from e
        model.eval()
        tokenizer = open_clip.get_tokenizer(model_name)
        dim = int(open_clip.get_model_config(model_name)["embed_dim"])
        clip = ClipModel(model, preprocess, tokenizer, model_name, pretrained, device, dim)
        _CACHE[key] = clip
        return clip


def build_random_clip(directory: str, model_name: str = TINY_MODEL_NAME, seed: int = 0) -> tuple[str, str]:
    """Saves a random-weight CLIP checkpoint (tests, offline demos).

    Args:
        directory: where to write ``open_clip_model.safetensors`` (and, for
            the tiny model, its config ``stoplight-tiny-clip.json``)
        model_name: :data:`TINY_MODEL_NAME` or any open_clip architecture
        seed: torch seed of the random weights

    Returns:
        ``(model_name, checkpoint_path)``, to pass to :func:`load_clip` or
        :func:`compute_label_embeddings` as ``model_name`` / ``pretrained``
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if model_name == TINY_MODEL_NAME:
        cfg = out / f"{TINY_MODEL_NAME}.json"
        cfg.write_text(json.dumps(TINY_MODEL_CONFIG, indent=2))
        open_clip.add_model_config(cfg)
    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, pretrained=None, device="cpu")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = out / CHECKPOINT_NAME
    save_file(state, str(path))
    return model_name, str(path)


def embedding_dim(model_name: str, pretrained: str | None = None) -> int:
    """The embedding size of an open_clip architecture, read from its config
    (no weights loaded; a config saved next to a local checkpoint counts)."""
    import open_clip

    _register_local_config(model_name, pretrained)
    config = open_clip.get_model_config(model_name)
    if config is None:
        raise ValueError(f"Unknown CLIP architecture {model_name!r}; choose one of "
                         "open_clip.list_models() (e.g. 'ViT-B-32')")
    return int(config["embed_dim"])


def _checked(feats: np.ndarray) -> np.ndarray:
    """``feats`` unless a row is not finite (a NaN vector would poison kNN)."""
    if not np.isfinite(feats).all():
        raise FloatingPointError("the model returned a non-finite embedding")
    return feats


def encode_crops(
    clip: ClipModel, pixels, ids, on_failure, systematic_if_all: bool
) -> list:
    """Embeddings of a batch of crops; ``None`` for crops that fail alone.

    A failing batch is retried crop by crop (like the labeling pipeline
    retries a failing batch image by image) so that one bad crop (say, one
    that makes the model produce NaNs or run out of memory) does not stop
    the run: each crop that fails alone is reported to ``on_failure(sample_id,
    label_id, error)`` and left without an embedding. If every crop fails
    alone and ``systematic_if_all`` (nothing has been embedded yet), the
    model itself is broken and the batch's error is raised.
    """
    try:
        return list(_checked(clip.encode_images(pixels)))
    except Exception as batch_error:  # noqa: BLE001
        if len(ids) > 1:
            logger.warning("A batch of %d crops failed (%s); retrying one by one", len(ids), batch_error)
        out, errors = [], []
        for i, (sid, lid) in enumerate(ids):
            try:
                out.append(_checked(clip.encode_images(pixels[i : i + 1]))[0])
            except Exception as e:  # noqa: BLE001
                out.append(None)
                errors.append((sid, lid, e))
        if systematic_if_all and len(errors) == len(ids):
            raise batch_error
        for sid, lid, e in errors:
            on_failure(sid, lid, e)
        return out
