"""Checkpoints and prompt text encoders of the YOLO backends.

A ``checkpoint`` value is an ultralytics name, a local ``.pt``/``.yaml``, or
a directory holding ``model.pt`` and optionally ``text_encoder/`` (an
open_clip model in open_clip's local-dir layout). Prompts are embedded by
precomputed ``text_embeddings``, an open_clip text tower
(:class:`TextEncoder`, loaded without pickles or downloads), or
ultralytics' own text model.

Helper module of :mod:`.yolo`: it registers no backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ._hf import refused_pickle

#: inside a checkpoint directory: the ultralytics model and the text encoder
MODEL_FILE = "model.pt"
TEXT_ENCODER_DIR = "text_encoder"
#: open_clip's local-dir layout (what ``create_model("local-dir:...")`` reads)
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"
_MODEL_SUFFIXES = (".pt", ".yaml", ".yml")
_TEXT_BATCH = 256


def resolve_checkpoint(checkpoint: str) -> tuple[str, str | None]:
    """Splits a ``checkpoint`` value into a model source and a text encoder.

    Returns:
        ``(model, text_encoder_dir)``: ``model`` is a local ``.pt``/``.yaml``
        path or an ultralytics name; ``text_encoder_dir`` is the
        ``text_encoder/`` folder of a checkpoint directory, or ``None``

    Raises:
        ValueError: naming the ``checkpoint`` parameter, for URLs, missing
            local paths, directories without a model and unknown suffixes
    """
    value = str(checkpoint).strip()
    if "://" in value:
        raise ValueError(
            f"Parameter 'checkpoint': URLs are not supported ({value!r}); download the file "
            "and pass its path, or pass an ultralytics weight name such as 'yoloe-11l-seg.pt'"
        )
    path = Path(os.path.expanduser(value))
    if path.is_dir():
        model = path / MODEL_FILE
        if not model.is_file():
            pts = sorted(path.glob("*.pt"))
            if len(pts) != 1:
                raise ValueError(
                    f"Parameter 'checkpoint': directory {value!r} must contain '{MODEL_FILE}' "
                    f"(or exactly one .pt file); found {sorted(p.name for p in path.iterdir())}"
                )
            model = pts[0]
        te = path / TEXT_ENCODER_DIR
        return str(model), str(te) if te.is_dir() else None
    if path.is_file():
        if path.suffix.lower() not in _MODEL_SUFFIXES:
            raise ValueError(
                f"Parameter 'checkpoint': {value!r} is not an ultralytics .pt checkpoint "
                "or a model .yaml"
            )
        return str(path), None
    if "/" in value or os.sep in value or value.startswith(("~", ".")):
        raise ValueError(f"Parameter 'checkpoint': no such file or directory: {value!r}")
    if not value.lower().endswith(_MODEL_SUFFIXES):
        raise ValueError(
            f"Parameter 'checkpoint': {value!r} is neither a local path nor an ultralytics "
            "model name ending in .pt (weights, downloaded by ultralytics) or .yaml "
            "(architecture with random weights)"
        )
    return value, None


def open_clip_source(text_encoder: str, checkpoint: str | None) -> tuple[str, str | None]:
    """Validates an open_clip text encoder spec; returns create_model args."""
    path = Path(os.path.expanduser(text_encoder))
    if text_encoder.startswith("local-dir:"):
        path = Path(os.path.expanduser(text_encoder[len("local-dir:") :]))
    if path.is_dir() or text_encoder.startswith("local-dir:"):
        if checkpoint:
            raise ValueError(
                "Option 'text_encoder_checkpoint' applies to open_clip architecture names; "
                f"the folder {text_encoder!r} carries its own weights"
            )
    else:
        # a built-in open_clip architecture name: weights must be a local
        # file, because a pretrained tag would be downloaded
        if not checkpoint:
            raise ValueError(
                f"Option 'text_encoder' {text_encoder!r} needs 'text_encoder_checkpoint', a "
                "local weights file (open_clip pretrained tags are not downloaded)"
            )
        import open_clip

        if open_clip.get_model_config(text_encoder) is None:
            raise ValueError(
                f"Option 'text_encoder': {text_encoder!r} is neither an open_clip model name "
                "nor a folder in open_clip's local-dir layout"
            )
        ckpt = os.path.expanduser(checkpoint)
        if not os.path.isfile(ckpt):
            raise ValueError(f"Option 'text_encoder_checkpoint': no such file: {checkpoint!r}")
        return text_encoder, ckpt
    if not (path / OPEN_CLIP_CONFIG).is_file():
        raise ValueError(
            f"Text encoder directory {str(path)!r} must contain {OPEN_CLIP_CONFIG} "
            "(open_clip's local-dir layout)"
        )
    if not any(path.glob(f"*{ext}") for ext in (".safetensors", ".bin", ".pth")):
        # open_clip would silently fall back to random weights
        raise ValueError(f"Text encoder directory {str(path)!r} holds no weights file")
    return f"local-dir:{path}", None


@contextlib.contextmanager
def _no_pickles(path: str):
    """numpy's refusal of object arrays, as an error naming the option."""
    try:
        yield
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise
        raise ValueError(
            f"Option 'text_embeddings': {path!r} holds pickled Python objects, which are "
            "never loaded (they could run code); save plain float arrays"
        ) from None


