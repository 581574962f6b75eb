"""CLIP embeddings of each auto-label's box crop, stored on the label.

Each ``fo.Detection`` of a ``Detections`` field gets a per-label attribute
(``embedding`` by default): the L2-normalized CLIP image embedding of its
box crop, padded by ``context`` times the box size on each side and then
to a square with the image's mean color (so that CLIP's center crop keeps
the whole of an elongated box), as a list of floats. Storing the vector on the label keeps it next to the box it
describes: it follows the label through views, filters and clones, a run
that is interrupted keeps every chunk written so far, and re-running with
``overwrite=False`` embeds only the labels that have none yet.

The pipeline mirrors :mod:`..autolabel.pipeline`: ids, paths and boxes are
read in one bulk ``values()`` call, background threads decode images, crop
and preprocess upcoming samples while the model runs on the current batch
of crops (crops from several images share a forward pass), and embeddings
are written in bulk with ``set_label_values`` every ``write_every`` labels.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import math
import os
import pickle
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..common.images import ImageLoadError, load_image
from ..common.provenance import MAX_RECORDED_FAILURES
from ..common.progress import Progress
from ..common.progress import run as run_progress
from ..common import bulk, db_errors, label_attrs, provenance
from ..common.limits import check_count, check_int
from ..common.prefetch import prefetch
from ..common.ray_executor import RayExecutor, executor_from

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


def crop_box(image: np.ndarray, box, context: float = 0.1) -> tuple[int, int, int, int]:
    """Pixel edges ``(left, top, right, bottom)`` of a padded, clipped box.

    ``box`` is FiftyOne's relative ``[x, y, w, h]``. The box is grown by
    ``context`` times its width (height) on the left and right (top and
    bottom), then the smallest whole-pixel rectangle containing it (with a
    1e-6 px tolerance for float error) is clipped to the image. The result
    is at least 1 px wide and tall, even for empty or out-of-image boxes.
    """
    if context < 0:
        raise ValueError(f"Parameter 'context' must be >= 0; got {context!r}")
    height, width = image.shape[:2]
    x, y, w, h = (float(v) if v is not None and math.isfinite(float(v)) else 0.0 for v in box)
    w, h = max(w, 0.0), max(h, 0.0)
    x0, x1 = (x - context * w) * width, (x + w + context * w) * width
    y0, y1 = (y - context * h) * height, (y + h + context * h) * height
    eps = 1e-6
    left = min(max(math.floor(x0 + eps), 0), width - 1)
    top = min(max(math.floor(y0 + eps), 0), height - 1)
    right = max(min(math.ceil(x1 - eps), width), left + 1)
    bottom = max(min(math.ceil(y1 - eps), height), top + 1)
    return left, top, right, bottom


def crop_boxes(image: np.ndarray, boxes_xywh_rel, context: float = 0.1) -> list[np.ndarray]:
    """Crops of relative ``[x, y, w, h]`` boxes, padded by ``context``.

    See :func:`crop_box` for the pixel math. Crops are views of ``image``.
    """
    out = []
    for box in boxes_xywh_rel:
        left, top, right, bottom = crop_box(image, box, context)
        out.append(image[top:bottom, left:right])
    return out


def letterbox(crop: np.ndarray, fill) -> np.ndarray:
    """``crop`` centered on a square canvas of ``fill`` color.

    CLIP's preprocessing resizes the short side and center-crops the long
    one: a 1:5 box would lose 80 % of its length, often the part that says
    what it is (a bus's front, a person's feet). Padding to a square first
    keeps the whole box; the fill (callers pass the image's mean color)
    adds no edge a model would read as content.

    Args:
        crop: ``(h, w, 3)`` uint8 pixels
        fill: 3 channel values

    Returns:
        ``(s, s, 3)`` uint8, ``s = max(h, w)``; the crop itself if square
    """
    h, w = crop.shape[:2]
    if h == w:
        return crop
    side = max(h, w)
    out = np.empty((side, side) + crop.shape[2:], dtype=crop.dtype)
    out[...] = np.asarray(fill, dtype=np.float64).round().astype(crop.dtype)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = crop
    return out


@dataclasses.dataclass
class LabelCrops:
    """The preprocessed crops of one sample's labels (see :func:`load_crops`)."""

    sample_id: str
    filepath: str
    label_ids: list[str]
    pixels: Any  # (n, 3, S, S) tensor or None
    error: str | None
    decode_s: float
    prepare_s: float


def load_crops(
    clip: ClipModel, sample_id, filepath, label_ids, boxes, context, square: bool = True
) -> LabelCrops:
    """Decodes one image and preprocesses the crops of its labels for ``clip``.

    Crops are padded by ``context`` (:func:`crop_boxes`) and, with
    ``square``, letterboxed with the image's mean color (:func:`letterbox`).
    An image that cannot be decoded comes back with ``error`` set and no
    pixels.
    """
    import torch
    from PIL import Image

    t0 = time.perf_counter()
    try:
        image = load_image(filepath)
    except ImageLoadError as e:
        return LabelCrops(sample_id, filepath, label_ids, None, str(e), time.perf_counter() - t0, 0.0)
    t1 = time.perf_counter()
    crops = crop_boxes(image, boxes, context)
    if square:
        mean = image.reshape(-1, image.shape[-1]).mean(axis=0)
        crops = [letterbox(c, mean) for c in crops]
    pixels = torch.stack([clip.preprocess(Image.fromarray(np.ascontiguousarray(c))) for c in crops])
    return LabelCrops(sample_id, filepath, label_ids, pixels, None, t1 - t0, time.perf_counter() - t1)


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


def write_embeddings(
    sample_collection, label_field: str, embeddings_attr: str, values: Sequence[dict]
) -> None:
    """Writes label embeddings in bulk.

    Args:
        sample_collection: the collection whose dataset holds the labels
        label_field: the ``fo.Detections`` field
        embeddings_attr: the per-label attribute
        values: ``{"sample_id", "label_id", "value"}`` dicts (vectors as lists)
    """
    path = f"{label_field}.detections.{embeddings_attr}"
    sample_collection.set_label_values(path, list(values), validate=False)


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


def _check_label_field(sample_collection, label_field: str) -> None:
    import fiftyone as fo

    field = sample_collection.get_field(label_field)
    if field is None:
        raise ValueError(f"Field '{label_field}' does not exist on this collection")
    if getattr(field, "document_type", None) is not fo.Detections:
        raise ValueError(
            f"Field '{label_field}' must hold fo.Detections; got {type(field).__name__}"
        )


def iter_compute_label_embeddings(
    sample_collection,
    label_field: str = "autolabels",
    model_name: str = "ViT-B-32",
    pretrained: str | None = "openai",
    context: float = 0.1,
    batch_size: int = 64,
    embeddings_attr: str = "embedding",
    overwrite: bool = False,
    device: str | None = None,
    num_workers: int | None = None,
    write_every: int = 1024,
    prompts: Sequence[str] | None = None,
    run_key: str | None = None,
    clip: ClipModel | None = None,
    letterbox_crops: bool = True,
    record_run: bool = True,
    executor: str | RayExecutor | None = "local",
) -> Iterator[Progress]:
    """Generator form of :func:`compute_label_embeddings`.

    Yields :class:`Progress` events (in labels) and returns the run summary
    (the ``StopIteration`` value). Arguments are those of
    :func:`compute_label_embeddings`; with ``record_run=False`` no run
    record is written (the caller keeps one).
    """
    import fiftyone as fo

    ray_executor = executor_from(executor)
    if ray_executor is not None and clip is not None:
        raise ValueError("Parameter 'clip' cannot be used with the Ray executor: each Ray actor "
                         "loads its own model from 'model_name' and 'pretrained'")
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)
    if not isinstance(write_every, int) or write_every < 1:
        raise ValueError(f"Parameter 'write_every' must be a positive integer; got {write_every!r}")
    # bounded: one request must not exhaust the App server's memory
    check_int(batch_size, "batch_size", 1, "embed_batch_size")
    check_int(num_workers, "num_workers", 0, "num_workers")
    if prompts is not None:
        check_count(len(prompts), "prompts", "prompts")
    if not (isinstance(context, (int, float)) and context >= 0):
        raise ValueError(f"Parameter 'context' must be >= 0; got {context!r}")
    # never one of the attributes Stoplight gives a meaning to (a review
    # decision, the box, a score): an overwrite would replace them all
    label_attrs.check_free_attr(embeddings_attr, "embeddings_attr")
    # another process (a killed or delegated run) may have declared the
    # embedding attribute since this dataset object was loaded; a stale
    # schema would make every label look unembedded and re-embed them all
    sample_collection._dataset.reload()
    _check_label_field(sample_collection, label_field)

    root = f"{label_field}.detections"
    dataset = sample_collection._dataset
    has_attr = sample_collection.has_field(f"{root}.{embeddings_attr}")
    fields = ["id", "filepath", f"{root}.id", f"{root}.bounding_box"]
    if has_attr:
        fields.append(f"{root}.{embeddings_attr}")
    columns = list(sample_collection.values(fields))
    if not has_attr:
        columns.append([None] * len(columns[0]))

    jobs = []
    num_target = num_skipped = 0
    for sid, path, lids, boxes, embs in zip(*columns):
        todo_ids, todo_boxes = [], []
        for i, lid in enumerate(lids or []):
            num_target += 1
            if not overwrite and embs is not None and embs[i] is not None:
                num_skipped += 1
                continue
            todo_ids.append(lid)
            todo_boxes.append(boxes[i])
        if todo_ids:
            jobs.append((sid, path, todo_ids, todo_boxes))
    total = num_target - num_skipped
    path_of = {job[0]: job[1] for job in jobs}

    if prompts is None:
        # the classes present: score_labels' CLIP agreement needs a text
        # embedding of every class, with the class name as its prompt
        prompts = sample_collection.distinct(f"{label_field}.detections.label")
    prompts = list(prompts)
    if ray_executor is not None and jobs:
        # (nothing to embed: the prompts are embedded here, as locally)
        from .ray_embeddings import iter_embed_on_ray

        settings = dict(
            label_field=label_field, model_name=model_name, pretrained=pretrained,
            context=float(context), batch_size=batch_size, embeddings_attr=embeddings_attr,
            overwrite=overwrite, device=device, letterbox_crops=bool(letterbox_crops),
            prompts=prompts,
        )
        return (yield from iter_embed_on_ray(
            sample_collection, ray_executor, jobs, settings, run_key=run_key,
            num_target_labels=num_target, num_skipped_labels=num_skipped, record_run=record_run,
        ))
    if clip is None:
        clip = load_clip(model_name, pretrained, device=device)

    run_key = run_key or provenance.new_run_key(f"{label_field}_{embeddings_attr}")
    record = None if not record_run else provenance.start_run(
        dataset,
        run_key,
        method="compute_label_embeddings",
        model_name=clip.model_name,
        pretrained=clip.pretrained,
        embedding_dim=clip.dim,
        label_field=label_field,
        embeddings_attr=embeddings_attr,
        context=float(context),
        letterbox_crops=bool(letterbox_crops),
        batch_size=batch_size,
        device=clip.device,
        overwrite=overwrite,
        prompts=prompts,
        num_target_labels=num_target,
        num_skipped_labels=num_skipped,
    )

    timings = dict(decode_s=0.0, prepare_s=0.0, embed_s=0.0, write_s=0.0, text_s=0.0)
    failures: list[dict] = []
    num_failed_samples = num_failed_labels = num_embedded = 0
    pending: list[dict] = []
    queue_pixels: list = []  # per-item tensors not yet embedded
    queue_ids: list[tuple[str, str]] = []  # (sample_id, label_id) of queued rows
    text_embeddings = None
    path = f"{root}.{embeddings_attr}"

    def flush():
        if pending:
            t0 = time.perf_counter()
            try:
                label_attrs.check_writable([embeddings_attr])
                write_embeddings(sample_collection, label_field, embeddings_attr, pending)
            except Exception as e:  # noqa: BLE001 - classified below
                if db_errors.is_connection_error(e):
                    raise db_errors.unavailable(
                        e,
                        f"writing {len(pending)} embeddings to '{path}' of dataset '{dataset.name}'",
                        f"Embeddings written before are kept ({num_embedded - len(pending)} labels); once "
                        "the database is back, re-run with overwrite=False to embed the remaining labels",
                    ) from e
                raise
            timings["write_s"] += time.perf_counter() - t0
            pending.clear()

    def embed(n):
        """Embeds the first ``n`` queued crops."""
        nonlocal num_embedded
        import torch

        pixels = torch.cat(queue_pixels) if len(queue_pixels) > 1 else queue_pixels[0]
        batch, rest = pixels[:n], pixels[n:]
        queue_pixels.clear()
        if len(rest):
            queue_pixels.append(rest)
        t0 = time.perf_counter()
        feats = encode_crops(
            clip, batch, queue_ids[:n], record_crop_failure, systematic_if_all=num_embedded == 0
        )
        timings["embed_s"] += time.perf_counter() - t0
        for (sid, lid), vec in zip(queue_ids[:n], feats):
            if vec is not None:
                pending.append({"sample_id": sid, "label_id": lid, "value": vec.tolist()})
                num_embedded += 1
        del queue_ids[:n]

    def record_crop_failure(sid: str, lid: str, error: BaseException) -> None:
        nonlocal num_failed_labels
        num_failed_labels += 1
        msg = f"embedding failed: {type(error).__name__}: {error}"
        logger.warning("Sample %s (%s), label %s: %s", sid, path_of.get(sid), lid, msg)
        if len(failures) < MAX_RECORDED_FAILURES:
            failures.append(dict(sample_id=sid, filepath=path_of.get(sid), label_id=lid, error=msg))

    bulk.declare_field(dataset, label_field, fo.Detections, {embeddings_attr: fo.FloatField})
    yield Progress(0, total, f"Embedding {total} labels with {clip.model_name}")

    def make_summary(status: str) -> dict:
        return dict(
            run_key=run_key,
            label_field=label_field,
            embeddings_attr=embeddings_attr,
            model_name=clip.model_name,
            pretrained=clip.pretrained,
            embedding_dim=clip.dim,
            status=status,
            num_target_labels=num_target,
            num_skipped_labels=num_skipped,
            num_embedded_labels=num_embedded,
            num_failed_labels=num_failed_labels,
            num_failed_samples=num_failed_samples,
            failures=failures,
            prompts=prompts,
            text_embeddings=None if text_embeddings is None else text_embeddings.tolist(),
            timings={k: round(v, 4) for k, v in timings.items()},
        )

    with provenance.recorded_run(dataset, run_key, record, make_summary, flush=flush) as run:
        if prompts:
            t0 = time.perf_counter()
            text_embeddings = clip.encode_texts(prompts)
            timings["text_s"] += time.perf_counter() - t0

        def load(sid, fp, lids, boxes):
            return load_crops(clip, sid, fp, lids, boxes, context, letterbox_crops)

        for item in prefetch(jobs, load, num_workers, ahead=2 * num_workers, name="stoplight-embed"):
            timings["decode_s"] += item.decode_s
            timings["prepare_s"] += item.prepare_s
            if item.error is not None:
                num_failed_samples += 1
                num_failed_labels += len(item.label_ids)
                logger.warning("Sample %s (%s): %s", item.sample_id, item.filepath, item.error)
                if len(failures) < MAX_RECORDED_FAILURES:
                    failures.append(
                        dict(sample_id=item.sample_id, filepath=item.filepath, error=item.error)
                    )
            else:
                queue_pixels.append(item.pixels)
                queue_ids.extend((item.sample_id, lid) for lid in item.label_ids)
                while len(queue_ids) >= batch_size:
                    embed(batch_size)
            if len(pending) >= write_every:
                flush()
            done = num_embedded + num_failed_labels
            yield Progress(done, total, f"Embedded {done}/{total} labels")
        if queue_ids:
            embed(len(queue_ids))
        flush()
        yield Progress(total, total, f"Embedded {num_embedded}/{total} labels")
    summary = run.summary
    summary["text_embeddings"] = text_embeddings
    return summary


