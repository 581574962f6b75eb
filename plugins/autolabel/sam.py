"""Box-prompted segmenters: SAM and SAM 2 (Hugging Face transformers).

A segmenter turns a batch of decoded RGB images, each with a list of boxes,
into one mask per box: mask *logits* over the whole image at the model's
resolution, plus the model's own prediction of the mask's IoU with the
object (``iou_scores``, one mask per box: ``multimask_output=False``, the
setting SAM's authors use for box prompts). Cropping a logit map to a
label's box and thresholding it at 0 is :func:`..common.masks.crop_mask`'s
job (see :mod:`.segment`).

How each model's low-resolution masks map onto the image (what
``post_process_masks`` of each processor does, reproduced exactly):

- SAM (``facebook/sam-vit-base`` / ``-large`` / ``-huge``): the image is
  resized so its longest side is 1024, padded to 1024 x 1024 at the bottom
  and right; the 256 x 256 mask covers the padded square. It is upsampled
  to 1024 x 1024 (bilinear), cut to the resized image, and that map is
  resized to the image (bilinear). The first two steps run on the device;
  the returned map is the cut one.
- SAM 2 / SAM 2.1 (``facebook/sam2.1-hiera-*``): the image is stretched to
  1024 x 1024; the 256 x 256 mask covers the stretched image, so it is
  the map over the whole image as it is.

Loading is safe: named transformers classes (never the checkpoint's own
code), safetensors when the folder has them, pickled weights only through
``weights_only`` loading. SAM 2.1 hub checkpoints are ``sam2_video``
checkpoints (the video tracker's config); the image model loads its part.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import os
import pickle
import threading
from typing import Any, ClassVar, Sequence

import numpy as np

from .backends._hf import check_size, refused_pickle, resolve_checkpoint, save_checkpoint, seeded

logger = logging.getLogger(__name__)

#: boxes of one image per mask-decoder pass (bounds device memory)
BOXES_PER_PASS = 64


@dataclasses.dataclass
class BoxMasks:
    """The masks of one image's boxes.

    Attributes:
        logits: ``(N, h, w)`` float mask logits over the *whole* image (any
            resolution ``h x w``; the mask is where the logit, resized
            bilinearly to the image, is ``> 0``)
        iou: ``(N,)`` the model's predicted IoU of each mask with its
            object, clipped to ``[0, 1]``
    """

    logits: np.ndarray
    iou: np.ndarray


@dataclasses.dataclass
class SegBatch:
    """A prepared batch (CPU): pixels, image sizes and boxes in model input
    coordinates (``xyxy``, one ``(n_i, 4)`` array per image)."""

    pixel_values: Any
    sizes: list[tuple[int, int]]
    boxes: list[np.ndarray]
    #: SAM only: ``(height, width)`` of each image inside the padded input
    reshaped: list[tuple[int, int]] | None = None


class PretrainedSam:
    """What the SAM family's segmenters and video trackers share: the
    transformers classes a subclass names, and loading them safely
    (:func:`load_pretrained`)."""

    name: ClassVar[str]
    default_checkpoint: ClassVar[str]
    #: accepted ``config.model_type`` values
    model_types: ClassVar[tuple[str, ...]]
    model_class: ClassVar[str]
    processor_class: ClassVar[str]

    def load_model(self, checkpoint: str | None, device: str, fp16: bool | None) -> None:
        """Loads the processor and model of ``checkpoint`` (``None``: the
        default) on ``device``; ``fp16=None`` means half precision on CUDA."""
        self.checkpoint = resolve_checkpoint(checkpoint or self.default_checkpoint)[0]
        self.device = device
        self.fp16 = device.startswith("cuda") if fp16 is None else bool(fp16)
        self.processor, self.model = load_pretrained(
            self.checkpoint, self.model_class, self.processor_class, self.model_types,
            device, self.fp16, self._model_config, self.name,
        )

    def _model_config(self, config):
        """The config the model is built from (hook for combined checkpoints)."""
        return config

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype


class BoxSegmenter(PretrainedSam, abc.ABC):
    """Base class of box-prompted segmenters.

    Args:
        checkpoint: hub id or a local ``save_pretrained`` folder; ``None``
            uses :attr:`default_checkpoint`
        device: torch device string
        fp16: half precision; ``None`` means on CUDA only
        boxes_per_pass: boxes of one image per mask-decoder pass
    """

    def __init__(self, checkpoint: str | None = None, device: str = "cpu", fp16: bool | None = None,
                 boxes_per_pass: int = BOXES_PER_PASS):
        if not isinstance(boxes_per_pass, int) or isinstance(boxes_per_pass, bool) or boxes_per_pass < 1:
            raise ValueError(f"Parameter 'boxes_per_pass' must be a positive integer; got {boxes_per_pass!r}")
        self.boxes_per_pass = boxes_per_pass
        self.load_model(checkpoint, device, fp16)

    def prepare(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> SegBatch:
        """Preprocesses images and maps their ``xyxy`` pixel boxes (CPU only).

        Args:
            images: ``HxWx3`` uint8 RGB arrays
            boxes: one ``(n_i, 4)`` array of absolute ``xyxy`` boxes per image
        """
        arrays = [np.require(img, requirements="W") for img in images]
        enc = self.processor.image_processor(images=arrays, input_data_format="channels_last",
                                             return_tensors="pt")
        sizes = [(int(a.shape[1]), int(a.shape[0])) for a in arrays]
        reshaped = None
        if "reshaped_input_sizes" in enc:
            reshaped = [tuple(int(v) for v in hw) for hw in enc["reshaped_input_sizes"].tolist()]
        mapped = [self.input_boxes(np.asarray(b, dtype=np.float64).reshape(-1, 4), size, i, reshaped)
                  for i, (b, size) in enumerate(zip(boxes, sizes))]
        return SegBatch(enc["pixel_values"], sizes, mapped, reshaped)

    @abc.abstractmethod
    def input_boxes(self, boxes: np.ndarray, size: tuple[int, int], index: int,
                    reshaped: list[tuple[int, int]] | None) -> np.ndarray:
        """Pixel ``xyxy`` boxes of one image -> the model's input coordinates."""

    @abc.abstractmethod
    def image_maps(self, masks, index: int, batch: SegBatch):
        """``(n, h, w)`` low-res mask logits of image ``index`` -> logits over
        the whole image (a torch tensor on the device)."""

    def image_embeddings(self, pixel_values):
        import torch

        with torch.inference_mode():
            return self.model.get_image_embeddings(pixel_values.to(self.device, dtype=self.dtype))

    def predict(self, batch: SegBatch) -> list[BoxMasks]:
        """One vision pass over the batch, then the mask decoder over the
        boxes, ``boxes_per_pass`` boxes of every image at a time.

        Returns:
            one :class:`BoxMasks` per image, masks in box order
        """
        import torch

        embeddings = self.image_embeddings(batch.pixel_values)
        n_img = len(batch.sizes)
        maps: list[list[np.ndarray]] = [[] for _ in range(n_img)]
        ious: list[list[np.ndarray]] = [[] for _ in range(n_img)]
        longest = max((len(b) for b in batch.boxes), default=0)
        for start in range(0, longest, self.boxes_per_pass):
            chunk = [b[start : start + self.boxes_per_pass] for b in batch.boxes]
            width = max(len(c) for c in chunk)
            # images with fewer boxes repeat their first box (or a dummy one):
            # the decoder needs one box count per pass; padding is dropped
            padded = np.zeros((n_img, width, 4), dtype=np.float32)
            for i, c in enumerate(chunk):
                if len(c):
                    padded[i, : len(c)] = c
                    padded[i, len(c):] = c[0]
                else:
                    padded[i, :] = [0, 0, 1, 1]
            boxes = torch.as_tensor(padded, device=self.device, dtype=self.dtype)
            with torch.inference_mode():
                out = self.model(image_embeddings=embeddings, input_boxes=boxes, multimask_output=False)
                for i, c in enumerate(chunk):
                    if not len(c):
                        continue
                    low = out.pred_masks[i, : len(c), 0]
                    maps[i].append(self.image_maps(low, i, batch).float().cpu().numpy())
                    ious[i].append(out.iou_scores[i, : len(c), 0].float().clamp(0, 1).cpu().numpy())
        return [
            BoxMasks(np.concatenate(m) if m else np.zeros((0, 1, 1), np.float32),
                     np.concatenate(s) if s else np.zeros(0, np.float32))
            for m, s in zip(maps, ious)
        ]

    def __call__(self, images, boxes) -> list[BoxMasks]:
        return self.predict(self.prepare(images, boxes))

    @classmethod
    @abc.abstractmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        """A random-weight checkpoint that loads like a real one (``tiny``
        for tests, ``full`` = the default checkpoint's architecture, for
        speed measurements). Its masks are meaningless."""


