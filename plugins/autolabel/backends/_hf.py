"""Shared plumbing of the Hugging Face transformers backends.

Private helper module: it registers no backend (the package's discovery
imports it, finds nothing to register, and moves on) and imports torch and
transformers only inside functions, so listing backends stays cheap.

What lives here: checkpoint resolution and validation, loading a processor
and model through the same ``from_pretrained`` path for hub ids and local
directories, a base class doing option parsing, device/precision handling,
batched image preprocessing and the forward pass, and the offline
tokenizers used by ``build_random_checkpoint``.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import logging
import os
import pickle
import re
import tempfile
from typing import Any, ClassVar, Sequence

import numpy as np

from .base import Predictions, ZeroShotDetector

logger = logging.getLogger(__name__)

#: ``name`` or ``org/name``, as the Hugging Face hub spells repository ids
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def resolve_checkpoint(checkpoint: str) -> tuple[str, bool]:
    """Validates a checkpoint string.

    Args:
        checkpoint: a hub id (``org/name``) or a local directory written by
            ``save_pretrained``

    Returns:
        ``(checkpoint, is_local)``, local paths made absolute

    Raises:
        ValueError: naming the parameter 'checkpoint' if the string looks like
            a local path that does not exist, is a file, or holds no
            ``config.json``
    """
    path = os.path.expanduser(checkpoint)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(
                f"Parameter 'checkpoint': directory {checkpoint!r} has no "
                "config.json; expected a directory written by save_pretrained "
                "(or a hub id such as 'google/owlv2-base-patch16-ensemble')"
            )
        return os.path.abspath(path), True
    if os.path.exists(path):
        raise ValueError(
            f"Parameter 'checkpoint': {checkpoint!r} is a file; transformers "
            "backends need a hub id or a directory written by save_pretrained"
        )
    if not _HUB_ID.match(checkpoint):
        raise ValueError(
            f"Parameter 'checkpoint': local directory {checkpoint!r} does not "
            "exist (and it is not a hub id of the form 'org/name')"
        )
    return checkpoint, False


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow warnings for huge ``|x|``.

    Masked logits are ``-inf`` or ``finfo.min``; both map to exactly 0.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def image_sizes(images: Sequence[np.ndarray]) -> list[tuple[int, int]]:
    """``(width, height)`` of each ``HxWx3`` image."""
    return [(int(img.shape[1]), int(img.shape[0])) for img in images]


def _bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable character table of CLIP's (GPT-2's) byte BPE."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _tokenizer_from_files(files: dict[str, str], config: dict[str, Any]):
    """Writes vocabulary files and loads them with ``AutoTokenizer``.

    Going through files (not in-memory vocabularies, whose constructor
    arguments differ between transformers 4 and 5) gives the fast tokenizer
    of whichever transformers is installed.
    """
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        for name, text in {**files, "tokenizer_config.json": json.dumps(config)}.items():
            with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                f.write(text)
        return AutoTokenizer.from_pretrained(tmp)


def clip_tokenizer(model_max_length: int = 16):
    """The real CLIP BPE tokenizer, built from open_clip's bundled merges.

    open_clip ships ``bpe_simple_vocab_16e6.txt.gz`` (the merges of OpenAI's
    CLIP tokenizer). The vocabulary follows from the merges exactly as
    open_clip and OpenAI build it: 256 byte symbols, the same with ``</w>``,
    one token per merge, then the two special tokens, 49408 in all; ids
    match the hub's ``openai/clip-vit-base-patch32`` tokenizer. They are
    written as the ``vocab.json``/``merges.txt`` pair CLIPTokenizer reads.
    The pad token is ``"!"`` (id 0), as in the OWL-ViT/OWLv2 hub
    tokenizers: OWL models treat a query whose first id is 0 as padding.
    """
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise RuntimeError("open-clip-torch is needed to build a CLIP tokenizer offline")
    bpe = os.path.join(os.path.dirname(spec.origin), "bpe_simple_vocab_16e6.txt.gz")
    with gzip.open(bpe, "rt", encoding="utf-8") as f:
        merges = f.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    files = {
        "vocab.json": json.dumps({tok: i for i, tok in enumerate(vocab)}),
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
    }
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "!",
        "model_max_length": model_max_length,
    }
    return _tokenizer_from_files(files, config)


#: whole-word tokens of the offline BERT vocabulary (any other lowercase
#: word still tokenizes, as single-character word pieces)
_BERT_WORDS = """
a an the of and with on in at to for from by this that photo picture image
person people man woman child boy girl face hand head bicycle car motorcycle
airplane bus train truck boat traffic light fire hydrant stop sign parking
meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack
umbrella handbag tie suitcase frisbee skis snowboard sports ball kite baseball
bat glove skateboard surfboard tennis racket bottle wine glass cup fork knife
spoon bowl banana apple sandwich orange broccoli carrot hot pizza donut cake
chair couch potted plant bed dining table toilet tv laptop mouse remote
keyboard cell phone microwave oven toaster sink refrigerator book clock vase
scissors teddy hair drier toothbrush flower tree building window door road
street sky water house red blue green white black small large big
""".split()


def bert_tokenizer():
    """A small uncased WordPiece tokenizer laid out like ``bert-base-uncased``.

    Grounding DINO hard-codes the ids of its delimiter tokens
    (``[CLS]``=101, ``[SEP]``=102, ``.``=1012, ``?``=1029, see
    ``SPECIAL_TOKENS`` in transformers' ``modeling_grounding_dino.py``), so
    the vocabulary keeps BERT's layout: ``[PAD]`` 0, ``[unused*]``,
    ``[UNK]`` 100, ``[CLS]`` 101, ``[SEP]`` 102, ``[MASK]`` 103, then from
    999 the printable ASCII characters without capitals (so ``.`` is 1012,
    ``?`` 1029 and ``a`` 1037, as in BERT), their ``##`` continuations, and
    common English words. Any lowercase ASCII prompt tokenizes.
    """
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)]
    vocab += ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"[unused{i}]" for i in range(99, 99 + 999 - len(vocab))]
    chars = [chr(c) for c in range(33, 127) if not "A" <= chr(c) <= "Z"]
    vocab += chars + ["##" + c for c in chars]
    vocab += [w for w in dict.fromkeys(_BERT_WORDS) if w not in vocab]
    assert vocab[101] == "[CLS]" and vocab[1012] == "." and vocab[1029] == "?"
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512}
    return _tokenizer_from_files({"vocab.txt": "\n".join(vocab) + "\n"}, config)


def seeded(build, seed: int = 0):
    """Calls ``build()`` under a fixed torch seed, leaving the global RNG as it was.

    Random checkpoints must be the same on every machine: some random
    initializations of a tiny model score every box below ``min_score``,
    which would make offline demos and tests depend on luck.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def save_checkpoint(model, processor, directory: str) -> str:
    """Saves model (safetensors) and processor so ``from_pretrained`` loads both."""
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)
    return os.path.abspath(directory)


