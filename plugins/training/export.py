"""Exporting reviewed labels as an ultralytics YOLO training set.

:func:`export_training_set` writes the labels of one field of a view with
FiftyOne's own YOLOv5 exporter (``fo.types.YOLOv5Dataset``: images under
``images/<split>``, one ``labels/<split>/<image>.txt`` per image with
``class cx cy w h`` relative to the image), keeping only the labels that
``include`` selects:

==================== =========================================================
``include``          labels exported
==================== =========================================================
``accepted``         ``review`` is ``accepted`` or ``corrected`` (a person
                     accepted them, or fixed their class or box: the
                     corrected values are exported)
``accepted+green``   also ``queue == "green"`` labels nobody rejected (the
                     same rule as ``finalize_labels(include_green=True)``)
``all``              every label (human labels, or raw auto-labels as in the
                     auto-labeling paper)
==================== =========================================================

Labels with instance masks (``segment_labels``) export as YOLO segmentation
rows (``class x1 y1 x2 y2 ...``, relative to the image): by default when
any exported label has a mask (``masks=None``). YOLO has one polygon per
object and ultralytics drops every polygon of an image set that mixes
polygon and box rows, so in such an export each label is exactly one row:
its mask's outline (FiftyOne's ``Detection.to_polyline``; a mask in several
pieces keeps its largest piece), or its box as a rectangle when it has no
mask or an empty one (:func:`segment_polylines`).

:func:`write_data_yaml` writes the ``data.yaml`` ultralytics trains from.
Nothing in the dataset is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ..common.fields import check_detections_field
from ..common.label_vocab import KEPT_DECISIONS

INCLUDE = ("accepted", "accepted+green", "all")


def keep_expression(include: str):
    """The ``filter_labels`` expression of the labels ``include`` keeps
    (None for ``all``).

    Raises:
        ValueError: for an unknown ``include``
    """
    from fiftyone import ViewField as F

    if include not in INCLUDE:
        raise ValueError(f"Parameter 'include' must be one of {INCLUDE}; got {include!r}")
    accepted = F("review").is_in(list(KEPT_DECISIONS))
    if include == "accepted":
        return accepted
    if include == "accepted+green":
        # a missing `review` is not "rejected": MongoDB's $ne matches it
        return accepted | ((F("queue") == "green") & (F("review") != "rejected"))
    return None


def kept_labels_view(sample_collection, label_field: str, include: str, skip_empty: bool):
    """The collection with only the labels ``include`` keeps in ``label_field``.

    Args:
        sample_collection: a dataset or view
        label_field: an ``fo.Detections`` field
        include: see the module docstring
        skip_empty: drop samples left without a kept label

    Returns:
        a view
    """
    expr = keep_expression(include)
    if expr is None:
        view = sample_collection.exists(label_field) if skip_empty else sample_collection
        if skip_empty:
            from fiftyone import ViewField as F

            view = view.match(F(f"{label_field}.detections").length() > 0)
        return view
    return sample_collection.filter_labels(label_field, expr, only_matches=skip_empty)


def _polygon_area(points) -> float:
    """Shoelace area of a polygon of ``(x, y)`` points (any units)."""
    import numpy as np

    if len(points) < 3:
        return 0.0
    xy = np.asarray(points, dtype=float)
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def segment_polylines(detections, tolerance: int = 2):
    """One closed, filled polygon per detection: what a YOLO segmentation
    row holds (relative ``[x, y]`` points, as FiftyOne polylines).

    Args:
        detections: an ``fo.Detections``
        tolerance: pixel tolerance of the mask outline (FiftyOne's
            ``Detection.to_polyline``)

    Returns:
        an ``fo.Polylines``, one polyline per detection in order: the outline
        of its mask's largest piece; its box as a rectangle when it has no
        mask, an empty one, or a mask too small to outline
    """
    import fiftyone as fo

    out = []
    for det in detections.detections if detections is not None else []:
        x, y, w, h = det.bounding_box
        points = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        mask = det.get_mask() if (det.mask is not None or det.mask_path) else None
        if mask is not None and mask.any():
            pieces = [p for p in det.to_polyline(tolerance=tolerance, filled=True).points if len(p) >= 3]
            if pieces:
                points = max(pieces, key=_polygon_area)
        out.append(fo.Polyline(label=det.label, points=[[tuple(map(float, p)) for p in points]], closed=True,
                               filled=True))
    return fo.Polylines(polylines=out)


def _export_segments(view, label_field: str, images_dir: Path, labels_dir: Path, yaml_path: Path, split: str,
                     classes: list, export_media, tolerance: int) -> None:
    """FiftyOne's YOLOv5 exporter fed one polygon per label."""
    from fiftyone.utils.yolo import YOLOv5DatasetExporter

    exporter = YOLOv5DatasetExporter(
        data_path=str(images_dir.resolve()), labels_path=str(labels_dir.resolve()),
        yaml_path=str(yaml_path.resolve()), split=split, classes=classes, export_media=export_media,
    )
    with exporter:
        exporter.log_collection(view)
        for filepath, dets in zip(*view.values(["filepath", label_field])):
            exporter.export_sample(filepath, segment_polylines(dets, tolerance) if dets is not None else None)