class ModelRegistry:
    """Model classes by their ``name`` (the ``model`` parameter's values);
    one for segmenters here, one for video trackers in :mod:`.sam_video`."""

    def __init__(self):
        self.classes: dict[str, type] = {}

    def register(self, cls):
        """Class decorator: makes ``cls`` loadable by its ``name``."""
        self.classes[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self.classes)

    def get(self, name: str) -> type:
        """The class registered as ``name``.

        Raises:
            ValueError: naming the parameter, for an unknown name
        """
        if name not in self.classes:
            raise ValueError(f"Parameter 'model' must be one of {self.names()}; got {name!r}")
        return self.classes[name]


_SEGMENTERS = ModelRegistry()


def segmenter_names() -> list[str]:
    """The ``model`` values :func:`load_segmenter` accepts."""
    return _SEGMENTERS.names()


def get_segmenter(name: str) -> type[BoxSegmenter]:
    """The segmenter class of a ``model`` name.

    Raises:
        ValueError: naming the parameter, for an unknown name
    """
    return _SEGMENTERS.get(name)


@_SEGMENTERS.register
class SamSegmenter(BoxSegmenter):
    """SAM (Segment Anything, ``facebook/sam-vit-base``; also ``-large``,
    ``-huge``): ViT encoder at 1024 x 1024, longest side resized, padded."""

    name = "sam"
    default_checkpoint = "facebook/sam-vit-base"
    model_types = ("sam",)
    model_class = "SamModel"
    processor_class = "SamProcessor"

    def input_boxes(self, boxes, size, index, reshaped):
        width, height = size
        new_h, new_w = reshaped[index]
        return boxes * np.array([new_w / width, new_h / height, new_w / width, new_h / height])

    def image_maps(self, masks, index, batch):
        import torch.nn.functional as F

        side = batch.pixel_values.shape[-1]
        h, w = batch.reshaped[index]
        up = F.interpolate(masks[None].float(), (side, side), mode="bilinear", align_corners=False)[0]
        return up[:, :h, :w]

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        """``tiny``: a 2-layer ViT of width 32 at 128 x 128 (8 x 8 patches),
        32 x 32 masks. ``full``: the config defaults = ``sam-vit-base``
        (ViT-B/16 at 1024, 94M parameters)."""
        from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

        check_size(size)
        if size == "tiny":
            side = 128
            config = SamConfig(
                vision_config=dict(hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2,
                                   image_size=side, patch_size=16, window_size=4, global_attn_indexes=[1],
                                   mlp_dim=64, num_pos_feats=16),
                prompt_encoder_config=dict(hidden_size=32, image_size=side, patch_size=16, mask_input_channels=4),
                mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
            )
            image_processor = SamImageProcessor(
                size={"longest_edge": side}, pad_size={"height": side, "width": side},
                mask_size={"longest_edge": side // 4}, mask_pad_size={"height": side // 4, "width": side // 4},
            )
        else:
            config, image_processor = SamConfig(), SamImageProcessor()
        model = seeded(lambda: SamModel(config).eval())
        return save_checkpoint(model, SamProcessor(image_processor=image_processor), directory)


@_SEGMENTERS.register
class Sam2Segmenter(BoxSegmenter):
    """SAM 2.1 (``facebook/sam2.1-hiera-tiny``; also ``-small``,
    ``-base-plus``, ``-large``): Hiera encoder, image stretched to 1024 x 1024."""

    name = "sam2"
    default_checkpoint = "facebook/sam2.1-hiera-tiny"
    model_types = ("sam2", "sam2_video")
    model_class = "Sam2Model"
    processor_class = "Sam2Processor"

    def _model_config(self, config):
        if config.model_type != "sam2_video":
            return config
        from transformers import Sam2Config

        # the hub's SAM 2.1 checkpoints hold the video model; the image
        # model is its encoder, prompt encoder and mask decoder
        return Sam2Config(vision_config=config.vision_config.to_dict(),
                          prompt_encoder_config=config.prompt_encoder_config.to_dict(),
                          mask_decoder_config=config.mask_decoder_config.to_dict())

    def input_boxes(self, boxes, size, index, reshaped):
        width, height = size
        side = self.processor.target_size
        return boxes * np.array([side / width, side / height, side / width, side / height])

    def image_maps(self, masks, index, batch):
        return masks

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        """A ``sam2_video`` checkpoint, laid out like the hub's SAM 2.1 ones
        (so ``track_labels`` loads it too). ``tiny``: a 5-block Hiera of
        width 16 at 128 x 128, 32 x 32 masks, one memory-attention layer.
        ``full``: the config defaults = ``sam2.1-hiera-tiny`` (39M)."""
        return build_sam2_video_checkpoint(directory, size)


def tiny_memory_config(side: int, grid: int) -> dict:
    """Memory attention/encoder of a tiny tracker (transformers hard-codes
    a memory width of 64 and needs the model width above it). A short
    memory (3 frames, 4 object pointers) so that short test videos exercise
    :func:`prune_outputs`."""
    return dict(
        image_size=side, memory_attention_hidden_size=128, memory_attention_num_layers=1,
        memory_attention_num_attention_heads=1, memory_attention_feed_forward_hidden_size=64,
        memory_attention_rope_feat_sizes=[grid, grid], memory_encoder_hidden_size=128,
        num_maskmem=3, max_object_pointers_in_encoder=4,
        memory_encoder_output_channels=64, mask_downsampler_embed_dim=128, memory_fuser_embed_dim=128,
        memory_fuser_intermediate_dim=64,
    )


def build_sam2_video_checkpoint(directory: str, size: str = "tiny") -> str:
    """A random-weight ``sam2_video`` checkpoint with its processor.

    ``tiny``: a 5-block Hiera of width 16 at 128 x 128 (feature maps 32, 16,
    8), model width 128, one memory-attention layer, 32 x 32 masks.
    ``full``: the config defaults, ``sam2.1-hiera-tiny``'s architecture.
    Masks of random weights are meaningless.
    """
    from transformers import Sam2VideoConfig, Sam2VideoModel, Sam2VideoProcessor

    check_size(size)
    if size == "tiny":
        side, w = 128, 16
        vision = dict(
            backbone_config=dict(
                model_type="sam2_hiera_det_model", hidden_size=w, num_attention_heads=1, image_size=[side, side],
                blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[w, 2 * w, 4 * w, 8 * w],
                num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 4, 4],
                global_attention_blocks=[3], window_positional_embedding_background_size=[2, 2],
            ),
            backbone_channel_list=[8 * w, 4 * w, 2 * w, w],
            backbone_feature_sizes=[[side // 4] * 2, [side // 8] * 2, [side // 16] * 2],
            fpn_hidden_size=128,
        )
        config = Sam2VideoConfig(
            vision_config=vision,
            prompt_encoder_config=dict(hidden_size=128, image_size=side, patch_size=16, mask_input_channels=4),
            mask_decoder_config=dict(hidden_size=128, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
            **tiny_memory_config(side, side // 16),
        )
    else:
        side, config = 1024, Sam2VideoConfig()
    return save_random_tracker(directory, size, Sam2VideoModel, Sam2VideoProcessor, config, side, side // 4)


def save_random_tracker(directory: str, size: str, model_class, processor_class, config, side: int,
                        mask_side: int) -> str:
    """Builds a random-weight video tracker of ``model_class`` from
    ``config`` under a fixed seed and saves it with its processor
    (``side`` x ``side`` frames, ``mask_side`` x ``mask_side`` masks).
    A ``tiny`` one sees its objects on every frame
    (:func:`bias_object_scores`)."""
    from transformers import Sam2ImageProcessor, Sam2VideoVideoProcessor

    image_processor = Sam2ImageProcessor(size={"height": side, "width": side},
                                         mask_size={"height": mask_side, "width": mask_side})
    processor = processor_class(image_processor=image_processor,
                                video_processor=Sam2VideoVideoProcessor(size={"height": side, "width": side}))
    model = seeded(lambda: model_class(config).eval())
    if size == "tiny":
        bias_object_scores(model)
    return save_checkpoint(model, processor, directory)


def bias_object_scores(model) -> None:
    """Makes a tiny random tracker see its objects on every frame.

    A random object-score head scores near 0, and SAM 2 blanks the masks of
    frames where the score is <= 0, so a random tiny tracker would track
    nothing and tests would exercise nothing. The bias of the head's last
    layer is set to +4 (the masks themselves stay random).
    """
    import torch

    with torch.no_grad():
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(4.0)


def load_pretrained(checkpoint: str, model_class: str, processor_class: str, model_types: Sequence[str],
                    device: str, fp16: bool, config_hook=None, name: str = ""):
    """Loads a processor and a model by named transformers classes, safely.

    Hub ids and local ``save_pretrained`` folders take the same
    ``from_pretrained`` path. Never runs a checkpoint's own code; refuses
    pickled weights that reference code (``weights_only`` loading).

    Args:
        checkpoint: hub id or local folder
        model_class: transformers class name of the model
        processor_class: transformers class name of the processor
        model_types: accepted ``config.model_type`` values
        device: torch device
        fp16: cast the model to float16
        config_hook: maps the loaded config to the one the model is built from
        name: the ``model`` parameter's value, for errors

    Returns:
        ``(processor, model)``, the model in eval mode on ``device``

    Raises:
        ValueError: naming the parameter 'checkpoint', for a missing folder,
            a checkpoint of another model type, or refused weights
    """
    import torch
    import transformers
    from transformers import AutoConfig

    checkpoint, is_local = resolve_checkpoint(checkpoint)
    config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=False)
    if config.model_type not in model_types:
        raise ValueError(
            f"Parameter 'checkpoint': {checkpoint!r} is a {config.model_type!r} checkpoint; "
            f"model {name!r} needs one of type {', '.join(model_types)}"
        )
    if config_hook is not None:
        config = config_hook(config)
    processor = getattr(transformers, processor_class).from_pretrained(checkpoint)
    kwargs: dict[str, Any] = {}
    if is_local and any(f.endswith(".safetensors") for f in os.listdir(checkpoint)):
        kwargs["use_safetensors"] = True  # never unpickle when safetensors exist
    try:
        model = getattr(transformers, model_class).from_pretrained(checkpoint, config=config, **kwargs)
    except pickle.UnpicklingError as e:
        raise refused_pickle(e, f"Parameter 'checkpoint': the weights of {checkpoint!r}",
                             "Use a checkpoint saved with safetensors") from e
    dtype = torch.float16 if fp16 else torch.float32
    return processor, model.to(device=device, dtype=dtype).eval()


class LastLoaded:
    """Where :func:`load_cached` keeps the last model of one kind (models
    are large: one per kind stays loaded)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items: dict[str, Any] = {}


def load_cached(store: LastLoaded, cls, model: str, checkpoint: str | None, device: str | None,
                fp16: bool | None, cache: bool, options: dict):
    """``cls(checkpoint, device, fp16, **options)``, or the one ``store``
    holds for the same arguments; ``device=None`` means CUDA when available."""
    if device is None:
        from .models import default_device

        device = default_device()
    key = json.dumps([model, checkpoint or cls.default_checkpoint, device, fp16, options],
                     sort_keys=True, default=str)
    with store.lock:
        if cache and key in store.items:
            return store.items[key]
        store.items.clear()
        loaded = cls(checkpoint=checkpoint, device=device, fp16=fp16, **options)
        if cache:
            store.items[key] = loaded
        return loaded


_LOADED = LastLoaded()


def load_segmenter(model: str = "sam2", checkpoint: str | None = None, device: str | None = None,
                   fp16: bool | None = None, cache: bool = True, **options) -> BoxSegmenter:
    """Loads (or reuses the last loaded) segmenter.

    Args:
        model: ``"sam"`` or ``"sam2"``
        checkpoint: hub id or local folder; ``None`` uses the model's default
        device: torch device; ``None`` uses CUDA when available
        fp16: half precision; ``None`` means on CUDA only
        cache: keep it for the next call (only the last one is kept)
        **options: passed to the segmenter (``boxes_per_pass``)
    """
    return load_cached(_LOADED, get_segmenter(model), model, checkpoint, device, fp16, cache, options)