def refused_pickle(error: Exception, what: str, advice: str) -> ValueError:
    """The error for weights that torch's ``weights_only`` loading refused.

    Args:
        error: the ``pickle.UnpicklingError`` raised by the loading
        what: what was refused, e.g. ``"Parameter 'checkpoint': the weights
            of 'x'"``
        advice: the sentence that says what to use instead

    Returns:
        a ValueError (to raise ``from error``) that says nothing was run and
        names the refused global
    """
    # torch's message ends with the refused global, e.g. posix.system
    reason = " ".join(line for line in str(error).strip().splitlines()[-3:] if line)
    return ValueError(
        f"{what} are a pickle that references code, refused by weights_only loading (nothing was run): "
        f"{reason.rstrip('.')}. {advice}"
    )


def check_size(size: str) -> None:
    """Refuses a random checkpoint ``size`` other than ``tiny`` or ``full``."""
    if size not in ("tiny", "full"):
        raise ValueError(f"Parameter 'size' must be 'tiny' or 'full'; got {size!r}")


def widen_scores(pred: Predictions, prompt_indices, num_prompts: int) -> Predictions:
    """The predictions of one prompt chunk with a column for every prompt.

    A model that sees the prompts in chunks (a caption or task per chunk)
    scores each box against its own chunk only; the other prompts' columns
    are 0 (their scores are unknown, not low), and the score vector no
    longer sums over all prompts.
    """
    full = np.zeros((len(pred.boxes), num_prompts))
    full[:, prompt_indices] = pred.prompt_scores
    return Predictions(pred.boxes, full, has_score_vector=False)


def join_chunks(parts: list[list[Predictions]]) -> list[Predictions]:
    """One image's predictions from those of its prompt chunks (``parts``:
    per image, one :func:`widen_scores` result per chunk); a single chunk
    is returned as it is."""
    return [
        ps[0] if len(ps) == 1 else Predictions(
            np.concatenate([p.boxes for p in ps]),
            np.concatenate([p.prompt_scores for p in ps]),
            has_score_vector=False,
        )
        for ps in parts
    ]


@dataclasses.dataclass
class HFBatch:
    """A prepared batch: CPU tensors for the model and original image sizes.

    Attributes:
        pixel_inputs: the image processor's tensors (``pixel_values``, and
            ``pixel_mask`` where the model takes one)
        sizes: ``(width, height)`` of each original image
    """

    pixel_inputs: dict[str, Any]
    sizes: list[tuple[int, int]]


