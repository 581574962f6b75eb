"""Checks of the fields that operators are given."""

from __future__ import annotations


def check_detections_field(sample_collection, field_name: str, param: str) -> None:
    """Raises a ValueError naming ``param`` unless ``field_name`` is an
    ``fo.Detections`` field of the collection."""
    import fiftyone as fo

    if not field_name or not isinstance(field_name, str):
        raise ValueError(f"Parameter '{param}' must name a field; got {field_name!r}")
    field = sample_collection.get_field(field_name)
    if field is None:
        raise ValueError(f"Parameter '{param}': field '{field_name}' does not exist")
    if getattr(field, "document_type", None) is not fo.Detections:
        raise ValueError(
            f"Parameter '{param}': field '{field_name}' must hold fo.Detections; "
            f"got {type(field).__name__}"
        )


def check_other_detections_field(sample_collection, field_name: str, param: str, label_field: str) -> None:
    """As :func:`check_detections_field`, for a field read beside
    ``label_field`` (ground truth, a reference): it must also be another
    field, since comparing labels with themselves would prove nothing."""
    if field_name == label_field:
        raise ValueError(f"Parameter '{param}' must differ from 'label_field'")
    check_detections_field(sample_collection, field_name, param)