def load_text_embeddings(value: Any) -> dict[str, np.ndarray]:
    """Reads the ``text_embeddings`` option into ``{prompt: vector}``."""
    if isinstance(value, (str, os.PathLike)):
        path = os.path.expanduser(str(value))
        if not os.path.isfile(path):
            raise ValueError(f"Option 'text_embeddings': no such file: {str(value)!r}")
        with _no_pickles(path):
            with np.load(path, allow_pickle=False) as data:
                if "prompts" not in data or "embeddings" not in data:
                    raise ValueError(
                        "Option 'text_embeddings': a .npz file needs arrays 'prompts' (P,) "
                        "and 'embeddings' (P, D)"
                    )
                prompts, emb = data["prompts"], data["embeddings"]
        if emb.ndim != 2 or len(emb) != len(prompts):
            raise ValueError(
                f"Option 'text_embeddings': 'embeddings' must be (P, D) with P = "
                f"{len(prompts)}; got {emb.shape}"
            )
        return {str(p): np.asarray(e, dtype=np.float32) for p, e in zip(prompts, emb)}
    if isinstance(value, Mapping):
        out = {}
        for prompt, vec in value.items():
            if isinstance(vec, (str, os.PathLike)):
                with _no_pickles(str(vec)):
                    vec = np.load(os.path.expanduser(str(vec)), allow_pickle=False)
            vec = np.asarray(vec, dtype=np.float32)
            if vec.ndim != 1:
                raise ValueError(
                    f"Option 'text_embeddings': the vector of {prompt!r} must be 1-D; "
                    f"got shape {vec.shape}"
                )
            out[str(prompt)] = vec
        return out
    raise ValueError(
        "Option 'text_embeddings' must be {prompt: vector or .npy path} or a .npz path; "
        f"got {type(value).__name__}"
    )


class TextEncoder:
    """An open_clip text tower that returns unit text features."""

    def __init__(self, name: str, checkpoint: str | None, device: str):
        import open_clip
        import torch

        try:
            # open_clip reads .bin/.pth weights with torch.load(weights_only=True)
            model = open_clip.create_model(
                name,
                pretrained=checkpoint,
                device="cpu",
                # never fetch tower weights: only the given file is loaded
                pretrained_image=False,
                pretrained_text=False,
            )
        except pickle.UnpicklingError as e:
            raise refused_pickle(e, f"Text encoder {name!r}: its weights", "Use weights saved with safetensors") from e
        if getattr(model, "visual", None) is not None:
            model.visual = None  # only the text tower is used: free its memory
        self.model = model.to(device).eval()
        self.tokenizer = open_clip.get_tokenizer(name)
        self.device = device
        self._torch = torch

    def __call__(self, prompts: Sequence[str]):
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(prompts), _TEXT_BATCH):
                tokens = self.tokenizer(list(prompts[i : i + _TEXT_BATCH])).to(self.device)
                out.append(self.model.encode_text(tokens).float().cpu())
        return torch.cat(out)


def save_random_text_encoder(
    directory: str | os.PathLike, embed_dim: int = 512, seed: int = 0
) -> str:
    """Writes a tiny random open_clip CLIP in open_clip's local-dir layout.

    Its text tower is 1 layer of width 32 (the vocabulary is open_clip's
    bundled CLIP BPE, so tokenizing needs no download); its outputs are
    ``embed_dim``-dimensional, the size the YOLO heads expect.

    Returns:
        the directory
    """
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    cfg = {
        "embed_dim": int(embed_dim),
        "vision_cfg": {
            "image_size": 32,
            "layers": 1,
            "width": 32,
            "patch_size": 16,
            "head_width": 32,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 1,
            "layers": 1,
        },
    }
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIP(**cfg)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(out / OPEN_CLIP_WEIGHTS)
    )
    with open(out / OPEN_CLIP_CONFIG, "w") as f:
        json.dump({"model_cfg": cfg, "preprocess_cfg": {}}, f, indent=2)
    return str(out)