class HFDetector(ZeroShotDetector):
    """Base of the transformers backends (not registered itself).

    Subclasses set :attr:`model_types` (accepted ``config.model_type``
    values), and implement :meth:`set_prompts` and :meth:`predict`.

    Options (``backend_options``):
        min_score: boxes whose best prompt score is below this are dropped
            before post-processing, to keep the pipeline cheap (default
            0.001; the pipeline applies the real confidence threshold)
        trust_remote_code: allow checkpoints that ship their own modeling
            code (default False: such code would run on this machine)
    """

    #: accepted ``config.model_type`` values of checkpoints
    model_types: ClassVar[tuple[str, ...]]
    #: transformers class that loads the model; ``None``:
    #: ``AutoModelForZeroShotObjectDetection``
    model_class: ClassVar[str | None] = None
    #: transformers class that loads the processor; ``None``: ``AutoProcessor``
    processor_class: ClassVar[str | None] = None
    #: option names and defaults this backend accepts
    default_options: ClassVar[dict[str, Any]] = {"min_score": 0.001, "trust_remote_code": False}

    def __init__(
        self,
        checkpoint: str | None = None,
        device: str = "cpu",
        fp16: bool | None = None,
        **options: Any,
    ):
        super().__init__(checkpoint, device=device, fp16=fp16, **options)
        min_score = self.options["min_score"]
        if not isinstance(min_score, (int, float)) or not 0.0 <= min_score <= 1.0:
            raise ValueError(f"Option 'min_score' must be in [0, 1]; got {min_score!r}")
        self.min_score = float(min_score)
        if not isinstance(self.options["trust_remote_code"], bool):
            # a string such as "false" must not switch remote code on
            raise ValueError("Option 'trust_remote_code' must be True or False")
        self.processor, self.model = self._load(self.options["trust_remote_code"])

    def _model_config(self, config):
        """The config to build the model from (a hook: a checkpoint may hold
        several models, e.g. SAM 3's detector next to its video tracker)."""
        return config

    def _load(self, trust_remote_code: bool):
        """Loads processor and model; hub ids and local dirs take one path."""
        import torch
        import transformers
        from transformers import AutoConfig

        checkpoint, is_local = resolve_checkpoint(self.checkpoint)
        self.checkpoint = checkpoint
        # remote code runs on this machine: only when explicitly allowed
        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        config = AutoConfig.from_pretrained(checkpoint, **kwargs)
        if config.model_type not in self.model_types:
            raise ValueError(
                f"Parameter 'checkpoint': {checkpoint!r} is a {config.model_type!r} "
                f"model; backend {self.name!r} needs one of {', '.join(self.model_types)}"
            )
        config = self._model_config(config)
        # a named class is this package's choice, never the checkpoint's
        # code: the Auto classes alone take trust_remote_code
        processor_cls = getattr(transformers, self.processor_class or "AutoProcessor")
        processor = processor_cls.from_pretrained(
            checkpoint, **({} if self.processor_class else kwargs)
        )
        model_cls = getattr(transformers, self.model_class or "AutoModelForZeroShotObjectDetection")
        if self.model_class:
            kwargs = {}
        if is_local and any(f.endswith(".safetensors") for f in os.listdir(checkpoint)):
            # never unpickle weights when safetensors are there
            kwargs["use_safetensors"] = True
        try:
            # pickled weights (pytorch_model.bin) load with weights_only=True
            model = model_cls.from_pretrained(checkpoint, config=config, **kwargs)
        except pickle.UnpicklingError as e:
            raise refused_pickle(e, f"Parameter 'checkpoint': the weights of {checkpoint!r}",
                                 "Use a checkpoint saved with safetensors") from e
        dtype = torch.float16 if self.fp16 else torch.float32
        model = model.to(device=self.device, dtype=dtype).eval()
        return processor, model

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    def prepare(self, images: Sequence[np.ndarray]) -> HFBatch:
        """Runs the image processor on the whole batch (CPU only)."""
        # decoded images are often read-only views of PIL buffers, which
        # torch.from_numpy warns about: copy those (cheap next to resizing)
        arrays = [np.require(img, requirements="W") for img in images]
        # channels_last: never let the processor guess the layout of a
        # 3-pixel-wide image
        pixel_inputs = self.processor.image_processor(
            images=arrays, input_data_format="channels_last", return_tensors="pt"
        )
        return HFBatch(dict(pixel_inputs), image_sizes(images))

    def _forward(self, **inputs: Any):
        """One forward pass; floating inputs take the model's dtype."""
        import torch

        dtype = self.dtype
        moved = {
            k: v.to(self.device, dtype=dtype) if v.is_floating_point() else v.to(self.device)
            for k, v in inputs.items()
        }
        with torch.inference_mode():
            return self.model(**moved)