def compute_label_embeddings(
    sample_collection,
    label_field: str = "autolabels",
    model_name: str = "ViT-B-32",
    pretrained: str | None = "openai",
    context: float = 0.1,
    batch_size: int = 64,
    embeddings_attr: str = "embedding",
    overwrite: bool = False,
    device: str | None = None,
    num_workers: int | None = None,
    write_every: int = 1024,
    prompts: Sequence[str] | None = None,
    run_key: str | None = None,
    clip: ClipModel | None = None,
    letterbox_crops: bool = True,
    progress: bool | Callable[[Progress], None] = True,
    executor: str | RayExecutor | None = "local",
) -> dict:
    """Stores a CLIP embedding of each label's box crop on the label.

    Example usage::

        from stoplight.plugins.scoring.embeddings import compute_label_embeddings

        summary = compute_label_embeddings(
            ds, "autolabels", prompts=["a photo of a person", "a photo of a bus"]
        )
        ds.first().autolabels.detections[0].embedding   # a unit vector

    Args:
        sample_collection: a dataset or view of images
        label_field: a ``fo.Detections`` field
        model_name: open_clip architecture (see :func:`load_clip`)
        pretrained: open_clip tag or local checkpoint file
        context: padding on each side, as a fraction of the box size
        batch_size: crops per forward pass (crops of several images share one)
        embeddings_attr: the per-label attribute to write
        overwrite: recompute labels that already have ``embeddings_attr``;
            by default they are skipped, so an interrupted run resumes
        device: torch device; ``None`` uses CUDA when available
        num_workers: threads decoding, cropping and preprocessing upcoming
            images; ``None`` uses one per CPU core, at most 8
        write_every: labels buffered between bulk database writes
        prompts: class prompts whose text embeddings (same model) are
            returned as ``summary["text_embeddings"]`` (``(P, D)`` float32
            array) and stored in the run's results; ``None`` uses the class
            names present in ``label_field``, ``[]`` embeds no text
        run_key: key of the run record; ``None`` generates one
        clip: an already loaded :class:`ClipModel` to use
        letterbox_crops: pad each crop to a square with the image's mean
            color before CLIP's resize and center crop (see
            :func:`letterbox`); ``False`` feeds the crop as is, and the
            center crop cuts the ends of elongated boxes
        progress: a progress bar (``True``), nothing (``False``), or a
            callable receiving :class:`Progress` events
        executor: ``"local"`` (this process), ``"ray"``, or a
            :class:`~..common.ray_executor.RayExecutor`: the crops are
            embedded by a pool of Ray actors, each loading the model once
            and writing its embeddings itself (see :mod:`.ray_embeddings`;
            ``clip`` is for the local executor only)

    Returns:
        the run summary: label counts (target, skipped, embedded, failed),
        failed samples, timings, the run key and the text embeddings (with
        Ray also the actors, worker processes and nodes that took part)
    """
    gen = iter_compute_label_embeddings(
        sample_collection,
        label_field=label_field,
        model_name=model_name,
        pretrained=pretrained,
        context=context,
        batch_size=batch_size,
        embeddings_attr=embeddings_attr,
        overwrite=overwrite,
        device=device,
        num_workers=num_workers,
        write_every=write_every,
        prompts=prompts,
        run_key=run_key,
        clip=clip,
        letterbox_crops=letterbox_crops,
        executor=executor,
    )
    return run_progress(gen, progress)


def load_label_embeddings(
    sample_collection, label_field: str = "autolabels", embeddings_attr: str = "embedding"
) -> tuple[list[str], list[str], np.ndarray]:
    """Reads the stored label embeddings back in bulk.

    Labels without an embedding are left out. The vectors come straight
    from MongoDB's raw BSON into one float32 array
    (:func:`..common.bulk.read_label_vectors`), without a Python float per
    number: at 100k x 512-d about 17 s with ``values()`` and 12 GB at 1M.

    Returns:
        ``(label_ids, sample_ids, embeddings)``: aligned lists of the label
        and sample ids, and an ``(N, D)`` float32 array

    Raises:
        ValueError: if the stored embeddings have different lengths
    """
    root = f"{label_field}.detections"
    if not sample_collection.has_field(f"{root}.{embeddings_attr}"):
        return [], [], np.zeros((0, 0), np.float32)
    sample_ids, label_ids, emb = bulk.read_label_vectors(sample_collection, root, embeddings_attr)
    return label_ids, sample_ids, emb