def export_training_set(
    sample_collection,
    label_field: str,
    export_dir: str | os.PathLike,
    include: str = "accepted",
    classes: Sequence[str] | None = None,
    split: str = "train",
    skip_empty: bool = True,
    export_media: bool | str = "symlink",
    masks: bool | None = None,
    tolerance: int = 2,
) -> dict:
    """Exports the kept labels of a view in YOLO format (one split).

    Args:
        sample_collection: the samples to export (image samples)
        label_field: an ``fo.Detections`` field
        export_dir: the export root; the split goes to
            ``images/<split>`` and ``labels/<split>``
        include: ``accepted``, ``accepted+green`` or ``all`` (module
            docstring)
        classes: the class list (its order gives the YOLO class ids); by
            default the sorted kept classes. Give the same list to every
            export that one model trains or is tested on
        split: the split name (``train``, ``val``, ``test``)
        skip_empty: leave out samples without a kept label. For reviewed
            auto-labels this is the safe default: an image whose objects
            nobody accepted would teach the model that they are background
        export_media: ``"symlink"`` (default: no copies), ``True`` (copy)
            or ``"move"`` is refused (it would move the dataset's images)
        masks: export segmentation polygons (``True``), boxes (``False``),
            or polygons when any exported label has a mask (``None``;
            module docstring)
        tolerance: pixel tolerance of the mask outlines

    Returns:
        dict: ``export_dir``, ``split``, ``images_dir``, ``labels_dir``,
        ``classes``, ``num_images``, ``num_labels``, ``label_ids`` (ids of
        the exported labels), ``masks`` (whether rows are polygons),
        ``num_masks`` (exported labels that have a mask)

    Raises:
        ValueError: for a bad field, ``include``, ``split`` or
            ``export_media``, labels outside ``classes``, or a split
            folder that already holds files
    """
    import fiftyone as fo

    check_detections_field(sample_collection, label_field, "label_field")
    if sample_collection.media_type != "image":
        raise ValueError(f"Only image samples can be exported; the view has media type {sample_collection.media_type!r}")
    if not split or not str(split).isidentifier():
        raise ValueError(f"Parameter 'split' must be a plain name such as 'train'; got {split!r}")
    if export_media not in (True, "symlink"):
        raise ValueError(f"Parameter 'export_media' must be True (copy) or 'symlink'; got {export_media!r}")
    if masks not in (None, True, False):
        raise ValueError(f"Parameter 'masks' must be True, False or None (auto); got {masks!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"Parameter 'tolerance' must be an integer >= 0; got {tolerance!r}")
    view = kept_labels_view(sample_collection, label_field, include, skip_empty)
    kept_classes = sorted(view.distinct(f"{label_field}.detections.label"))
    if classes is None:
        classes = kept_classes
    else:
        classes = [str(c) for c in classes]
        unknown = sorted(set(kept_classes) - set(classes))
        if unknown:
            raise ValueError(f"Parameter 'classes' misses classes of the exported labels: {unknown}")
    root = Path(export_dir)
    images_dir, labels_dir = root / "images" / split, root / "labels" / split
    for d in (images_dir, labels_dir):
        if d.exists() and any(d.iterdir()):
            raise ValueError(f"Parameter 'export_dir': {str(d)!r} already holds files; choose an empty folder")
    from fiftyone import ViewField as F

    has_mask = (F("mask") != None) | (F("mask_path") != None)  # noqa: E711 - MongoDB null test
    num_masks = view.filter_labels(label_field, has_mask, only_matches=False).count(f"{label_field}.detections")
    masks = num_masks > 0 if masks is None else masks
    if masks:
        _export_segments(view, label_field, images_dir, labels_dir, root / "dataset.yaml", split, list(classes),
                         export_media, tolerance)
    else:
        # explicit paths rather than export_dir: several splits share the
        # root, and FiftyOne warns about merging into an existing export_dir
        view.export(
            dataset_type=fo.types.YOLOv5Dataset,
            data_path=str(images_dir.resolve()),
            labels_path=str(labels_dir.resolve()),
            yaml_path=str((root / "dataset.yaml").resolve()),
            label_field=label_field,
            split=split,
            classes=list(classes),
            export_media=export_media,
            progress=False,
        )
    label_ids = view.values(f"{label_field}.detections.id", unwind=True)
    return dict(
        export_dir=str(root),
        split=split,
        images_dir=str(images_dir),
        labels_dir=str(labels_dir),
        classes=list(classes),
        num_images=len(view),
        num_labels=len(label_ids),
        label_ids=label_ids,
        masks=bool(masks),
        num_masks=num_masks,
    )


def write_data_yaml(path: str | os.PathLike, train: str, val: str, test: str | None, classes: Sequence[str]) -> str:
    """Writes an ultralytics ``data.yaml`` with absolute image folders.

    Returns:
        the path
    """
    import yaml

    data = dict(
        path=str(Path(path).parent.resolve()),
        train=str(Path(train).resolve()),
        val=str(Path(val).resolve()),
        names=dict(enumerate(classes)),
    )
    if test:
        data["test"] = str(Path(test).resolve())
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)
