"""Video trackers: SAM 2 video and SAM 3 tracking (Hugging Face transformers).

A tracker takes the frames of one video and boxes of objects on one frame,
and propagates each object's mask forward to the last frame and backward to
the first (SAM 2's memory attention: each frame attends to the masks of the
prompted frame and of the last few tracked frames). Per frame and object it
returns the mask logits over the whole frame at the model's resolution
(256 x 256 over the frame stretched to 1024 x 1024, resized to the frame
bilinearly: transformers' ``post_process_masks``), the bounding box of the
mask at the frame's resolution, and the object score (logit > 0: SAM 2
sees the object on this frame).

Memory, the part that decides what a video costs:

- frames are kept as ``side x side`` uint8 RGB (3 MB each at 1024) and
  normalized one at a time when the model reads them (transformers keeps
  every frame as normalized floats: 12 MB each in float32);
- transformers keeps every tracked frame's outputs (incl. a full-resolution
  mask logit map, 4 MB per object and frame); only the last
  ``max(num_maskmem, max_object_pointers_in_encoder)`` frames of the
  current direction are ever read again (plus the first ones after the
  prompt, read by the backward pass), so older outputs and every frame's
  full-resolution map are dropped as tracking moves on
  (:func:`prune_outputs`; equality with the unpruned run is tested).

Checkpoints: SAM 2.1 hub checkpoints (``facebook/sam2.1-hiera-*``) are
``sam2_video`` checkpoints; SAM 3's tracker is loaded from ``facebook/sam3``
(a ``sam3_video`` checkpoint holding detector and tracker) or a
``sam3_tracker_video`` one. Loading is safe (see :mod:`.sam`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Sequence

import numpy as np

from .backends._hf import check_size
from .sam import (LastLoaded, ModelRegistry, PretrainedSam, build_sam2_video_checkpoint, load_cached,
                  save_random_tracker, tiny_memory_config)


@dataclasses.dataclass
class TrackedFrame:
    """The tracker's output on one frame.

    Attributes:
        frame_index: index into the frames given to :meth:`VideoTracker.track`
        obj_ids: the object ids, in the order of the arrays
        logits: ``(n, h, w)`` float32 mask logits over the whole frame
        boxes: ``(n, 4)`` int pixel bounds ``x0, y0, x1, y1`` (end-exclusive)
            of each mask at the frame's resolution; ``-1`` rows: empty mask
        object_scores: ``(n,)`` object score logits (``> 0``: present)
    """

    frame_index: int
    obj_ids: list[int]
    logits: np.ndarray
    boxes: np.ndarray
    object_scores: np.ndarray


class FrameStore:
    """The frames of one video for a transformers inference session.

    Holds each frame resized to the model's ``side x side`` as uint8 and
    returns it normalized (the video processor's own resize, rescale and
    normalization) when the session reads it; a small cache keeps the last
    frames read (the model reads a frame once per object).
    """

    def __init__(self, video_processor, side: int, dtype, device: str = "cpu"):
        self._vp = video_processor
        self._side = side
        self._dtype = dtype
        self._device = device
        self._cache: dict[int, Any] = {}
        self.stored: list[Any] = []

    def add(self, frames: Sequence[np.ndarray]) -> None:
        """Appends decoded ``HxWx3`` uint8 RGB frames (resized on the way in)."""
        import torch

        if not len(frames):
            return
        part = [np.require(f, requirements="W") for f in frames]
        out = self._vp(videos=[part], size={"height": self._side, "width": self._side}, do_rescale=False,
                       do_normalize=False, return_tensors="pt")
        resized = out["pixel_values_videos"][0]
        self.stored.extend(torch.round(resized).clamp(0, 255).to(torch.uint8))

    def __len__(self) -> int:
        return len(self.stored)

    def __getitem__(self, index: int):
        hit = self._cache.get(index)
        if hit is not None:
            return hit
        frame = self.stored[index].float()
        out = self._vp(videos=[[frame]], do_resize=False, input_data_format="channels_first",
                       return_tensors="pt")["pixel_values_videos"][0, 0]
        value = out.to(self._device, dtype=self._dtype)
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[index] = value
        return value

    def __contains__(self, index) -> bool:
        return 0 <= index < len(self.stored)


def prune_outputs(session, current: int, reverse: bool, start: int, window: int) -> None:
    """Drops the stored outputs tracking will never read again.

    Every frame's full-resolution mask map (only read by the memory encoder
    in the same forward call), and non-prompted outputs more than ``window``
    frames behind ``current`` in the tracking direction, except the
    ``window`` frames after ``start`` (the backward pass starts from them).
    """
    for per_obj in session.output_dict_per_obj.values():
        for outputs in (per_obj["cond_frame_outputs"], per_obj["non_cond_frame_outputs"]):
            for out in outputs.values():
                out.pop("high_res_masks", None)
        non_cond = per_obj["non_cond_frame_outputs"]
        for idx in list(non_cond):
            behind = idx > current + window if reverse else idx < current - window
            needed_later = not reverse and start < idx <= start + window
            if behind and not needed_later:
                del non_cond[idx]


class VideoTracker(PretrainedSam):
    """Base of the transformers video trackers (SAM 2 video's session API).

    Args:
        checkpoint: hub id or local folder; ``None``: :attr:`default_checkpoint`
        device: torch device
        fp16: half precision; ``None`` means on CUDA only
        prune: drop outputs no longer needed (see :func:`prune_outputs`)
    """

    def __init__(self, checkpoint: str | None = None, device: str = "cpu", fp16: bool | None = None,
                 prune: bool = True):
        self.prune = prune
        self.load_model(checkpoint, device, fp16)

    @property
    def side(self) -> int:
        """The model's input side in pixels (1024 for the published models)."""
        return int(self.processor.video_processor.size["height"])

    def frame_store(self, frames: Sequence[np.ndarray] = ()) -> FrameStore:
        """An empty store for this model's input (or one holding ``frames``)."""
        store = FrameStore(self.processor.video_processor, self.side, self.dtype, self.device)
        store.add(frames)
        return store

    def window(self) -> int:
        cfg = self.model.config
        return max(int(cfg.num_maskmem), int(cfg.max_object_pointers_in_encoder)) + 1

    def track(self, store: FrameStore, frame_index: int, obj_ids: Sequence[int],
              boxes: np.ndarray, size: tuple[int, int]) -> Iterator[TrackedFrame]:
        """Tracks objects given by boxes on one frame through the whole video.

        Args:
            store: the video's frames (:meth:`frame_store`)
            frame_index: the frame the boxes are on
            obj_ids: one id per box
            boxes: ``(n, 4)`` absolute ``xyxy`` pixel boxes on that frame
            size: the frames' ``(width, height)``

        Yields:
            :class:`TrackedFrame` for the prompted frame, then each later
            frame in order, then each earlier frame backwards
        """
        import torch

        from transformers.models.sam2_video.modeling_sam2_video import Sam2VideoInferenceSession

        width, height = size
        session_cls = getattr(self._session_module(), self._session_class, Sam2VideoInferenceSession)
        session = session_cls(video=None, video_height=height, video_width=width,
                              inference_device=self.device, inference_state_device=self.device,
                              video_storage_device=self.device, dtype=self.dtype)
        session.processed_frames = store
        self.processor.add_inputs_to_inference_session(
            session, frame_idx=frame_index, obj_ids=list(obj_ids),
            input_boxes=[[list(map(float, b)) for b in np.asarray(boxes).reshape(-1, 4)]],
        )
        window = self.window()
        with torch.inference_mode():
            out = self.model(inference_session=session, frame_idx=frame_index)
        yield self._frame(out, size)
        for reverse in (False, True):
            gen = self.model.propagate_in_video_iterator(session, start_frame_idx=frame_index, reverse=reverse)
            while True:
                # grad mode is thread state: never left switched while suspended
                with torch.inference_mode():
                    out = next(gen, None)
                if out is None:
                    break
                if self.prune:
                    prune_outputs(session, out.frame_idx, reverse, frame_index, window)
                if out.frame_idx != frame_index:
                    yield self._frame(out, size)

    _session_class = "Sam2VideoInferenceSession"

    def _session_module(self):
        import sys

        return sys.modules[type(self.model).__module__]

    def _frame(self, out, size) -> TrackedFrame:
        import torch
        import torch.nn.functional as F

        width, height = size
        low = out.pred_masks[:, 0].float()
        with torch.inference_mode():
            full = F.interpolate(low[:, None], (height, width), mode="bilinear", align_corners=False)[:, 0] > 0
            rows, cols = full.any(dim=2), full.any(dim=1)
        boxes = np.full((len(low), 4), -1, dtype=np.int64)
        for i in range(len(low)):
            ys = torch.nonzero(rows[i]).flatten()
            xs = torch.nonzero(cols[i]).flatten()
            if len(ys) and len(xs):
                boxes[i] = [int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1]
        return TrackedFrame(
            frame_index=int(out.frame_idx),
            obj_ids=[int(o) for o in out.object_ids],
            logits=low.cpu().numpy(),
            boxes=boxes,
            object_scores=out.object_score_logits.float().reshape(-1).cpu().numpy(),
        )

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        raise NotImplementedError


_TRACKERS = ModelRegistry()


def tracker_names() -> list[str]:
    """The ``model`` values :func:`load_tracker` accepts."""
    return _TRACKERS.names()


def get_tracker(name: str) -> type[VideoTracker]:
    """The tracker class of a ``model`` name (ValueError naming the parameter)."""
    return _TRACKERS.get(name)


@_TRACKERS.register
class Sam2VideoTracker(VideoTracker):
    """SAM 2.1 video (``facebook/sam2.1-hiera-tiny``; also ``-small``,
    ``-base-plus``, ``-large``)."""

    name = "sam2"
    default_checkpoint = "facebook/sam2.1-hiera-tiny"
    model_types = ("sam2_video",)
    model_class = "Sam2VideoModel"
    processor_class = "Sam2VideoProcessor"

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        return build_sam2_video_checkpoint(directory, size)


@_TRACKERS.register
class Sam3VideoTracker(VideoTracker):
    """SAM 3's tracker (``facebook/sam3``): SAM 2's memory tracking on SAM
    3's perception encoder (a ViT at 1008 x 1008)."""

    name = "sam3"
    default_checkpoint = "facebook/sam3"
    model_types = ("sam3_tracker_video", "sam3_video")
    model_class = "Sam3TrackerVideoModel"
    processor_class = "Sam3TrackerVideoProcessor"
    _session_class = "Sam3TrackerVideoInferenceSession"

    @classmethod
    def build_random_checkpoint(cls, directory: str, size: str = "tiny") -> str:
        return build_sam3_tracker_checkpoint(directory, size)


def build_sam3_tracker_checkpoint(directory: str, size: str = "tiny") -> str:
    """A random-weight ``sam3_tracker_video`` checkpoint with its processor.

    ``tiny``: a 2-layer ViT of width 32 at 112 x 112 (14-pixel patches),
    model width 128, one memory-attention layer, 28 x 28 masks. ``full``:
    the config defaults, SAM 3's tracker (ViT-L-size encoder at 1008).
    Masks of random weights are meaningless.
    """
    from transformers import Sam3TrackerVideoConfig, Sam3TrackerVideoModel, Sam3TrackerVideoProcessor

    check_size(size)
    if size == "tiny":
        side, width = 112, 32
        vision = dict(
            backbone_config=dict(
                model_type="sam3_vit_model", num_hidden_layers=2, image_size=side, patch_size=14, window_size=4,
                global_attn_indexes=[1], pretrain_image_size=56, hidden_size=width, num_attention_heads=2,
                intermediate_size=2 * width,
            ),
            fpn_hidden_size=128,
            backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]],
        )
        config = Sam3TrackerVideoConfig(
            vision_config=vision,
            prompt_encoder_config=dict(hidden_size=128, image_size=side, patch_size=14, mask_input_channels=4),
            mask_decoder_config=dict(hidden_size=128, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
            **tiny_memory_config(side, side // 14),
        )
    else:
        config = Sam3TrackerVideoConfig()
        side = int(config.image_size)
    return save_random_tracker(directory, size, Sam3TrackerVideoModel, Sam3TrackerVideoProcessor, config, side,
                               side // 14 * 4)


_LOADED = LastLoaded()


def load_tracker(model: str = "sam2", checkpoint: str | None = None, device: str | None = None,
                 fp16: bool | None = None, cache: bool = True, **options) -> VideoTracker:
    """Loads (or reuses the last loaded) video tracker: ``model`` is
    ``"sam2"`` or ``"sam3"``, ``options`` go to the tracker (``prune``); the
    other arguments as :func:`.sam.load_segmenter`'s."""
    return load_cached(_LOADED, get_tracker(model), model, checkpoint, device, fp16, cache, options)
