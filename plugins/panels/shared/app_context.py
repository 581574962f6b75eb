"""What both panels read from the App's context: label fields, the label
selection, the calibration run. Plain functions of a dataset or of the
``selected_labels`` list the App sends, so tests call them directly."""

from __future__ import annotations

from typing import Sequence

from ...common import provenance
from ...common.label_vocab import DEFAULT_LABEL_FIELD

DEFAULT_CALIBRATION_KEY = "triage"
CALIBRATION_METHOD = "calibrate_triage"


def label_fields(dataset) -> list[str]:
    """Top-level ``fo.Detections`` fields of the dataset, sorted, the
    default auto-label field first when present."""
    import fiftyone as fo

    if dataset is None:
        return []
    schema = dataset.get_field_schema(embedded_doc_type=fo.Detections)
    names = sorted(schema)
    if DEFAULT_LABEL_FIELD in names:
        names.remove(DEFAULT_LABEL_FIELD)
        names.insert(0, DEFAULT_LABEL_FIELD)
    return names


def choose_label_field(dataset, current: str | None) -> str | None:
    """``current`` if the dataset still has it, else its first label field."""
    fields = label_fields(dataset)
    if current in fields:
        return current
    return fields[0] if fields else None


def calibration_key(dataset, label_field: str | None, current: str | None = None) -> str | None:
    """The ``calibrate_triage`` run that goes with ``label_field``:
    ``current`` if valid, else ``"triage"``, else the newest such run;
    None when there is none."""
    if dataset is None or label_field is None:
        return None
    runs = provenance.stoplight_runs(dataset, CALIBRATION_METHOD, label_field=label_field)
    return provenance.newest_run_key(runs, preferred=(current, DEFAULT_CALIBRATION_KEY))


def selected_label_ids(selected_labels: Sequence[dict] | None, label_field: str) -> list[str]:
    """Ids of the App's selected labels that belong to ``label_field``
    (the App's selection items: ``{"label_id", "sample_id", "field", ...}``)."""
    return [s["label_id"] for s in selected_labels or [] if s.get("field") == label_field and s.get("label_id")]
