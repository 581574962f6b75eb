"""The one small interface every zero-shot detector backend implements.

A backend turns a batch of decoded RGB images and a list of text prompts into
boxes in absolute ``xyxy`` pixel coordinates of each *original* image, with
one score per prompt, and optionally an instance mask per box (segmenting
backends such as SAM 3). Everything else (ontology mapping, thresholds, NMS,
normalization, mask cropping, FiftyOne I/O) is done once, by the pipeline.

Adding a backend means adding one module to this package that subclasses
:class:`ZeroShotDetector` and decorates it with :func:`register`.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from typing import Any, ClassVar, Sequence

import numpy as np

_REGISTRY: dict[str, type["ZeroShotDetector"]] = {}


@dataclasses.dataclass
class Predictions:
    """Raw detections of one image, before any Stoplight post-processing.

    Attributes:
        boxes: ``(N, 4)`` float array, ``[x1, y1, x2, y2]`` in absolute pixels
            of the original (EXIF-oriented) image.
        prompt_scores: ``(N, P)`` float array in ``[0, 1]``, the score of each
            box for each prompt, in prompt order. Backends that only expose the
            top prompt put its score in that column and zeros elsewhere, and
            set ``has_score_vector=False``.
        has_score_vector: whether ``prompt_scores`` holds real scores for
            every prompt (written to labels as ``class_scores``).
        masks: ``None`` (boxes only), or an ``(N, h, w)`` float array: one
            soft mask per box over the *whole* original image at any
            resolution ``h x w`` (the model's own), values in ``[0, 1]``.
            The pipeline resizes it to the image bilinearly
            (``align_corners=False``), keeps pixels ``> 0.5`` and stores the
            part inside the written box as the label's FiftyOne instance
            ``mask`` (see :func:`plugins.common.masks.crop_mask`).
    """

    boxes: np.ndarray
    prompt_scores: np.ndarray
    has_score_vector: bool = True
    masks: np.ndarray | None = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        n = len(self.boxes)
        self.prompt_scores = np.asarray(self.prompt_scores, dtype=np.float64)
        if self.prompt_scores.ndim != 2 or len(self.prompt_scores) != n:
            raise ValueError(
                "prompt_scores must have shape (num_boxes, num_prompts); got "
                f"{self.prompt_scores.shape} for {n} boxes"
            )
        if self.masks is not None:
            self.masks = np.asarray(self.masks)
            if self.masks.ndim != 3 or len(self.masks) != n:
                raise ValueError(
                    "masks must have shape (num_boxes, height, width); got "
                    f"{self.masks.shape} for {n} boxes"
                )

    @classmethod
    def empty(cls, num_prompts: int) -> "Predictions":
        return cls(np.zeros((0, 4)), np.zeros((0, num_prompts)))


class ZeroShotDetector(abc.ABC):
    """Base class of zero-shot detector backends.

    Subclasses set :attr:`name` (the ``backend`` parameter value) and
    :attr:`default_checkpoint`, load their model in ``__init__`` and implement
    :meth:`set_prompts`, :meth:`prepare` and :meth:`predict`.

    :meth:`prepare` runs in a background thread while the previous batch is
    in :meth:`predict`, so it must only do CPU work (resizing, tokenizing,
    building tensors) and must not touch the model.

    Args:
        checkpoint: a hub id, ultralytics weight name, or local file/directory;
            ``None`` uses :attr:`default_checkpoint`.
        device: a torch device string such as ``"cuda"``, ``"cuda:1"`` or
            ``"cpu"``.
        fp16: run in half precision; ``None`` means "on CUDA only".
        **options: backend-specific options (documented per backend).
    """

    name: ClassVar[str]
    default_checkpoint: ClassVar[str]
    #: backend-specific option names and their defaults
    default_options: ClassVar[dict[str, Any]] = {}
    #: whether predictions carry a score for every prompt
    exposes_score_vector: ClassVar[bool] = True
    #: whether predictions carry an instance mask per box (``Predictions.masks``)
    produces_masks: ClassVar[bool] = False

    def __init__(
        self,
        checkpoint: str | None = None,
        device: str = "cpu",
        fp16: bool | None = None,
        **options: Any,
    ):
        self.checkpoint = checkpoint or self.default_checkpoint
        self.device = device
        self.fp16 = device.startswith("cuda") if fp16 is None else bool(fp16)
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            raise ValueError(
                f"Unknown option(s) {', '.join(unknown)} for backend {self.name!r}; "
                f"valid options: {', '.join(sorted(self.default_options)) or 'none'}"
            )
        #: the defaults updated with the given options
        self.options: dict[str, Any] = {**self.default_options, **options}
        self.prompts: list[str] = []

    @abc.abstractmethod
    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Sets the text prompts that :meth:`predict` scores boxes against."""

    @abc.abstractmethod
    def prepare(self, images: Sequence[np.ndarray]) -> Any:
        """Turns decoded ``HxWx3`` uint8 RGB images into model inputs (CPU)."""

    @abc.abstractmethod
    def predict(self, batch: Any) -> list[Predictions]:
        """Runs one forward pass over a prepared batch.

        Returns:
            one :class:`Predictions` per image, in order
        """

    def __call__(self, images: Sequence[np.ndarray]) -> list[Predictions]:
        return self.predict(self.prepare(images))

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        """Builds a random-weight checkpoint that loads like a real one.

        For machines without model downloads: ``size="tiny"`` gives a model
        small enough for unit tests (milliseconds per image);
        ``size="full"`` gives the published architecture of
        :attr:`default_checkpoint` (same compute, for speed benchmarks).
        Labels from random weights are meaningless.

        Args:
            directory: where to write the checkpoint (created if needed)
            size: ``"tiny"`` or ``"full"``

        Returns:
            the value to pass as ``checkpoint`` to load it
        """
        raise NotImplementedError(f"{cls.name} cannot build random checkpoints")


def register(cls: type[ZeroShotDetector]) -> type[ZeroShotDetector]:
    """Class decorator that makes a backend available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[ZeroShotDetector]]:
    """The backends registered so far, by name (a copy)."""
    return dict(_REGISTRY)


def is_local_path(checkpoint: str) -> bool:
    """Whether a checkpoint string names something on this machine."""
    return os.path.exists(os.path.expanduser(checkpoint))
